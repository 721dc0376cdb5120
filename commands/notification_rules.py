"""What a notification may be: recipient syntax, message size, rate limits, daily quotas, duplicates.

The email check is a bounded, linear walk over at most MAX_EMAIL characters (no backtracking
regular expression a hostile device could make slow); phone numbers are E.164.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass

from commands.domain.device_ids import is_device_id
from commands.domain.notifications import DEVICE, EMAIL, SMS, NotificationLedger
from commands.errors import DomainError, TooManyAttempts

MAX_EMAIL = 254
MAX_LOCAL_PART = 64
MAX_LABEL = 63
MAX_MESSAGE = 160         # characters: one SMS; the device API's own bound (64) is tighter
MAX_PHONE_DIGITS = 15     # E.164
_LOCAL_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~.-")
_LABEL_CHARS = frozenset(string.ascii_letters + string.digits + "-")


class InvalidRecipient(DomainError):
    problem, status, title = "invalid-recipient", 422, "The recipient is not an email address, an E.164 phone number or a device id"


class InvalidMessage(DomainError):
    problem, status, title = "invalid-message", 422, "The message is empty or too long"


class RecipientNotOwned(DomainError):
    problem, status, title = "recipient-not-owned", 403, "The recipient device is not one of your devices"


class NotificationRateLimited(TooManyAttempts):
    problem, status, title = "notification-rate-limited", 429, "Too many notifications; try again later"


class NotificationQuotaExceeded(NotificationRateLimited):
    problem, status, title = "notification-quota-exceeded", 429, "The daily notification quota is spent"


class DuplicateNotification(DomainError):
    problem, status, title = "duplicate-notification", 409, "The same notification was just requested"


def is_email(value: str) -> bool:
    if not 3 <= len(value) <= MAX_EMAIL or value.count("@") != 1:
        return False
    local, domain = value.split("@")
    if not 0 < len(local) <= MAX_LOCAL_PART or local[0] == "." or local[-1] == "." or ".." in local:
        return False
    if not all(c in _LOCAL_CHARS for c in local):
        return False
    labels = domain.split(".")
    if len(labels) < 2 or not labels[-1].isalpha() or len(labels[-1]) < 2:
        return False
    return all(0 < len(label) <= MAX_LABEL and label[0] != "-" and label[-1] != "-"
               and all(c in _LABEL_CHARS for c in label) for label in labels)


def is_e164(value: str) -> bool:
    digits = value[1:]
    return (len(value) <= MAX_PHONE_DIGITS + 1 and value.startswith("+") and 2 <= len(digits)
            and digits.isascii() and digits.isdigit() and digits[0] != "0")


def channel_for(recipient: object) -> str:
    """email, sms or device; InvalidRecipient otherwise."""
    if isinstance(recipient, str):
        if is_device_id(recipient):
            return DEVICE
        if is_e164(recipient):
            return SMS
        if is_email(recipient):
            return EMAIL
    raise InvalidRecipient("the recipient must be an email address, an E.164 phone number (+15551234567) "
                           "or the id of one of your devices")


def check_message(message: object) -> str:
    if not isinstance(message, str) or not message.strip() or len(message) > MAX_MESSAGE or "\x00" in message:
        raise InvalidMessage(f"the message must be 1..{MAX_MESSAGE} characters")
    return message


def fingerprint(channel: str, recipient: str, message: str) -> str:
    """Identifies a repeated trigger without keeping its text in the ledger."""
    return hashlib.sha256(f"{channel}\x00{recipient.lower()}\x00{message}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class NotificationLimits:
    device_per_minute: int = 10
    user_per_minute: int = 30
    device_per_day: int = 100
    user_per_day: int = 500
    duplicate_window: float = 30.0   # seconds: the same trigger again within it is sent once
    max_attempts: int = 5
    retry_first: float = 2.0         # seconds, doubling per attempt
    retry_max: float = 300.0

    def retry_delay(self, attempt: int) -> float:
        return min(self.retry_max, self.retry_first * 2 ** max(0, attempt - 1))

    def check(self, ledger: NotificationLedger | None, device_id: str, print_: str, now: float) -> None:
        """Raises the refusal for one more request of `device_id`; `ledger` is today's of its owner."""
        entries = ledger.entries if ledger is not None else []
        minute = [e for e in entries if e[0] > now - 60]
        if any(e[1] == device_id and e[2] == print_ and e[0] > now - self.duplicate_window for e in entries):
            raise DuplicateNotification(f"the same notification was requested within {self.duplicate_window:g} s")
        if sum(1 for e in entries if e[1] == device_id) >= self.device_per_day:
            raise NotificationQuotaExceeded(f"this device's daily quota ({self.device_per_day}) is spent",
                                            retry_after=3600)
        if len(entries) >= self.user_per_day:
            raise NotificationQuotaExceeded(f"your daily quota ({self.user_per_day}) is spent", retry_after=3600)
        if sum(1 for e in minute if e[1] == device_id) >= self.device_per_minute:
            raise NotificationRateLimited(f"at most {self.device_per_minute} notifications per device per minute")
        if len(minute) >= self.user_per_minute:
            raise NotificationRateLimited(f"at most {self.user_per_minute} notifications per user per minute")
