"""JSON logs on stderr: one object per line, never request bodies, passwords, tokens or keys."""

from __future__ import annotations

import atexit
import collections
import datetime as dt
import json
import logging
import sys
import threading

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


class BatchedHandler(logging.Handler):
    """Threads only append their records; one thread formats and writes them every `interval`
    seconds, `chunk` lines per write.

    With 32 request threads on one stream handler's lock, a thread that lost the GIL while writing
    held every other thread's access-log line up (the lock's waits were 17 % of the API's samples
    under saturation). A queue listener woken by every record fixed that but took the GIL from the
    request thread about to write its response, once per request; here nothing is woken by a
    record. A chunk is formatted and written before the next is taken, so the writer never holds
    the GIL for long. Past `limit` waiting records (a stream that does not keep up) new ones are
    counted and dropped, and the count is written once the stream catches up."""

    def __init__(self, target: logging.Handler, interval: float = 0.05, chunk: int = 16, limit: int = 100_000):
        super().__init__()
        self._target, self._interval, self._chunk, self._limit = target, interval, chunk, limit
        self._records: collections.deque[logging.LogRecord] = collections.deque()
        self._dropped = 0
        self._stopping = threading.Event()  # not `_closed`: logging.Handler has its own
        self._writer = threading.Thread(target=self._write_forever, name="log-writer", daemon=True)
        self._writer.start()

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: a deque's append is atomic, and the writer is the only one to pop.
        if not self.filter(record):
            return False
        if len(self._records) < self._limit:
            self._records.append(record)
        else:
            self._dropped += 1  # racy by a few at worst: it is a report, not a ledger
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    def close(self) -> None:
        """Writes what is still waiting, then stops the writer."""
        self._stopping.set()
        if self._writer.is_alive() and self._writer is not threading.current_thread():
            self._writer.join(timeout=5)
        super().close()

    def _write_forever(self) -> None:
        while not self._stopping.wait(self._interval):
            self._write_waiting()
        self._write_waiting()

    def _write_waiting(self) -> None:
        target, records = self._target, self._records
        while records:
            chunk = []
            while records and len(chunk) < self._chunk:
                record = records.popleft()
                if record.levelno >= target.level:
                    chunk.append(record)
            self._write(chunk)
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            self._write([logging.makeLogRecord({
                "name": "iotcloud.logs", "levelno": logging.WARNING, "levelname": "WARNING",
                "msg": "%d log lines dropped: the log stream did not keep up", "args": (dropped,)})])

    def _write(self, records: list[logging.LogRecord]) -> None:
        lines = []
        for record in records:
            try:
                lines.append(self._target.format(record))
            except Exception:  # noqa: BLE001 - one bad record must not stop the others
                self._target.handleError(record)
        if not lines:
            return
        try:
            self._target.stream.write("\n".join(lines) + "\n")
            self._target.stream.flush()
        except Exception:  # noqa: BLE001 - a closed or broken stream: what logging itself does
            self._target.handleError(records[-1])


def configure(level: str = "INFO", stream=sys.stderr, queued: bool = False) -> None:
    """`queued`: threads only hand their records over and one thread formats and writes them
    (`BatchedHandler`), for a process with many request threads."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    if queued:
        handler = BatchedHandler(handler)
        atexit.register(handler.close)  # writes what is still waiting
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # No line of ours names its caller, so every record skips the frame walk that finds it (the logging
    # HOWTO's "Optimization"; about ten Python calls per access line in the API, issue 7 step 108).
    logging._srcfile = None
    for noisy in ("pymongo", "pika", "eventsourcing"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
