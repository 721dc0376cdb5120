"""The local outbox: where email and SMS go when no provider is configured (the embedded default)."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
from pathlib import Path

from commands.identity.port import Notifier
from commands.sqlite_wal import switch_to_wal

log = logging.getLogger("iotcloud.outbox")
LOCK_TIMEOUT = 10  # seconds a write waits while another process writes

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
)
"""
# Notifications carry a reference (notification id and attempt): the same attempt is stored once,
# however often it is handed over (a notifier killed between the insert and its record).
MIGRATIONS = ("ALTER TABLE outbox ADD COLUMN reference TEXT",
              "CREATE UNIQUE INDEX IF NOT EXISTS outbox_reference ON outbox (reference)")


class Outbox(Notifier):
    """Appends messages to an SQLite file and announces them on the console."""

    def __init__(self, path: Path, clock=lambda: dt.datetime.now(dt.timezone.utc)):
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        switch_to_wal(str(self._path), LOCK_TIMEOUT)  # once: the mode is kept in the file
        with self._connect() as db:
            db.execute(SCHEMA)
            for migration in MIGRATIONS:
                try:
                    db.execute(migration)
                except sqlite3.OperationalError as error:
                    if "duplicate column" not in str(error):
                        raise  # a locked file is not an applied migration

    def send_email(self, to: str, subject: str, body: str) -> None:
        self._append("email", to, subject, body)

    def send_sms(self, to: str, body: str) -> None:
        self._append("sms", to, "", body)

    def deliver(self, channel: str, to: str, subject: str, body: str, reference: str) -> int:
        """Stores one notification attempt once; returns its row id (the earlier one on a repeat)."""
        self._append(channel, to, subject, body, reference)
        with self._connect() as db:
            return db.execute("SELECT id FROM outbox WHERE reference = ?", (reference,)).fetchone()[0]

    def messages(self, limit: int = 50, recipient: str | None = None) -> list[dict]:
        """Newest first."""
        query = "SELECT id, channel, recipient, subject, body, created_at FROM outbox"
        params: tuple = ()
        if recipient:
            query, params = query + " WHERE recipient = ?", (recipient,)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        return [{"id": r[0], "channel": r[1], "to": r[2], "subject": r[3], "body": r[4], "created_at": r[5]}
                for r in rows]

    def _append(self, channel: str, to: str, subject: str, body: str, reference: str | None = None) -> None:
        created_at = self._clock().isoformat(timespec="milliseconds")
        with self._lock, self._connect() as db:
            db.execute("INSERT OR IGNORE INTO outbox (channel, recipient, subject, body, created_at, reference)"
                       " VALUES (?, ?, ?, ?, ?, ?)", (channel, to, subject, body, created_at, reference))
        # The subject only: a notification's body is the user's message text, never logged.
        log.info("outbox: %s to %s: %s", channel, to, subject or f"{len(body)} characters",
                 extra={"outbox": {"channel": channel, "to": to, "subject": subject}})

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path, timeout=LOCK_TIMEOUT)
