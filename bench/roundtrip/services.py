"""What a run starts and stops: a throw-away PostgreSQL database, `iotcloud run`, the fleet simulator."""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from roundtrip import HOST, ROOT, VENV_BIN, say
from roundtrip.cpu import PG_SHARED, WHOLE_MACHINE
from roundtrip.procstats import (children_of, descendants_of, find_pids, machine_busy_s, mib, pss_kib, scan, sh,
                                status_kib)
from tests.ports import free_ports


class Postgres:
    def __init__(self, host: str, port: int, user: str):
        self.host, self.port, self.user = host, port, user
        self.dbname = f"iotcloud_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.version = ""

    def _run(self, sql: str, db: str = "postgres") -> str:
        import psycopg
        with psycopg.connect(host=self.host, port=self.port, user=self.user, dbname=db, autocommit=True,
                             connect_timeout=5) as conn:
            row = conn.execute(sql).fetchone() if sql.lower().startswith("select") else conn.execute(sql)
            return row[0] if isinstance(row, tuple) else ""

    def create(self) -> None:
        self.version = self._run("select version()")
        self._run(f'CREATE DATABASE "{self.dbname}"')

    def drop(self) -> None:
        try:
            self._run(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        except Exception as exc:  # noqa: BLE001
            say(f"could not drop database {self.dbname}: {exc}")

    def env(self) -> dict:
        return {"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": self.dbname,
                "POSTGRES_HOST": self.host, "POSTGRES_PORT": str(self.port), "POSTGRES_USER": self.user,
                "POSTGRES_PASSWORD": "unused", "POSTGRES_SCHEMA": "public"}


def find_postgres() -> tuple[str, int, str]:
    """The machine's PostgreSQL when it trusts postgres@127.0.0.1:5432, else whatever deploy/test-postgres.sh finds
    (IOTCLOUD_TEST_PG_PORT set: straight to deploy/test-postgres.sh, e.g. for a private cluster)."""
    try:
        if os.environ.get("IOTCLOUD_TEST_PG_PORT"):
            raise LookupError("a port was chosen")
        import psycopg
        with psycopg.connect(host=HOST, port=5432, user="postgres", dbname="postgres", connect_timeout=3):
            return HOST, 5432, "postgres"
    except Exception:  # noqa: BLE001
        pass
    out = sh("bash", str(ROOT / "deploy" / "test-postgres.sh"), timeout=120)
    found = dict(re.findall(r"(IOTCLOUD_TEST_PG_\w+)=(\S+)", out))
    if not found:
        raise SystemExit("no PostgreSQL found (deploy/test-postgres.sh printed nothing)")
    return found["IOTCLOUD_TEST_PG_HOST"], int(found["IOTCLOUD_TEST_PG_PORT"]), found["IOTCLOUD_TEST_PG_USER"]


# ----------------------------------------------------------------------------------- platform

# The server's own processes: their WAL writing is part of every commit, but other databases share them.
PG_SERVER_WORDS = ("walwriter", "checkpointer", "background writer", "autovacuum launcher", "logical replication",
                   "stats collector")

class PgSampler:
    """Samples pg_stat_activity of the benchmark database every 50 ms: what the backends wait on."""

    def __init__(self, conninfo: dict, dbname: str, backends: set[int]):
        """`backends` gets this sampler's own backend pid: its CPU is the benchmark's, not the platform's."""
        self.conninfo, self.dbname, self.backends = conninfo, dbname, backends
        self.counts: collections.Counter = collections.Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    def _run(self):
        import psycopg
        try:
            with psycopg.connect(**self.conninfo, dbname=self.dbname, autocommit=True) as conn:
                self.backends.add(conn.info.backend_pid)
                while not self._stop.wait(0.05):
                    rows = conn.execute(
                        "select state, coalesce(wait_event_type || ':' || wait_event, 'cpu'), "
                        "regexp_replace(left(query, 50), '\\s+', ' ', 'g') from pg_stat_activity "
                        "where datname = %s and pid <> pg_backend_pid() and state <> 'idle'",
                        (self.dbname,)).fetchall()
                    self.samples += 1
                    for state, wait, query in rows:
                        self.counts[f"{state} | {wait} | {query}"] += 1
        except Exception as exc:  # noqa: BLE001
            self.counts[f"sampler failed: {exc}"] += 1

    def summary(self, top: int = 10) -> dict:
        return {"samples": self.samples,
                "mean_active_backends": round(sum(self.counts.values()) / self.samples, 2) if self.samples else None,
                "top": [{"what": k, "mean_backends": round(v / max(1, self.samples), 2)}
                        for k, v in self.counts.most_common(top)]}


class Platform:
    def __init__(self, state: Path, store_env: dict, workers: int, threads: int, log_level: str):
        ports = free_ports(15)
        self.state = state
        self.api_port = ports[0]
        self.env = {**os.environ, **store_env,
                    "IOTCLOUD_STATE_DIR": str(state), "IOTCLOUD_API_HOST": HOST,
                    "IOTCLOUD_API_PORT": str(ports[0]), "IOTCLOUD_EMBEDDED_MONGODB_PORT": str(ports[1]),
                    "IOTCLOUD_MQTT_PORT": str(ports[2]), "IOTCLOUD_AMQP_PORT": str(ports[3]),
                    "IOTCLOUD_BROKER_AUTH_PORT": str(ports[4]), "IOTCLOUD_BROKER_MANAGEMENT_PORT": str(ports[5]),
                    "IOTCLOUD_BROKER_DIST_PORT": str(ports[6]), "IOTCLOUD_BROKER_EPMD_PORT": str(ports[7]),
                    "IOTCLOUD_BROKER_HOST": HOST, "IOTCLOUD_API_WORKERS": str(workers),
                    "IOTCLOUD_API_THREADS": str(threads), "IOTCLOUD_LOG_LEVEL": log_level,
                    "IOTCLOUD_ACCESS_TOKEN_TTL": "7200",
                    **dict(zip(("IOTCLOUD_API_HTTPS_PORT", "IOTCLOUD_PROJECTOR_METRICS_PORT", "IOTCLOUD_GATEWAY_METRICS_PORT",
                                "IOTCLOUD_BROKER_AUTH_METRICS_PORT", "IOTCLOUD_SIGNER_METRICS_PORT",
                                "IOTCLOUD_NOTIFIER_METRICS_PORT", "IOTCLOUD_BROKER_LOOPBACK_PORT"), map(str, ports[8:])))}
        if store_env.get("PERSISTENCE_MODULE") == "eventsourcing.sqlite":
            self.env = {k: v for k, v in self.env.items() if not k.startswith("POSTGRES_")}
        self.ports = dict(zip(["api", "mongo", "mqtt", "amqp", "auth", "management", "dist", "epmd"], ports))
        self.process: subprocess.Popen | None = None
        self.pids: dict[str, int] = {}
        self.log_path = state / "platform.log"
        self.extra_pids: dict[str, int] = {"bench client": os.getpid()}
        self.bench_backends: set[int] = set()
        self.pg_dbname = store_env.get("POSTGRES_DBNAME") if store_env.get("PERSISTENCE_MODULE") == "eventsourcing.postgres" else None
        self.pg_conninfo = {"host": store_env.get("POSTGRES_HOST"), "port": store_env.get("POSTGRES_PORT"),
                            "user": store_env.get("POSTGRES_USER")}

    def start(self, timeout: float = 180) -> float:
        started = time.monotonic()
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen([str(VENV_BIN / "iotcloud"), "run"], env=self.env, cwd=ROOT,
                                        stdout=subprocess.PIPE, stderr=self._log, start_new_session=True)
        lines = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                if self.process.poll() is not None:
                    raise RuntimeError(f"iotcloud run exited with {self.process.returncode}; see {self.log_path}\n"
                                       + self.log_path.read_text()[-3000:])
                continue
            text = line.decode("utf-8", "replace").rstrip()
            lines.append(text)
            if text.strip().startswith("processes:"):
                for name, pid in re.findall(r"([\w ()\-]+?) \[pid (\d+)\]", text.split(":", 1)[1]):
                    self.pids[name.strip(" ,")] = int(pid)
            if text.strip().startswith("Press Ctrl-C"):
                break
        else:
            raise TimeoutError("the platform did not start in time")
        threading.Thread(target=self._drain, daemon=True).start()
        beams = find_pids(str(self.state), "beam.smp")
        if beams:
            # The supervisor's "broker" is the same beam.smp: one name, or its CPU and memory count twice.
            if self.pids.get("broker") == beams[0]:
                del self.pids["broker"]
            self.pids["broker (beam.smp)"] = beams[0]
        return time.monotonic() - started

    def _drain(self):
        for line in self.process.stdout:
            self._log.write(line)

    def api_workers(self, table=None) -> list[int]:
        return children_of(self.pids["api"], table) if "api" in self.pids else []

    def processes(self, table=None) -> dict[str, int]:
        procs = {}
        for name, pid in self.pids.items():
            if name == "api":
                procs["api master (gunicorn)"] = pid
                for i, worker in enumerate(self.api_workers(table)):
                    procs[f"api worker {i + 1}"] = worker
            else:
                procs[name] = pid
        return procs

    def memory(self) -> dict:
        report, hwm_total, rss_total, pss_total = {}, 0, 0, 0
        beam = self.pids.get("broker (beam.smp)")
        for name, pid in self.processes().items():
            hwm, rss, pss = status_kib(pid, "VmHWM"), status_kib(pid, "VmRSS"), pss_kib(pid)
            report[name] = {"pid": pid, "vmhwm_mib": mib(hwm), "vmrss_mib": mib(rss), "pss_mib": mib(pss)}
            # The supervisor may list the broker under its own name with the VM's pid: count it once.
            if "beam" not in name and pid != beam:
                hwm_total += hwm or 0
                rss_total += rss or 0
                pss_total += pss or 0
        broker = next((v for k, v in report.items() if "beam" in k), {})
        return {"processes": report,
                "platform_python_total": {"vmhwm_mib": mib(hwm_total), "vmrss_mib": mib(rss_total),
                                          "pss_mib": mib(pss_total)},
                "platform_with_broker_total": {
                    "vmhwm_mib": round(mib(hwm_total) + (broker.get("vmhwm_mib") or 0), 1),
                    "vmrss_mib": round(mib(rss_total) + (broker.get("vmrss_mib") or 0), 1),
                    "pss_mib": round(mib(pss_total) + (broker.get("pss_mib") or 0), 1)}}

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far per process (see roundtrip.cpu for what is counted)."""
        table = scan()

        def used(pids) -> float:
            return sum(table[pid].cpu_s for pid in pids if pid in table)
        named = self.processes(table)
        out = {name: used([pid]) for name, pid in named.items()}
        if self.process is not None:
            out["supervisor (iotcloud run)"] = used([self.process.pid])
            # Helpers the named processes start (erl_child_setup, inet_gethost, ...): platform CPU too.
            skip = set(named.values()) | set(self.extra_pids.values()) | {self.process.pid}
            roots = [self.process.pid] + [pid for name, pid in named.items() if "beam" in name]
            out["other platform processes"] = used({p for root in roots for p in descendants_of(root, table)} - skip)
        for name, pid in self.extra_pids.items():
            out[name] = used([pid])
        if self.pg_dbname:
            backends = [pid for pid, proc in table.items() if proc.cmd.startswith("postgres:")
                        and self.pg_dbname in proc.cmd and pid not in self.bench_backends]
            out["postgres backends (sum)"] = used(backends)
            out[PG_SHARED] = used([pid for pid, proc in table.items() if proc.cmd.startswith("postgres:")
                                   and any(word in proc.cmd for word in PG_SERVER_WORDS)])
        out[WHOLE_MACHINE] = machine_busy_s()
        return out

    def sampler(self) -> "PgSampler | None":
        return PgSampler(self.pg_conninfo, self.pg_dbname, self.bench_backends) if self.pg_dbname else None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        say("stopping the platform (SIGTERM to the supervisor)")
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            say("supervisor did not stop in 90 s; killing its process group")
            os.killpg(self.process.pid, signal.SIGKILL)
        beam = self.pids.get("broker (beam.smp)")
        if beam and Path(f"/proc/{beam}").exists():
            say(f"broker pid {beam} still alive; SIGTERM")
            os.kill(beam, signal.SIGTERM)


class Fleet:
    def __init__(self, creds_dir: Path, log_path: Path):
        self.creds_dir, self.log_path = creds_dir, log_path
        self.process: subprocess.Popen | None = None
        self.connected = threading.Event()
        self.last_line = ""

    def start(self, expected: int, timeout: float) -> float:
        started = time.monotonic()
        self.launch()
        self.wait(expected, timeout)
        return time.monotonic() - started

    def launch(self, *extra: str) -> None:
        """Starts the simulator without waiting (several fleets connect at once); `extra`: its options."""
        self.connected.clear()
        self.last_line = ""
        self.process = subprocess.Popen([sys.executable, "-m", "simulators.fleet", "--credentials-dir",
                                         str(self.creds_dir), "--progress-interval", "2", "--log-level", "WARNING",
                                         *extra],
                                        cwd=ROOT, stdout=subprocess.PIPE, stderr=open(self.log_path, "ab"),
                                        start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def wait(self, expected: int, timeout: float, quiet: bool = False) -> None:
        """Blocks until the simulator reports every device connected and subscribed."""
        last = ""
        deadline = time.monotonic() + timeout
        while not self.connected.wait(1.0):
            if self.process.poll() is not None:
                raise RuntimeError(f"fleet exited with {self.process.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"fleet did not connect {expected} devices in {timeout:.0f}s: {self.last_line}")
            if self.last_line != last and not quiet:
                last = self.last_line
                say(f"  {last}")
        if not quiet:
            say(f"  {self.last_line}")

    def _read(self):
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith("fleet:"):
                self.last_line = line
                if line.startswith("fleet: all "):
                    self.connected.set()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def pid(self):
        return self.process.pid if self.process else None
