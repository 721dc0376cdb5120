"""OpenAPI entries of the history and analytics routes (merged into openapi.py's tables)."""

from __future__ import annotations

from gateways.http.openapi_schemas import NULLABLE_S, S, TIME, obj, ref, string
from queries.history import DIRECTIONS, MAX_PAGE, SORT_VALUES, STATES

ITEMS = {"type": "array", "items": ref("HistoryItem")}
SCHEMAS = {
    "HistoryItem": obj(["id", "event", "device_name", "device_id", "at"], id=S,
                       event={"enum": ["command", "registered", "certificate_reissued", "broker_password_set",
                                       "unregistered", "connected", "disconnected"]},
                       owner=S, device_name=S, device_id=S, api=NULLABLE_S,
                       direction={"enum": [*DIRECTIONS, None]}, state={"enum": list(STATES)},
                       request={}, request_payload=NULLABLE_S, answer={}, answer_payload=NULLABLE_S, result={},
                       error=NULLABLE_S, latency_ms={"type": ["number", "null"]}, actor=S, correlation_id=S,
                       at=TIME, requested_at=TIME, sent_at=TIME, completed_at=TIME, detail={}),
    "HistoryPage": obj(["items", "next"], items=ITEMS, next={**NULLABLE_S, "description": "cursor of the next page"}),
    "AggregateRows": obj(["rows"], rows={"type": "array", "items": {"type": "object"}}),
    "DevicesPage": obj(["items", "next"], items={"type": "array", "items": {"type": "object"}}, next=NULLABLE_S),
}
FILTERS = [
    {"name": "device", "in": "query", "schema": string(128), "description": "device name"},
    {"name": "device_id", "in": "query", "schema": string(128)},
    {"name": "api", "in": "query", "schema": string(64), "description": "device API, e.g. get_gpio"},
    {"name": "direction", "in": "query", "schema": {"enum": list(DIRECTIONS)}},
    {"name": "state", "in": "query", "schema": {"enum": list(STATES)}},
    {"name": "from", "in": "query", "schema": string(40), "description": "ISO 8601 or epoch seconds (inclusive)"},
    {"name": "to", "in": "query", "schema": string(40), "description": "ISO 8601 or epoch seconds (exclusive)"},
]
PAGING = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
    {"name": "next", "in": "query", "schema": string(1000), "description": "the `next` of the previous page"},
    {"name": "order", "in": "query", "schema": {"enum": ["newest", "oldest"], "default": "newest"},
     "description": "time order (or give `sort`, not both)"},
    {"name": "sort", "in": "query", "schema": {"enum": list(SORT_VALUES), "default": "-time"},
     "description": "sort by time, latency (ms), device (name), api or state; a leading '-' sorts descending. "
                    "Ties are newest first in an ascending sort, and a descending sort is its exact reverse. "
                    "Items without a value in the field (the api of a presence change, the latency of an "
                    "unanswered call) are left out. `next` continues the sort it was handed out with; an "
                    "unknown field is a 400 validation-failed problem"},
]
OWNER = [{"name": "owner", "in": "query", "schema": string(64),
          "description": "analysts: one owner's data (default everyone's); others: only their own username"}]
EXTRA = {
    "/v1/analytics/commands": [{"name": "bucket", "in": "query", "schema": {"enum": ["hour", "day"]}}],
    "/v1/analytics/online": [{"name": "bucket", "in": "query", "schema": {"enum": ["hour", "day"]}}],
    "/v1/analytics/outcomes": [{"name": "by", "in": "query", "schema": {"enum": ["api", "device"]}}],
    "/v1/analytics/latency": [{"name": "by", "in": "query", "schema": {"enum": ["api", "device"]}}],
    "/v1/analytics/export": [{"name": "format", "in": "query", "schema": {"enum": ["csv", "jsonl"]}}],
}
ANALYST = " (everyone's with the analyst role, else your own; another owner without it: 403)"
OPERATIONS = {
    ("/v1/history", "get"): ("history", "Your devices' history, newest first: calls, presence, lifecycle", None,
                             {200: "HistoryPage"}, {400}),
    ("/v1/devices/{name}/history", "get"): ("history", "One device's history (by name), newest first", None,
                                            {200: "HistoryPage"}, {400}),
    ("/v1/analytics/history", "get"): ("analytics", "History with filters, sort and cursor" + ANALYST, None,
                                       {200: "HistoryPage"}, {400, 403}),
    ("/v1/analytics/commands", "get"): ("analytics", "Calls per device per hour or day" + ANALYST, None,
                                        {200: "AggregateRows"}, {400, 403}),
    ("/v1/analytics/outcomes", "get"): ("analytics", "Success and timeout rates per api or device" + ANALYST,
                                        None, {200: "AggregateRows"}, {400, 403}),
    ("/v1/analytics/latency", "get"): ("analytics", "Latency p50/p95/p99 (ms) per api or device" + ANALYST,
                                       None, {200: "AggregateRows"}, {400, 403}),
    ("/v1/analytics/online", "get"): ("analytics", "Devices online per hour or day" + ANALYST, None,
                                      {200: "AggregateRows"}, {400, 403}),
    ("/v1/analytics/export", "get"): ("analytics", "Export as CSV or JSON Lines, streamed" + ANALYST, None,
                                      {200: None}, {400, 403}),
    ("/v1/analytics/devices", "get"): ("analytics", "Devices (connection filter, paged by device id)" + ANALYST,
                                       None, {200: "DevicesPage"}, {400, 403}),
}


def parameters(path: str) -> list[dict]:
    if path == "/v1/analytics/devices":
        return [{"name": "connection", "in": "query", "schema": {"enum": ["online", "offline"]}}, PAGING[0],
                PAGING[1], *OWNER]
    if path not in {p for p, _ in OPERATIONS}:
        return []
    params = [] if path == "/v1/devices/{name}/history" else FILTERS[:1]
    params += FILTERS[1:] + ([] if "/analytics/" in path and path != "/v1/analytics/history" else PAGING)
    return params + (OWNER if "/analytics/" in path else []) + EXTRA.get(path, [])


_SESSION = ("username", "token")
_HISTORIES = {"histories": {"type": "array", "items": obj(["timestamp", "direction", "deviceid", "devicename",
                                                            "topic", "payload"])}}
V2 = {
    ("/user/histories", "post"): ("Histories: messages to and from your devices, 20 newest per device",
                                  _SESSION, (), _HISTORIES, {400, 401, 413, 429}),
    ("/user/histories", "get"): ("Histories (credentials in a GET body)", _SESSION, (), _HISTORIES,
                                 {400, 401, 413, 429}),
    ("/devices/histories", "get"): ("Histories (credentials in a GET body)", _SESSION, (), _HISTORIES,
                                    {400, 401, 413, 429}),
    ("/devices/histories", "post"): ("Histories filtered by devicename, deviceid, direction (To/From), topic,"
                                     " datebegin/dateend (epoch seconds); 50 at most", _SESSION,
                                     ("devicename", "deviceid", "direction", "topic", "datebegin", "dateend"),
                                     _HISTORIES, {400, 401, 413, 429}),
}
V2_FIELDS = {"deviceid": string(128), "direction": {"enum": ["To", "From"]}, "topic": string(64),
             "datebegin": {"type": ["integer", "string"]}, "dateend": {"type": ["integer", "string"]}}
