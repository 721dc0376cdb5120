"""The projector sleeps until PostgreSQL says a source changed, and a waiting writer's nudge cuts its batch interval short."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from commands.context import acting_as
from iotcloud.bootstrap import build_device_control, build_projectors
from projections.nudge import nudge_for
from projections.runner import run_projectors
from projections.wakeup import Polling, PostgresNotifications, wakeup_for
from queries.read_models import ReadModelCatalogue

DEVICE = {"device_id": "dev-1", "owner": "alice", "name": "lamp", "correlation_ids": True}
NEVER = 3600.0  # a safety poll or batch interval that no test outlives: only a notification can help


@pytest.fixture
def control(make_settings):
    settings = make_settings("postgres")
    control = build_device_control(settings)
    yield settings, control
    control.close()


def request(control) -> int:
    with acting_as("user:alice"):
        return control.request(DEVICE, "get_status", None, timeout=5).position


def commands_projector(settings, control):
    """The projector of the read model where calls are (history)."""
    projectors, mongo = build_projectors(settings, {"DeviceControl": control})
    return [p for p in projectors if p.projection.name == "history"], mongo


class Running:
    """run_projectors in a thread, stopped (and joined) on exit."""

    def __init__(self, projectors, wakeup_factory, min_interval=0.0, longest_hold=0.0):
        self.stop = threading.Event()
        wakeup = wakeup_factory(self.stop)
        self.thread = threading.Thread(target=run_projectors, args=(projectors, self.stop, wakeup, min_interval,
                                                                    longest_hold), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


def test_a_commit_wakes_the_listener_with_the_source_that_changed(control):
    settings, app = control
    stop = threading.Event()
    listener = PostgresNotifications({"DeviceControl": app}, stop, safety_poll=NEVER)
    try:
        assert listener.wait(0) == ({"DeviceControl"}, set()), "until it has listened, every source may have changed"
        assert listener.wait(0.2) == (set(), set()), "nothing was committed"
        request(app)
        started = time.monotonic()
        assert listener.wait(30) == ({"DeviceControl"}, set())
        assert time.monotonic() - started < 5
        nudge_for(app)("DeviceControl")
        assert listener.wait(30) == ({"DeviceControl"}, {"DeviceControl"})
        # A batch waiting out its interval hears nudges only: commits wait unread until it asks.
        request(app)
        assert listener.nudged(0.3) == set()
        nudge_for(app)("DeviceControl")
        assert listener.nudged(30) == {"DeviceControl"}
        assert listener.wait(0) == ({"DeviceControl"}, set())
        nudge_for(app)("SomebodyElse")  # another deployment's source in the same database: not ours
        assert listener.wait(0.5) == (set(), set())
    finally:
        listener.close()


def test_the_projector_follows_commits_without_polling(control):
    settings, app = control
    projectors, mongo = commands_projector(settings, app)
    catalogue = ReadModelCatalogue(mongo[settings.mongodb_database])
    first = request(app)  # committed before the projector listens: its first full read finds it
    with Running(projectors, lambda stop: PostgresNotifications({"DeviceControl": app}, stop, safety_poll=NEVER)):
        assert catalogue.wait_for("history", "DeviceControl", first, timeout=30)
        for _ in range(3):
            assert catalogue.wait_for("history", "DeviceControl", request(app), timeout=10)
    mongo.close()


def test_a_batch_interval_holds_events_back_but_a_nudge_does_not(control):
    settings, app = control
    projectors, mongo = commands_projector(settings, app)
    catalogue = ReadModelCatalogue(mongo[settings.mongodb_database])
    nudge = nudge_for(app)
    before = request(app)
    with Running(projectors, lambda stop: PostgresNotifications({"DeviceControl": app}, stop, safety_poll=NEVER),
                 min_interval=NEVER):
        # The first batch is not held back: what was committed before the projector started is read at once ...
        assert catalogue.wait_for("history", "DeviceControl", before, timeout=30)
        # ... the next one waits for the interval: without a nudge nothing arrives ...
        held = request(app)
        assert not catalogue.wait_for("history", "DeviceControl", held, timeout=0.5)
        assert catalogue.collection("history").count_documents({"event": "command"}) == 1
        # ... and the writer that waits for it nudges it through.
        assert catalogue.wait_for("history", "DeviceControl", held, timeout=30, nudge=nudge)
        assert catalogue.collection("history").count_documents({"event": "command"}) == 2
    mongo.close()


class Scripted:
    """A wakeup that names a source only when the test nudges it (no commit wakes the projector; its
    first batch needs no wakeup)."""

    hears_nudges = True

    def __init__(self, stop: threading.Event):
        self.stop, self.nudges = stop, queue.Queue()

    def wait(self, timeout):
        deadline = time.monotonic() + (NEVER if timeout is None else timeout)
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                source = self.nudges.get(timeout=min(0.05, max(0.0, deadline - time.monotonic())))
                return {source}, {source}
            except queue.Empty:
                pass
        return set(), set()

    def nudged(self, timeout):
        return set()

    def close(self):
        pass


def test_open_calls_held_by_a_busy_batch_wait_for_a_reader_or_a_quiet_batch(control):
    """20 calls committed before the projector starts make one busy batch: their open documents are held
    for their outcomes, and the checkpoint stays before them. A reader waiting for them (its nudge) gets
    them written at once; a projector that is woken with nothing new writes them too."""
    settings, app = control
    projectors, mongo = commands_projector(settings, app)
    catalogue = ReadModelCatalogue(mongo[settings.mongodb_database])
    positions = [request(app) for _ in range(20)]
    wakeups = []
    with Running(projectors, lambda stop: wakeups.append(Scripted(stop)) or wakeups[-1], longest_hold=NEVER):
        assert not catalogue.wait_for("history", "DeviceControl", positions[0], timeout=1.0)
        assert catalogue.collection("history").count_documents({"event": "command"}) == 0
        assert catalogue.wait_for("history", "DeviceControl", positions[-1], timeout=30,
                                  nudge=wakeups[0].nudges.put)
        assert catalogue.collection("history").count_documents({"event": "command", "state": "queued"}) == 20
    # With PostgreSQL's own notifications, held writes are never stuck: the next quiet batch writes them.
    mongo[settings.mongodb_database].drop_collection("history_g1")
    mongo[settings.mongodb_database]["projection_checkpoints"].delete_many({})
    projectors, mongo2 = commands_projector(settings, app)
    listen = lambda stop: PostgresNotifications({"DeviceControl": app}, stop, safety_poll=NEVER)  # noqa: E731
    with Running(projectors, listen, longest_hold=NEVER):
        assert catalogue.wait_for("history", "DeviceControl", positions[-1], timeout=30)
        assert catalogue.collection("history").count_documents({"event": "command", "state": "queued"}) == 20
    mongo.close()
    mongo2.close()


def test_stores_that_cannot_notify_are_polled(make_settings):
    settings = make_settings("sqlite")
    app = build_device_control(settings)
    try:
        wakeup = wakeup_for({"DeviceControl": app}, threading.Event())
        assert isinstance(wakeup, Polling) and not wakeup.hears_nudges
        assert nudge_for(app) is None
        assert wakeup.wait(0) == (set(), set())
        assert wakeup.wait(None) == ({"DeviceControl"}, set())
    finally:
        app.close()


def test_the_pacer_holds_a_batch_back_only_after_a_tiny_recent_one():
    from projections.runner import Pacer
    now = [100.0]
    pacer = Pacer(0.02, tiny=16, clock=lambda: now[0])
    assert pacer.hold() == 0.0, "the first batch begins at once"
    pacer.began()
    pacer.ended(1)
    now[0] += 0.005
    assert abs(pacer.hold() - 0.015) < 1e-9, "a tiny batch 5 ms ago: the next waits out the rest of 20 ms"
    now[0] += 0.030
    assert pacer.hold() == 0.0, "a commit after a quiet spell is read at once"
    pacer.began()
    pacer.ended(17)
    assert pacer.hold() == 0.0, "after a larger batch the next begins at once: batches grow with the load"
    assert Pacer(0.0).hold() == 0.0
