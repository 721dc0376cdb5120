"""What the broker tells the gateway, as our own frozen value objects."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeviceAnswer:
    """A device's publish on `server/<id>/<api>` (AMQP `server.<id>.<api>`)."""

    device_id: str
    api: str
    payload: bytes
    received_at: float


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """A device connection opened or closed at the broker."""

    device_id: str
    connection: str
    online: bool
    protocol: str
    at: float
    # Of a connection that logged in with a client certificate: the serial its subject names ("" when
    # issued before subjects named it); None without a certificate, or when the event did not say.
    certificate: str | None = None


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """What the gateway publishes for the REST processes when a command ends (or is sent)."""

    command_id: str
    status: str
    result: object
    error: str | None

    def as_dict(self) -> dict:
        return {"command_id": self.command_id, "status": self.status, "result": self.result, "error": self.error}
