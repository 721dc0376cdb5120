"""Notifications: the write side of email, SMS and device-to-device messages.

Requests come from devices (their `trigger_notification` message) and from apps (a
`trigger_notification` call the device echoed). Every request is recorded, accepted or refused;
accepted ones are counted in the owner's ledger in the same transaction, so limits hold across
restarts. The notifier process records the attempts and their outcomes.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Callable
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application

from commands.domain.notifications import (DEVICE, UNKNOWN, Notification, NotificationLedger)
from commands.errors import DomainError
from commands.notification_rules import (NotificationLimits, RecipientNotOwned, channel_for, check_message,
                                         fingerprint)

# device id -> its owner (None: no such registered device); the fleet answers it (write side)
DeviceOwner = Callable[[str], "str | None"]


class Notifications(Application):
    """Records notification requests, refusals, attempts and outcomes."""

    env = {"AGGREGATE_CACHE_MAXSIZE": "10000"}

    def __init__(self, *args, limits: NotificationLimits | None = None, device_owner: DeviceOwner | None = None,
                 clock=time.time, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = limits or NotificationLimits()
        self._device_owner = device_owner or (lambda device_id: None)
        self._clock = clock

    # -- requests -------------------------------------------------------------------------------

    def check(self, device: dict, recipient, message) -> str:
        """What an app-initiated request would be refused for, before the device is called (no
        write): raises the refusal, else returns the channel."""
        channel = channel_for(recipient)
        check_message(message)
        self._check_recipient_device(device, channel, recipient)
        self.limits.check(self._ledger(device["owner"]), device["device_id"],
                          fingerprint(channel, recipient, message), self._clock())
        return channel

    def request(self, key: str, origin: str, device: dict, recipient, message, command_id: str | None = None,
                source_position: int = 0) -> Notification | None:
        """Records one request, accepted or refused; None if `key` was recorded already (a replay)."""
        if self.exists(Notification.create_id(key)):
            return None
        try:
            channel = channel_for(recipient)
        except DomainError:
            channel = UNKNOWN
        notification = Notification(
            key=key, origin=origin, device_id=device["device_id"], device_name=device["name"],
            owner=device["owner"], channel=channel, recipient=str(recipient)[:254],
            message=str(message)[:1000], command_id=command_id, source_position=source_position,
            max_attempts=self.limits.max_attempts)
        ledger = self._ledger(device["owner"]) or NotificationLedger(owner=device["owner"], day=self._day())
        try:
            channel_for(recipient)
            check_message(message)
            self._check_recipient_device(device, channel, recipient)
            print_ = fingerprint(channel, recipient, message)
            self.limits.check(ledger, device["device_id"], print_, self._clock())
        except DomainError as refusal:
            notification.refuse(refusal.problem, refusal.detail)
            self.save(notification)
            return notification
        ledger.count(notification_id=str(notification.id), device_id=device["device_id"], at=self._clock(),
                     fingerprint=print_)
        self.save(notification, ledger)
        return notification

    def _check_recipient_device(self, device: dict, channel: str, recipient: str) -> None:
        # Another user's device and no device at all are refused alike: existence is not disclosed.
        if channel == DEVICE and (self._device_owner(recipient) or "").lower() != device["owner"].lower():
            raise RecipientNotOwned("the recipient device is not one of your registered devices")

    # -- delivery -------------------------------------------------------------------------------

    def start_attempt(self, notification_id) -> Notification:
        notification = self.notification(notification_id)
        notification.start_attempt(self._clock())
        self.save(notification)
        return notification

    def record_sent(self, notification: Notification, provider: str, provider_id: str) -> None:
        notification.record_sent(provider, provider_id)
        self.save(notification)

    def record_failure(self, notification: Notification, error: str, permanent: bool = False) -> None:
        retry_at = None if permanent else self._clock() + self.limits.retry_delay(notification.attempts)
        notification.record_failure(error, retry_at)
        self.save(notification)

    def notification(self, notification_id) -> Notification:
        return self.repository.get(notification_id if isinstance(notification_id, UUID) else UUID(str(notification_id)))

    def exists(self, notification_id: UUID) -> bool:
        try:
            self.repository.get(notification_id)
            return True
        except AggregateNotFoundError:
            return False

    # -- limits ---------------------------------------------------------------------------------

    def _day(self) -> str:
        return dt.datetime.fromtimestamp(self._clock(), dt.timezone.utc).strftime("%Y-%m-%d")

    def _ledger(self, owner: str) -> NotificationLedger | None:
        try:
            return self.repository.get(NotificationLedger.create_id(owner, self._day()))
        except AggregateNotFoundError:
            return None
