"""libpyiotcloud v2 histories: `/user/histories` (the seed's Historian: every message to and from
the user's devices, 20 newest per device) and the later `/devices/histories` (GET: the same;
POST: filtered by devicename, deviceid, direction, topic, datebegin/dateend, 50 at most).

Each call of the history read model is the seed's two MQTT messages: "To" the device (the request
as it went over the wire, when it was sent) and "From" it (the answer, when it came). The seed
shape is kept field by field: {timestamp "YYYY-MM-DD HH:MM:SS" in the server's local time,
direction, deviceid, devicename, topic (the api), payload (the text)}, newest first.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from commands.domain.device_commands import EXPIRED, QUEUED
from gateways.http.compat_v2 import V2Error, V2Resource
from queries.history import HistoryQueries, eq, history_filter

PER_DEVICE = 20      # the seed kept the 20 newest messages per device
FILTERED_CAP = 50    # the roadmap's cap for /devices/histories
SCANNED = 2000       # calls read at most per answer
SEED_TIME = "%Y-%m-%d %H:%M:%S"
V2_DIRECTIONS = ("To", "From")


def seed_time(moment: dt.datetime) -> str:
    return moment.astimezone().strftime(SEED_TIME)  # the seed formatted in the server's local time


def messages(doc: dict) -> list[tuple[dt.datetime, dict]]:
    """The seed's messages of one call, newest first: the answer, then the request."""
    if doc.get("event") != "command" or doc.get("state") in (QUEUED, EXPIRED):
        return []  # never published: the seed's Historian would not have seen it
    base = {"deviceid": doc["device_id"], "devicename": doc["device_name"], "topic": doc["api"]}
    out = []
    if doc.get("answer_payload") is not None and doc.get("completed_at"):
        out.append((doc["completed_at"], {"direction": "From", **base, "payload": doc["answer_payload"]}))
    sent = doc.get("sent_at") or doc["requested_at"]
    out.append((sent, {"direction": "To", **base, "payload": doc["request_payload"]}))
    return out


def histories(history: HistoryQueries, query: dict, per_device: int | None, cap: int | None,
              wanted=lambda when, message: True) -> list[dict]:
    counts: dict[str, int] = defaultdict(int)
    found: list[tuple[dt.datetime, dict]] = []
    for scanned, doc in enumerate(history.stream({**query, "event": eq("command")}, batch=500)):
        if scanned >= SCANNED or (cap is not None and len(found) >= cap):
            break
        for when, message in messages(doc):
            if per_device is not None and counts[message["deviceid"]] >= per_device:
                continue
            if wanted(when, message):
                counts[message["deviceid"]] += 1
                found.append((when, message))
    found.sort(key=lambda item: item[0], reverse=True)
    found = found[:cap] if cap is not None else found
    return [{"timestamp": seed_time(when), **message} for when, message in found]


class UserHistories(V2Resource):
    """POST/GET /user/histories {username, token}."""

    def __init__(self, identity, rw, history: HistoryQueries):
        super().__init__(identity, rw)
        self._history = history

    def on_post(self, req, resp):
        def action(body, principal):
            found = histories(self._history, history_filter(owner=principal.owner), PER_DEVICE, None)
            return "User histories queried successfully.", {"histories": found}
        self.respond(req, resp, action)

    on_get = on_post


class DeviceHistories(UserHistories):
    """GET /devices/histories (as /user/histories) and POST /devices/histories with filters."""

    on_get = UserHistories.on_post

    def on_post(self, req, resp):
        def action(body, principal):
            device, device_id, direction, topic = (_text(body, name) for name in
                                                   ("devicename", "deviceid", "direction", "topic"))
            if direction is not None and direction not in V2_DIRECTIONS:
                raise V2Error(400, "Invalid direction")
            begin, end = _epoch(body, "datebegin"), _epoch(body, "dateend")
            query = history_filter(owner=principal.owner, device=device, device_id=device_id, api=topic,
                                   until=end + dt.timedelta(seconds=1) if end else None)

            def wanted(when, message):
                return ((direction is None or message["direction"] == direction)
                        and (begin is None or when >= begin) and (end is None or when < end + dt.timedelta(seconds=1)))
            found = histories(self._history, query, None, FILTERED_CAP, wanted)
            return "User histories queried successfully.", {"histories": found}
        self.respond(req, resp, action)


def _text(body: dict, name: str) -> str | None:
    value = body.get(name)
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) > 128:
        raise V2Error(400, f"Invalid {name}")
    return value


def _epoch(body: dict, name: str) -> dt.datetime | None:
    value = body.get(name)
    if value in (None, ""):
        return None
    try:
        return dt.datetime.fromtimestamp(int(value), dt.timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        raise V2Error(400, f"Invalid {name}") from None
