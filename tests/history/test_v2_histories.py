"""libpyiotcloud v2 histories in the seed's shape, field by field (protocol reference §4.2):
{timestamp "YYYY-MM-DD HH:MM:SS" (server local time), direction "To"|"From", deviceid, devicename,
topic (the api), payload (the text on the wire)}, newest first, `_id` dropped."""

from __future__ import annotations

import datetime as dt
import json
import re

SEED_FIELDS = ["timestamp", "direction", "deviceid", "devicename", "topic", "payload"]
SEED_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def v2(api, method: str, path: str, owner, **fields):
    body = {"username": owner.username, "token": {"access": owner.token, "refresh": "", "id": ""}, **fields}
    return api.client.simulate_request(method, path, json=body)


def test_user_histories_match_the_seed_shape(recorded):
    recorder, alice, _ = recorded
    api = recorder.api
    answer = v2(api, "POST", "/user/histories", alice)
    assert answer.status_code == 200
    assert set(answer.json) == {"status", "message", "histories"}
    assert answer.json["status"] == "OK" and answer.json["message"] == "User histories queried successfully."
    histories = answer.json["histories"]
    for entry in histories:
        assert list(entry) == SEED_FIELDS
        assert all(isinstance(entry[name], str) for name in SEED_FIELDS)
        assert SEED_TIME.match(entry["timestamp"])
        assert entry["direction"] in ("To", "From")
    assert [e["timestamp"] for e in histories] == sorted((e["timestamp"] for e in histories), reverse=True)
    # 5 calls sent: 5 requests; 3 answers and 1 refused answer came back (the timed-out one did not)
    assert sum(e["direction"] == "To" for e in histories) == 5
    assert sum(e["direction"] == "From" for e in histories) == 4
    kitchen = [e for e in histories if e["devicename"] == "kitchen" and e["topic"] == "get_gpio"]
    requests = {e["payload"] for e in kitchen if e["direction"] == "To"}
    assert requests == {'{"number": 1}', '{"number": 3}'}
    assert [e["payload"] for e in kitchen if e["direction"] == "From"] == ['{"value": 1}']
    assert {e["deviceid"] for e in kitchen} == {alice.devices["kitchen"]}
    refused = [e for e in histories if e["devicename"] == "garage" and e["direction"] == "From"
               and e["topic"] == "get_gpio"]
    assert refused[0]["payload"] == '{"oops": 1}'
    newest = max(dt.datetime.strptime(e["timestamp"], "%Y-%m-%d %H:%M:%S") for e in histories)
    assert abs(newest - dt.datetime.now()) < dt.timedelta(minutes=5)  # local time, as the seed wrote it
    assert v2(api, "GET", "/user/histories", alice).json == answer.json
    assert v2(api, "GET", "/devices/histories", alice).json["histories"] == histories


def test_devices_histories_filters(recorded):
    recorder, alice, bob = recorded
    api = recorder.api
    answer = v2(api, "POST", "/devices/histories", alice, devicename="kitchen", direction="To", topic="get_gpio")
    entries = answer.json["histories"]
    assert [(e["devicename"], e["direction"], e["topic"]) for e in entries] == [("kitchen", "To", "get_gpio")] * 2
    later = int(dt.datetime.now().timestamp()) + 3600
    assert v2(api, "POST", "/devices/histories", alice, datebegin=later).json["histories"] == []
    everything = v2(api, "POST", "/devices/histories", alice, datebegin=0, dateend=later).json["histories"]
    assert len(everything) == 9
    assert v2(api, "POST", "/devices/histories", alice, direction="Up").json["status"] == "NG"
    # another owner's device name finds nothing of alice's
    assert v2(api, "POST", "/devices/histories", bob, devicename="kitchen").json["histories"] == []
    assert {e["devicename"] for e in v2(api, "POST", "/user/histories", bob).json["histories"]} == {"shed"}
    bad = api.client.simulate_post("/user/histories", json={"username": "alice", "token": {"access": "forged"}})
    assert bad.status_code == 401 and bad.json == {"status": "NG", "message": "Unauthorized access"}
    assert json.loads(api.client.simulate_post("/user/histories", body="{").text)["status"] == "NG"
