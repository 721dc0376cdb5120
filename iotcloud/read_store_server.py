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
"""

from __future__ import annotations

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


def run() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    checkpoint_small()
    sys.argv[0] = "nx-27017"
    main()


if __name__ == "__main__":
    run()
