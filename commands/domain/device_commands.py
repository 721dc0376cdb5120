"""One call to a device, from request to its final outcome."""

from __future__ import annotations

from eventsourcing.domain import event

from commands.domain.audited import AuditedAggregate

QUEUED, SENT, SUCCEEDED, FAILED, TIMED_OUT, EXPIRED = "queued", "sent", "succeeded", "failed", "timed_out", "expired"
TERMINAL = frozenset({SUCCEEDED, FAILED, TIMED_OUT, EXPIRED})


class DeviceCommand(AuditedAggregate):
    """Requested by a user, sent by a gateway, answered, rejected, timed out or expired: once."""

    @event("Requested")
    def __init__(self, device_id: str, owner: str, device_name: str, api: str, params: dict, timeout: float,
                 expires_at: float, correlate: bool):
        self.device_id = device_id
        self.owner = owner
        self.device_name = device_name
        self.api = api
        self.params = params
        self.timeout = timeout
        self.expires_at = expires_at
        self.correlate = correlate
        self.status = QUEUED
        self.sent_at: float | None = None
        self.result = None
        self.error: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @event("Sent")
    def mark_sent(self, sent_at: float, gateway: str) -> None:
        self.status = SENT
        self.sent_at = sent_at

    @event("Succeeded")
    def succeed(self, value, answer: dict) -> None:
        self.status = SUCCEEDED
        self.result = value

    @event("AnswerRejected")
    def reject_answer(self, reason: str, payload: str) -> None:
        self.status = FAILED
        self.error = reason

    @event("Unrouted")
    def return_to_queue(self, reason: str) -> None:
        """The broker routed the request nowhere (the device had not subscribed yet): it was never
        delivered, so it may be sent again."""
        self.status = QUEUED
        self.sent_at = None

    @event("TimedOut")
    def time_out(self) -> None:
        self.status = TIMED_OUT
        self.error = "the device did not answer in time"

    @event("Expired")
    def expire(self, reason: str) -> None:
        self.status = EXPIRED
        self.error = reason
