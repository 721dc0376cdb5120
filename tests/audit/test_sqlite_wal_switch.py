"""Processes opening one new SQLite event store together: SQLite refuses a concurrent switch to WAL
at once ("database is locked", without waiting), so every creator must still get its store."""

from __future__ import annotations

import multiprocessing
import queue
import sqlite3
import time

import pytest

from eventsourcing.sqlite import SQLiteDatastore

from commands.chain.sqlite_recorder import ChainedSQLiteRecorder
from commands.sqlite_wal import switch_to_wal
from gateways.outbox import Outbox

PROCESSES, ROUNDS = 6, 25  # without the retry, 6 processes collided in about one round in four


def create_store(path, start, errors):
    start.wait()
    try:
        recorder = ChainedSQLiteRecorder(SQLiteDatastore(path, lock_timeout=10))
        recorder.create_table()
        recorder.datastore.close()
    except Exception as error:  # reported to the test, which names it
        errors.put(repr(error))


def open_outbox(path, start, errors):
    start.wait()
    try:
        Outbox(path)
    except Exception as error:
        errors.put(repr(error))


def drained(errors) -> list[str]:
    items = []
    while True:
        try:
            items.append(errors.get(timeout=0.1))
        except queue.Empty:
            return items


def run_together(target, tmp_path, rounds):
    forked = multiprocessing.get_context("fork")
    failures = []
    for round_ in range(rounds):
        path = str(tmp_path / f"round-{round_}.sqlite3")
        start, errors = forked.Barrier(PROCESSES), forked.Queue()
        processes = [forked.Process(target=target, args=(path, start, errors)) for _ in range(PROCESSES)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=60)
        failures += drained(errors)
        failures += [f"exit {process.exitcode}" for process in processes if process.exitcode != 0]
    return failures


def test_event_stores_opened_together_all_open_in_wal_mode(tmp_path):
    failures = run_together(create_store, tmp_path, ROUNDS)
    assert not failures, f"{len(failures)} of {PROCESSES * ROUNDS} creators failed: {failures[:3]}"
    assert sqlite3.connect(tmp_path / "round-0.sqlite3").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_outboxes_opened_together_all_open(tmp_path):
    failures = run_together(open_outbox, tmp_path, ROUNDS)
    assert not failures, f"{len(failures)} of {PROCESSES * ROUNDS} outboxes failed: {failures[:3]}"


def test_a_switch_that_keeps_being_refused_gives_up_after_its_timeout(tmp_path):
    path = tmp_path / "held.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (a)")
    holder.execute("BEGIN EXCLUSIVE")  # another process's long write
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        switch_to_wal(str(path), timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 5
    holder.execute("ROLLBACK")
    switch_to_wal(str(path), timeout=0.3)
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
