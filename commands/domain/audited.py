"""Aggregate base whose events all carry actor, correlation id and causation id."""

from __future__ import annotations

from eventsourcing.domain import Aggregate

from commands.context import current_context


class AuditedAggregate(Aggregate):
    """Every event records who caused it (from `commands.context`), for audit and tracing."""

    class Event(Aggregate.Event):
        actor: str
        correlation_id: str
        causation_id: str

    class Created(Event, Aggregate.Created):
        pass

    @classmethod
    def _create(cls, event_class, **kwargs):
        return super()._create(event_class, **{**current_context().as_event_fields(), **kwargs})

    def trigger_event(self, event_class, **kwargs):
        return super().trigger_event(event_class, **{**current_context().as_event_fields(), **kwargs})
