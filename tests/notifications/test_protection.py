"""Protection of notifications on the real event store and read model: invalid recipients, ownership,
rate limits, daily quotas and duplicates each leave a refusal event and a refused document."""

from __future__ import annotations

import time

import pytest

from commands.notification_rules import channel_for, is_e164, is_email, InvalidRecipient
from projections.notifications import PREVIEW


@pytest.mark.parametrize("value", ["a@b.co", "first.last+tag@sub.example.org", "x_y@a-b.io"])
def test_plausible_emails_are_emails(value):
    assert is_email(value) and channel_for(value) == "email"


@pytest.mark.parametrize("value", ["", "@", "a@", "@b.co", "a@b", "a@@b.co", "a@b..co", "a..b@c.de", ".a@b.co",
                                   "a@-b.co", "a@b.c", "a b@c.de", "a@b.co\n", "a" * 65 + "@b.co",
                                   "a@" + "b" * 64 + ".co", "a@b.co" + "m" * 250])
def test_malformed_emails_are_refused(value):
    assert not is_email(value)


def test_the_email_check_stays_linear_on_hostile_input():
    # Inputs that make backtracking email regexes explode are refused by one pass over <= 254 chars.
    for hostile in ("a" * 100_000 + "@", "a." * 50_000 + "@b.co", "a@" + "a-" * 50_000, "@" * 100_000):
        assert not is_email(hostile)


@pytest.mark.parametrize("value,ok", [("+15551234567", True), ("+442071838750", True), ("+1", False),
                                      ("+0123456", False), ("15551234567", False), ("+1555123456789012", False),
                                      ("+1555-123", False), ("+١٢٣٤٥", False)])
def test_phone_numbers_are_e164(value, ok):
    assert is_e164(value) is ok


def test_a_random_string_is_no_recipient():
    with pytest.raises(InvalidRecipient):
        channel_for("not a recipient")


def test_an_invalid_recipient_is_refused_and_recorded(stack):
    s = stack()
    device = s.device("alice", "sensor")
    notification = s.trigger(device, "somebody", "Hi")
    assert s.events(notification) == ["Requested", "Refused"]
    [doc] = s.projected("alice")
    assert doc["state"] == "refused" and doc["refusal"]["reason"] == "invalid-recipient"
    assert doc["channel"] == "unknown" and doc["recipient"] == "somebody"


def test_a_message_to_another_users_device_is_refused(stack):
    s = stack()
    mine, other = s.device("alice", "a1"), s.device("alice", "a2")
    theirs = s.device("bob", "b1")
    refused = s.trigger(mine, theirs["device_id"], "hello")
    accepted = s.trigger(mine, other["device_id"], "hello")
    assert s.events(refused) == ["Requested", "Refused"]
    assert s.events(accepted) == ["Requested"]
    docs = {d["recipient"]: d for d in s.projected("alice")}
    assert docs[theirs["device_id"]]["state"] == "refused"
    assert docs[theirs["device_id"]]["refusal"]["reason"] == "recipient-not-owned"
    assert docs[other["device_id"]]["state"] == "requested" and docs[other["device_id"]]["channel"] == "device"
    assert s.projected("bob") == []  # the refused message is alice's, not shown to bob


def test_an_unknown_device_is_refused_like_another_users(stack):
    s = stack()
    mine = s.device("alice", "a1")
    refused = s.trigger(mine, "0" * 40, "hello")
    assert refused.state == "refused"
    assert s.projected("alice")[0]["refusal"]["reason"] == "recipient-not-owned"


def test_duplicates_within_the_window_are_sent_once(stack):
    s = stack(notification_duplicate_window=30.0)
    device = s.device("alice", "sensor")
    first = s.trigger(device, "a@example.com", "door open")
    again = s.trigger(device, "a@example.com", "door open")
    other = s.trigger(device, "a@example.com", "door closed")
    assert [first.state, again.state, other.state] == ["requested", "refused", "requested"]
    assert s.events(again) == ["Requested", "Refused"]
    refused = s.projected("alice", state="refused")
    assert [d["refusal"]["reason"] for d in refused] == ["duplicate-notification"]


def test_the_per_device_rate_limit_refuses_the_rest(stack):
    s = stack(notification_device_per_minute=3, notification_user_per_minute=100)
    one, two = s.device("alice", "one"), s.device("alice", "two")
    states = [s.trigger(one, "a@example.com", f"m{i}").state for i in range(5)]
    assert states == ["requested"] * 3 + ["refused"] * 2
    assert s.trigger(two, "a@example.com", "m0").state == "requested"  # another device has its own limit
    assert [d["refusal"]["reason"] for d in s.projected("alice", state="refused")] == ["notification-rate-limited"] * 2


def test_the_per_user_rate_limit_counts_every_device(stack):
    s = stack(notification_device_per_minute=10, notification_user_per_minute=4)
    devices = [s.device("alice", f"d{i}") for i in range(3)]
    states = [s.trigger(devices[i % 3], "+15551234567", f"m{i}").state for i in range(6)]
    assert states == ["requested"] * 4 + ["refused"] * 2


def test_the_daily_quota_is_spent(stack):
    s = stack(notification_device_per_day=2, notification_user_per_day=3)
    a, b = s.device("alice", "a"), s.device("alice", "b")
    assert [s.trigger(a, "a@example.com", f"m{i}").state for i in range(3)] == ["requested", "requested", "refused"]
    assert s.trigger(b, "a@example.com", "x").state == "requested"
    assert s.trigger(b, "a@example.com", "y").state == "refused"  # the user's quota, across devices
    reasons = [d["refusal"]["reason"] for d in s.projected("alice", state="refused")]
    assert reasons == ["notification-quota-exceeded"] * 2
    # The ledger survives a restart: a fresh application over the same store still refuses.
    from iotcloud.bootstrap import build_notifications
    again = build_notifications(s.settings, s.fleet)
    try:
        from commands.notification_rules import NotificationQuotaExceeded
        with pytest.raises(NotificationQuotaExceeded):
            again.check(a, "a@example.com", "later")
    finally:
        again.close()


def test_messages_are_bounded_and_not_kept_whole_in_the_read_model(stack):
    s = stack()
    device = s.device("alice", "sensor")
    assert s.trigger(device, "a@example.com", "x" * 161).state == "refused"
    long_enough = "The freezer door has been open for ten minutes"
    s.trigger(device, "a@example.com", long_enough)
    docs = s.projected("alice", state="requested")
    assert docs[0]["message_preview"] == long_enough[:PREVIEW] + "…"
    assert docs[0]["message_length"] == len(long_enough)
    assert "message" not in docs[0]


def test_every_listing_query_has_its_index(stack):
    s = stack()
    device = s.device("alice", "sensor")
    s.trigger(device, "a@example.com", "indexed")
    s.projected("alice")
    indexes = s.projector.db["notifications_g1"].index_information()
    keys = {tuple(field for field, _ in spec["key"]) for spec in indexes.values()}
    newest = ("requested_ts", "notification_id")
    for filtered in ((), ("device_name",), ("state",), ("channel",)):
        assert ("owner", *filtered, *newest) in keys
