"""`iotcloud run`: starts every platform process on embedded defaults, restarts what dies, stops all on exit.

A child that dies is restarted after a backoff (0.5 s doubling to 10 s). A child that needs more than
`RESTART_BUDGET` restarts within `RESTART_WINDOW` seconds is broken, not unlucky: the supervisor then
stops the whole platform and exits non-zero. Ctrl-C / SIGTERM stops everything, in reverse start order.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from gateways.broker.vm_process import end_vm, vm_alive
from iotcloud.api_launch import (api_environment, api_lines, gunicorn_command, health_url,
                                 wait_until_healthy)
from iotcloud.bootstrap import prepare_state
from iotcloud.config import Settings, redact_uri
from iotcloud.embedded_mongo import start_embedded_mongo, wait_for_port

log = logging.getLogger("iotcloud.run")

RESTART_BUDGET = 5        # restarts per child ...
RESTART_WINDOW = 60.0     # ... within this many seconds, before the supervisor gives up
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0


class Process(Protocol):
    """What the supervisor needs of a child: a subprocess.Popen, or a handle on a daemon (the broker)."""

    pid: int

    def poll(self) -> int | None: ...
    def send_signal(self, sig: int) -> None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def kill(self) -> None: ...


@dataclass(frozen=True)
class ChildSpec:
    """How to start one child. `start` returns once the child is usable (it may block, e.g. the broker)."""

    name: str
    start: Callable[[], Process]
    where: str = ""
    # Children stopped when this one dies and started again after it (the broker with its auth backend).
    takes_down: tuple[str, ...] = ()


@dataclass
class Child:
    spec: ChildSpec
    process: Process
    restarts: collections.deque = field(default_factory=collections.deque)  # monotonic times
    restart_due: float | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def where(self) -> str:
        return self.spec.where


class BrokerNodeProcess:
    """The embedded RabbitMQ node as a child: it daemonises, so it is watched through its beam pid."""

    def __init__(self, node):
        self.node = node
        node.start()
        self.pid = node.beam_pid() or 0
        self.returncode: int | None = None

    def poll(self) -> int | None:
        # Not the node's pid file, which goes seconds before the VM exits (a node restarted in that
        # window never booted: its start waited out all 90 s).
        if self.returncode is None and not vm_alive(self.pid):
            self.returncode = -1  # not our child: its exit status is not ours to read
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.node.stop()  # an orderly stop (SIGTERM to the VM, then its private epmd), whatever the signal
        self.returncode = 0

    def wait(self, timeout: float | None = None) -> int:
        return self.returncode if self.returncode is not None else 0

    def kill(self) -> None:
        """Stops the node at once: SIGTERM to the VM (it halts in seconds, without booting a CLI VM
        as rabbitmqctl does), SIGKILL if it lingers. Durable state survives; the next start recovers."""
        if self.poll() is None:
            end_vm(self.pid, 15.0, 5.0)
        self.returncode = self.returncode if self.returncode is not None else -signal.SIGTERM


def describe_exit(process: Process) -> str:
    code = process.poll()
    if isinstance(process, BrokerNodeProcess):
        return f"its node process (pid {process.pid}) is gone"
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class Supervisor:
    """Owns the child processes: restarts one that dies, stops all of them on a signal or a spent budget."""

    settings: Settings
    children: list[Child] = field(default_factory=list)
    stopping: bool = False
    stopped: bool = False
    clock: Callable[[], float] = time.monotonic
    budget: int = RESTART_BUDGET
    window: float = RESTART_WINDOW
    backoff_first: float = BACKOFF_FIRST
    backoff_max: float = BACKOFF_MAX

    def child_specs(self) -> list[ChildSpec]:
        """Every child in start order (stop order is the reverse). Add a process here to supervise it."""
        # prepare_state created the event-store tables: children that create them again at the same
        # moment fail on PostgreSQL ("tuple concurrently updated") and would need a restart to come up.
        s, env = self.settings, {**os.environ, "IOTCLOUD_STATE_DIR": str(self.settings.state_dir),
                                 "CREATE_TABLE": "n"}
        cli = [sys.executable, "-m", "iotcloud.cli"]
        specs = []
        if s.uses_embedded_mongodb:
            specs.append(ChildSpec("read store (nx-27017)", lambda: start_embedded_mongo(
                s.state_dir, s.embedded_mongodb_port, preexec_fn=die_with_parent), s.effective_mongodb_uri))
        # The only process that reads the CA key; the API asks it for certificates and CRLs.
        specs.append(ChildSpec("signer", spawner([*cli, "signer"], env, ready_socket=s.signer_socket_path),
                               str(s.signer_socket_path)))
        specs.append(ChildSpec("projector", spawner([*cli, "projector"], env),
                               "device_list, users, commands, notifications read models"))
        if s.broker == "embedded":
            # RabbitMQ 3.10 keeps an MQTT connection open after its auth backend failed a publish check,
            # with the channel behind it dead: that device would never get a request again. A broker
            # restarted with its backend drops every such zombie; devices reconnect.
            specs.append(ChildSpec("broker auth", spawner([*cli, "broker-auth"], env, ready_port=s.broker_auth_port),
                                   f"http://127.0.0.1:{s.broker_auth_port}", takes_down=("broker",)))
            specs.append(ChildSpec("broker", self._start_broker, f"mqtts://{s.broker_host}:{s.mqtt_port}"))
        if s.broker != "none":
            specs.append(ChildSpec("gateway", spawner([*cli, "gateway"], env)))
        # Delivers email, SMS and device-to-device notifications; resumes from the event store.
        specs.append(ChildSpec("notifier", spawner([*cli, "notifier"], env), f"email {s.email}, sms {s.sms}"))
        specs.append(ChildSpec("api", spawner(gunicorn_command(s), api_environment(s, env)), s.api_https_url or s.api_url))
        return specs

    def start(self) -> None:
        prepare_state(self.settings)
        for spec in self.child_specs():
            if self.stopping:
                return
            if spec.name == "broker":
                print("starting the broker (RabbitMQ; about 10 s on first start)...", flush=True)
            self.children.append(Child(spec, spec.start()))
        wait_until_healthy(*health_url(self.settings), self.children[-1].process)

    def _start_broker(self) -> BrokerNodeProcess:
        from iotcloud.broker import embedded_node, issue_service_credentials
        node = embedded_node(self.settings)
        process = BrokerNodeProcess(node)
        issue_service_credentials(self.settings, node)
        return process

    def banner(self) -> str:
        s = self.settings
        store = (f"SQLite files in {s.state_dir}" if s.persistence_module == "eventsourcing.sqlite"
                 else s.persistence_module)
        lines = ["", "iotcloud is running", "",
                 *api_lines(s),
                 f"  event store     {store}",
                 f"  read store      {redact_uri(s.effective_mongodb_uri)}{'  (embedded nx-27017)' if s.uses_embedded_mongodb else ''}",
                 f"  platform CA     {s.pki_dir / 'ca.pem'}",
                 "  outbox          iotcloud outbox   (confirmation codes and notifications)",
                 *( [f"  broker          mqtts://{s.broker_host}:{s.mqtt_port}  amqps://{s.broker_host}:{s.amqp_port}"
                     f"  (private RabbitMQ, client certificates or device passwords)"] if s.broker == "embedded" else []),
                 *( [f"                  amqp://127.0.0.1:{s.broker_loopback}  (the platform's own services only)"]
                    if s.broker_loopback else []),
                 f"  state           {s.state_dir}", "",
                 "  processes: " + ", ".join(f"{c.name} [pid {c.process.pid}]" for c in self.children),
                 "", "Press Ctrl-C to stop.", ""]
        return "\n".join(lines)

    def wait(self) -> int:
        """Supervises until a signal (0) or until a child spends its restart budget (1)."""
        while not self.stopping:
            for child in self.children:
                if self.stopping:
                    break
                if child.restart_due is None and child.process.poll() is not None:
                    if not self._schedule_restart(child):
                        return 1
                if child.restart_due is not None and self.clock() >= child.restart_due:
                    self._restart(child)
            time.sleep(0.1)
        return 0

    def _schedule_restart(self, child: Child) -> bool:
        now = self.clock()
        while child.restarts and now - child.restarts[0] > self.window:
            child.restarts.popleft()
        how = describe_exit(child.process)
        if len(child.restarts) >= self.budget:
            log.critical("%s %s and was already restarted %d times within %.0f s; giving up: stopping the platform",
                         child.name, how, len(child.restarts), self.window,
                         extra={"child": child.name, "pid": child.process.pid, "returncode": child.process.poll()})
            return False
        delay = min(self.backoff_max, self.backoff_first * 2 ** len(child.restarts))
        child.restarts.append(now)
        child.restart_due = now + delay
        log.error("%s (pid %s) %s; restarting it in %.1f s (restart %d of %d within %.0f s)",
                  child.name, child.process.pid, how, delay, len(child.restarts), self.budget, self.window,
                  extra={"child": child.name, "pid": child.process.pid, "returncode": child.process.poll()})
        for dependent in self.children:
            if dependent.name in child.spec.takes_down and dependent.restart_due is None:
                log.warning("stopping %s: it cannot work without %s", dependent.name, child.name,
                            extra={"child": dependent.name})
                if dependent.process.poll() is None:
                    dependent.process.kill()
                    dependent.process.wait()
                if not self._schedule_restart(dependent):
                    return False
                # After the child it depends on: children restart in start order, one round at a time.
                dependent.restart_due = max(dependent.restart_due, child.restart_due)
        return True

    def _restart(self, child: Child) -> None:
        child.restart_due = None
        try:
            child.process = child.spec.start()
        except Exception as exc:
            # Counts against the budget like a crash: the next poll sees the failed process and backs off.
            log.error("restarting %s failed: %s", child.name, exc, extra={"child": child.name})
            child.process = FailedStart()
            return
        log.warning("%s restarted (pid %s)", child.name, child.process.pid,
                    extra={"child": child.name, "pid": child.process.pid})

    def request_stop(self, *_signal) -> None:
        """Signal handler: only a flag, the main loop does the stopping (it may be mid-restart)."""
        self.stopping = True

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopping = self.stopped = True
        # Reverse start order: the API stops taking requests before the broker and stores it uses go away.
        for child in reversed(self.children):
            if child.process.poll() is None:
                began = time.monotonic()
                child.process.send_signal(signal.SIGTERM)
                try:
                    child.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop within 10 s; killing it", child.name)
                    child.process.kill()
                    child.process.wait()
                log.info("%s stopped in %.1f s", child.name, time.monotonic() - began,
                         extra={"child": child.name})


class FailedStart:
    """Stands in for a child whose restart raised, so that the next round backs off and retries."""

    pid = 0

    def poll(self) -> int:
        return 1

    def send_signal(self, sig: int) -> None:
        pass

    def wait(self, timeout: float | None = None) -> int:
        return 1

    def kill(self) -> None:
        pass


def spawner(command: list[str], env: dict, ready_port: int | None = None,
            ready_socket: Path | None = None) -> Callable[[], subprocess.Popen]:
    def start() -> subprocess.Popen:
        process = subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=die_with_parent)
        if ready_port is not None:
            wait_for_port(ready_port, 30, process)
        if ready_socket is not None:
            wait_for_socket(ready_socket, 30, process)
        return process
    return start


def wait_for_socket(path: Path, timeout: float, process: subprocess.Popen) -> None:
    """Until a Unix socket answers at `path` (a stale file from a killed run does not count)."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
                return
            except OSError:
                pass
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[-1]} exited with {process.returncode} before listening on {path}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {path} after {timeout} s")
        time.sleep(0.05)


def die_with_parent() -> None:
    """Children get SIGTERM if the supervisor dies without cleaning up (kill -9, OOM)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run(settings: Settings) -> int:
    supervisor = Supervisor(settings)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    try:
        supervisor.start()
    except Exception as exc:
        log.error("start-up failed: %s", exc)
        supervisor.stop()
        return 1
    if supervisor.stopping:
        supervisor.stop()
        return 0
    print(supervisor.banner(), flush=True)
    code = supervisor.wait()
    supervisor.stop()
    print("iotcloud stopped." if code == 0 else "iotcloud stopped: a process kept dying (see the log above).",
          flush=True)
    return code
