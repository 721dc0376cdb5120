"""Capacity of the real API process (gunicorn gthread, the default 1 worker x 32 threads): one
user's waiting device calls must not take every request thread from everybody else; and the
worker's threads share one CPU."""

from __future__ import annotations

import http.client
import os
import re
import socket
import threading
import time
from pathlib import Path

from pymongo import MongoClient

from iotcloud.config import DEFAULT_API_THREADS
from iotcloud.api_launch import API_KEEP_ALIVE
from queries.read_models import HISTORY, ReadModelCatalogue
from tests.processes import children_of

STORM = DEFAULT_API_THREADS + 8


def recorded_commands(platform, owner: str) -> int:
    with MongoClient(f"mongodb://127.0.0.1:{platform.ports['mongo']}/", serverSelectionTimeoutMS=5000) as client:
        return ReadModelCatalogue(client["iotcloud"]).collection(HISTORY).count_documents({"owner": owner,
                                                                                           "event": "command"})


def test_one_users_waiting_calls_leave_threads_for_health_and_other_users(platform, user, simulator, tmp_path):
    waiting_calls_leave_threads(platform, user, simulator, tmp_path)


def test_connections_kept_by_their_threads_give_them_back_when_the_pool_needs_them(platform, user, simulator,
                                                                                    tmp_path):
    """After answering, a thread waits for its kept-alive connection's next request itself
    (iotcloud/api_worker.py): with a connection per thread that called once and went quiet, every
    thread is taken. A storm of waiting calls on other connections must get its threads at once,
    not when those connections' keep-alive runs out."""
    kept = []
    try:
        for _ in range(DEFAULT_API_THREADS):
            connection = http.client.HTTPConnection("127.0.0.1", platform.ports["api"], timeout=60)
            connection.request("GET", "/v1/me", headers={"Authorization": f"Bearer {user.token}"})
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200 and answer.getheader("Connection", "").lower() != "close"
            kept.append(connection)
        # The kept connections' keep-alive began with their answers, before the storm's start.
        reached_in = waiting_calls_leave_threads(platform, user, simulator, tmp_path)
        assert reached_in < API_KEEP_ALIVE / 2, f"the storm got its threads only after {reached_in:.1f} s"
    finally:
        for connection in kept:
            connection.close()


def waiting_calls_leave_threads(platform, user, simulator, tmp_path):
    bob = platform.user()
    bob_device, bob_credentials = bob.device(tmp_path)
    simulator("mqtt", bob_credentials)
    bob.wait_for_connection(bob_device, "online")
    # Mallory's device is offline; with a ttl each call waits (queued) instead of failing fast.
    silent, _ = user.device(tmp_path)
    ended: list[tuple[int, dict, float]] = []
    lock = threading.Lock()

    def long_call():
        status, body = user("POST", f"/v1/devices/{silent}/commands",
                            {"api": "get_status", "timeout": 5, "ttl": 15}, timeout=120)
        with lock:
            ended.append((status, body, time.monotonic()))

    storm = [threading.Thread(target=long_call, daemon=True) for _ in range(STORM)]
    started = time.monotonic()
    for thread in storm:
        thread.start()
    # The storm has reached the server once every thread's worth of calls is recorded or answered.
    deadline = time.monotonic() + 60
    while recorded_commands(platform, user.username) + len(ended) < DEFAULT_API_THREADS:
        assert time.monotonic() < deadline, "the storm never reached the API"
        time.sleep(0.05)
    reached_in = time.monotonic() - started

    assert platform.http("GET", "/healthz", timeout=120)[0] == 200
    assert bob("GET", "/v1/me", timeout=120)[0] == 200
    status, answer = bob("GET", f"/v1/devices/{bob_device}/status", timeout=120)
    assert status == 200 and answer["value"] == "running", answer
    served_at = time.monotonic()
    with lock:
        finished_waiting = [status for status, _, at in ended if status != 429 and at <= served_at]
    assert not finished_waiting, "health and the other user were served only after the waiting calls ended"

    for thread in storm:
        thread.join(120)
    refused = [(status, body) for status, body, _ in ended if status == 429]
    admitted = [status for status, _, _ in ended if status != 429]
    assert refused and admitted and len(ended) == STORM
    assert all(body["type"] == "/problems/too-many-waiting-calls" for _, body in refused)
    assert set(admitted) == {503}, admitted   # expired in the queue: the device never connected
    # A refused call left no trace: only the admitted ones were recorded.
    deadline = time.monotonic() + 10
    while recorded_commands(platform, user.username) != len(admitted):
        assert time.monotonic() < deadline, (recorded_commands(platform, user.username), len(admitted))
        time.sleep(0.05)
    return reached_in


def test_idle_connections_hold_no_thread_and_health_is_answered_without_one(platform, user):
    """gthread's pool threads wait up to DEFAULT_WORKER_DATA_TIMEOUT for a new connection's first
    bytes; twice as many idle connections as threads would hold them all for twice that long."""
    from gunicorn.workers.gthread import DEFAULT_WORKER_DATA_TIMEOUT
    idle = [socket.create_connection(("127.0.0.1", platform.ports["api"])) for _ in range(2 * DEFAULT_API_THREADS)]
    try:
        started = time.monotonic()
        assert platform.http("GET", "/healthz", timeout=60) == (200, {"status": "ok"})
        assert user("GET", "/v1/me", timeout=60)[0] == 200
        assert time.monotonic() - started < DEFAULT_WORKER_DATA_TIMEOUT, "served only after idle clients gave up threads"
    finally:
        for connection in idle:
            connection.close()


def cpus_of_threads(pid: int) -> set[str]:
    return {re.search(r"^Cpus_allowed_list:\s*(\S+)", (task / "status").read_text(), re.M).group(1)
            for task in Path(f"/proc/{pid}/task").iterdir()}


def test_the_api_worker_keeps_its_threads_on_one_cpu(platform, user, simulator, tmp_path):
    """IOTCLOUD_API_PIN_CPU (on by default, iotcloud/cpu_pinning.py): every thread of the worker that
    serves requests, the broker link and the group commit included, runs on one CPU (the last one of
    the first worker); the gunicorn master, which only watches the worker, is left to the kernel."""
    device, credentials = user.device(tmp_path)
    simulator("mqtt", credentials)
    user.wait_for_connection(device, "online")
    status, answer = user("GET", f"/v1/devices/{device}/status")  # the link and the commit have run
    assert status == 200 and answer["value"] == "running", answer
    (master,) = [pid for pid, command in children_of(platform.process.pid) if "iotcloud.wsgi:app" in command]
    (worker,) = [pid for pid, _ in children_of(master)]
    last_cpu = str(max(os.sched_getaffinity(0)))
    assert cpus_of_threads(worker) == {last_cpu}
    assert len(list(Path(f"/proc/{worker}/task").iterdir())) > DEFAULT_API_THREADS
    assert cpus_of_threads(master) != {last_cpu}
