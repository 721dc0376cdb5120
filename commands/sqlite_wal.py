"""Switching an SQLite file to write-ahead logging when several processes open it at once.

The switch needs the file to itself, and SQLite answers "database is locked" at once, without
waiting in its busy handler, when another process is switching the same new file at that moment:
six processes opening one new file together failed in 26 of 100 tries (one CI run lost an API
process to it). The mode is stored in the file, so once one switch succeeded the others find it."""

from __future__ import annotations

import random
import sqlite3
import time
from contextlib import closing


def switch_to_wal(path: str, timeout: float) -> None:
    """Puts the file at `path` (a name or an SQLite URI) in WAL mode, retrying the switch while
    another process holds the file, for up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with closing(sqlite3.connect(path, uri=True, timeout=timeout, isolation_level=None)) as db:
                db.execute("PRAGMA journal_mode=WAL")
                return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
        time.sleep(random.uniform(0.002, 0.02))  # apart, so that the switches stop colliding
