"""Rebuilding the notifications read model from the event store gives the live one exactly."""

from __future__ import annotations

from projections.runner import rebuild
from queries.read_models import ReadModelCatalogue, collection_name
from tests.notifications.test_delivery import deliver
from tests.ports import free_port


def test_a_rebuild_equals_the_live_read_model(stack, smtp_server):
    s = stack(email="smtp", smtp_host=smtp_server.host, smtp_port=smtp_server.port, notification_retry_first=0.05,
              notification_max_attempts=2, notification_device_per_minute=4)
    alice, spare, bob = s.device("alice", "a"), s.device("alice", "b"), s.device("bob", "c")
    made = [s.trigger(alice, "x@example.com", "sent by email"), s.trigger(alice, "+15551234567", "sent by sms"),
            s.trigger(alice, spare["device_id"], "to my other device"), s.trigger(alice, bob["device_id"], "refused"),
            s.trigger(alice, "x@example.com", "sent by email"), s.trigger(alice, "nobody", "invalid"),
            s.trigger(bob, "y@example.com", "bob's")]
    deliver(s.settings, lambda: all(s.notifications.notification(n.id).state != "requested"
                                    for n in made if n.channel != "device"))
    # An SMTP server that went away: attempts fail, then the notification fails for good.
    moved = s.settings.__class__(**{**s.settings.__dict__, "smtp_port": free_port()})
    failing = s.trigger(bob, "z@example.com", "fails")
    deliver(moved, lambda: s.notifications.notification(failing.id).state == "failed")
    s.trigger(bob, "w@example.com", "still waiting")  # requested, never attempted
    s.projected("alice")  # the live generation, caught up
    db = s.mongo[s.settings.mongodb_database]
    live = ReadModelCatalogue(db).active_generation("notifications")
    generation = rebuild(s.projector)
    assert generation != live
    def documents(g):
        return list(db[collection_name("notifications", g)].find({}).sort([("_id", 1)]))
    rebuilt, before = documents(generation), documents(live)
    assert len(before) == len(made) + 2
    assert rebuilt == before
    assert {d["state"] for d in rebuilt} == {"sent", "refused", "failed", "requested"}
