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
    for path in ("history", "commands", "outcomes", "latency", "online", "export"):
        assert_problem(api.get(f"/v1/analytics/{path}", bob.token, params={"owner": "alice"}), 403, "role-required")
        assert api.get(f"/v1/analytics/{path}", bob.token).status_code == 200
        assert api.get(f"/v1/analytics/{path}").status_code == 401
    own = api.get("/v1/analytics/export", bob.token, params={"format": "jsonl"}).text.splitlines()
    assert {json.loads(line)["owner"] for line in own} == {"bob"}
    rows = api.get("/v1/analytics/latency", bob.token, params={"by": "device"}).json["rows"]
    assert [row["owner"] for row in rows] == ["bob"]


def test_analysts_query_everyone(recorded):
    recorder, alice, bob = recorded
    api = recorder.api
    grant(api, "bob", "analyst")
    owners = {i["owner"] for i in all_pages(api, "/v1/analytics/history", bob.token)}
    assert owners == {"alice", "bob"}
    assert {i["owner"] for i in all_pages(api, "/v1/analytics/history", bob.token, owner="alice")} == {"alice"}

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
