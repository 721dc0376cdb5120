"""Request bodies carry only what the event store and the read models can hold.

A body the edge accepts may become an event, which the projector then writes to MongoDB: an integer
beyond BSON's int64, an object shaped like eventsourcing's own `{"_type_", "_data_"}`, or a key
MongoDB refuses would break the projector (stalling every read model behind it) or the event's own
replay. The device catalogue's parameter checks already refuse most of these for device calls; the
edge now refuses them for every body, with the same parser as device answers, before any route
sees them. Repeated keys (which parsers resolve differently) were accepted before and are not now.
"""

from __future__ import annotations

import uuid

import pytest

from tests.api.conftest import assert_problem

HOSTILE_PARAMS = {
    "int beyond int64": {"number": 2 ** 64, "value": 1},
    "number literal of 400 digits": {"number": int("9" * 400), "value": 1},
    "float beyond a double": {"value": float("inf")},
    "eventsourcing's reserved shape": {"value": {"_type_": "uuid:UUID", "_data_": "not a uuid"}},
    "dollar key": {"value": {"$where": "sleep(1000)"}},
    "dotted key": {"value": {"a.b": 1}},
    "repeated key": None,  # sent as raw text below
}


def raw_body(case: str, params) -> str:
    if case == "repeated key":
        return '{"api": "set_gpio", "wait": false, "params": {"number": 1, "number": 2, "value": 1}}'
    if case == "float beyond a double":
        return '{"api": "set_gpio", "wait": false, "params": {"number": 1, "value": 1e999}}'
    if case == "number literal of 400 digits":
        return '{"api": "set_gpio", "wait": false, "params": {"number": ' + "9" * 400 + ', "value": 1}}'
    import json
    return json.dumps({"api": "set_gpio", "wait": False, "params": params})


@pytest.mark.parametrize("case", list(HOSTILE_PARAMS))
def test_a_body_the_stores_cannot_hold_is_refused_before_it_is_recorded(api, case):
    token = api.signed_in(f"u{uuid.uuid4().hex[:10]}")
    assert api.post("/v1/devices", {"name": "lamp"}, token).status_code == 201
    before = api.platform.control.recorder.max_notification_id() or 0

    answer = api.client.simulate_post("/v1/devices/lamp/commands", body=raw_body(case, HOSTILE_PARAMS[case]),
                                      headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})

    assert_problem(answer, 400, "validation-failed")
    assert (api.platform.control.recorder.max_notification_id() or 0) == before, "the bad call was recorded"
    # and the platform carries on: a sane call is recorded and projected
    fine = api.post("/v1/devices/lamp/commands", {"api": "set_gpio", "params": {"number": 1, "value": 1},
                                                 "wait": False}, token)
    assert fine.status_code == 202, fine.text
    assert api.get(f"/v1/commands/{fine.json['command_id']}", token).status_code == 200


def test_the_v2_flavour_refuses_them_in_its_envelope(api):
    answer = api.client.simulate_post("/user/login", body='{"username": "a", "password": "b", "x": 1e999}',
                                      headers={"Content-Type": "application/json"})
    assert (answer.status_code, answer.json) == (400, {"status": "NG", "message": "Invalid JSON body"})
