"""`python -m iotcloud.read_store_server ARGS`: nx-27017 (the embedded read store) with its own
command line (ARGS as `nx-27017` takes them), its per-request log lines off, and small WAL checkpoints.

iotcloud.embedded_mongo runs it in nx-27017's thread-per-connection mode (`--threaded`): a request
is read, executed and answered on its connection's thread, where the asyncio mode hands every
request to a worker thread and the answer back to the event loop through its wake-up pipe. That
cost the read store 25-40 % more CPU per history write (docs/benchmarks.md, issue 7 step 71). The
threaded mode logs every answer at INFO, and nx-27017's command line configures INFO for every
logger, so its loggers and neosqlite's are set to WARNING first: warnings and errors still reach
its log, one line per request does not.

Checkpoints: nx-27017's SQLite files run in WAL mode with synchronous=NORMAL, so a checkpoint is the
only time they are flushed to the disk, and SQLite checkpoints once 1,000 pages (4 MB) have gathered
in the WAL. A history write touches about 16 pages (the document and its 15 indexes), so under calls
the read store flushed 4 MB several times a second, and a device call's commit, whose WAL flush
PostgreSQL makes on the same disk, waited behind it: the sequential calls' p99 was 12-17 ms with the
read store running and 4-8 ms with it stopped or on tmpfs (docs/benchmarks.md, issue 7 step 113).
Checkpoints of WAL_AUTOCHECKPOINT_PAGES pages keep each flush short; the SQLite files stay exactly as
durable (a checkpoint still flushes the WAL before it copies it back).

Transactions: nx-27017 writes the documents of one insert, update or delete command one by one, and
neosqlite runs SQLite in autocommit mode, so each document was a transaction of its own that wrote
every page it touched (the document and its 15 index entries) to the WAL again. A projector batch is
one such command, so its writes now share one transaction: a document that fails (a duplicate key)
still fails alone, as SQLite undoes only the failing statement, and a crash before the commit loses
the batch together with the projector's checkpoint after it, so the batch is applied again
(docs/benchmarks.md, issue 7 step 115). Only commands of up to MAX_SHARED_WRITES documents share one:
a catch-up's batch of hundreds would hold megabytes in the WAL until its commit and then flush them
at once, which the small checkpoints above are there to prevent.
"""

from __future__ import annotations

import functools
import logging
import sys

from nx_27017.nx_27017 import main

QUIET_LOGGERS = ("nx_27017", "neosqlite")
WAL_AUTOCHECKPOINT_PAGES = 250  # 1 MB; SQLite's default is 1,000

log = logging.getLogger("iotcloud.read_store_server")


def checkpoint_small() -> bool:
    """Makes every SQLite connection nx-27017 opens checkpoint its WAL every WAL_AUTOCHECKPOINT_PAGES
    pages. neosqlite sets its pragmas in `Connection._configure_connection`, on every (re)connect;
    should a later neosqlite lack it, the read store still starts, with SQLite's default (a warning
    says so, and tests/projections/test_read_store_checkpoints.py fails)."""
    try:
        from neosqlite.connection import Connection
        configure = Connection._configure_connection
    except (ImportError, AttributeError) as exc:
        log.warning("read store: SQLite's default WAL checkpoints kept (%s)", exc)
        return False

    def configure_then_checkpoint_small(self) -> None:
        configure(self)
        self.db.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")

    Connection._configure_connection = configure_then_checkpoint_small
    return True


WRITE_COMMANDS = {"insert": "documents", "update": "updates", "delete": "deletes"}  # -> the list of writes
MAX_SHARED_WRITES = 32
SESSION_FIELDS = ("txnNumber", "startTransaction", "autocommit")  # a client's own transaction: nx-27017's


def one_transaction_per_write_command() -> bool:
    """Runs each write command nx-27017 handles (inserts come through `handle_insert`, updates and
    deletes through `handle_command`) in one SQLite transaction, under nx-27017's own per-database
    lock. Should a later nx-27017 lack these hooks the read store still starts, a document per
    transaction (a warning says so, and tests/projections/test_read_store_transactions.py fails)."""
    try:
        from nx_27017 import handler
        handler_class, db_name_of = handler.NeoSQLiteHandler, handler._msg_db_name
        originals = {name: getattr(handler_class, name) for name in ("handle_insert", "handle_command")}
        for used in ("_lock_for", "get_database"):  # what the wrapper calls on the handler
            getattr(handler_class, used)
    except (ImportError, AttributeError) as exc:
        log.warning("read store: one SQLite transaction per document kept (%s)", exc)
        return False
    for name, handle in originals.items():
        setattr(handler_class, name, _in_one_transaction(handle, db_name_of))
    return True


def _shareable_writes(msg) -> bool:
    """A write command of 1 to MAX_SHARED_WRITES documents outside a client's transaction. pymongo
    sends the documents as a payload section named after the command's list (or, rarely, in it)."""
    sections = msg.get("sections", ())
    body = next((doc for kind, doc in sections if kind == "body" and isinstance(doc, dict)), None)
    if body is None or any(field in body for field in SESSION_FIELDS):
        return False
    writes_field = WRITE_COMMANDS.get(next(iter(body), None))
    if writes_field is None:
        return False
    writes = len(body.get(writes_field) or ())
    for kind, doc in sections:
        if kind == "payload_docs":
            writes += len(doc)
        elif kind == "payload" and isinstance(doc, dict):
            writes += sum(map(len, doc.values()))  # {field name: [documents]}
    return 0 < writes <= MAX_SHARED_WRITES


def _in_one_transaction(handle, db_name_of):
    @functools.wraps(handle)
    def handle_in_one_transaction(self, msg, *args, **kwargs):
        if not isinstance(msg, dict) or not _shareable_writes(msg):
            return handle(self, msg, *args, **kwargs)
        db_name = db_name_of(msg)
        with self._lock_for(db_name):  # re-entrant: the handler takes it again
            try:
                sqlite = self.get_database(db_name).db
            except Exception:  # noqa: BLE001 - a bad database name: the handler answers it as it always did
                return handle(self, msg, *args, **kwargs)
            if sqlite.in_transaction:
                return handle(self, msg, *args, **kwargs)
            sqlite.execute("BEGIN")
            try:
                answer = handle(self, msg, *args, **kwargs)
                if sqlite.in_transaction:
                    sqlite.execute("COMMIT")
            except BaseException:
                if sqlite.in_transaction:
                    sqlite.execute("ROLLBACK")
                raise
            return answer

    return handle_in_one_transaction


def run() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    checkpoint_small()
    one_transaction_per_write_command()
    sys.argv[0] = "nx-27017"
    main()


if __name__ == "__main__":
    run()
