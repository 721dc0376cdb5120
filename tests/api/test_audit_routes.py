"""/v1/audit: auditors see any device, owners their own, everyone else gets 403 problem+json (for an
unknown device id too, so ids cannot be probed); verification of the whole store is for auditors."""

from __future__ import annotations

import pytest

from tests.api.conftest import assert_problem, cli


@pytest.fixture
def people(api):
    tokens = {name: api.signed_in(name) for name in ("alice", "bob", "carol")}
    assert cli(api.running.settings, "users", "grant", "carol", "auditor") == 0
    answer = api.post("/v1/devices", {"name": "kitchen"}, token=tokens["alice"])
    assert answer.status_code == 201, answer.text
    assert api.post("/v1/devices/kitchen/certificate", {}, token=tokens["alice"]).status_code == 200
    return tokens, answer.json["device_id"]


def test_owner_and_auditor_read_a_devices_events_others_are_refused(api, people):
    tokens, device_id = people
    path = f"/v1/audit/devices/{device_id}/events"
    for reader in ("alice", "carol"):
        answer = api.get(path, token=tokens[reader])
        assert answer.status_code == 200, answer.text
        events = answer.json["events"]
        assert [e["event"] for e in events] == ["Device.Registered", "Device.CertificateReissued"]
        assert events[0]["actor"] == "user:alice" and events[0]["log"] == "DeviceFleet"
    assert_problem(api.get(path, token=tokens["bob"]), 403, "role-required")
    assert_problem(api.get(f"/v1/audit/devices/{'0' * 40}/events", token=tokens["bob"]), 403, "role-required")
    assert_problem(api.get(f"/v1/audit/devices/{'0' * 40}/events", token=tokens["carol"]), 404, "device-not-found")
    assert_problem(api.get(path), 401, "invalid-token")


def test_time_travel_over_http(api, people):
    tokens, device_id = people
    path = f"/v1/audit/devices/{device_id}/state"
    first = api.get(path, token=tokens["alice"], params={"revision": "1"})
    assert first.status_code == 200, first.text
    latest = api.get(path, token=tokens["carol"])
    assert (first.json["revision"], latest.json["revision"]) == (1, 2)
    assert first.json["certificate"]["serial"] != latest.json["certificate"]["serial"]
    at = api.get(path, token=tokens["carol"], params={"at": first.json["as_of"]})
    assert at.json == first.json
    assert_problem(api.get(path, token=tokens["bob"], params={"revision": "1"}), 403, "role-required")
    for params in ({"at": "yesterday"}, {"revision": "0"}, {"revision": "x"},
                   {"revision": "1", "at": first.json["as_of"]}):
        assert_problem(api.get(path, token=tokens["carol"], params=params), 400, "validation-failed")
    assert_problem(api.get(path, token=tokens["carol"], params={"at": "2001-01-01T00:00:00"}), 404,
                   "device-not-found")
    assert_problem(api.get("/v1/audit/devices/NOT-AN-ID/state", token=tokens["carol"]), 400, "validation-failed")


def test_verification_is_for_auditors(api, people):
    tokens, _ = people
    assert_problem(api.get("/v1/audit/verify", token=tokens["alice"]), 403, "role-required")
    answer = api.get("/v1/audit/verify", token=tokens["carol"])
    assert answer.status_code == 200, answer.text
    assert answer.json["intact"] is True
    logs = {log["log"]: log for log in answer.json["logs"]}
    assert set(logs) == {"Accounts", "DeviceFleet", "DeviceControl"}
    assert logs["DeviceFleet"]["events"] >= 3 and logs["DeviceFleet"]["broken"] is None
