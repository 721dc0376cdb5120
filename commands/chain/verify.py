"""Walks an application's log and its chain side by side and names the first event that breaks it."""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha256
from typing import Callable, Protocol
from uuid import UUID

from commands.chain.links import GENESIS, Link

BATCH = 20_000


class ChainedRecorder(Protocol):
    def stored_rows(self, after: int, limit: int) -> list[tuple]: ...
    def links(self, after: int, upto: int | None) -> list[Link]: ...
    def link_positions(self, originator_id: str, version: int) -> list[int]: ...
    def max_notification_id(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Break:
    """The first place the log and its chain disagree."""

    kind: str  # altered, missing, inserted, reordered
    notification_id: int
    originator_id: str
    originator_version: int
    detail: str
    topic: str = ""  # of the stored event, when the store still holds it

    @property
    def event_type(self) -> str:
        return self.topic.rpartition(":")[2]

    def describe(self) -> str:
        if self.originator_version < 0:
            return f"{self.kind} event at notification {self.notification_id}: {self.detail}"
        aggregate = str(UUID(self.originator_id)) if len(self.originator_id) == 32 else self.originator_id
        kind = f" {self.event_type}" if self.topic else ""
        return (f"{self.kind}{kind} event at notification {self.notification_id} "
                f"(aggregate {aggregate} revision {self.originator_version}): {self.detail}")


@dataclass(frozen=True, slots=True)
class Verdict:
    events: int          # events checked
    head_id: int         # notification id of the last link verified (0: empty log)
    head: bytes          # its hash
    broken: Break | None

    @property
    def intact(self) -> bool:
        return self.broken is None


def verify(recorder: ChainedRecorder, progress: Callable[[int, int], None] = lambda done, total: None,
           batch: int = BATCH) -> Verdict:
    """Checks every event against its link, in log order; stops at the first break."""
    total = recorder.max_notification_id() or 0
    previous_id, previous, checked, after = 0, GENESIS, 0, 0
    last: tuple = (0, "?", -1)
    while True:
        rows = recorder.stored_rows(after, batch)
        upto = rows[-1][0] if len(rows) == batch else None  # the last batch takes every link after it
        links = recorder.links(after, upto)
        j = 0
        for row in rows:
            notification_id, originator_id, version, topic, state = row
            if j < len(links) and links[j].notification_id < notification_id:
                return Verdict(checked, previous_id, previous, _gone(links[j]))
            link = None
            if j < len(links) and links[j].notification_id == notification_id:
                link, j = links[j], j + 1
            if link is None or link.originator_id != originator_id or link.originator_version != version:
                return Verdict(checked, previous_id, previous, _misplaced(recorder, row, link))
            if link.previous_id != previous_id:
                return Verdict(checked, previous_id, previous, _relinked(link, last))
            digest = sha256(previous)  # link_hash, inlined: this loop runs once per stored event
            digest.update(f"{notification_id}\0{originator_id}\0{version}\0{topic}\0".encode())
            digest.update(state)
            computed = digest.digest()
            if computed != link.hash:
                return Verdict(checked, previous_id, previous, Break(
                    "altered", notification_id, originator_id, version,
                    "its stored content (topic, state or metadata) or its link differs from what was chained", topic))
            previous_id, previous, checked, last = notification_id, computed, checked + 1, row[:3]
        if j < len(links):  # links past the last stored event: the tail was removed
            return Verdict(checked, previous_id, previous, _gone(links[j]))
        progress(previous_id, max(total, previous_id))
        if upto is None:
            return Verdict(checked, previous_id, previous, None)
        after = upto


def _gone(link: Link) -> Break:
    return Break("missing", link.notification_id, link.originator_id, link.originator_version,
                 "the chain recorded this event; the store no longer holds it")


def _relinked(link: Link, last: tuple) -> Break:
    if link.previous_id > last[0]:
        return Break("missing", link.previous_id, "?", -1,
                     f"the event chained before notification {link.notification_id} was removed with its link")
    return Break("inserted", last[0], last[1], last[2],
                 f"the chain goes from notification {link.previous_id} to {link.notification_id}, "
                 "past this event")


def _misplaced(recorder: ChainedRecorder, row: tuple, link: Link | None) -> Break:
    notification_id, originator_id, version = row[0], row[1], row[2]
    elsewhere = [n for n in recorder.link_positions(originator_id, version) if n != notification_id]
    if elsewhere:
        return Break("reordered", notification_id, originator_id, version,
                     f"the chain recorded this event at notification {elsewhere[0]}", row[3])
    recorded = "" if link is None else (
        f" in place of aggregate {link.originator_id} version {link.originator_version}")
    return Break("inserted", notification_id, originator_id, version,
                 f"the chain never recorded this event{recorded} (added, or its identity altered)", row[3])
