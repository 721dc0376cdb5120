"""Notifications on real stores: the Notifications application on SQLite, the read model on
nx-27017 through pymongo, and the notifier loop driven in-process (no broker: email and SMS only)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from commands.context import acting_as
from commands.domain.notifications import FROM_DEVICE
from commands.pki import CertificateAuthority
from iotcloud.bootstrap import build_event_applications, build_notifications, build_projectors
from projections.runner import Projector
from queries.notifications import NotificationQueries


class Stack:
    """A fleet with devices, the Notifications application, its projector and its queries."""

    def __init__(self, settings):
        self.settings = settings
        self.accounts, self.fleet = build_event_applications(settings, CertificateAuthority.load_or_create(settings.pki_dir))
        self.notifications = build_notifications(settings, self.fleet)
        projectors, self.mongo = build_projectors(settings, {"Accounts": self.accounts, "DeviceFleet": self.fleet,
                                                             "Notifications": self.notifications})
        self.projector: Projector = next(p for p in projectors if p.projection.name == "notifications")
        self.queries = NotificationQueries(self.mongo[settings.mongodb_database])

    def device(self, owner: str, name: str) -> dict:
        with acting_as(f"user:{owner}"):
            credentials = self.fleet.register_device(owner, name)
        return {"device_id": credentials.device_id, "owner": owner, "name": name}

    def trigger(self, device: dict, recipient, message):
        """What the notifier records for a device's own trigger message."""
        import uuid
        with acting_as(f"device:{device['device_id']}"):
            return self.notifications.request(f"trigger:{uuid.uuid4()}", FROM_DEVICE, device, recipient, message)

    def events(self, notification) -> list[str]:
        return [type(e).__name__ for e in self.notifications.repository.event_store.get(notification.id)]

    def projected(self, owner: str, **filters) -> list[dict]:
        while self.projector.step():
            pass
        return self.queries.list(owner, **filters)[0]

    def close(self) -> None:
        self.mongo.close()
        for app in (self.accounts, self.fleet, self.notifications):
            app.close()


@pytest.fixture
def stack(make_settings):
    made = []

    def make(store: str = "sqlite", **overrides) -> Stack:
        settings = make_settings(store, broker="none", **overrides)
        made.append(Stack(settings))
        return made[-1]
    yield make
    for s in made:
        s.close()


@dataclass
class SmtpCapture:
    host: str
    port: int
    messages: list = field(default_factory=list)


@pytest.fixture
def smtp_server():
    """A real aiosmtpd server on loopback that keeps what it receives."""
    from aiosmtpd.controller import Controller
    from tests.ports import free_port

    capture = SmtpCapture("127.0.0.1", free_port())

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            capture.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode()))
            return "250 OK"

    controller = Controller(Handler(), hostname=capture.host, port=capture.port)
    controller.start()
    yield capture
    controller.stop()
