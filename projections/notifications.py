"""The notifications read model: one document per notification, for its owner.

The message text is not kept here: only its first characters (`message_preview`) and its length.
The owner sees what a notification was about; the full text stays in the event store, which
only the notifier reads to deliver it (the read store is shared with analysts and tools, and the
embedded one answers anyone on loopback). Recipients are kept as the owner or device gave them:
the owner needs to see who was notified, and only the owner's queries read them.
"""

from __future__ import annotations

import datetime as dt
from functools import singledispatchmethod

from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection

from commands.domain.notifications import FAILED, REFUSED, REQUESTED, SENT, Notification
from projections.guarded import BatchWriter
from queries.read_models import NOTIFICATIONS

PREVIEW = 16  # characters of the message shown in the read model


def preview(message: str) -> str:
    return message if len(message) <= PREVIEW else message[:PREVIEW] + "…"


def _at(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc)


class NotificationsProjection:
    """Notification events -> `notifications_g<N>`, keyed by notification id."""

    name = NOTIFICATIONS
    sources = ("Notifications",)

    def prepare(self, notifications: Collection) -> None:
        # Every query is one owner's, newest first (requested_ts, then the id for a stable cursor).
        newest = [("requested_ts", DESCENDING), ("notification_id", DESCENDING)]
        notifications.create_index([("owner", ASCENDING), *newest])
        for field in ("device_name", "state", "channel"):
            notifications.create_index([("owner", ASCENDING), (field, ASCENDING), *newest])

    @singledispatchmethod
    def apply(self, event, position: int, notifications: BatchWriter) -> None:
        """The ledger's events are not shown here."""

    @apply.register
    def _(self, event: Notification.Requested, position: int, notifications: BatchWriter) -> None:
        nid = str(event.originator_id)
        notifications.set(nid, position, {
            "notification_id": nid, "origin": event.origin, "device_id": event.device_id,
            "device_name": event.device_name, "owner": event.owner, "channel": event.channel,
            "recipient": event.recipient, "message_preview": preview(event.message),
            "message_length": len(event.message), "command_id": event.command_id, "state": REQUESTED,
            "attempts": 0, "requested_at": event.timestamp, "requested_ts": event.timestamp.timestamp(),
            "requested_by": event.actor, "correlation_id": event.correlation_id, "updated_at": event.timestamp,
            "sent_at": None, "failed_at": None, "refused_at": None, "next_attempt_at": None, "provider": None,
            "last_error": None, "refusal": None})

    @apply.register
    def _(self, event: Notification.Refused, position: int, notifications: BatchWriter) -> None:
        notifications.set(str(event.originator_id), position, {
            "state": REFUSED, "refusal": {"reason": event.reason, "detail": event.detail},
            "refused_at": event.timestamp, "updated_at": event.timestamp})

    @apply.register
    def _(self, event: Notification.AttemptStarted, position: int, notifications: BatchWriter) -> None:
        notifications.set(str(event.originator_id), position, {
            "attempts": event.attempt, "next_attempt_at": None, "updated_at": event.timestamp})

    @apply.register
    def _(self, event: Notification.Sent, position: int, notifications: BatchWriter) -> None:
        notifications.set(str(event.originator_id), position, {
            "state": SENT, "provider": event.provider, "sent_at": event.timestamp, "updated_at": event.timestamp})

    @apply.register
    def _(self, event: Notification.DeliveredToDevice, position: int, notifications: BatchWriter) -> None:
        notifications.set(str(event.originator_id), position, {
            "state": SENT, "provider": "broker", "sent_at": event.timestamp, "updated_at": event.timestamp})

    @apply.register
    def _(self, event: Notification.AttemptFailed, position: int, notifications: BatchWriter) -> None:
        notifications.set(str(event.originator_id), position, {
            "state": REQUESTED, "last_error": event.error, "next_attempt_at": _at(event.retry_at),
            "updated_at": event.timestamp})

    @apply.register
    def _(self, event: Notification.Failed, position: int, notifications: BatchWriter) -> None:
        notifications.set(str(event.originator_id), position, {
            "state": FAILED, "last_error": event.error, "failed_at": event.timestamp, "updated_at": event.timestamp})
