"""What the gateway did with each device message, counted, so a misbehaving device shows up in one
summary log line per interval instead of one line per message (a flood must not flood the log)."""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict

log = logging.getLogger("iotcloud.gateway")

ANSWERED = "answered"        # the answer of a call in flight: recorded as Succeeded
REJECTED = "rejected"        # a malformed answer to a call in flight: recorded as AnswerRejected
MALFORMED = "malformed"      # a malformed answer with no call waiting: dropped
UNSOLICITED = "unsolicited"  # a well-formed answer with no call waiting (late or unasked): dropped
BAD_TOPIC = "bad_topic"      # on server.<id>.# but not server.<id>.<api>: dropped
FAILED = "failed"            # handling it raised: dropped, logged with its traceback
REFUSED = (REJECTED, MALFORMED, UNSOLICITED, BAD_TOPIC, FAILED)

SUMMARY_EVERY = 5.0  # seconds
SUMMARY_DEVICES = 20  # devices named per summary, the busiest first


class MessageTally:
    """Totals since start (a metrics read) plus, per device, what was refused since the last summary."""

    def __init__(self, clock=time.monotonic, every: float = SUMMARY_EVERY):
        self._clock = clock
        self._every = every
        self._last = clock()
        self.totals: Counter[str] = Counter()
        self._window: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._examples: dict[str, str] = {}

    def count(self, device_id: str, outcome: str, detail: str = "") -> None:
        self.totals[outcome] += 1
        if outcome != ANSWERED:
            self._window[device_id][outcome] += 1
            if detail:
                self._examples.setdefault(device_id, detail)

    def summarise(self, force: bool = False) -> None:
        """Logs the refused messages of the last interval per device (nothing when there were none)."""
        now = self._clock()
        if not self._window or (not force and now - self._last < self._every):
            return
        self._last = now
        busiest = sorted(self._window.items(), key=lambda item: -sum(item[1].values()))
        devices = {device_id: {**counts, "example": self._examples.get(device_id, "")}
                   for device_id, counts in busiest[:SUMMARY_DEVICES]}
        log.warning("device messages refused", extra={
            "devices": devices, "more_devices": max(0, len(busiest) - SUMMARY_DEVICES),
            "totals": dict(self.totals)})
        self._window.clear()
        self._examples.clear()
