"""Fair shares of the request threads, on the real app and stores (no broker: a waiting call waits
its whole timeout): waiting device calls per user and in all, public requests per client address."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from queries.read_models import HISTORY
from tests.api.conftest import Api, assert_problem
from tests.conftest import RunningPlatform

THREADS = 4  # shares: 1 waiting call per user, 3 in all, 1 public request per address


@pytest.fixture
def small_api(make_settings):
    running = RunningPlatform(make_settings("sqlite", api_threads=THREADS))
    yield Api(running)
    running.close()


def user_with_device(api) -> tuple[str, str]:
    username = f"u{uuid.uuid4().hex[:10]}"
    token = api.signed_in(username)
    assert api.post("/v1/devices", {"name": "lamp"}, token).status_code == 201
    return username, token


def in_background(function, *args, **kwargs) -> threading.Thread:
    thread = threading.Thread(target=function, args=args, kwargs=kwargs, daemon=True)
    thread.start()
    return thread


def wait_until_recorded(api, owner: str, count: int) -> None:
    commands = api.platform.catalogue.collection(HISTORY)
    deadline = time.monotonic() + 20
    while commands.count_documents({"owner": owner, "event": "command"}) < count:
        assert time.monotonic() < deadline, "the waiting call was never recorded"
        time.sleep(0.02)


def waiting_call(api, token, timeout: float = 3):
    return api.post("/v1/devices/lamp/commands", {"api": "get_status", "timeout": timeout}, token)


def test_a_user_over_their_share_of_waiting_calls_is_refused_before_anything_is_recorded(small_api):
    api = small_api
    alice, alice_token = user_with_device(api)
    first = in_background(waiting_call, api, alice_token)
    wait_until_recorded(api, alice, 1)

    refused = waiting_call(api, alice_token)
    assert_problem(refused, 429, "too-many-waiting-calls")
    assert 1 <= int(refused.headers["retry-after"]) <= 4
    refused_v1_route = api.client.simulate_get("/v1/devices/lamp/status", headers={"Authorization": f"Bearer {alice_token}"})
    assert_problem(refused_v1_route, 429, "too-many-waiting-calls")
    # Asynchronous calls hold no thread: never refused, and Prefer: respond-async turns a refusal into 202.
    assert api.post("/v1/devices/lamp/commands", {"api": "get_status", "wait": False}, alice_token).status_code == 202
    deferred = api.client.simulate_post("/v1/devices/lamp/commands", json={"api": "get_status"},
                                        headers={"Authorization": f"Bearer {alice_token}", "Prefer": "respond-async"})
    assert deferred.status_code == 202 and deferred.json["status"] == "queued"
    commands = api.platform.catalogue.collection(HISTORY)
    wait_until_recorded(api, alice, 3)
    assert commands.count_documents({"owner": alice, "event": "command"}) == 3  # the two refused calls left no event
    # Other users still have their share.
    bob, bob_token = user_with_device(api)
    assert waiting_call(api, bob_token, timeout=0.1).status_code == 504
    first.join(10)
    assert waiting_call(api, alice_token, timeout=0.1).status_code == 504  # the slot came back


def test_waiting_calls_in_all_leave_a_quarter_of_the_threads_free(small_api):
    api = small_api
    holders = [user_with_device(api) for _ in range(THREADS)]
    calls = []
    for owner, token in holders[:3]:
        calls.append(in_background(waiting_call, api, token))
        wait_until_recorded(api, owner, 1)
    assert_problem(waiting_call(api, holders[3][1]), 429, "too-many-waiting-calls")
    assert api.get("/v1/me", holders[3][1]).status_code == 200
    for call in calls:
        call.join(10)


def test_public_requests_are_bounded_per_client_address(make_settings):
    running = RunningPlatform(make_settings("sqlite", api_threads=THREADS, command_timeout=3.0))
    try:
        api = Api(running)
        username, _ = user_with_device(api)
        v2_token = api.post("/user/login", {"username": username, "password": "correct horse"}).json["token"]
        v2_call = json.dumps({"username": username, "token": v2_token, "devicename": "lamp"})
        slow = in_background(api.client.simulate_post, "/devices/device/status", body=v2_call,
                             headers={"Content-Type": "application/json"})
        wait_until_recorded(api, username, 1)

        login = {"username": username, "password": "correct horse"}
        refused = api.post("/v1/auth/login", login)
        assert_problem(refused, 429, "too-many-concurrent-requests")
        assert int(refused.headers["retry-after"]) >= 1
        refused_v2 = api.client.simulate_post("/user/login", body=json.dumps(login),
                                              headers={"Content-Type": "application/json"})
        assert refused_v2.status_code == 429 and refused_v2.json["status"] == "NG"
        assert api.get("/healthz").status_code == 200 and api.get("/readyz").status_code == 200
        assert api.post("/v1/auth/login", login, remote_addr="192.0.2.7").status_code == 200
        slow.join(10)
        assert api.post("/v1/auth/login", login).status_code == 200
    finally:
        running.close()
