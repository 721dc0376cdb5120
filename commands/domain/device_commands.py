"""One call to a device, from request to its final outcome.

    queued --mark_sent--> sent --record_answer--> succeeded
      |                    |----reject_answer---> failed
      |                    |----time_out--------> timed_out
      |                    '----return_to_queue-> queued   (the broker routed it nowhere: never delivered)
      '--expire--> expired

A caller that publishes the request itself right after recording it (the API's short path) records
it born sent: `Requested` then carries `sent_at` and `sent_by`, one event instead of Requested and
Sent (an event less to store, chain, read and project on every such call). Requested events recorded
before that, or by a gateway's path, have no such fields and start queued, as before.

Every public method checks the transition before it records anything and raises
IllegalTransition otherwise, so a decision that lost a race (another process answered, timed out
or expired the call first) is refused by the aggregate itself, never recorded twice. The event
methods (`_sent`, `_succeeded`, ...) only apply state: they also run when the command is replayed.
"""

from __future__ import annotations

from eventsourcing.domain import event

from commands.domain.audited import AuditedAggregate
from commands.errors import DomainError

QUEUED, SENT, SUCCEEDED, FAILED, TIMED_OUT, EXPIRED = "queued", "sent", "succeeded", "failed", "timed_out", "expired"
TERMINAL = frozenset({SUCCEEDED, FAILED, TIMED_OUT, EXPIRED})
TIMEOUT_ERROR = "the device did not answer in time"


class IllegalTransition(DomainError):
    problem, status, title = "illegal-transition", 409, "The command is not in a state that allows this"


class DeviceCommand(AuditedAggregate):
    """Requested by a user, sent by a gateway or API, answered, rejected, timed out or expired: once."""

    @event("Requested")
    def __init__(self, device_id: str, owner: str, device_name: str, api: str, params: dict, timeout: float,
                 expires_at: float, correlate: bool, sent_at: float | None = None, sent_by: str | None = None):
        self.device_id = device_id
        self.owner = owner
        self.device_name = device_name
        self.api = api
        self.params = params
        self.timeout = timeout
        self.expires_at = expires_at
        self.correlate = correlate
        self.status = QUEUED if sent_at is None else SENT
        self.sent_at: float | None = sent_at
        self.sent_by: str | None = sent_by
        self.result = None
        self.error: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def answer_deadline(self) -> float | None:
        """When a sent command stops waiting for its answer."""
        return None if self.sent_at is None else self.sent_at + self.timeout

    # -- intents ------------------------------------------------------------------------------

    def mark_sent(self, at: float, by: str) -> None:
        self._require(QUEUED, "send")
        self._sent(sent_at=at, gateway=by)

    def record_answer(self, value, answer: dict) -> None:
        self._require(SENT, "record an answer for")
        self._succeeded(value=value, answer=answer)

    def reject_answer(self, reason: str, payload: str) -> None:
        self._require(SENT, "reject an answer for")
        self._answer_rejected(reason=reason, payload=payload)

    def return_to_queue(self, reason: str = "unroutable") -> None:
        """The broker routed the request nowhere (the device had not subscribed yet): it was never
        delivered, so it may be sent again."""
        self._require(SENT, "return to the queue")
        self._unrouted(reason=reason)

    def time_out(self) -> None:
        self._require(SENT, "time out")
        self._timed_out()

    def expire(self, reason: str) -> None:
        self._require(QUEUED, "expire")
        self._expired(reason=reason)

    def _require(self, status: str, doing: str) -> None:
        if self.status != status:
            raise IllegalTransition(f"cannot {doing} command {self.id}: it is {self.status}, not {status}")

    # -- events (state changes only; they run again on replay) ---------------------------------

    @event("Sent")
    def _sent(self, sent_at: float, gateway: str) -> None:
        self.status = SENT
        self.sent_at = sent_at
        self.sent_by = gateway

    @event("Succeeded")
    def _succeeded(self, value, answer: dict) -> None:
        self.status = SUCCEEDED
        self.result = value

    @event("AnswerRejected")
    def _answer_rejected(self, reason: str, payload: str) -> None:
        self.status = FAILED
        self.error = reason

    @event("Unrouted")
    def _unrouted(self, reason: str) -> None:
        self.status = QUEUED
        self.sent_at = None
        self.sent_by = None

    @event("TimedOut")
    def _timed_out(self) -> None:
        self.status = TIMED_OUT
        self.error = TIMEOUT_ERROR

    @event("Expired")
    def _expired(self, reason: str) -> None:
        self.status = EXPIRED
        self.error = reason
