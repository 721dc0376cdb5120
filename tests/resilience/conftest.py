"""A whole platform on its own PostgreSQL cluster, and the means to hurt it: kill -9 its processes,
stop its broker, restart its database. Nothing here touches the machine's shared PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from iotcloud.config import Settings
from tests.conftest import ops_port_env
from tests.ports import free_port
from tests.http_client import Http
from tests.processes import children_of

REPO = Path(__file__).resolve().parents[2]


def pg_bin(tool: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), key=lambda p: int(p.parts[-3]))
    return str(found[-1]) if found else shutil.which(tool)


class PrivatePostgres:
    """A throw-away cluster on a free port (as deploy/test-postgres.sh's fallback), so this suite may
    stop and restart its database without disturbing other test runs on the machine's 5432."""

    def __init__(self, root: Path):
        self.root, self.data, self.port = root, root / "data", free_port()
        root.mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0:  # initdb refuses to run as root
            shutil.chown(root, "postgres")
        self._as_postgres([pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                           "--no-sync"])
        self.start()
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as admin:
            admin.execute('CREATE DATABASE "iotcloud"')

    def _as_postgres(self, command: list[str], check: bool = True) -> subprocess.CompletedProcess:
        if os.getuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> None:
        self._as_postgres([pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-o",
                           f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
                           "-c fsync=off -c max_connections=200", "start"])

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres([pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"], check=False)

    def restart(self) -> None:
        """A crash (immediate stop: no checkpoint, recovery on start) followed by a start."""
        self.stop("immediate")
        self.start()

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="iotcloud", autocommit=True)

    def env(self) -> dict:
        return {"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": "iotcloud",
                "POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": str(self.port), "POSTGRES_USER": "postgres",
                "POSTGRES_PASSWORD": ""}


class Platform:
    """`iotcloud run` on PostgreSQL, with every port private to this run."""

    def __init__(self, root: Path, postgres: PrivatePostgres, extra_env: dict | None = None):
        self.root, self.state = root, root / "state"
        ports = {name: free_port() for name in ("API", "EMBEDDED_MONGODB", "MQTT", "AMQP", "BROKER_AUTH",
                                                "BROKER_MANAGEMENT", "BROKER_DIST", "BROKER_EPMD")}
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "IOTCLOUD_"))},
                    **postgres.env(), "IOTCLOUD_STATE_DIR": str(self.state),
                    **{f"IOTCLOUD_{name}_PORT": str(port) for name, port in ports.items()},
                    "IOTCLOUD_ARGON2_MEMORY_KIB": "8192", "IOTCLOUD_ARGON2_TIME_COST": "1", **ops_port_env(),
                    **(extra_env or {})}
        self.settings = Settings.from_env(self.env)
        self.log_path = root / "platform.log"
        self._log = open(self.log_path, "w+")
        self.process = subprocess.Popen([sys.executable, "-m", "iotcloud.cli", "run"], env=self.env, cwd=REPO,
                                        stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while "Press Ctrl-C to stop." not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the platform did not start:\n" + self.log()[-5000:])
            time.sleep(0.2)
        self.http = Http(f"http://127.0.0.1:{ports['API']}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def supervisor_lines(self) -> list[dict]:
        """The supervisor's own JSON log lines (deaths, restarts, giving up)."""
        lines = []
        for line in self.log().splitlines():
            if line.startswith("{") and '"iotcloud.run"' in line:
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    continue
        return lines

    def restarts(self, child: str | None = None) -> int:
        return sum(1 for line in self.supervisor_lines()
                   if line["msg"].endswith(")") and " restarted (pid " in line["msg"]
                   and (child is None or line.get("child") == child))

    def child_pid(self, marker: str) -> int:
        """The pid of the supervisor's child whose command line contains `marker`."""
        for pid, command in children_of(self.process.pid):
            if marker in command:
                return pid
        raise LookupError(f"no child running {marker!r}: {children_of(self.process.pid)}")

    def api_worker_pid(self) -> int:
        master = self.child_pid("gunicorn")
        workers = children_of(master)
        assert workers, "the API master has no worker"
        return workers[0][0]

    def broker_ctl(self, *args: str) -> subprocess.CompletedProcess:
        from iotcloud.broker import embedded_node
        return embedded_node(self.settings).rabbitmqctl(*args, timeout=60)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "iotcloud.cli", *args], env=self.env, cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)

    def code_for(self, email: str) -> str:
        listing = self.cli("outbox", "--json", "--to", email).stdout.splitlines()
        return re.search(r"code is (\d{6})", json.loads(listing[0])["body"]).group(1)

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(90)
            except subprocess.TimeoutExpired:
                self.process.kill()  # its children follow it (PR_SET_PDEATHSIG)
                self.process.wait()
        self._log.close()
        return self.process.returncode


@pytest.fixture
def private_postgres():
    # Not under tmp_path: pytest makes that 0700 for root, and the cluster runs as the postgres user.
    root = Path(tempfile.mkdtemp(prefix="iotcloud-crash-pg-"))
    postgres = PrivatePostgres(root)
    yield postgres
    postgres.stop("immediate")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def crash_platform(tmp_path, private_postgres):
    platform = Platform(tmp_path, private_postgres)
    yield platform
    platform.stop()


def pytest_configure(config):
    config.addinivalue_line("markers", "long: long variant of a resilience suite (run with -m long)")


def pytest_collection_modifyitems(config, items):
    """Long variants run only when asked for by `-m long`; `make test` runs the short ones."""
    if "long" in (config.getoption("markexpr") or ""):
        return
    keep = [item for item in items if "long" not in item.keywords]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if "long" in item.keywords])
        items[:] = keep
