"""One notification, from request to its final state, and the per-owner daily ledger that limits them.

    requested --refuse----------> refused                     (invalid recipient, not your device, limits)
        |------start_attempt----> attempting --sent---------> sent
        |                             |------delivered-------> sent (to a device)
        |                             |------attempt_failed--> requested (retry at `retry_at`)
        |                             '------failed----------> failed   (last attempt, or a permanent error)

An attempt is recorded *before* the provider is called (AttemptStarted): a notifier that dies in
the middle finds the attempt open on restart and never calls the provider again for that attempt
record; it records the attempt failed ("interrupted") and tries a new one (see docs/architecture.md,
"The notifier").
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from commands.domain.audited import AuditedAggregate
from commands.errors import DomainError

EMAIL, SMS, DEVICE, UNKNOWN = "email", "sms", "device", "unknown"
CHANNELS = (EMAIL, SMS, DEVICE)
REQUESTED, ATTEMPTING, SENT, FAILED, REFUSED = "requested", "attempting", "sent", "failed", "refused"
STATES = (REQUESTED, SENT, FAILED, REFUSED)
TERMINAL = frozenset({SENT, FAILED, REFUSED})
FROM_DEVICE, FROM_APP = "device", "app"


class IllegalNotificationTransition(DomainError):
    problem, status, title = "illegal-transition", 409, "The notification is not in a state that allows this"


class Notification(AuditedAggregate):
    """A message a device or its owner asked the platform to deliver by email, SMS or to another device."""

    @staticmethod
    def create_id(key: str) -> UUID:
        """`key` names what caused it (a device call, a device's trigger message): one notification each."""
        return uuid5(NAMESPACE_URL, f"/iotcloud/notifications/{key}")

    @event("Requested")
    def __init__(self, key: str, origin: str, device_id: str, device_name: str, owner: str, channel: str, recipient: str,
                 message: str, command_id: str | None, source_position: int, max_attempts: int):
        self.key = key
        self.origin = origin
        self.device_id = device_id
        self.device_name = device_name
        self.owner = owner
        self.channel = channel
        self.recipient = recipient
        self.message = message
        self.command_id = command_id
        self.source_position = source_position
        self.max_attempts = max_attempts
        self.state = REQUESTED
        self.attempts = 0
        self.retry_at: float | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL

    # -- intents --------------------------------------------------------------------------------

    def refuse(self, reason: str, detail: str) -> None:
        self._require(REQUESTED, "refuse")
        self._refused(reason=reason, detail=detail)

    def start_attempt(self, at: float) -> int:
        self._require(REQUESTED, "attempt")
        self._attempt_started(attempt=self.attempts + 1, at=at)
        return self.attempts

    def record_sent(self, provider: str, provider_id: str) -> None:
        self._require(ATTEMPTING, "record as sent")
        if self.channel == DEVICE:
            self._delivered_to_device(attempt=self.attempts, recipient_device_id=self.recipient)
        else:
            self._sent(attempt=self.attempts, provider=provider, provider_id=provider_id)

    def record_failure(self, error: str, retry_at: float | None) -> None:
        """`retry_at` None, or the last attempt spent: the notification has failed for good."""
        self._require(ATTEMPTING, "record a failure for")
        if retry_at is None or self.attempts >= self.max_attempts:
            self._failed(attempt=self.attempts, error=error[:200])
        else:
            self._attempt_failed(attempt=self.attempts, error=error[:200], retry_at=retry_at)

    def _require(self, state: str, doing: str) -> None:
        if self.state != state:
            raise IllegalNotificationTransition(f"cannot {doing} notification {self.id}: it is {self.state}")

    # -- events ---------------------------------------------------------------------------------

    @event("Refused")
    def _refused(self, reason: str, detail: str) -> None:
        self.state = REFUSED

    @event("AttemptStarted")
    def _attempt_started(self, attempt: int, at: float) -> None:
        self.state = ATTEMPTING
        self.attempts = attempt
        self.retry_at = None

    @event("Sent")
    def _sent(self, attempt: int, provider: str, provider_id: str) -> None:
        self.state = SENT

    @event("DeliveredToDevice")
    def _delivered_to_device(self, attempt: int, recipient_device_id: str) -> None:
        self.state = SENT

    @event("AttemptFailed")
    def _attempt_failed(self, attempt: int, error: str, retry_at: float) -> None:
        self.state = REQUESTED
        self.retry_at = retry_at

    @event("Failed")
    def _failed(self, attempt: int, error: str) -> None:
        self.state = FAILED


class NotificationLedger(AuditedAggregate):
    """What one owner's devices had accepted on one UTC day: the rate limits, quotas and duplicate
    window are decided from it, and it is saved in the same transaction as each accepted request."""

    @staticmethod
    def create_id(owner: str, day: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/iotcloud/notification-ledger/{owner.lower()}/{day}")

    @event("Opened")
    def __init__(self, owner: str, day: str):
        self.owner = owner
        self.day = day
        self.entries: list[tuple[float, str, str]] = []  # (at, device id, fingerprint)

    @event("Counted")
    def count(self, notification_id: str, device_id: str, at: float, fingerprint: str) -> None:
        self.entries.append((at, device_id, fingerprint))
