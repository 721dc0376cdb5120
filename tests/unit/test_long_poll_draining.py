"""A long poll waiting when its worker is asked to stop answers at once, so the worker can exit in
its grace period instead of being killed with the request (gateways/http/draining.py)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import falcon
import falcon.testing

from gateways.http.capacity import ConcurrencyLimit
from gateways.http.resources.live import STOPPING_RETRY, DeviceChanges


class Versions:
    def __init__(self):
        self.current = "v1"
        self.looks = 0
        self.waiting = threading.Event()  # set on the poll's second look: it is inside its wait

    def version(self, owner: str) -> str:
        self.looks += 1
        if self.looks == 2:
            self.waiting.set()
        return self.current


class SignedIn:
    def process_request(self, req, resp):
        req.context.principal = SimpleNamespace(username="alice")


def client(versions: Versions, stopping: threading.Event) -> falcon.testing.TestClient:
    app = falcon.App(middleware=[SignedIn()])
    app.add_route("/v1/devices/_changes", DeviceChanges(versions, ConcurrencyLimit(4), stopping))
    return falcon.testing.TestClient(app)


def test_a_waiting_poll_answers_at_once_when_the_worker_stops_and_says_when_to_ask_again():
    versions, stopping = Versions(), threading.Event()
    answers = []
    poll = threading.Thread(target=lambda: answers.append(
        client(versions, stopping).simulate_get("/v1/devices/_changes", params={"since": "v1", "wait": "20"})))
    poll.start()
    assert versions.waiting.wait(5)
    assert not answers
    stopped = time.monotonic()
    stopping.set()
    poll.join(5)
    assert time.monotonic() - stopped < 2, "the poll held its request past the stop"
    assert answers[0].json == {"version": "v1", "changed": False, "retry_after": STOPPING_RETRY}


def test_after_the_stop_a_changed_list_is_still_reported_as_changed():
    versions, stopping = Versions(), threading.Event()
    stopping.set()
    versions.current = "v2"
    answer = client(versions, stopping).simulate_get("/v1/devices/_changes", params={"since": "v1", "wait": "20"})
    assert answer.json == {"version": "v2", "changed": True, "retry_after": 0}


def test_without_a_stop_a_poll_waits_for_the_change():
    versions, stopping = Versions(), threading.Event()
    threading.Timer(0.5, lambda: setattr(versions, "current", "v2")).start()
    started = time.monotonic()
    answer = client(versions, stopping).simulate_get("/v1/devices/_changes", params={"since": "v1", "wait": "5"})
    assert answer.json == {"version": "v2", "changed": True, "retry_after": 0}
    assert time.monotonic() - started >= 0.5
