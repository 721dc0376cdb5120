"""The history read model itself: every query shape uses an index (explain() through the real
pymongo), a rebuild from the event store reproduces it exactly, and retention trims the read
model only."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from projections.history import INDEXES, HistoryProjection
from projections.runner import Projector, rebuild
from queries.history import Sort, history_filter, sorted_queries
from queries.read_models import HISTORY, collection_name

NOW = dt.datetime.now(dt.timezone.utc)
# Every filter shape queries/history.py builds for the routes (owner-scoped and analysts' unscoped).
SHAPES = {
    "owner": dict(owner="alice"),
    "owner+device": dict(owner="alice", device="kitchen"),
    "owner+device+api": dict(owner="alice", device="kitchen", api="get_gpio"),
    "owner+api": dict(owner="alice", api="get_gpio"),
    "owner+state": dict(owner="alice", state="timed_out"),
    "owner+direction": dict(owner="alice", direction="from_device"),
    "owner+range": dict(owner="alice", since=NOW - dt.timedelta(days=1), until=NOW),
    "owner+cursor": dict(owner="alice", before_key="99999999999999999:x"),
    "everyone": dict(),
    "everyone+range": dict(since=NOW - dt.timedelta(days=1)),
    "everyone+device_id": dict(device_id="abc"),
    "everyone+api": dict(api="get_gpio"),
    "everyone+state": dict(state="succeeded"),
    "everyone+calls": dict(event="command"),
    "everyone+presence": dict(direction="from_device"),
}


def index_used(explain: dict) -> str | None:
    """The index the plan searches: nx-27017 answers SQLite's plan ("SEARCH h USING INDEX idx_..."),
    a real MongoDB an IXSCAN stage."""
    plan = explain["queryPlanner"]["winningPlan"]
    if isinstance(plan, list):
        for step in plan:
            detail = step.get("detail", "")
            if "USING INDEX" in detail or "USING COVERING INDEX" in detail:
                return detail.split("INDEX", 1)[1].split()[0]
        return None
    stack = [plan]
    while stack:
        stage = stack.pop()
        if stage.get("stage") == "IXSCAN":
            return stage["indexName"]
        stack += [stage[k] for k in ("inputStage",) if k in stage] + stage.get("inputStages", [])
    return None


def test_every_query_shape_uses_an_index(recorded):
    recorder, *_ = recorded
    history = recorder.platform.history.collection()
    # nx-27017 names indexes after their fields and keeps no direction: compare the fields
    present = {tuple(f for f, _ in spec["key"]) for spec in history.index_information().values()}
    assert {tuple(f for f, _ in fields) for fields, _ in INDEXES} <= present
    for shape, filters in SHAPES.items():
        plan = history.find(history_filter(**filters)).sort([("key", -1)]).limit(50).explain()
        assert index_used(plan), f"{shape}: {plan['queryPlanner']['winningPlan']}"


SORTED_SHAPES = {name: shape for name, shape in SHAPES.items()
                 if name in ("owner", "owner+device", "owner+range", "everyone", "everyone+range", "everyone+api",
                             "everyone+state")}


@pytest.mark.parametrize("field", ["latency", "device", "api", "state"])
def test_every_sorted_query_shape_uses_an_index(recorded, field):
    """Each sort the routes serve, both ways, first page and after a cursor: every scan searches an index."""
    recorder, *_ = recorded
    history = recorder.platform.history.collection()
    value = 12.5 if field == "latency" else "kitchen"
    for shape, filters in SORTED_SHAPES.items():
        for ascending in (True, False):
            sort = Sort(field, ascending)
            for after in (None, (value, "01795800000000000:abc")):
                for query, order in sorted_queries(history_filter(**filters), sort, after):
                    plan = history.find(query).sort(order).limit(51).explain()
                    assert index_used(plan), f"{shape} sort={field} asc={ascending} after={after}: " \
                                             f"{plan['queryPlanner']['winningPlan']}"


def test_a_rebuild_reproduces_the_live_read_model(recorded):
    recorder, *_ = recorded
    platform = recorder.platform
    db = platform.db
    live = sorted(db[collection_name(HISTORY, 1)].find({}), key=lambda d: d["_id"])
    assert len(live) == 16  # 6 calls, 4 registrations, 3 presence changes, a reissue, a password, an unregistration
    projector = Projector(HistoryProjection(), {"DeviceFleet": platform.fleet, "DeviceControl": platform.control},
                          db, batch_size=7)
    generation = rebuild(projector)
    rebuilt = sorted(db[collection_name(HISTORY, generation)].find({}), key=lambda d: d["_id"])
    differences = [(a["_id"], {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)})
                   for a, b in zip(live, rebuilt) if a != b]
    assert differences == [] and len(rebuilt) == len(live)


def test_retention_trims_calls_and_presence_but_never_the_event_store(recorded):
    recorder, alice, _ = recorded
    platform = recorder.platform
    head = platform.control.recorder.max_notification_id()
    history = platform.history.collection()
    before = list(history.find({}))
    in_two_days = lambda: dt.datetime.now().timestamp() + 2 * 86400  # noqa: E731
    assert HistoryProjection(retention_days=0, clock=in_two_days).trim(history) == 0
    assert HistoryProjection(retention_days=3, clock=in_two_days).trim(history) == 0
    trimmed = HistoryProjection(retention_days=1, clock=in_two_days).trim(history)
    left = list(history.find({}))
    assert trimmed == len(before) - len(left) > 0
    assert {d["event"] for d in left} == {"registered", "certificate_reissued", "broker_password_set", "unregistered"}
    assert platform.control.recorder.max_notification_id() == head
    assert len(list(platform.control.recorder.select_notifications(start=1, limit=1000))) == head


@pytest.mark.parametrize("retention", ["0", "30", "0.5"])
def test_retention_setting(retention):
    from iotcloud.config import Settings
    assert Settings.from_env({"IOTCLOUD_HISTORY_RETENTION_DAYS": retention}).history_retention_days == float(retention)


def test_projection_lag_in_the_cli_and_readyz_detail(recorded, capsys):
    from iotcloud.cli import parser
    recorder, alice, _ = recorded
    settings = recorder.api.running.settings
    args = parser().parse_args(["projections", "status", "--json"])
    assert args.func(settings, args) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    history = [r for r in rows if r["projection"] == "history"]
    assert {r["source"] for r in history} == {"DeviceFleet", "DeviceControl"}
    assert all(r["behind"] == 0 and r["last_lag_ms"] is not None and r["last_lag_ms"] >= 0 for r in history)
    assert all(r["lag_events"] >= 1 and 0 <= r["lag_p50_ms"] <= r["lag_p99_ms"] <= r["lag_max_ms"] for r in history)
    args = parser().parse_args(["projections", "status"])
    assert args.func(settings, args) == 0
    assert "last lag" in capsys.readouterr().out

    assert set(recorder.api.get("/readyz", alice.token).json) == {"status"}  # the public answer stays minimal
    args = parser().parse_args(["users", "grant", "alice", "admin"])
    assert args.func(settings, args) == 0
    detail = recorder.api.get("/readyz", alice.token).json["checks"]["projection_lag"]
    assert {(r["projection"], r["source"]) for r in detail} >= {("history", "DeviceControl"), ("users", "Accounts")}


def test_rebuild_command_covers_history(recorded, capsys):
    from iotcloud.cli import parser
    recorder, alice, _ = recorded
    before = all_documents(recorder.platform.history.collection())
    args = parser().parse_args(["projections", "rebuild", "history"])
    assert args.func(recorder.api.running.settings, args) == 0
    captured = capsys.readouterr()
    assert "history: generation 2 is live" in captured.out and "events" in captured.err
    from queries.read_models import ReadModelCatalogue
    assert ReadModelCatalogue(recorder.platform.db).active_generation(HISTORY) == 2
    assert all_documents(recorder.platform.db[collection_name(HISTORY, 2)]) == before


def all_documents(collection) -> list[dict]:
    return sorted(collection.find({}), key=lambda d: d["_id"])


def test_a_sorted_cursor_round_trips_the_longest_names_within_the_routes_limit():
    from gateways.http.resources.history import MAX_CURSOR
    from queries.history import decode_any_cursor, encode_sort_cursor
    name = "ü" * 64 + "灯" * 64  # a device name of the longest kind, none of it ASCII
    key = "01795893957000000:" + "a" * 80
    for sort in (Sort("device", True), Sort("device", False)):
        cursor = encode_sort_cursor(sort, name, key)
        assert len(cursor) <= MAX_CURSOR
        assert decode_any_cursor(cursor) == (sort, name, key)
    cursor = encode_sort_cursor(Sort("latency", False), 12.75, key)
    assert decode_any_cursor(cursor) == (Sort("latency", False), 12.75, key)
