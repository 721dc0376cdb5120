"""Tamper evidence for the event store: every stored event is linked to the one before it by a hash
chain written in the same transaction (see docs/architecture.md, "The event chain")."""

from __future__ import annotations

RECORDERS = {
    "eventsourcing.sqlite": "commands.chain.sqlite_recorder:ChainedSQLiteRecorder",
    "eventsourcing.postgres": "commands.chain.postgres_recorder:ChainedPostgresRecorder",
}


def chained_recorder_topic(persistence_module: str) -> str | None:
    """The application recorder that chains what it stores, for a durable event store (None for the
    in-memory one, which has nothing to prove)."""
    return RECORDERS.get(persistence_module)
