"""Verifies each application's log against its chain and its newest signed checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from commands.chain.checkpoints import Checkpoint, Checkpoints, check
from commands.chain.verify import Break, verify


@dataclass(frozen=True, slots=True)
class LogReport:
    log: str
    events: int
    head_id: int
    head: str
    checkpoint: Checkpoint | None
    broken: Break | None

    def as_dict(self) -> dict:
        return {"log": self.log, "intact": self.broken is None, "events": self.events, "head": self.head_id,
                "head_hash": self.head,
                "checkpoint": None if self.checkpoint is None else self.checkpoint.notification_id,
                "broken": None if self.broken is None else {
                    "kind": self.broken.kind, "position": self.broken.notification_id, "event": self.broken.event_type,
                    "aggregate_id": self.broken.originator_id, "revision": self.broken.originator_version,
                    "detail": self.broken.detail, "message": self.broken.describe()}}


def verify_logs(applications, checkpoints: Checkpoints | None, public_key,
                progress: Callable[[str, int, int], None] = lambda log, done, total: None) -> list[LogReport]:
    """One report per application; the chain walk stops at the first break in each log."""
    reports = []
    for app in applications:
        verdict = verify(app.recorder, lambda done, total, name=app.name: progress(name, done, total))
        checkpoint = checkpoints.latest(app.name) if checkpoints is not None else None
        broken = verdict.broken
        if broken is None and checkpoint is not None:
            broken = check(checkpoint, public_key, app.recorder, verdict)
        reports.append(LogReport(app.name, verdict.events, verdict.head_id, verdict.head.hex(), checkpoint, broken))
    return reports
