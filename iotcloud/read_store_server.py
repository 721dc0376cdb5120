"""`python -m iotcloud.read_store_server ARGS`: nx-27017 (the embedded read store) with its own
command line (ARGS as `nx-27017` takes them), and its per-request log lines off.

iotcloud.embedded_mongo runs it in nx-27017's thread-per-connection mode (`--threaded`): a request
is read, executed and answered on its connection's thread, where the asyncio mode hands every
request to a worker thread and the answer back to the event loop through its wake-up pipe. That
cost the read store 25-40 % more CPU per history write (docs/benchmarks.md, issue 7 step 71). The
threaded mode logs every answer at INFO, and nx-27017's command line configures INFO for every
logger, so its loggers and neosqlite's are set to WARNING first: warnings and errors still reach
its log, one line per request does not.
"""

from __future__ import annotations

import logging
import sys

from nx_27017.nx_27017 import main

QUIET_LOGGERS = ("nx_27017", "neosqlite")


def run() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    sys.argv[0] = "nx-27017"
    main()


if __name__ == "__main__":
    run()
