"""Several instances of every process against one PostgreSQL event store: two API processes, two
gateways and two projectors (the supervisor's, plus a second of each started beside it), device calls
spread over both APIs as a load balancer would, while the gateway and the projector that hold their
leases and one API are killed with -9. The standby gateway and projector take over; afterwards every
accepted call has exactly one terminal state, none ran twice on a device, and the read models equal a
rebuild (the same checks as the crash/restart test).

Not covered here (see docs/scaling.md): a RabbitMQ cluster (one private node serves both gateways).
Process kinds that do not exist yet (the notifier) join through SECOND_INSTANCES once they do.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from tests.conftest import free_port, stop_process
from tests.resilience.conftest import Platform
from tests.resilience.test_crash_restart import Load, send, signed_up_token, verify_calls, wait_for
from tests.simulators.sim_helpers import SimProcess

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.broker]

# Each process kind that runs twice: its CLI command and the setting of its metrics port.
SECOND_INSTANCES = {"gateway": "GATEWAY_METRICS", "projector": "PROJECTOR_METRICS", "notifier": "NOTIFIER_METRICS"}
DEVICES = int(os.environ.get("IOTCLOUD_SEVERAL_DEVICES", "4"))


class SpreadLoad(Load):
    """Device calls round-robin over several API base URLs; a refused or cut connection moves the
    thread on to the next API, as a load balancer's health check would."""

    def __init__(self, bases: list[str], token: str, devices: list[str], threads: int, pause: float):
        super().__init__(bases[0], token, devices, threads, pause)
        self.bases = bases

    def _run(self, n: int) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            base = self.bases[(n + i) % len(self.bases)]
            device, marker, wait = self.devices[(n + i) % len(self.devices)], uuid.uuid4().hex, i % 5 == 0
            body = {"api": "write_uart", "params": {"value": f"m:{marker}"}, "wait": wait, "timeout": 3}
            phase = self.phase
            call = send(base, self.token, "POST", f"/v1/devices/{device}/commands", body)
            call.marker, call.device, call.wait, call.phases = marker, device, wait, (phase, self.phase)
            call.api = base
            self.calls.append(call)
            if call.transport_error and len(self.bases) > 1 and base in self.bases:
                self.bases = [b for b in self.bases if b != base]  # that API is gone: the balancer drops it
            self._stop.wait(self.pause if call.status else 0.2)


def lease_held(port: int) -> bool | None:
    """Whether the process behind a metrics port holds its lease (None: it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    found = re.search(r"^iotcloud_lease_held\{[^}]*\} (\S+)$", text, re.M)
    return bool(found and float(found.group(1)) == 1.0)


def holder(ports: dict[str, int]) -> str | None:
    held = [name for name, port in ports.items() if lease_held(port)]
    assert len(held) <= 1, f"two holders of one lease: {held}"
    return held[0] if held else None


@pytest.fixture
def several(tmp_path, private_postgres):
    # Every call goes through the gateway: the API's short path keeps its lines in one process.
    platform = Platform(tmp_path, private_postgres, {"IOTCLOUD_DIRECT_CALLS": "off"})
    extra, logs = {}, []
    api2 = {"IOTCLOUD_API_PORT": str(free_port()), "IOTCLOUD_API_HTTPS_PORT": str(free_port())}
    for name, env in [("api", api2), *[(kind, {f"IOTCLOUD_{port}_PORT": str(free_port())})
                                       for kind, port in SECOND_INSTANCES.items()]]:
        log = open(tmp_path / f"{name}-2.log", "w+")
        logs.append(log)
        extra[name] = (subprocess.Popen([sys.executable, "-m", "iotcloud.cli", name], env={**platform.env, **env},
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True), env)
    try:
        yield platform, extra
    finally:
        for process, _ in extra.values():
            stop_process(process)
        for log in logs:
            log.close()
        platform.stop()


def test_two_of_every_process_survive_losing_the_lease_holders_and_an_api(several, private_postgres, tmp_path):
    started = time.monotonic()
    platform, extra = several
    http = platform.http
    api2_base = f"http://127.0.0.1:{extra['api'][1]['IOTCLOUD_API_PORT']}"
    wait_for(lambda: send(api2_base, "", "GET", "/healthz").status == 200, "the second API", 60)
    token = signed_up_token(platform)
    devices, simulators = [], []
    for n in range(DEVICES):
        status, credentials = http("POST", "/v1/devices", {"name": f"dev{n}", "correlation_ids": True}, token)
        assert status == 201, credentials
        (tmp_path / f"dev{n}.json").write_text(json.dumps(credentials))
        devices.append(f"dev{n}")
        simulators.append(SimProcess([sys.executable, "-m", "simulators.mqtt_device", "--credentials",
                                      str(tmp_path / f"dev{n}.json"), "--max-reconnect-delay", "2"]))
    ports = {kind: {"first": int(platform.env[f"IOTCLOUD_{port}_PORT"]),
                    "second": int(extra[kind][1][f"IOTCLOUD_{port}_PORT"])} for kind, port in SECOND_INSTANCES.items()}
    report = {"devices": DEVICES, "failover_seconds": {}}
    try:
        for sim in simulators:
            sim.wait_for(r"subscribed to", 30)
        # Exactly one of each pair works; the other stands by.
        for kind in SECOND_INSTANCES:
            wait_for(lambda: holder(ports[kind]), f"a {kind} holding its lease", 30)
        canary = lambda base: send(base, token, "POST", f"/v1/devices/{devices[0]}/commands",  # noqa: E731
                                   {"api": "get_status", "timeout": 3}, timeout=10).status == 200
        wait_for(lambda: canary(http.base) and canary(api2_base), "calls through both APIs", 60, 0.5)

        load = SpreadLoad([http.base, api2_base], token, devices, threads=2, pause=0.1).start()
        wait_for(lambda: len(load.calls) >= 20, "the load to get going", 30)
        for kind in SECOND_INSTANCES:
            load.phase = kind
            working = holder(ports[kind])
            standby = "second" if working == "first" else "first"
            pid = platform.child_pid(f"iotcloud.cli {kind}") if working == "first" else extra[kind][0].pid
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: lease_held(ports[kind][standby]), f"the standby {kind} taking over", 30, 0.05)
            report["failover_seconds"][kind] = round(time.monotonic() - killed_at, 3)
            wait_for(lambda: canary(http.base), f"a device call after the {kind} failover", 60, 0.5)
            if working == "first":  # the supervisor restarts it: it must now stand by, not work too
                wait_for(lambda: lease_held(ports[kind]["first"]) is not None, f"the restarted {kind}", 60, 0.2)
                assert holder(ports[kind]) == "second"
        load.phase, before = "api", len(load.calls)
        # The second API dies whole, master and worker, as a container or a pod does; nobody restarts it.
        os.killpg(extra["api"][0].pid, signal.SIGKILL)
        wait_for(lambda: len(load.calls) >= before + 20, "more calls after the API was killed", 60)
        load.phase = "steady"
        wait_for(lambda: canary(http.base), "a device call after the API was killed", 60, 0.5)
        time.sleep(1)
        calls = load.stop()
        report["accepted_per_api"] = {base: sum(1 for c in calls if c.command_id and c.api == base)
                                      for base in (http.base, api2_base)}
        verify_calls(platform, private_postgres, tmp_path, token, calls, simulators,
                     {**report, "started": started}, title="several instances", min_accepted=30)
    finally:
        for n, sim in enumerate(simulators):
            sim.kill()
            (tmp_path / f"dev{n}.out").write_text(sim.output())
