"""Who is acting, and why: the audit metadata stamped on every event a command records."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CommandContext:
    """The acting user or service, the correlation id of the whole flow and the id of its cause."""

    actor: str
    correlation_id: str
    causation_id: str

    def as_event_fields(self) -> dict[str, str]:
        return {"actor": self.actor, "correlation_id": self.correlation_id, "causation_id": self.causation_id}


SYSTEM = CommandContext(actor="service:iotcloud", correlation_id="system", causation_id="system")
_current: ContextVar[CommandContext] = ContextVar("iotcloud_command_context", default=SYSTEM)


def current_context() -> CommandContext:
    return _current.get()


@contextmanager
def acting_as(actor: str, correlation_id: str | None = None, causation_id: str | None = None):
    """Runs a block of commands on behalf of `actor`; events recorded inside carry this context."""
    correlation_id = correlation_id or str(uuid.uuid4())
    token = _current.set(CommandContext(actor, correlation_id, causation_id or correlation_id))
    try:
        yield _current.get()
    finally:
        _current.reset(token)
