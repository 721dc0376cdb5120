"""History queries: one owner's device history (or everyone's, for a caller whose role allows it),
filtered, newest first, paged with an opaque cursor; and the libpyiotcloud v2 view of it.

Every query filters on at most one of device / api / state / direction besides the owner, plus
the `key` range (time range and cursor), and sorts on `key`: each shape has an index of
projections/history.py INDEXES (tests/history/test_history_read_model.py shows which with explain()).

Pages may also be sorted by latency, device name, api or state (`Sort`): by that field, ties by
time (newest first), a descending sort being the exact reverse of the ascending one. Their cursor
carries the last item's value of the field and its `key` (unique: the tie-breaker), and a page is
read as at most two index range scans (the rest of the cursor's value by `key`, then the values
beyond it), each served by an `(owner,) field, key` index.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import re
from dataclasses import dataclass

from pymongo.database import Database

from commands.domain.device_commands import EXPIRED, FAILED, QUEUED, SENT, SUCCEEDED, TIMED_OUT
from commands.errors import ValidationFailed
from queries.read_models import HISTORY, ReadModelCatalogue
from queries.timestamps import normalised

DIRECTIONS = ("to_device", "from_device")
STATES = (QUEUED, SENT, SUCCEEDED, FAILED, TIMED_OUT, EXPIRED, "online", "offline", "registered", "reissued",
          "password_set", "unregistered")
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


# sort name -> document field; the field's values must be present (not null) for a document to be listed
SORTS = {"time": "key", "latency": "latency_ms", "device": "device_name", "api": "api", "state": "state"}
NUMERIC = {"latency_ms"}
SORT_VALUES = tuple(v for name in SORTS for v in (name, f"-{name}"))


@dataclass(frozen=True)
class Sort:
    """`sort=latency` (ascending) or `sort=-latency` (descending); ties newest first when ascending."""

    name: str
    ascending: bool

    @property
    def field(self) -> str:
        return SORTS[self.name]

    @property
    def by_time(self) -> bool:
        return self.name == "time"


def parse_sort(value: str | None) -> Sort | None:
    if value is None:
        return None
    name = value[1:] if value[:1] in ("-", "+") else value
    if name not in SORTS:
        raise ValidationFailed(f"'sort' must be one of {', '.join(SORT_VALUES)} (a leading '-': descending)",
                               field="sort")
    return Sort(name, not value.startswith("-"))


def encode_sort_cursor(sort: Sort, value, key: str) -> str:
    text = "s" + json.dumps([sort.name, sort.ascending, value, key], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_sort_cursor(text: str) -> tuple[Sort, object, str]:
    """(the sort, the last value handed out, its key) of a sorted page's cursor (its text after 's')."""
    try:
        name, ascending, value, key = json.loads(text)
    except (ValueError, TypeError):
        raise ValidationFailed("'next' is not a cursor this API handed out", field="next") from None
    field = SORTS.get(name) if isinstance(name, str) else None
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if (field in (None, "key") or not isinstance(ascending, bool) or not isinstance(key, str) or not KEY.match(key)
            or not (numeric if field in NUMERIC else isinstance(value, str) and NAME.match(value))):
        raise ValidationFailed("'next' is not a cursor this API handed out", field="next")
    return Sort(name, ascending), value, key


def encode_cursor(key: str, oldest_first: bool = False) -> str:
    return base64.urlsafe_b64encode(f"{'a' if oldest_first else 'd'}{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, bool]:
    """(the last key handed out, whether the pages run oldest first)."""
    text = _cursor_text(cursor)
    if len(text) > 120 or not text[:1] in ("a", "d") or not KEY.match(text[1:]):
        raise ValidationFailed("'next' is not a cursor this API handed out")
    return text[1:], text[0] == "a"


def _cursor_text(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""


def decode_any_cursor(cursor: str) -> tuple[Sort, object, str]:
    """(sort, last value, last key) of any cursor the history routes hand out; for time-ordered
    pages the value is the key itself."""
    text = _cursor_text(cursor)
    if text.startswith("s") and len(text) < 700:
        return decode_sort_cursor(text[1:])
    key, oldest_first = decode_cursor(cursor)
    return Sort("time", oldest_first), key, key


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

    def sorted_page(self, query: dict, sort: Sort, limit: int = DEFAULT_PAGE, after: tuple | None = None
                    ) -> tuple[list[dict], str | None]:
        """A page sorted by `sort`'s field, ties by time (newest first when ascending; a descending
        sort is the exact reverse), after `after` = (value, key) of the previous page's last item.
        Documents without a value in that field (the api of a presence change, the latency of an
        unanswered call) are not listed."""
        limit = max(1, min(int(limit), MAX_PAGE))
        docs: list[dict] = []
        for query, order in sorted_queries(query, sort, after):
            docs += list(self.collection().find(query, {"position": 0}).sort(order).limit(limit + 1 - len(docs)))
            if len(docs) > limit:
                break
        field = sort.field
        more = len(docs) > limit
        docs = docs[:limit]
        cursor = encode_sort_cursor(sort, docs[-1][field], docs[-1]["key"]) if more and docs else None
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


def sorted_queries(query: dict, sort: Sort, after: tuple | None = None) -> list[tuple[dict, list]]:
    """(filter, sort) of the index range scans that read a page sorted by `sort` after `after` =
    (value, key): the rest of the cursor's value by key, then the values beyond it."""
    if sort.by_time:
        raise ValueError("time-ordered pages go through page()")
    field, direction = sort.field, 1 if sort.ascending else -1
    query = dict(query)
    if query.get("key") == {"$gt": ""}:
        del query["key"]  # no time range: the sort field's index leads
    scans = []
    if after is not None:
        value, key = after
        same = _narrowed(query, field, {"$eq": value})
        if same is not None:
            bound = dict(same.get("key", {}))
            if sort.ascending:
                bound["$lt"] = min(key, bound["$lt"]) if "$lt" in bound else key
            else:
                bound["$gt"] = max(key, bound["$gt"]) if "$gt" in bound else key
            same["key"] = bound
            scans.append((same, [("key", -direction)]))
        beyond = {"$gt" if sort.ascending else "$lt": value}
    else:
        beyond = {"$gte": -1e308} if field in NUMERIC else {"$gte": ""}  # present: not null, not missing
    rest = _narrowed(query, field, beyond)
    if rest is not None:
        scans.append((rest, [(field, direction), ("key", -direction)]))
    return scans


def _narrowed(query: dict, field: str, condition: dict) -> dict | None:
    """`query` with `condition` added on `field` (None when the two cannot both hold)."""
    existing = dict(query.get(field, {}))
    if "$eq" in existing and "$eq" in condition:
        if existing["$eq"] != condition["$eq"]:
            return None
        condition = {}
    return {**query, field: {**existing, **condition}}


def public(doc: dict) -> dict:
    doc["id"] = doc.pop("_id")
    doc.pop("key", None)
    value = doc.get("at")
    if isinstance(value, str):
        doc["at"] = dt.datetime.fromisoformat(value)
    return normalised(doc)
