"""bench/roundtrip/slowest.py: a phase's slowest calls are kept with the request id the API gave them,
and looked up in the API's access log, so a multi-second call says whether its time went inside the API."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from roundtrip.httpclient import Conn  # noqa: E402
from roundtrip.load import Load  # noqa: E402
from roundtrip.slowest import Slowest, api_log_entries, explained  # noqa: E402


def test_only_the_slowest_calls_are_kept_slowest_first():
    slowest = Slowest(kept=3)
    for n, latency in enumerate([5.0, 40.0, 1.0, 40.0, 900.0, 7.0, 3.0]):
        slowest.add(latency, 0.0, f"id-{n}", "dev get_status", "200")
    calls = slowest.calls()
    assert [c["latency_ms"] for c in calls] == [900.0, 40.0, 40.0]
    assert calls[0]["request_id"] == "id-4" and {c["request_id"] for c in calls[1:]} == {"id-1", "id-3"}


def test_the_api_log_says_what_it_knows_of_the_asked_ids_only(tmp_path):
    log = tmp_path / "platform.log"
    lines = [{"ts": "t1", "logger": "iotcloud.http", "msg": "request", "request_id": "aa11", "status": 200,
              "duration_ms": 5012.4},
             {"ts": "t2", "logger": "iotcloud.http", "msg": "request", "request_id": "bb22", "status": 429,
              "duration_ms": 0.4}]
    log.write_text("\n".join(["not json", "{\"request_id\": \"aa11\", broken"] + [json.dumps(x) for x in lines]
                             + ["{\"msg\": \"gateway recovered\"}"]) + "\n")
    assert api_log_entries(log, {"aa11", "zz99"}) == {
        "aa11": {"status": 200, "duration_ms": 5012.4, "logged_at": "t1"}}
    assert api_log_entries(tmp_path / "missing.log", {"aa11"}) == {}
    calls = [{"latency_ms": 5020.0, "request_id": "aa11"}, {"latency_ms": 9.0, "request_id": None}]
    assert [c["api"] for c in explained(calls, log)] == [{"status": 200, "duration_ms": 5012.4, "logged_at": "t1"}, None]


def test_the_client_reads_the_request_id_the_server_gave():
    class Writer:
        def write(self, data):
            self.sent = data

    async def exchange():
        reader = asyncio.StreamReader()
        reader.feed_data(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Request-ID: 0f3c9a\r\n\r\n{}")
        return await Conn(reader, Writer()).request(b"GET / HTTP/1.1\r\n\r\n")
    assert asyncio.run(exchange()) == (200, b"{}", False, "0f3c9a")


class _SlowOnceHttp:
    """Answers at once, but the fourth call only after 0.3 s; each answer names its request."""

    def __init__(self):
        self.calls = 0

    def build(self, method, path, body, token):
        return b"raw"

    async def call_named(self, method, path, body=None, raw=None, timeout=None):
        self.calls += 1
        await asyncio.sleep(0.3 if self.calls == 4 else 0)
        return 200, b"{}", f"req{self.calls}"


class _User:
    username = "u1"
    token = "t"


class _Platform:
    def __init__(self, log_path):
        self.log_path = log_path

    def sampler(self):
        return None

    def cpu(self):
        return {}


def test_a_phase_reports_its_slowest_call_with_the_apis_account_of_it(tmp_path):
    log = tmp_path / "platform.log"
    log.write_text(json.dumps({"ts": "t", "msg": "request", "request_id": "req4", "status": 200,
                               "duration_ms": 301.5}) + "\n")
    load = Load(http=_SlowOnceHttp(), owners={"dev-1": _User()}, apis=["get_status"], timeout=5.0,
                correlation=False, platform=_Platform(log))
    result = asyncio.run(load.sequential(8))
    worst = result["slowest"][0]
    assert worst["request_id"] == "req4" and worst["latency_ms"] >= 300
    assert worst["call"] == "dev-1 get_status" and worst["outcome"] == "200" and worst["unsent_ms"] < 100
    assert worst["api"] == {"status": 200, "duration_ms": 301.5, "logged_at": "t"}
    assert len(result["slowest"]) == 5 and all(c["api"] is None for c in result["slowest"][1:])
