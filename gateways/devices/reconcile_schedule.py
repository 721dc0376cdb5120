"""When the gateway compares its presence state with the broker's list of connections.

Presence is pushed: the broker publishes `connection.created` / `connection.closed` to the gateway's
presence queue the moment a device connects or drops, and nothing polls devices. The queue is auto-delete,
though: while the gateway has no broker connection it does not exist, and what happened meanwhile is
lost. The broker's connection list is where those connections are found again, and that is the only job
of the listing: it is needed once right after every (re)connection of the gateway, not every few seconds.

Listing every 5 s cost, with 10,000 devices connected, about a megabyte of JSON built by the broker and
parsed by the gateway each time, inside the gateway's loop (calls wait meanwhile), and it grew with the
fleet. Since the list is read from the broker's connection tracking (complete the moment a connection is
accepted, see gateways.broker.admin), one listing taken after the presence queue is bound misses nothing:
a connection opened later is announced on the queue. A slow safety listing stays as a guard against a
presence event lost for a reason not foreseen here; a failed listing is retried soon.
"""

from __future__ import annotations

SAFETY_EVERY = 600.0  # seconds between listings while the gateway stays connected
RETRY_AFTER = 5.0     # seconds until a failed listing is tried again


class ReconcileSchedule:
    def __init__(self, every: float = SAFETY_EVERY, retry_after: float = RETRY_AFTER):
        self._every, self._retry_after = every, retry_after
        self._due_at = float("-inf")

    def link_opened(self, now: float) -> None:
        """The presence queue was just declared again: list right away."""
        self._due_at = now

    def due(self, now: float) -> bool:
        return now >= self._due_at

    def listed(self, now: float, ok: bool) -> None:
        self._due_at = now + (self._every if ok else self._retry_after)
