"""Refuses an app's `trigger_notification` call before the device is called: a recipient or message
the notifier would refuse, a device of another user, a spent rate limit or quota, a duplicate.

Whichever route carries the call (POST /v1/devices/{name}/notifications, the v2
/devices/device/notification, the generic commands route), the caller gets the problem+json and
the refusal is recorded as a refused notification."""

from __future__ import annotations

import uuid

from commands.context import acting_as
from commands.domain.notifications import FROM_APP
from commands.errors import DomainError
from commands.notifications import Notifications
from gateways.broker.topology import TRIGGER_API


class NotificationGuard:
    def __init__(self, notifications: Notifications):
        self._notifications = notifications

    def __call__(self, device: dict, api, params) -> None:
        if api != TRIGGER_API or not isinstance(params, dict):
            return  # other calls, and shapes the device API's own validation refuses
        recipient, message = params.get("recipient"), params.get("message")
        if not isinstance(recipient, str) or not isinstance(message, str):
            return  # missing or not text: the device API's validation answers 400, nothing to record
        try:
            self._notifications.check(device, recipient, message)
        except DomainError as refusal:
            key = f"refused:{uuid.uuid4()}"
            with acting_as(f"user:{device['owner']}", correlation_id=key):
                recorded = self._notifications.request(key, FROM_APP, device, recipient, message)
            if recorded is not None:
                refusal.extensions["notification_id"] = str(recorded.id)
            raise
