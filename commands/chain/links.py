"""The hash that links one stored event to the one before it in its application's log.

    link(n) = SHA-256(link(previous) || "n NUL originator NUL version NUL topic NUL" || state)

`n` is the event's notification id (its position in the log), `originator` the aggregate id as
32 lowercase hex digits (or the text id), `state` the stored bytes exactly (payload and the
metadata inside it: timestamp, actor, correlation and causation ids). The first link's previous is
GENESIS. Ids, versions and topics contain no NUL and the state comes last, so two different events
never hash the same input.
"""

from __future__ import annotations

from hashlib import sha256
from typing import NamedTuple
from uuid import UUID

GENESIS = bytes(32)


class Link(NamedTuple):
    """One row of the chain table: where the event sits, what it is, and the hash that binds it."""

    notification_id: int
    previous_id: int  # the position of the event before it (0 for the first), to name a missing one
    originator_id: str
    originator_version: int
    hash: bytes


def originator_text(originator_id) -> str:
    return originator_id.hex if isinstance(originator_id, UUID) else str(originator_id)


def link_hash(previous: bytes, notification_id: int, originator_id: str, version: int, topic: str,
              state: bytes) -> bytes:
    digest = sha256(previous)
    digest.update(f"{notification_id}\0{originator_id}\0{version}\0{topic}\0".encode())
    digest.update(state)
    return digest.digest()


def chain_links(previous_id: int, previous: bytes, rows) -> list[Link]:
    """Links for `rows` of (notification id, originator id, version, topic, state) in log order, after
    the link at `previous_id` whose hash is `previous`."""
    links = []
    for notification_id, originator_id, version, topic, state in sorted(rows, key=lambda row: row[0]):
        text = originator_text(originator_id)
        previous = link_hash(previous, notification_id, text, version, topic, state)
        links.append(Link(notification_id, previous_id, text, version, previous))
        previous_id = notification_id
    return links


class ChainWriter:
    """The part of both chained recorders that works on an open transaction's cursor; each recorder
    supplies `_head`, `_write_links`, `_rows_after` and `_take_write_lock` in its own SQL."""

    SEAL_BATCH = 20_000

    def create_table(self) -> None:
        super().create_table()
        self.seal()

    def _link_inserted(self, cursor, notification_ids, stored_events) -> None:
        self._append(cursor, [(n, s.originator_id, s.originator_version, s.topic, s.state)
                              for n, s in zip(notification_ids, stored_events)])

    def _append(self, cursor, rows) -> None:
        previous_id, previous = self._head(cursor) or (0, GENESIS)
        self._write_links(cursor, chain_links(previous_id, previous, rows))

    def seal(self) -> int:
        """Chains a store written before the chain existed, as it stands now (once: when its chain
        is empty and it has events). Returns the number of events sealed."""
        with self.datastore.transaction(commit=False) as cursor:
            if self._head(cursor) is not None:
                return 0  # the usual case, decided without locking out writers
        with self.datastore.transaction(commit=True) as cursor:
            self._take_write_lock(cursor)
            return self._seal_with(cursor)

    def _seal_with(self, cursor) -> int:
        """Links every stored event if the chain is empty (the caller holds the write lock)."""
        if self._head(cursor) is not None:
            return 0
        sealed = after = 0
        while rows := self._rows_after(cursor, after, self.SEAL_BATCH):
            self._append(cursor, rows)
            sealed, after = sealed + len(rows), rows[-1][0]
        return sealed
