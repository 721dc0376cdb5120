"""The slowest calls of a phase, named so that the platform's access log can say where their time went.

The API names every request in its `X-Request-ID` answer header and logs that id with the time it
spent on the request (gateways/http/middleware.py), and the client keeps the ids of its slowest calls.
So a call that took seconds in the client is looked up in the API's log as its phase ends: an API time
close to the client's says the time went inside the API; a short one, that it went before the API read
the request or after it answered (the connection, the client's own loop). A call that got no answer
has no id. Kept because a few results hold one call of 5-9 s whose cause no later run showed
(docs/benchmarks.md, issue 7 step 116).
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import json
import re
from pathlib import Path

KEPT = 5
_LOGGED_ID = re.compile(rb'"request_id": "([^"]*)"')  # which ids the API accepts is its own rule (middleware.py)


class Slowest:
    """The `kept` slowest calls seen: latency (ms, from the call's scheduled time), how much of it passed
    before the client sent it (`unsent_ms`: a slot or the client's own loop), when it ended, its request id
    and what it was."""

    def __init__(self, kept: int = KEPT):
        self.kept = kept
        self._heap: list[tuple] = []
        self._order = itertools.count()  # ties never compare the rest

    def add(self, latency_ms: float, unsent_ms: float, request_id: str | None, what: str, outcome: str) -> None:
        if len(self._heap) >= self.kept and latency_ms <= self._heap[0][0]:
            return
        item = (latency_ms, next(self._order), unsent_ms, dt.datetime.now(dt.timezone.utc), request_id, what, outcome)
        if len(self._heap) < self.kept:
            heapq.heappush(self._heap, item)
        else:
            heapq.heapreplace(self._heap, item)

    def calls(self) -> list[dict]:
        return [{"latency_ms": round(latency, 3), "unsent_ms": round(unsent, 3),
                 "ended_at": ended.isoformat(timespec="milliseconds"), "request_id": request_id, "call": what,
                 "outcome": outcome}
                for latency, _, unsent, ended, request_id, what, outcome in sorted(self._heap, reverse=True)]


def api_log_entries(log_path: Path, request_ids: set[str]) -> dict[str, dict]:
    """What the API's access log says of each of `request_ids` (its status and time), where it has them yet."""
    found: dict[str, dict] = {}
    if not request_ids or not log_path.exists():
        return found
    with open(log_path, "rb") as log:
        for line in log:
            match = _LOGGED_ID.search(line)
            if match is None or match.group(1).decode() not in request_ids:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            found[entry["request_id"]] = {"status": entry.get("status"), "duration_ms": entry.get("duration_ms"),
                                          "logged_at": entry.get("ts")}
    return found


def explained(calls: list[dict], log_path: Path | None) -> list[dict]:
    """`calls` (Slowest.calls()) with the API's own account of each (`api`: None when it has none yet)."""
    entries = api_log_entries(log_path, {c["request_id"] for c in calls if c["request_id"]}) if log_path else {}
    return [{**call, "api": entries.get(call["request_id"])} for call in calls]
