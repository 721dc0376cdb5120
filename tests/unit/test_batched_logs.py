"""The API's log writer: request threads only hand records over; one thread writes them."""

from __future__ import annotations

import io
import json
import logging
import threading

from iotcloud.logs import BatchedHandler, JsonFormatter, configure


def json_target(stream, level=logging.NOTSET) -> logging.StreamHandler:
    target = logging.StreamHandler(stream)
    target.setFormatter(JsonFormatter())
    target.setLevel(level)
    return target


def record(msg, *args, level=logging.INFO, **extra) -> logging.LogRecord:
    made = logging.LogRecord("iotcloud.test", level, __file__, 1, msg, args, None)
    made.__dict__.update(extra)
    return made


def test_every_thread_s_lines_are_written_whole_and_in_order():
    stream = io.StringIO()
    handler = BatchedHandler(json_target(stream), interval=0.001, chunk=7)

    def log(thread):
        for n in range(500):
            handler.handle(record("line %d of %s", n, thread, who=thread, n=n))

    threads = [threading.Thread(target=log, args=(f"t{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handler.close()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 8 * 500
    for i in range(8):
        mine = [line for line in lines if line["who"] == f"t{i}"]
        assert [line["n"] for line in mine] == list(range(500))
        assert mine[3]["msg"] == f"line 3 of t{i}" and mine[3]["level"] == "info"


def test_the_target_s_level_holds_and_a_bad_record_does_not_stop_the_rest(monkeypatch):
    monkeypatch.setattr(logging, "raiseExceptions", False)
    stream = io.StringIO()
    handler = BatchedHandler(json_target(stream, logging.INFO), interval=60)
    handler.handle(record("quiet", level=logging.DEBUG))
    handler.handle(record("%d apples", "not a number"))  # formatting it raises
    handler.handle(record("after the bad one"))
    handler.close()  # writes what is waiting without waiting for the interval
    assert [json.loads(line)["msg"] for line in stream.getvalue().splitlines()] == ["after the bad one"]


class StuckStream(io.StringIO):
    """A log pipe nobody reads, until `unstick` is set."""

    def __init__(self):
        super().__init__()
        self.unstick, self.entered = threading.Event(), threading.Event()

    def write(self, text):
        self.entered.set()
        self.unstick.wait()
        return super().write(text)


def test_past_its_limit_a_stuck_stream_costs_dropped_lines_and_says_how_many():
    stream = StuckStream()
    handler = BatchedHandler(json_target(stream), interval=0.001, chunk=1, limit=10)
    handler.handle(record("first"))
    assert stream.entered.wait(5)  # the writer is stuck in the write of "first"
    for n in range(50):
        handler.handle(record("line %d", n))
    stream.unstick.set()
    handler.close()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["msg"] for line in lines[:11]] == ["first", *[f"line {n}" for n in range(10)]]
    assert lines[-1]["level"] == "warning" and lines[-1]["msg"] == "40 log lines dropped: the log stream did not keep up"
    assert len(lines) == 12


def test_a_configured_line_has_every_field_and_no_caller_was_looked_up(monkeypatch):
    monkeypatch.setattr(logging, "_srcfile", logging._srcfile)  # configure() changes it; restored after
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    stream, records = io.StringIO(), []
    configure("INFO", stream=stream)
    root.handlers[0].addFilter(lambda record: records.append(record) or True)
    logging.getLogger("iotcloud.test").info("called %s", "kitchen", extra={"device_id": "d1", "status": 200})
    line = json.loads(stream.getvalue())
    assert {k: line[k] for k in ("level", "logger", "msg", "device_id", "status")} == {
        "level": "info", "logger": "iotcloud.test", "msg": "called kitchen", "device_id": "d1", "status": 200}
    assert (records[0].funcName, records[0].lineno) == ("(unknown function)", 0)  # logging's mark for "not looked up"
