"""Leases on the real stores: one holder at a time, a waiting instance takes over when the holder
goes (released, its session killed, its process killed), and a holder whose session is gone stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from iotcloud.leases import lease_for, work_under
from tests.conftest import postgres_settings

FAST = {"retry_every": 0.05, "check_every": 0.05}


def wait_for(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.02)


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request, make_settings):
    return make_settings(request.param)


def test_one_holder_at_a_time_and_the_next_takes_over_on_release(settings):
    first, second = lease_for(settings, "gateway", **FAST), lease_for(settings, "gateway", **FAST)
    stop = threading.Event()
    assert first.acquire(stop) and first.held
    taken = threading.Event()
    waiter = threading.Thread(target=lambda: second.acquire(stop) and taken.set())
    waiter.start()
    time.sleep(0.3)  # many retries of the waiting instance: none of them may succeed
    assert not taken.is_set() and not second.held
    first.release()
    wait_for(taken.is_set, "takeover")
    assert second.held and not first.held
    # Another process's lease is separate.
    other = lease_for(settings, "projector", **FAST)
    assert other.acquire(stop)
    for lease in (second, other):
        lease.release()
    waiter.join()


def test_a_waiting_instance_gives_up_when_told_to_stop(settings):
    holder, waiting = lease_for(settings, "gateway", **FAST), lease_for(settings, "gateway", **FAST)
    stop = threading.Event()
    assert holder.acquire(stop)
    threading.Timer(0.2, stop.set).start()
    assert waiting.acquire(stop) is False and not waiting.held
    holder.release()


def test_a_holder_whose_session_is_killed_stops_and_the_lease_passes_on(make_settings):
    settings = make_settings("postgres")
    holder, waiting = lease_for(settings, "projector", **FAST), lease_for(settings, "projector", **FAST)
    stop, holder_stop = threading.Event(), threading.Event()
    assert work_under(holder, holder_stop)
    taken = threading.Event()
    threading.Thread(target=lambda: waiting.acquire(stop) and taken.set(), daemon=True).start()
    pg = settings.postgres
    with psycopg.connect(host=pg["POSTGRES_HOST"], port=pg["POSTGRES_PORT"], user=pg["POSTGRES_USER"],
                         dbname=pg["POSTGRES_DBNAME"], autocommit=True) as admin:
        killed = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                               " WHERE application_name = 'iotcloud-lease-projector' AND pid IN"
                               " (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)").fetchall()
    assert killed == [(True,)]
    wait_for(holder_stop.is_set, "stop of the holder that lost its session")
    assert holder.lost.is_set() and not holder.held
    wait_for(taken.is_set, "takeover after the holder's session was killed")
    holder.release()
    waiting.release()


def test_leases_of_two_event_stores_on_one_server_are_separate(make_settings, postgres_database):
    one, two = make_settings("postgres"), make_settings("postgres")  # two schemas of one database
    assert one.postgres["POSTGRES_SCHEMA"] != two.postgres["POSTGRES_SCHEMA"]
    first, second = lease_for(one, "gateway", **FAST), lease_for(two, "gateway", **FAST)
    stop = threading.Event()
    assert first.acquire(stop) and second.acquire(stop)
    first.release()
    second.release()


HOLD = """
import sys, threading, time
from iotcloud.config import Settings
from iotcloud.leases import lease_for
lease = lease_for(Settings.from_env(), "gateway", retry_every=0.05, check_every=0.05)
assert lease.acquire(threading.Event())
print("held", flush=True)
time.sleep(600)
"""


def child_env(settings) -> dict:
    """The environment of a child process that opens the leases of `settings`' event store."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "IOTCLOUD_"))},
            "IOTCLOUD_STATE_DIR": str(settings.state_dir), "PERSISTENCE_MODULE": settings.persistence_module,
            **settings.postgres}


def test_a_killed_holder_process_frees_the_lease(settings):
    env = child_env(settings)
    holder = subprocess.Popen([sys.executable, "-c", HOLD], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        waiting = lease_for(settings, "gateway", **FAST)
        taken = threading.Event()
        stop = threading.Event()
        threading.Thread(target=lambda: waiting.acquire(stop) and taken.set(), daemon=True).start()
        time.sleep(0.3)
        assert not taken.is_set()
        os.kill(holder.pid, signal.SIGKILL)
        started = time.monotonic()
        wait_for(taken.is_set, "takeover after kill -9 of the holder")
        print(f"\ntakeover after kill -9 ({settings.persistence_module}): {time.monotonic() - started:.3f} s")
        waiting.release()
    finally:
        holder.kill()
        holder.wait()


RELEASE_WHILE_CHECKING = """
import threading
from iotcloud.config import Settings
from iotcloud.leases import lease_for
for _ in range(150):
    lease = lease_for(Settings.from_env(), "gateway", retry_every=0.01, check_every=0)
    assert lease.acquire(threading.Event())
    lease.release()  # the watcher is checking on the connection at that very moment, most rounds
print("released", flush=True)
"""


def test_release_while_the_watcher_checks_does_not_crash_the_process(make_settings):
    """A holder's watcher checks its session without a pause while release() closes the connection; in a
    child process, so that a crash (as once: a segfault in psycopg, which killed a test worker) fails this
    test instead of the run."""
    settings = make_settings("postgres")
    env = child_env(settings)
    done = subprocess.run([sys.executable, "-X", "faulthandler", "-c", RELEASE_WHILE_CHECKING], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "released", done.stdout + done.stderr[-3000:]
