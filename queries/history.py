"""History queries: one owner's device history (or everyone's, for a caller whose role allows it),
filtered, newest first, paged with an opaque cursor; and the libpyiotcloud v2 view of it.

Every query filters on at most one of device / api / state / direction besides the owner, plus
the `key` range (time range and cursor), and sorts on `key`: each shape has an index of
projections/history.py INDEXES (tests/projections/test_history_indexes.py shows which with explain()).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re

from pymongo.database import Database

from commands.domain.device_commands import EXPIRED, FAILED, QUEUED, SENT, SUCCEEDED, TIMED_OUT
from commands.errors import ValidationFailed
from queries.read_models import HISTORY, ReadModelCatalogue
from queries.timestamps import normalised

DIRECTIONS = ("to_device", "from_device")
STATES = (QUEUED, SENT, SUCCEEDED, FAILED, TIMED_OUT, EXPIRED, "online", "offline", "registered", "reissued",
          "unregistered")
DEFAULT_PAGE, MAX_PAGE = 50, 500
KEY = re.compile(r"^[0-9]{17}:[0-9a-f:-]{1,80}$")
NAME = re.compile(r"^[^\x00-\x1f$]{1,128}$")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def parse_time(value: str | None, name: str) -> dt.datetime | None:
    """ISO 8601 (a date, or a time with or without an offset; naive means UTC) or epoch seconds."""
    if value in (None, ""):
        return None
    try:
        if re.fullmatch(r"[0-9]{1,12}(\.[0-9]+)?", value):
            return dt.datetime.fromtimestamp(float(value), dt.timezone.utc)
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise ValidationFailed(f"'{name}' must be an ISO 8601 time or epoch seconds") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def key_bound(moment: dt.datetime) -> str:
    """The smallest history key of anything at or after `moment` (keys start with microseconds)."""
    return f"{(moment - EPOCH) // dt.timedelta(microseconds=1):017d}"


def encode_cursor(key: str, oldest_first: bool = False) -> str:
    return base64.urlsafe_b64encode(f"{'a' if oldest_first else 'd'}{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, bool]:
    """(the last key handed out, whether the pages run oldest first)."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if len(text) > 120 or not text[:1] in ("a", "d") or not KEY.match(text[1:]):
        raise ValidationFailed("'next' is not a cursor this API handed out")
    return text[1:], text[0] == "a"


def eq(value) -> dict:
    """Equality as {"$eq": v}: the same to MongoDB, but nx-27017 turns a bare `{field: v}` into an
    array-containment OR (a full scan) unless an index is named after that single field."""
    return {"$eq": value}


def history_filter(owner: str | None = None, device: str | None = None, device_id: str | None = None,
                   api: str | None = None, direction: str | None = None, state: str | None = None,
                   since: dt.datetime | None = None, until: dt.datetime | None = None,
                   before_key: str | None = None, after_key: str | None = None, event: str | None = None) -> dict:
    """The MongoDB filter of a history query; validates every value first."""
    query: dict = {}
    if owner is not None:
        query["owner"] = eq(owner)
    for name, value in (("device_name", device), ("device_id", device_id), ("api", api)):
        if value is not None:
            if not NAME.match(value):
                raise ValidationFailed(f"'{name}' is not a valid value")
            query[name] = eq(value)
    if direction is not None:
        if direction not in DIRECTIONS:
            raise ValidationFailed(f"'direction' must be one of {', '.join(DIRECTIONS)}")
        query["direction"] = eq(direction)
    if state is not None:
        if state not in STATES:
            raise ValidationFailed(f"'state' must be one of {', '.join(STATES)}")
        query["state"] = eq(state)
    if event is not None:
        query["event"] = eq(event)
    key: dict = {}
    if since is not None:
        key["$gte"] = key_bound(since)
    if after_key is not None:
        key["$gt"] = after_key
    upper = [bound for bound in (key_bound(until) if until else None, before_key) if bound]
    if upper:
        key["$lt"] = min(upper)
    # Always a range on `key` (at least > ""): nx-27017 then searches the key index even when no
    # other filter is given; MongoDB reads it the same way as the sort alone.
    query["key"] = key or {"$gt": ""}
    return query


class HistoryQueries:
    def __init__(self, db: Database):
        self._catalogue = ReadModelCatalogue(db)

    def collection(self):
        return self._catalogue.collection(HISTORY)

    def page(self, query: dict, limit: int = DEFAULT_PAGE, oldest_first: bool = False
             ) -> tuple[list[dict], str | None]:
        """Newest first (or oldest first); the second value is the cursor of the next page (None on
        the last). A cursor continues in the order it was handed out in."""
        limit = max(1, min(int(limit), MAX_PAGE))
        docs = list(self.collection().find(query, {"position": 0}).sort([("key", 1 if oldest_first else -1)])
                    .limit(limit + 1))
        more = len(docs) > limit
        docs = docs[:limit]
        cursor = encode_cursor(docs[-1]["key"], oldest_first) if more and docs else None
        return [public(doc) for doc in docs], cursor

    def stream(self, query: dict, batch: int = 1000):
        """Every matching document, newest first, read in bounded batches (for exports)."""
        key = None
        while True:
            page_query = dict(query)
            if key is not None:
                bound = dict(query.get("key", {}))
                bound["$lt"] = min(key, bound["$lt"]) if "$lt" in bound else key
                page_query["key"] = bound
            docs = list(self.collection().find(page_query, {"position": 0}).sort([("key", -1)]).limit(batch))
            for doc in docs:
                yield public(doc)
            if len(docs) < batch:
                return
            key = docs[-1]["key"]


def public(doc: dict) -> dict:
    doc["id"] = doc.pop("_id")
    doc.pop("key", None)
    value = doc.get("at")
    if isinstance(value, str):
        doc["at"] = dt.datetime.fromisoformat(value)
    return normalised(doc)
