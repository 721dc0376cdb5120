"""Crash and restart: under a steady load of device calls, kill -9 each platform process in turn, stop the
broker and crash PostgreSQL; the supervisor restarts what died. Afterwards every accepted call has exactly
one terminal state, no call ran twice on a device, and every read model equals a fresh rebuild.

`make test` runs one round (about 2 minutes on 2 cores); `pytest -m long tests/resilience` runs
IOTCLOUD_CRASH_ROUNDS rounds (default 3) under a heavier load.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field

import pytest

from tests.resilience.calls_under_faults import (CALL_TIMEOUT, Load, send, signed_up_token, verify_calls,
                                                 wait_for)
from tests.simulators.sim_helpers import SimProcess

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.broker]


@dataclass
class Run:
    platform: object
    postgres: object
    token: str
    canary: str
    load: Load | None = None
    restarts_seen: collections.Counter = field(default_factory=collections.Counter)

    def healthy(self) -> bool:
        """The API answers and a waiting call goes all the way to a device and back."""
        call = send(self.platform.http.base, self.token, "POST", f"/v1/devices/{self.canary}/commands",
                    {"api": "get_status", "timeout": CALL_TIMEOUT}, timeout=10)
        return call.status == 200

    def wait_healthy(self, after: str) -> None:
        wait_for(self.healthy, f"a device call end to end after {after}", 90, 0.5)

    def enter(self, phase: str) -> None:
        if self.load is not None:
            self.load.phase = phase

    def kill_child(self, child: str, command_marker: str) -> None:
        self.enter(child)
        before = self.platform.restarts(child)
        os.kill(self.platform.child_pid(command_marker), signal.SIGKILL)
        wait_for(lambda: self.platform.restarts(child) > before, f"the supervisor restarting {child}", 60)
        self.restarts_seen[child] += 1
        self.wait_healthy(f"kill -9 of {child}")

    def kill_api_worker(self) -> None:
        self.enter("api worker")
        worker = self.platform.api_worker_pid()
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: self._other_worker(worker), "gunicorn replacing its worker", 30)
        self.restarts_seen["api worker"] += 1
        self.wait_healthy("kill -9 of the API worker")

    def _other_worker(self, old: int) -> bool:
        try:
            return self.platform.api_worker_pid() != old
        except (LookupError, AssertionError):
            return False

    def restart_broker(self) -> None:
        self.enter("broker")
        outage_started = time.monotonic()
        before = self.platform.restarts("broker")
        stopped = self.platform.broker_ctl("stop", str(self.platform.state / "broker" / "rabbitmq.pid"))
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        wait_for(lambda: self.platform.restarts("broker") > before, "the supervisor restarting the broker", 90)
        self.restarts_seen["broker"] += 1
        self.wait_healthy("the broker restart")
        if self.load is not None:
            self.load.broker_outages.append((outage_started, time.monotonic()))

    def restart_postgres(self) -> None:
        self.enter("postgres")
        self.postgres.restart()
        self.restarts_seen["postgres"] += 1
        self.wait_healthy("the PostgreSQL restart")

    def one_round(self) -> None:
        self.kill_api_worker()
        self.kill_child("api", "gunicorn")
        self.kill_child("gateway", "iotcloud.cli gateway")
        self.kill_child("signer", "iotcloud.cli signer")
        self.kill_child("projector", "iotcloud.cli projector")
        self.kill_child("broker auth", "iotcloud.cli broker-auth")
        self.kill_child("read store (nx-27017)", "nx-27017")
        self.restart_broker()
        self.restart_postgres()
        self.enter("steady")


def crash_and_restart(crash_platform, private_postgres, tmp_path, rounds: int, threads: int, pause: float):
    started = time.monotonic()
    platform = crash_platform
    http = platform.http
    token = signed_up_token(platform)
    devices, simulators = [], []
    for n in range(3):
        status, credentials = http("POST", "/v1/devices", {"name": f"dev{n}", "correlation_ids": True}, token)
        assert status == 201, credentials
        path = tmp_path / f"dev{n}.json"
        path.write_text(json.dumps(credentials))
        devices.append(f"dev{n}")
        simulators.append(SimProcess([sys.executable, "-m", "simulators.mqtt_device", "--credentials", str(path),
                                       "--max-reconnect-delay", "2"]))
    run = Run(platform, private_postgres, token, canary=devices[0])
    try:
        for sim in simulators:
            sim.wait_for(r"subscribed to", 30)
        run.wait_healthy("start-up")

        load = run.load = Load(http.base, token, devices, threads, pause).start()
        wait_for(lambda: len(load.calls) >= 10, "the load to get going", 30)
        for _ in range(rounds):
            run.one_round()
        time.sleep(1)  # a little load on the recovered platform, so the last restart is exercised too
        calls = load.stop()
        verify_calls(platform, private_postgres, tmp_path, token, calls, simulators,
                     {"restarts": dict(run.restarts_seen), "supervisor_restarts_logged": platform.restarts(),
                      "started": started}, broker_outages=load.broker_outages)
    finally:
        for n, sim in enumerate(simulators):
            sim.kill()
            (tmp_path / f"dev{n}.out").write_text(sim.output())


def test_every_accepted_call_ends_once_across_crashes_and_restarts(crash_platform, private_postgres, tmp_path):
    crash_and_restart(crash_platform, private_postgres, tmp_path, rounds=1, threads=2, pause=0.1)


@pytest.mark.long
def test_crash_and_restart_long(crash_platform, private_postgres, tmp_path):
    crash_and_restart(crash_platform, private_postgres, tmp_path,
                      rounds=int(os.environ.get("IOTCLOUD_CRASH_ROUNDS", "3")), threads=4, pause=0.02)
