"""Leases: at most one instance of a process that must work alone (the device gateway, the
projector) works at a time; the others wait and take over when it goes.

On PostgreSQL the lease is a session advisory lock (`pg_try_advisory_lock`) held on a connection of
its own, keyed by the process's name and the event store's database and schema: PostgreSQL releases
it when the holder's session ends, however it ends (exit, kill -9, a lost connection). The holder
checks that session every `check_every` seconds and stops working the moment it is gone (the lock
may already be someone else's). On SQLite, which only one machine can share, the lease is an
exclusive `flock` on a file in the state directory, released by the kernel with the process.

No consensus of our own: PostgreSQL (or the kernel) decides who holds the lease. The event store
still fences the work itself: every write is checked against the aggregate's version, so even two
instances that overlapped for a moment could not record the same transition twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from pathlib import Path

from prometheus_client import Gauge

from iotcloud.config import Settings

log = logging.getLogger("iotcloud.lease")
HELD = Gauge("iotcloud_lease_held", "1 while this process holds the lease and works", ("lease",))
RETRY_EVERY = 1.0   # seconds between attempts of an instance waiting for the lease
CHECK_EVERY = 1.0   # seconds between checks of the holder's own session


class Lease:
    def __init__(self, name: str, retry_every: float = RETRY_EVERY, check_every: float = CHECK_EVERY):
        self.name = name
        self.lost = threading.Event()  # set when a held lease is gone: stop working at once
        self._retry_every, self._check_every = retry_every, check_every
        self._held = False
        HELD.labels(name).set(0)

    @property
    def held(self) -> bool:
        return self._held and not self.lost.is_set()

    def acquire(self, stop: threading.Event) -> bool:
        """Blocks until this instance holds the lease (True) or `stop` is set (False)."""
        said = None  # what the log last said, so a long wait or outage is one line, not one a second
        while not stop.is_set():
            try:
                if self._try():
                    self._held = True
                    HELD.labels(self.name).set(1)
                    log.info("lease %s taken: this instance works", self.name, extra={"lease": self.name})
                    threading.Thread(target=self._watch, name=f"lease-{self.name}", daemon=True).start()
                    return True
                if said != "held":
                    log.info("lease %s is held by another instance; standing by", self.name, extra={"lease": self.name})
                    said = "held"
            except Exception as exc:  # noqa: BLE001 - the store may be down: keep trying
                self._close()
                if said != "failing":
                    log.warning("lease %s: cannot ask the store (%s); retrying every %.0f s", self.name, exc,
                                self._retry_every, extra={"lease": self.name})
                    said = "failing"
            stop.wait(self._retry_every)
        return False

    def _watch(self) -> None:
        while not self.lost.is_set():
            if not self._still_held():
                HELD.labels(self.name).set(0)
                log.error("lease %s lost: stopping work", self.name, extra={"lease": self.name})
                self.lost.set()
                return
            self.lost.wait(self._check_every)

    def release(self) -> None:
        if self._held:
            HELD.labels(self.name).set(0)
        self._held = False
        self.lost.set()  # ends the watcher
        self._close()

    # What a kind of store implements.
    def _try(self) -> bool:
        raise NotImplementedError

    def _still_held(self) -> bool:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


class PostgresLease(Lease):
    def __init__(self, name: str, conninfo: dict, scope: str, **timing):
        super().__init__(name, **timing)
        self._conninfo = conninfo
        # One 64-bit key per lease and event store (advisory locks are per database; schemas share them).
        self.key = int.from_bytes(hashlib.sha256(f"iotcloud:{scope}:{name}".encode()).digest()[:8], "big", signed=True)
        self._conn = None
        # The watcher thread checks on the connection that release() closes: closing it under a running
        # query freed what libpq was using (a test worker died of it, segfault in psycopg).
        self._conn_lock = threading.Lock()

    def _try(self) -> bool:
        with self._conn_lock:
            return self._try_locked()

    def _try_locked(self) -> bool:
        import psycopg
        if self._conn is None or self._conn.closed:
            # Keepalives: a holder whose network went away is found dead in seconds, not hours, by both
            # ends, so its lease passes on instead of being held by a ghost session.
            self._conn = psycopg.connect(autocommit=True, connect_timeout=5, keepalives=1, keepalives_idle=5,
                                         keepalives_interval=2, keepalives_count=3, application_name=f"iotcloud-lease-{self.name}",
                                         **self._conninfo)
            self._conn.execute("SET statement_timeout = '5s'")
            self._conn.execute("SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3")
        return bool(self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0])

    def _still_held(self) -> bool:
        with self._conn_lock:
            if self._conn is None:
                return False
            return self._holds_lock_locked()

    def _holds_lock_locked(self) -> bool:
        try:
            row = self._conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                                     " AND pid = pg_backend_pid() AND classid = ((%s::bigint >> 32) & 4294967295)::oid"
                                     " AND objid = (%s::bigint & 4294967295)::oid", (self.key, self.key)).fetchone()
            return row[0] > 0
        except Exception:  # noqa: BLE001 - a failed check is a lost session
            return False

    def _close(self) -> None:
        with self._conn_lock:
            if self._conn is not None:
                try:
                    self._conn.close()  # ends the session: PostgreSQL releases the lock
                except Exception:  # noqa: BLE001
                    pass
                self._conn = None


class FileLease(Lease):
    def __init__(self, name: str, path: Path, **timing):
        super().__init__(name, **timing)
        self._path, self._fd = path, None

    def _try(self) -> bool:
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def _still_held(self) -> bool:
        return self._fd is not None

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def lease_for(settings: Settings, name: str, **timing) -> Lease | None:
    """The lease of process `name` on this event store; None for the in-memory store (tests)."""
    if settings.persistence_module == "eventsourcing.postgres":
        env = settings.event_store_env(name)
        conninfo = {"host": env.get("POSTGRES_HOST"), "port": env.get("POSTGRES_PORT"),
                    "user": env.get("POSTGRES_USER"), "password": env.get("POSTGRES_PASSWORD") or None,
                    "dbname": env.get("POSTGRES_DBNAME")}
        scope = f"{env.get('POSTGRES_DBNAME')}/{env.get('POSTGRES_SCHEMA', 'public')}"
        return PostgresLease(name, {k: v for k, v in conninfo.items() if v}, scope, **timing)
    if settings.persistence_module == "eventsourcing.sqlite":
        return FileLease(name, settings.state_dir / "leases" / f"{name}.lock", **timing)
    return None


def work_under(lease: Lease | None, stop: threading.Event) -> bool:
    """Waits for the lease (False if `stop` came first); once held, losing it sets `stop`."""
    if lease is None:
        return True
    if not lease.acquire(stop):
        return False

    def stop_when_lost() -> None:
        lease.lost.wait()
        stop.set()

    threading.Thread(target=stop_when_lost, name=f"lease-{lease.name}-stop", daemon=True).start()
    return True
