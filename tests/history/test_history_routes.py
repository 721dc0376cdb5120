"""History routes: filters, newest-first cursor paging, and what each user may see."""

from __future__ import annotations

import csv
import io
import json

from iotcloud.cli import parser
from tests.api.conftest import assert_problem


def grant(api, username: str, role: str) -> None:
    args = parser().parse_args(["users", "grant", username, role])
    assert args.func(api.running.settings, args) == 0


def all_pages(http, path: str, token: str, **params) -> list[dict]:
    items, cursor, query = [], None, dict(params)
    while True:
        if cursor:
            query["next"] = cursor
        answer = http.get(path, token, params=query)
        assert answer.status_code == 200, answer.text
        items += answer.json["items"]
        cursor = answer.json["next"]
        if not cursor:
            return items


def test_history_pages_newest_first_with_filters(recorded):
    recorder, alice, _ = recorded
    api = recorder.api
    everything = all_pages(api, "/v1/history", alice.token, limit=3)
    assert {item["owner"] for item in everything} == {"alice"}
    assert [item["at"] for item in everything] == sorted((item["at"] for item in everything), reverse=True)
    assert len({item["id"] for item in everything}) == len(everything)
    events = [item["event"] for item in everything]
    assert events.count("command") == 5
    assert {"registered", "connected", "disconnected", "certificate_reissued", "unregistered"} <= set(events)
    assert everything == all_pages(api, "/v1/history", alice.token, limit=500)

    gpio = all_pages(api, "/v1/devices/kitchen/history", alice.token, api="get_gpio")
    assert [(i["device_name"], i["api"], i["state"]) for i in gpio] == [("kitchen", "get_gpio", "timed_out"),
                                                                         ("kitchen", "get_gpio", "succeeded")]
    answered = gpio[1]
    assert answered["request"] == {"number": 1} and answered["request_payload"] == '{"number": 1}'
    assert answered["answer"] == {"value": 1} and answered["result"] == 1 and answered["latency_ms"] >= 0
    assert answered["actor"] == "user:alice" and answered["correlation_id"] == "corr-kitchen-get_gpio"
    assert answered["direction"] == "to_device"
    assert {i["state"] for i in all_pages(api, "/v1/history", alice.token, state="failed")} == {"failed"}
    presence = all_pages(api, "/v1/history", alice.token, direction="from_device")
    assert [i["event"] for i in presence] == ["disconnected", "connected"]
    oldest = all_pages(api, "/v1/history", alice.token, order="oldest", limit=2)
    assert oldest == list(reversed(everything))
    start = everything[2]["at"]
    since = all_pages(api, "/v1/history", alice.token, **{"from": start})
    assert since == [i for i in everything if i["at"] >= start]
    until = all_pages(api, "/v1/history", alice.token, to=start)
    assert until == [i for i in everything if i["at"] < start]


def test_bad_filters_are_problems(recorded):
    recorder, alice, _ = recorded
    for params, field in (({"direction": "sideways"}, "direction"), ({"state": "bored"}, "state"),
                          ({"next": "not-a-cursor"}, "next"), ({"from": "yesterday"}, "from"),
                          ({"limit": "0"}, "limit"), ({"limit": "x" * 500}, "limit"), ({"order": "up"}, "order")):
        answer = recorder.api.get("/v1/history", alice.token, params=params)
        assert_problem(answer, 400, "validation-failed")


def test_users_never_see_other_users_history(recorded):
    recorder, alice, bob = recorded
    api = recorder.api
    assert {i["owner"] for i in all_pages(api, "/v1/history", bob.token)} == {"bob"}
    assert all_pages(api, "/v1/devices/kitchen/history", bob.token) == []
    for path in ("history", "commands", "outcomes", "latency", "online", "export", "devices"):
        assert_problem(api.get(f"/v1/analytics/{path}", bob.token, params={"owner": "alice"}), 403, "role-required")
        assert api.get(f"/v1/analytics/{path}", bob.token).status_code == 200
        assert api.get(f"/v1/analytics/{path}").status_code == 401
    own = api.get("/v1/analytics/export", bob.token, params={"format": "jsonl"}).text.splitlines()
    assert {json.loads(line)["owner"] for line in own} == {"bob"}
    rows = api.get("/v1/analytics/latency", bob.token, params={"by": "device"}).json["rows"]
    assert [row["owner"] for row in rows] == ["bob"]
    assert sorted(d["name"] for d in all_pages(api, "/v1/analytics/devices", bob.token)) == ["shed", "vault"]
    vault = all_pages(api, "/v1/devices/vault/history", bob.token)
    assert [i["event"] for i in vault] == ["broker_password_set", "registered"]
    assert not any("hash" in key or "password" in json.dumps(i.get("detail")) for i in vault for key in i)


def test_analysts_query_everyone(recorded):
    recorder, alice, bob = recorded
    api = recorder.api
    grant(api, "bob", "analyst")
    owners = {i["owner"] for i in all_pages(api, "/v1/analytics/history", bob.token)}
    assert owners == {"alice", "bob"}
    assert {i["owner"] for i in all_pages(api, "/v1/analytics/history", bob.token, owner="alice")} == {"alice"}
    devices = all_pages(api, "/v1/analytics/devices", bob.token, limit=1)
    assert sorted((d["owner"], d["name"]) for d in devices) == [("alice", "kitchen"), ("bob", "shed"), ("bob", "vault")]
    assert all("pem" not in d["certificate"] for d in devices)
    assert [d["name"] for d in all_pages(api, "/v1/analytics/devices", bob.token, connection="online")] == ["shed"]
    for params in ({"connection": "maybe"}, {"next": "!!"}, {"limit": "0"}):
        assert_problem(api.get("/v1/analytics/devices", bob.token, params=params), 400, "validation-failed")

    outcomes = {row["api"]: row for row in api.get("/v1/analytics/outcomes", bob.token).json["rows"]}
    assert outcomes["get_gpio"]["commands"] == 4
    assert outcomes["get_gpio"]["succeeded"] == 2 and outcomes["get_gpio"]["timed_out"] == 1
    assert outcomes["get_gpio"]["failed"] == 1 and outcomes["get_gpio"]["timeout_rate"] == 0.25
    latency = {row["api"]: row for row in api.get("/v1/analytics/latency", bob.token).json["rows"]}
    documents = all_pages(api, "/v1/analytics/history", bob.token, api="get_gpio", state="succeeded")
    assert latency["get_gpio"]["answered"] == 2
    assert latency["get_gpio"]["p99_ms"] == max(d["latency_ms"] for d in documents)
    assert latency["get_gpio"]["p50_ms"] == min(d["latency_ms"] for d in documents)
    per_device = api.get("/v1/analytics/commands", bob.token, params={"bucket": "day"}).json["rows"]
    assert sum(row["commands"] for row in per_device) == 6
    assert {(row["device_name"], row["commands"]) for row in per_device} == {("kitchen", 3), ("garage", 2),
                                                                             ("shed", 1)}
    online = api.get("/v1/analytics/online", bob.token, params={"bucket": "hour"}).json["rows"]
    assert online[-1]["online"] == 1 and max(row["peak"] for row in online) == 1  # kitchen went off, then shed on

    exported = api.get("/v1/analytics/export", bob.token, params={"format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert {row["owner"] for row in table} == {"alice", "bob"}
    assert len(table) == len(all_pages(api, "/v1/analytics/history", bob.token))
    assert_problem(api.get("/v1/analytics/export", bob.token, params={"format": "xml"}), 400, "validation-failed")


SORTED_FIELDS = {"latency": "latency_ms", "device": "device_name", "api": "api", "state": "state"}


def expected_order(items: list[dict], name: str, ascending: bool) -> list[dict]:
    """By the field, ties newest first; descending is the exact reverse; items without a value left out."""
    if name == "time":
        ordered = sorted(items, key=lambda i: (i["at"], i["id"]))
        return ordered if ascending else ordered[::-1]
    field = SORTED_FIELDS[name]
    newest_first = sorted((i for i in items if i.get(field) is not None), key=lambda i: (i["at"], i["id"]),
                          reverse=True)
    ordered = sorted(newest_first, key=lambda i: i[field])  # stable: ties stay newest first
    return ordered if ascending else ordered[::-1]


def test_analysts_sort_by_each_field_with_cursor_paging(recorded):
    recorder, alice, bob = recorded
    api = recorder.api
    grant(api, "bob", "analyst")
    everything = all_pages(api, "/v1/analytics/history", bob.token, limit=500)
    assert len({i["owner"] for i in everything}) == 2
    for name in ("time", *SORTED_FIELDS):
        for ascending in (True, False):
            sort = name if ascending else f"-{name}"
            expected = expected_order(everything, name, ascending)
            assert expected, sort
            for limit in (1, 2, 5, 500):
                got = all_pages(api, "/v1/analytics/history", bob.token, sort=sort, limit=limit)
                assert [i["id"] for i in got] == [i["id"] for i in expected], f"sort={sort} limit={limit}"
    # Ties: alice's kitchen has several documents, listed newest first within the name when ascending.
    by_device = all_pages(api, "/v1/analytics/history", bob.token, sort="device", limit=2)
    kitchen = [i["at"] for i in by_device if i["device_name"] == "kitchen"]
    assert len(kitchen) > 2 and kitchen == sorted(kitchen, reverse=True)
    slowest = all_pages(api, "/v1/analytics/history", bob.token, sort="-latency", limit=1)
    assert [i["latency_ms"] for i in slowest] == sorted((i["latency_ms"] for i in slowest), reverse=True)
    assert {i["event"] for i in slowest} == {"command"}
    # Sorts combine with filters, the owner scope and a time range; the cursor keeps them all.
    for params in ({"owner": "alice", "sort": "-latency"}, {"api": "get_gpio", "sort": "device"},
                   {"api": "get_gpio", "sort": "-api"}, {"state": "succeeded", "sort": "latency"},
                   {"owner": "alice", "from": everything[-3]["at"], "sort": "state"},
                   {"direction": "from_device", "sort": "-device"}):
        sort = params["sort"]
        name, ascending = sort.lstrip("-"), not sort.startswith("-")
        matching = all_pages(api, "/v1/analytics/history", bob.token,
                             **{k: v for k, v in params.items() if k != "sort"})
        expected = expected_order(matching, name, ascending)
        assert expected, params
        for limit in (1, 3):
            got = all_pages(api, "/v1/analytics/history", bob.token, limit=limit, **params)
            assert [i["id"] for i in got] == [i["id"] for i in expected], f"{params} limit={limit}"
    # The owner's own routes sort the same way.
    own = all_pages(api, "/v1/history", alice.token, sort="-state", limit=2)
    assert [i["id"] for i in own] == [i["id"] for i in expected_order(
        all_pages(api, "/v1/history", alice.token), "state", False)]
    assert {i["owner"] for i in own} == {"alice"}


def test_unknown_sorts_and_bad_sort_cursors_are_problems(recorded):
    recorder, alice, bob = recorded
    api = recorder.api
    grant(api, "bob", "analyst")
    for params in ({"sort": "colour"}, {"sort": "-"}, {"sort": "owner"}, {"sort": "latency", "order": "oldest"}):
        answer = api.get("/v1/analytics/history", bob.token, params=params)
        assert_problem(answer, 400, "validation-failed")
        assert "sort" in answer.json["detail"]
    first = api.get("/v1/analytics/history", bob.token, params={"sort": "-latency", "limit": 1}).json
    assert first["next"]
    import base64
    text = base64.urlsafe_b64decode(first["next"] + "=" * (-len(first["next"]) % 4)).decode()
    for forged in (text.replace('"latency"', '"owner"'), text.replace("false", '"no"'), 's["latency",true,"x","1"]',
                   's["device",true,{"$gt":""},"00000000000000001:x"]', "s[]"):
        cursor = base64.urlsafe_b64encode(forged.encode()).decode().rstrip("=")
        assert_problem(api.get("/v1/analytics/history", bob.token, params={"next": cursor}), 400, "validation-failed")


def test_sorted_pages_never_show_other_users_history(recorded):
    recorder, alice, bob = recorded
    api = recorder.api
    for sort in ("latency", "-device", "api", "-state", "time"):
        assert {i["owner"] for i in all_pages(api, "/v1/analytics/history", bob.token, sort=sort, limit=1)} <= {"bob"}
        assert {i["owner"] for i in all_pages(api, "/v1/history", bob.token, sort=sort, limit=1)} <= {"bob"}
        assert all_pages(api, "/v1/devices/kitchen/history", bob.token, sort=sort) == []
        assert_problem(api.get("/v1/analytics/history", bob.token, params={"owner": "alice", "sort": sort}), 403,
                       "role-required")
    # A cursor handed to alice carries no right to her data: bob's request with it is still scoped to bob.
    cursor = api.get("/v1/history", alice.token, params={"sort": "-latency", "limit": 1}).json["next"]
    assert cursor
    rest = all_pages(api, "/v1/analytics/history", bob.token, next=cursor)
    assert {i["owner"] for i in rest} <= {"bob"}
