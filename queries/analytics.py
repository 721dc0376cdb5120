"""Aggregates over the history read model for analysts (and for owners, over their own devices).

nx-27017 (the embedded read store) evaluates `$group` only on a single field path: compound
`_id`s, `$dateTrunc`, `$dateToString` and `$percentile` come back unevaluated. So the aggregates
are computed here, in one pass over a cursor that reads only the fields they need, in index order,
and stop with an error past MAX_SCANNED documents (narrow the time range or the filters): the same
code gives the same answers on nx-27017 and on a real MongoDB.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict

from commands.domain.device_commands import EXPIRED, FAILED, SUCCEEDED, TERMINAL, TIMED_OUT
from commands.errors import ValidationFailed
from queries.history import HistoryQueries, eq

MAX_SCANNED = 1_000_000
BUCKETS = {"hour": 3600, "day": 86400}
GROUPS = {"api": ("api",), "device": ("owner", "device_name", "device_id")}


class TooMuchData(ValidationFailed):
    problem, status, title = "too-much-data", 400, "The query covers too many documents; narrow it"


def percentile(ordered: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def bucket_start(epoch_us: int, bucket: str) -> str:
    size = BUCKETS[bucket]
    start = (epoch_us // 1_000_000) // size * size
    return dt.datetime.fromtimestamp(start, dt.timezone.utc).isoformat().replace("+00:00", "Z")


class Analytics:
    def __init__(self, history: HistoryQueries, max_scanned: int = MAX_SCANNED):
        self._history = history
        self._max = max_scanned

    def _scan(self, query: dict, fields: tuple[str, ...], oldest_first: bool = False):
        projection = {name: 1 for name in ("key", *fields)}
        cursor = (self._history.collection().find(query, projection)
                  .sort([("key", 1 if oldest_first else -1)]).batch_size(5000))
        for count, doc in enumerate(cursor, 1):
            if count > self._max:
                cursor.close()
                raise TooMuchData(f"more than {self._max} documents match; narrow the time range or the filters")
            yield doc

    def commands_per_device(self, query: dict, bucket: str) -> list[dict]:
        _check(bucket, BUCKETS, "bucket")
        counts: dict[tuple, int] = defaultdict(int)
        for doc in self._scan({**query, "event": eq("command")}, GROUPS["device"]):
            start = bucket_start(int(doc["key"][:17]), bucket)
            counts[(doc["owner"], doc["device_name"], doc["device_id"], start)] += 1
        return [{"owner": o, "device_name": n, "device_id": d, "bucket": b, "commands": c}
                for (o, n, d, b), c in sorted(counts.items(), key=lambda item: (item[0][3], item[0][1]))]

    def outcomes(self, query: dict, by: str) -> list[dict]:
        _check(by, GROUPS, "by")
        tally: dict[tuple, dict] = defaultdict(lambda: defaultdict(int))
        for doc in self._scan({**query, "event": eq("command")}, (*GROUPS[by], "state")):
            row = tally[tuple(doc.get(f) for f in GROUPS[by])]
            row["commands"] += 1
            if doc.get("state") in TERMINAL:
                row["finished"] += 1
                row[doc["state"]] += 1
        rows = []
        for group, row in sorted(tally.items(), key=lambda item: tuple(str(v) for v in item[0])):
            finished = row["finished"]
            rows.append({**dict(zip(GROUPS[by], group)), "commands": row["commands"], "finished": finished,
                         **{state: row[state] for state in (SUCCEEDED, FAILED, TIMED_OUT, EXPIRED)},
                         "success_rate": round(row[SUCCEEDED] / finished, 4) if finished else None,
                         "timeout_rate": round(row[TIMED_OUT] / finished, 4) if finished else None})
        return rows

    def latency(self, query: dict, by: str) -> list[dict]:
        """Request-to-answer latency (ms) of answered calls: p50, p95, p99 per api or per device."""
        _check(by, GROUPS, "by")
        samples: dict[tuple, list[float]] = defaultdict(list)
        for doc in self._scan({**query, "event": eq("command"), "state": eq(SUCCEEDED)}, (*GROUPS[by], "latency_ms")):
            if doc.get("latency_ms") is not None:
                samples[tuple(doc.get(f) for f in GROUPS[by])].append(float(doc["latency_ms"]))
        rows = []
        for group, values in sorted(samples.items(), key=lambda item: tuple(str(v) for v in item[0])):
            values.sort()
            rows.append({**dict(zip(GROUPS[by], group)), "answered": len(values),
                         "p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95),
                         "p99_ms": percentile(values, 99)})
        return rows

    def online(self, query: dict, bucket: str, until: dt.datetime | None = None) -> list[dict]:
        """Devices online per bucket: at its end, and the most at once within it. Presence is
        replayed from the first presence document (a device online before the range counts in it);
        presence documents are the only ones that come from the device."""
        _check(bucket, BUCKETS, "bucket")
        since_key = query.get("key", {}).get("$gte")
        scan_query = {**query, "direction": eq("from_device")}
        if since_key:
            scan_query["key"] = {k: v for k, v in query["key"].items() if k != "$gte"}
            if not scan_query["key"]:
                del scan_query["key"]
        online: set[str] = set()
        rows: dict[str, dict] = {}
        for doc in self._scan(scan_query, ("device_id", "event"), oldest_first=True):
            if doc["event"] == "connected":
                online.add(doc["device_id"])
            else:
                online.discard(doc["device_id"])
            if since_key and doc["key"] < since_key:
                continue
            start = bucket_start(int(doc["key"][:17]), bucket)
            row = rows.setdefault(start, {"bucket": start, "online": 0, "peak": 0})
            row["online"] = len(online)
            row["peak"] = max(row["peak"], len(online))
        return list(rows.values())


def _check(value: str, allowed, name: str) -> None:
    if value not in allowed:
        raise ValidationFailed(f"'{name}' must be one of {', '.join(allowed)}")
