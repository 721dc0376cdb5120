"""`iotcloud run`: starts every platform process on embedded defaults and stops them all on exit."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

from iotcloud.bootstrap import prepare_state
from iotcloud.config import Settings
from iotcloud.embedded_mongo import start_embedded_mongo, wait_for_port

log = logging.getLogger("iotcloud.run")


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    where: str = ""


@dataclass
class Supervisor:
    """Owns the child processes; the first to die (or a signal) stops the rest."""

    settings: Settings
    children: list[Child] = field(default_factory=list)
    stopping: bool = False
    node: object = None  # the embedded broker node: a daemon, not a child process

    def start(self) -> None:
        prepare_state(self.settings)
        env = {**os.environ, "IOTCLOUD_STATE_DIR": str(self.settings.state_dir)}
        if self.settings.uses_embedded_mongodb:
            mongo = start_embedded_mongo(self.settings.state_dir, self.settings.embedded_mongodb_port,
                                         preexec_fn=die_with_parent)
            self.children.append(Child("read store (nx-27017)", mongo, self.settings.effective_mongodb_uri))
        self._spawn("signer", [sys.executable, "-m", "iotcloud.cli", "signer"], env, str(self.settings.signer_socket_path))
        self._spawn("projector", [sys.executable, "-m", "iotcloud.cli", "projector"], env,
                    "device_list, users, commands read models")
        if self.settings.broker == "embedded":
            self._start_broker(env)
        if self.settings.broker != "none":
            self._spawn("gateway", [sys.executable, "-m", "iotcloud.cli", "gateway"], env, "")
        self._spawn("api", gunicorn_command(self.settings), env, self.settings.api_url)
        wait_until_healthy(self.settings.api_url + "/healthz", self.children[-1].process)

    def _start_broker(self, env: dict) -> None:
        from iotcloud.broker import embedded_node, issue_service_credentials
        self._spawn("broker auth", [sys.executable, "-m", "iotcloud.cli", "broker-auth"], env,
                    f"http://127.0.0.1:{self.settings.broker_auth_port}")
        wait_for_port(self.settings.broker_auth_port, 30, self.children[-1].process)
        print("starting the broker (RabbitMQ; about 10 s on first start)...", flush=True)
        self.node = embedded_node(self.settings)
        self.node.start()
        issue_service_credentials(self.settings, self.node)

    def _spawn(self, name: str, command: list[str], env: dict, where: str) -> None:
        process = subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=die_with_parent)
        self.children.append(Child(name, process, where))

    def banner(self) -> str:
        s = self.settings
        store = (f"SQLite files in {s.state_dir}" if s.persistence_module == "eventsourcing.sqlite"
                 else s.persistence_module)
        lines = ["", "iotcloud is running", "",
                 f"  REST API        {s.api_url}   (OpenAPI: {s.api_url}/openapi.json)",
                 f"  event store     {store}",
                 f"  read store      {s.effective_mongodb_uri}{'  (embedded nx-27017)' if s.uses_embedded_mongodb else ''}",
                 f"  platform CA     {s.pki_dir / 'ca.pem'}",
                 "  outbox          iotcloud outbox   (confirmation codes and notifications)",
                 *( [f"  broker          mqtts://{s.broker_host}:{s.mqtt_port}  amqps://{s.broker_host}:{s.amqp_port}"
                     f"  (private RabbitMQ, client certificates)"] if s.broker == "embedded" else []),
                 f"  state           {s.state_dir}", "",
                 "  processes: " + ", ".join(f"{c.name} [pid {c.process.pid}]" for c in self.children),
                 "", "Press Ctrl-C to stop.", ""]
        return "\n".join(lines)

    def wait(self) -> int:
        while not self.stopping:
            for child in self.children:
                if child.process.poll() is not None:
                    log.error("%s exited with %s; stopping the platform", child.name, child.process.returncode)
                    self.stop()
                    return 1
            time.sleep(0.2)
        return 0

    def stop(self, *_signal) -> None:
        if self.stopping:
            return
        self.stopping = True
        node, self.node = self.node, None
        # Reverse start order: the API stops taking requests before the stores it uses go away.
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
                try:
                    child.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop within 10 s; killing it", child.name)
                    child.process.kill()
                    child.process.wait()
            if child.name == "gateway" and node is not None:
                # The broker goes after the gateway and the API, before its auth backend.
                node.stop()
                node = None
        if node is not None:
            node.stop()


def die_with_parent() -> None:
    """Children get SIGTERM if the supervisor dies without cleaning up (kill -9, OOM)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def gunicorn_command(settings: Settings) -> list[str]:
    # ApiWorker: gthread whose threads never wait for idle clients and that answers /healthz
    # without a thread; keep-alive 5 s is how long an idle connection may stay (no thread held).
    return [sys.executable, "-m", "gunicorn", "iotcloud.wsgi:app",
            "--bind", f"{settings.api_host}:{settings.api_port}",
            "--workers", str(settings.api_workers), "--worker-class", "iotcloud.api_worker.ApiWorker",
            "--threads", str(settings.api_threads), "--keep-alive", "5", "--no-control-socket",
            "--graceful-timeout", "10", "--log-level", "warning"]


def wait_until_healthy(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode} during start-up")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def run(settings: Settings) -> int:
    supervisor = Supervisor(settings)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    try:
        supervisor.start()
    except Exception as exc:
        log.error("start-up failed: %s", exc)
        supervisor.stop()
        return 1
    print(supervisor.banner(), flush=True)
    code = supervisor.wait()
    supervisor.stop()
    print("iotcloud stopped.", flush=True)
    return code
