"""Answers no call of the gateway's claims, held a little while before they are counted.

An API process sends most calls itself and records their outcomes, and passes on to the gateway only
the answers it did not take (a late one, say); the gateway reads the API's calls from the event log a
moment later (its backup read, at most a second), so such an answer often arrives first. It is held
here until the call is read (then counted as that call's answer) or, after the claim window, counted
as unsolicited or malformed, as an answer nobody asked for always was.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

from gateways.broker.topology import TRIGGER_API
from gateways.devices.tally import ANSWERED, MALFORMED, REJECTED, UNSOLICITED, MessageTally

log = logging.getLogger("iotcloud.gateway")
CLAIM_WINDOW = 5.0  # seconds
MAX_UNCLAIMED = 10_000


@dataclass(slots=True)
class Unclaimed:
    device_id: str
    api: str
    correlation_id: str | None
    refusal: str | None  # why it is malformed, or None for a well-formed answer
    received_at: float
    claimed: bool = field(default=False, compare=False)

    @property
    def key(self) -> tuple:
        return ("correlated", self.correlation_id) if self.correlation_id else ("line", self.device_id, self.api)


class UnclaimedAnswers:
    def __init__(self, tally: MessageTally, window: float = CLAIM_WINDOW, limit: int = MAX_UNCLAIMED):
        self._tally, self._window, self._limit = tally, window, limit
        self._by_age: deque[Unclaimed] = deque()
        self._by_key: dict[tuple, deque[Unclaimed]] = {}

    def hold(self, answer: Unclaimed) -> None:
        if len(self._by_age) >= self._limit:
            self._drop_oldest()
        self._by_age.append(answer)
        self._by_key.setdefault(answer.key, deque()).append(answer)

    def claim(self, device_id: str, api: str, correlation_id: str | None) -> Unclaimed | None:
        """The oldest held answer for this call's slot (its correlation id, else its device and api)."""
        key = ("correlated", correlation_id) if correlation_id else ("line", device_id, api)
        held = self._by_key.get(key)
        while held:
            answer = held.popleft()
            if answer.device_id == device_id and not answer.claimed:
                answer.claimed = True
                if not held:
                    del self._by_key[key]
                return answer
        self._by_key.pop(key, None)
        return None

    def expire(self, now: float) -> None:
        while self._by_age and self._by_age[0].received_at <= now - self._window:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        answer = self._by_age.popleft()
        if answer.claimed:
            return
        held = self._by_key.get(answer.key)
        if held and held[0] is answer:
            held.popleft()
            if not held:
                del self._by_key[answer.key]
        if answer.refusal is None and answer.api == TRIGGER_API:
            return  # a device's own trigger (the notifier records it), not an answer nobody asked for
        if answer.refusal is not None:
            log.debug("malformed answer with no command waiting", extra={
                "device_id": answer.device_id, "api": answer.api, "reason": answer.refusal})
            self._tally.count(answer.device_id, MALFORMED, answer.refusal)
        else:
            log.debug("answer with no command waiting (late or unsolicited)",
                      extra={"device_id": answer.device_id, "api": answer.api})
            self._tally.count(answer.device_id, UNSOLICITED, f"no call waiting on {answer.api[:64]}")


def count_direct_answer(tally: MessageTally, device_id: str, api: str, first: bool, refusal: str | None) -> None:
    """An answer to a call an API process sent: the API records it; the gateway only counts it."""
    if not first:
        tally.count(device_id, UNSOLICITED, f"a second answer on {api[:64]}")
    else:
        tally.count(device_id, REJECTED if refusal else ANSWERED, refusal or "")
