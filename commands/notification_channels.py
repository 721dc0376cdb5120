"""The port every notification channel implements (adapters live in gateways/notifications/)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

SUBJECT = "iotcloud notification"  # the seed's was "FT900 IoT Cloud Platform Notifications"


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a channel delivers: one attempt of one notification."""

    notification_id: str
    attempt: int
    channel: str        # email, sms or device
    recipient: str
    message: str
    device_name: str    # the device that asked (shown in the subject line)

    @property
    def reference(self) -> str:
        """Unique per attempt record: a channel that can deduplicate on it does."""
        return f"{self.notification_id}:{self.attempt}"

    @property
    def subject(self) -> str:
        return f"{SUBJECT} from {self.device_name}"


class DeliveryFailed(Exception):
    """The provider refused or could not be reached. `permanent`: retrying cannot help (a rejected
    address), so the notification fails at once instead of spending its attempts."""

    def __init__(self, reason: str, permanent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Channel(ABC):
    """Delivers one attempt; returns the provider's message id, raises DeliveryFailed otherwise."""

    provider: str = "unknown"

    @abstractmethod
    def deliver(self, delivery: Delivery) -> str: ...

    def close(self) -> None:
        """Releases connections; the notifier calls it on exit."""
