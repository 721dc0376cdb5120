"""Email and SMS channels behind the one port (commands/notification_channels.py): the local outbox
(the embedded default), Amazon SES and SNS through boto3, and SMTP through smtplib.

boto3 reads its own standard variables (AWS_ENDPOINT_URL, AWS_DEFAULT_REGION, credentials); the
sender address is the seed's AWS_PINPOINT_EMAIL (Settings.notification_sender).
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from commands.notification_channels import Channel, Delivery, DeliveryFailed
from gateways.outbox import Outbox

AWS_TIMEOUT = 10.0   # seconds per provider call: the notifier loop must not hang on a dead endpoint
SMTP_TIMEOUT = 10.0
# Errors retrying cannot fix: the provider refused the message or the address itself.
PERMANENT_AWS_ERRORS = frozenset({"MessageRejected", "InvalidParameter", "InvalidParameterValue",
                                  "MailFromDomainNotVerifiedException", "AuthorizationError"})


class OutboxChannel(Channel):
    """Stores the message in the local outbox (`iotcloud outbox` shows it); exactly once per attempt."""

    provider = "outbox"

    def __init__(self, outbox: Outbox, kind: str):
        self._outbox, self._kind = outbox, kind

    def deliver(self, delivery: Delivery) -> str:
        subject = delivery.subject if self._kind == "email" else ""
        return f"outbox:{self._outbox.deliver(self._kind, delivery.recipient, subject, delivery.message, delivery.reference)}"


def _aws_client(service: str):
    import boto3
    from botocore.config import Config
    return boto3.client(service, config=Config(connect_timeout=AWS_TIMEOUT, read_timeout=AWS_TIMEOUT,
                                               retries={"max_attempts": 1, "mode": "standard"}))


def _aws_call(call, **kwargs) -> dict:
    from botocore.exceptions import BotoCoreError, ClientError
    try:
        return call(**kwargs)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "ClientError")
        raise DeliveryFailed(f"{code}", permanent=code in PERMANENT_AWS_ERRORS) from None
    except BotoCoreError as error:  # endpoint unreachable, timeouts: the provider is down, retry
        raise DeliveryFailed(type(error).__name__) from None


class SesEmail(Channel):
    provider = "ses"

    def __init__(self, sender: str, client=None):
        self._sender = sender
        self._client = client or _aws_client("ses")

    def deliver(self, delivery: Delivery) -> str:
        answer = _aws_call(self._client.send_email, Source=self._sender,
                           Destination={"ToAddresses": [delivery.recipient]},
                           Message={"Subject": {"Data": delivery.subject, "Charset": "UTF-8"},
                                    "Body": {"Text": {"Data": delivery.message, "Charset": "UTF-8"}}})
        return answer.get("MessageId", "")


class SnsSms(Channel):
    provider = "sns"

    def __init__(self, client=None):
        self._client = client or _aws_client("sns")

    def deliver(self, delivery: Delivery) -> str:
        answer = _aws_call(self._client.publish, PhoneNumber=delivery.recipient, Message=delivery.message,
                           MessageAttributes={"AWS.SNS.SMS.SMSType": {"DataType": "String",
                                                                       "StringValue": "Transactional"}})
        return answer.get("MessageId", "")


class SmtpEmail(Channel):
    """One SMTP session per message (notifications are rare; a kept-open session would go stale).
    `starttls`: on (required), off, or auto (used when the server offers it)."""

    provider = "smtp"

    def __init__(self, host: str, port: int, sender: str, user: str = "", password: str = "",
                 starttls: str = "auto"):
        if starttls not in ("auto", "on", "off"):
            raise ValueError(f"IOTCLOUD_SMTP_STARTTLS must be auto, on or off, not {starttls!r}")
        self._host, self._port, self._sender = host, port, sender
        self._user, self._password, self._starttls = user, password, starttls

    def deliver(self, delivery: Delivery) -> str:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self._sender, delivery.recipient, delivery.subject
        message["Message-ID"] = make_msgid(idstring=delivery.reference.replace(":", "."))
        message.set_content(delivery.message)
        try:
            with smtplib.SMTP(self._host, self._port, timeout=SMTP_TIMEOUT) as smtp:
                smtp.ehlo()
                if self._starttls == "on" or (self._starttls == "auto" and smtp.has_extn("starttls")):
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self._user:
                    smtp.login(self._user, self._password)
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryFailed("the SMTP server refused the recipient", permanent=True) from None
        except smtplib.SMTPResponseException as error:
            raise DeliveryFailed(f"SMTP {error.smtp_code}", permanent=500 <= error.smtp_code < 600) from None
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryFailed(f"SMTP unreachable ({type(error).__name__})") from None
        return message["Message-ID"]
