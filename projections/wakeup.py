"""How a projector learns that its sources have new events: PostgreSQL notifications, else polling.

The eventsourcing PostgreSQL recorder runs `NOTIFY <events table>` in every transaction that
inserts events, so a connection that LISTENs on those channels is told, at each commit, which
source has something new. The projector then sleeps until a commit instead of querying every
source's log fifty times a second, and reads only the source that changed. On the same connection
it hears nudges (`projections.nudge`): a writer waiting to read its own write names the source it
waits for, and the projector reads that source at once rather than at its next batch interval.
Other stores (SQLite, in-memory) cannot notify another process: there the projector polls.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from typing import Protocol

from eventsourcing.application import Application

log = logging.getLogger("iotcloud.projections")

POLL_INTERVAL = 0.02       # seconds between polls of stores that cannot notify
SAFETY_POLL = 2.0          # seconds: even a listening projector reads every source this often
STOP_CHECK = 0.25          # seconds a listener blocks before looking at its stop flag again
NUDGE_CHANNEL = "iotcloud_projection_wanted"  # payload: the name of the source a writer waits for

Woken = tuple[set[str], set[str]]  # (sources that may have new events, those a writer waits for)


class Wakeup(Protocol):
    hears_nudges: bool
    listening: bool  # whether every commit is heard now (not only at the next poll)

    def wait(self, timeout: float | None) -> Woken:
        """Returns once some source may have new events, or after `timeout` s (None: a long while)."""

    def nudged(self, timeout: float) -> set[str]:
        """Returns once a writer waits for some source (those sources), or after `timeout` s (none)."""

    def close(self) -> None: ...


class Polling:
    """A store without notifications can only say "every source, after a while"."""

    hears_nudges = False
    listening = True  # a poll every `interval` hears every commit, that long late at most

    def __init__(self, sources: dict[str, Application], stop: threading.Event, interval: float = POLL_INTERVAL):
        self._names, self._stop, self._interval = set(sources), stop, interval

    def wait(self, timeout: float | None) -> Woken:
        if timeout == 0:
            return set(), set()
        self._stop.wait(self._interval if timeout is None else min(timeout, self._interval))
        return set(self._names), set()

    def nudged(self, timeout: float) -> set[str]:
        self._stop.wait(timeout)
        return set()

    def close(self) -> None:
        pass


class PostgresNotifications:
    """LISTENs on the sources' event-table channels, and on the nudge channel, over connections of its own.

    Nudges have a connection to themselves so that a batch waiting out its interval can wait for a
    nudge alone, while the commits of that interval queue unread on the other (reading each one as
    it came would cost more than the batch saves). Until it has listened (at start, and after a lost
    connection) it answers "every source", so a commit made while nobody was listening is still
    read; every `safety_poll` seconds it does the same, in case a connection died without telling.
    """

    def __init__(self, sources: dict[str, Application], stop: threading.Event, safety_poll: float = SAFETY_POLL,
                 nudges: bool = True):
        """`nudges`: also listen for nudges (the projector); without, commits alone, on one connection."""
        self.hears_nudges = nudges
        self._channels = {app.recorder.channel_name: name for name, app in sources.items()}
        self._names = set(sources)
        self._connect_kwargs = connect_kwargs(next(iter(sources.values())))
        self._stop, self._safety_poll = stop, safety_poll
        self._events = self._nudges = None
        self._next_full_poll = 0.0

    @property
    def listening(self) -> bool:
        return self._events is not None

    def wait(self, timeout: float | None) -> Woken:
        return self._wait(timeout, commits=True)

    def nudged(self, timeout: float) -> set[str]:
        """The sources writers wait for, once a nudge comes or `timeout` s pass; commits do not wake it."""
        return self._wait(timeout, commits=False)[1]

    def _wait(self, timeout: float | None, commits: bool) -> Woken:
        if self._events is None and not self._listen():
            if timeout != 0:
                self._stop.wait(1.0 if timeout is None else min(timeout, 1.0))
            return set(self._names), set()
        deadline = time.monotonic() + (self._safety_poll if timeout is None else timeout)
        while True:
            now = time.monotonic()
            if commits and now >= self._next_full_poll:
                self._next_full_poll = now + self._safety_poll
                return set(self._names), self._read(self._connections)[1]
            watched = self._connections if commits else [self._nudges]
            limit = min(STOP_CHECK, deadline - now, self._next_full_poll - now if commits else STOP_CHECK)
            try:
                ready = select.select(watched, [], [], max(0.0, limit))[0]
            except (OSError, ValueError):  # a connection closed under us
                ready = watched
            woken, wanted = self._read(ready)
            if woken or wanted or self._stop.is_set() or time.monotonic() >= deadline:
                return woken | wanted, wanted

    def _read(self, connections) -> Woken:
        """What the notifications waiting on `connections` name."""
        import psycopg
        try:
            notes = [note for conn in connections for note in conn.notifies(timeout=0)]
        except psycopg.Error as exc:
            log.warning("lost a PostgreSQL notification connection (%s); reconnecting", exc)
            self.close()
            return set(self._names), set()
        woken = {self._channels[n.channel] for n in notes if n.channel in self._channels}
        wanted = {n.payload for n in notes if n.channel == NUDGE_CHANNEL and n.payload in self._names}
        return woken, wanted

    def _listen(self) -> bool:
        import psycopg
        from psycopg import sql
        try:
            events = psycopg.connect(**self._connect_kwargs, autocommit=True)
            for channel in self._channels:
                events.execute(sql.SQL("LISTEN {0}").format(sql.Identifier(channel)))
            nudges = None
            if self.hears_nudges:
                nudges = psycopg.connect(**self._connect_kwargs, autocommit=True)
                nudges.execute(sql.SQL("LISTEN {0}").format(sql.Identifier(NUDGE_CHANNEL)))
        except psycopg.Error as exc:
            log.warning("cannot listen for PostgreSQL notifications (%s); polling meanwhile", exc)
            self.close()
            return False
        self._events, self._nudges = events, nudges
        self._next_full_poll = 0.0  # what was committed before LISTEN took effect is read next
        return True

    @property
    def _connections(self) -> list:
        return [conn for conn in (self._events, self._nudges) if conn is not None]

    def close(self) -> None:
        for conn in (self._events, self._nudges):
            if conn is not None:
                conn.close()
        self._events = self._nudges = None


def uses_postgres(app: Application) -> bool:
    recorder = app.recorder
    return hasattr(recorder, "channel_name") and hasattr(getattr(recorder, "datastore", None), "pool")


def connect_kwargs(app: Application) -> dict:
    """psycopg.connect() arguments for the database `app`'s PostgreSQL recorder uses."""
    pool = app.recorder.datastore.pool
    kwargs = {k: pool.kwargs[k] for k in ("dbname", "host", "port", "user", "password") if k in pool.kwargs}
    return {**kwargs, "connect_timeout": 5}


def wakeup_for(sources: dict[str, Application], stop: threading.Event, nudges: bool = True,
               interval: float = POLL_INTERVAL) -> Wakeup:
    """Notifications when every source is in one PostgreSQL database (and nudges, if asked); polling every
    `interval` seconds otherwise."""
    if sources and all(uses_postgres(app) for app in sources.values()):
        databases = {tuple(sorted((k, str(v)) for k, v in connect_kwargs(app).items() if k != "password"))
                     for app in sources.values()}
        if len(databases) == 1:
            return PostgresNotifications(sources, stop, nudges=nudges)
    return Polling(sources, stop, interval)
