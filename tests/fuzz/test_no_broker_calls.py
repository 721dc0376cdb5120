"""Without a broker nobody delivers device calls: a waiting call ends in a clean 504 (problem or
v2 envelope) after its timeout, never a 500, and a call that does not wait is accepted (202)."""

from __future__ import annotations

import time

from tests.fuzz.test_rest_fuzz import assert_error_shape
from tests.fuzz.test_hostile_bodies import _Adapter


def test_a_waiting_modern_call_times_out_as_a_problem(fuzz_target):
    auth = {"Authorization": f"Bearer {fuzz_target.token['access']}"}
    started = time.monotonic()
    answer = fuzz_target.client.simulate_get(f"/v1/devices/{fuzz_target.device}/gpio/3",
                                             query_string="timeout=0.1", headers=auth)
    assert answer.status_code == 504 and answer.json["type"] == "/problems/device-timeout", answer.text
    assert time.monotonic() - started < 10
    assert_error_shape("/v1/devices/{name}/gpio/{number}", "get", _Adapter(answer))
    queued = fuzz_target.client.simulate_post(f"/v1/devices/{fuzz_target.device}/commands", headers=auth,
                                              json={"api": "get_status", "wait": False})
    assert queued.status_code == 202, queued.text
    status = fuzz_target.client.simulate_get(f"/v1/commands/{queued.json['command_id']}", headers=auth)
    assert status.status_code == 200 and status.json["status"] == "queued", status.text


def test_a_v2_call_times_out_as_an_envelope(fuzz_target):
    answer = fuzz_target.client.simulate_post("/devices/device/status", json={
        "username": fuzz_target.username, "token": fuzz_target.token, "devicename": fuzz_target.device})
    assert answer.status_code == 504, answer.text
    assert answer.json == {"status": "NG", "message": "Could not communicate with device"}
