"""/v1 history routes: a user's device history, and the analysts' read-only queries, aggregates
and exports over the read models. Owners see their own devices; `analyst` sees everyone's
(gateways/http/access.py decides, per request)."""

from __future__ import annotations

import csv
import io
import json

import falcon

from commands.errors import ValidationFailed
from gateways.http import access
from queries.analytics import Analytics
from queries.fleet_analytics import FleetAnalytics
from queries.history import (DEFAULT_PAGE, MAX_PAGE, HistoryQueries, Sort, decode_any_cursor, history_filter,
                             parse_sort, parse_time)

ANALYST = "analyst"
MAX_PARAM = 200
MAX_CURSOR = 1000  # a sorted page's cursor holds a device name (up to 128 characters) and a key
CSV_FIELDS = ("id", "at", "event", "owner", "device_name", "device_id", "api", "direction", "state", "latency_ms",
              "actor", "correlation_id", "requested_at", "sent_at", "completed_at", "request_payload",
              "answer_payload", "error")


def _param(req, name: str) -> str | None:
    value = req.get_param(name)
    if value is not None and len(value) > (MAX_CURSOR if name == "next" else MAX_PARAM):
        raise ValidationFailed(f"'{name}' is too long", field=name)
    return value or None


def _limit(req) -> int:
    raw = _param(req, "limit")
    if raw is None:
        return DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise ValidationFailed(f"'limit' must be a whole number from 1 to {MAX_PAGE}", field="limit")
    return int(raw)


def query_from(req, owner: str | None, **fixed) -> tuple[dict, Sort, tuple | None]:
    """The history filter a request's parameters ask for (owner fixed by the caller's rights), the
    order of its pages (`sort`, or the older `order`), and where the cursor left off."""
    cursor = _param(req, "next")
    if _param(req, "order") not in (None, "newest", "oldest"):
        raise ValidationFailed("'order' must be newest or oldest", field="order")
    sort = parse_sort(_param(req, "sort"))
    if sort is not None and _param(req, "order"):
        raise ValidationFailed("give 'sort' or 'order', not both", field="sort")
    sort = sort or Sort("time", _param(req, "order") == "oldest")
    before = after = last = None
    if cursor:
        sort, value, key = decode_any_cursor(cursor)  # a cursor continues in the order it was handed out in
        if sort.by_time:
            after, before = (key, None) if sort.ascending else (None, key)
        else:
            last = (value, key)
    query = history_filter(
        owner=owner, device=fixed.get("device", _param(req, "device")), device_id=_param(req, "device_id"),
        api=_param(req, "api"), direction=_param(req, "direction"), state=_param(req, "state"),
        since=parse_time(_param(req, "from"), "from"), until=parse_time(_param(req, "to"), "to"),
        before_key=before, after_key=after, event=fixed.get("event"))
    return query, sort, last


def _page(history: HistoryQueries, req, owner: str | None, **fixed) -> dict:
    query, sort, last = query_from(req, owner, **fixed)
    if sort.by_time:
        items, cursor = history.page(query, _limit(req), sort.ascending)
    else:
        items, cursor = history.sorted_page(query, sort, _limit(req), last)
    return {"items": items, "next": cursor}


def scope(req) -> str | None:
    """The owner a query is restricted to: an analyst may name one (`owner`) or none (everyone's);
    anyone else sees their own devices only, and naming another owner is refused."""
    wanted = _param(req, "owner")
    if access.has_role(req.context, ANALYST):
        return wanted
    access.owner_or_role(req.context, wanted or req.context.principal.owner, ANALYST)
    return req.context.principal.owner


class History:
    """GET /v1/history: the caller's device history, newest first."""

    def __init__(self, history: HistoryQueries):
        self._history = history

    def on_get(self, req, resp):
        resp.media = _page(self._history, req, req.context.principal.owner)


class DeviceHistory:
    """GET /v1/devices/{name}/history: one of the caller's devices (by name, across re-registrations)."""

    def __init__(self, history: HistoryQueries):
        self._history = history

    def on_get(self, req, resp, name):
        resp.media = _page(self._history, req, req.context.principal.owner, device=name)


class AnalyticsHistory:
    """GET /v1/analytics/history: filters, sort, cursor; everyone's for analysts."""

    def __init__(self, history: HistoryQueries):
        self._history = history

    def on_get(self, req, resp):
        resp.media = _page(self._history, req, scope(req))


class Aggregate:
    """GET /v1/analytics/{commands,outcomes,latency,online}."""

    def __init__(self, analytics: Analytics, kind: str):
        self._analytics, self._kind = analytics, kind

    def on_get(self, req, resp):
        query, _, _ = query_from(req, scope(req))
        if self._kind == "commands":
            rows = self._analytics.commands_per_device(query, _param(req, "bucket") or "hour")
        elif self._kind == "outcomes":
            rows = self._analytics.outcomes(query, _param(req, "by") or "api")
        elif self._kind == "latency":
            rows = self._analytics.latency(query, _param(req, "by") or "api")
        else:
            rows = self._analytics.online(query, _param(req, "bucket") or "hour")
        resp.media = {"rows": rows}


class Export:
    """GET /v1/analytics/export?format=csv|jsonl: every matching document, streamed newest first
    in bounded batches (never the whole result in memory)."""

    def __init__(self, history: HistoryQueries):
        self._history = history

    def on_get(self, req, resp):
        query, _, _ = query_from(req, scope(req))
        kind = _param(req, "format") or "jsonl"
        if kind not in ("csv", "jsonl"):
            raise ValidationFailed("'format' must be csv or jsonl", field="format")
        documents = self._history.stream(query)
        resp.content_type = "text/csv; charset=utf-8" if kind == "csv" else "application/jsonl"
        resp.downloadable_as = f"history.{kind}"
        resp.stream = _csv(documents) if kind == "csv" else _json_lines(documents)


class AnalyticsDevices:
    """GET /v1/analytics/devices: the device-list read model, everyone's for analysts."""

    def __init__(self, fleet: FleetAnalytics):
        self._fleet = fleet

    def on_get(self, req, resp):
        items, cursor = self._fleet.page(scope(req), _param(req, "connection"), _limit(req), _param(req, "next"))
        resp.media = {"items": items, "next": cursor}


def _text(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value if isinstance(value, str) else json.dumps(value)


def _csv(documents):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_FIELDS)
    for count, doc in enumerate(documents, 1):
        writer.writerow([_text(doc.get(name)) for name in CSV_FIELDS])
        if count % 200 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _json_lines(documents):
    for doc in documents:
        yield (json.dumps(doc, default=_text) + "\n").encode()


def routes(history: HistoryQueries, fleet: FleetAnalytics) -> list[tuple[str, object]]:
    analytics = Analytics(history)
    return [("/v1/history", History(history)),
            ("/v1/devices/{name}/history", DeviceHistory(history)),
            ("/v1/analytics/history", AnalyticsHistory(history)),
            *[(f"/v1/analytics/{kind}", Aggregate(analytics, kind))
              for kind in ("commands", "outcomes", "latency", "online")],
            ("/v1/analytics/export", Export(history)),
            ("/v1/analytics/devices", AnalyticsDevices(fleet))]
