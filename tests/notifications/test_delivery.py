"""The notifier's channels against real providers: the outbox, SES and SNS on moto's server (boto3
over HTTP), SMTP on a local aiosmtpd; retries while a provider is down, the final failed state, and
a notifier killed in the middle of an attempt that resumes from the event store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3

from gateways.outbox import Outbox
from iotcloud.bootstrap import build_notifier_process
from tests.ports import free_port
from tests.moto_server import start_moto_server
from tests.resilience.calls_under_faults import wait_for

REPO = Path(__file__).resolve().parents[2]
SENDER = "iot@example.com"


def deliver(settings, until, timeout: float = 20.0):
    """Runs the notifier's loop in this process until `until()` holds."""
    notifier = build_notifier_process(settings)
    notifier.recover()
    try:
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, "the notifier did not get there in time"
            notifier.turn(0.02)
            time.sleep(0.02)
    finally:
        notifier.close()


def sent(stack, notification) -> bool:
    return stack.notifications.notification(notification.id).state == "sent"


def test_the_outbox_gets_each_email_and_sms_once(stack):
    s = stack()
    device = s.device("alice", "sensor")
    email = s.trigger(device, "alice@example.com", "Hi, How are you today?")
    sms = s.trigger(device, "+15551234567", "Hi, How are you today?")
    deliver(s.settings, lambda: sent(s, email) and sent(s, sms))
    messages = Outbox(s.settings.state_dir / "outbox.sqlite3").messages()
    assert [(m["channel"], m["to"], m["body"]) for m in messages] == [
        ("sms", "+15551234567", "Hi, How are you today?"), ("email", "alice@example.com", "Hi, How are you today?")]
    assert messages[1]["subject"] == "iotcloud notification from sensor"
    assert s.events(email) == ["Requested", "AttemptStarted", "Sent"]
    docs = s.projected("alice")
    assert {(d["channel"], d["state"], d["attempts"], d["provider"]) for d in docs} == {
        ("email", "sent", 1, "outbox"), ("sms", "sent", 1, "outbox")}
    assert all(d["sent_at"] is not None for d in docs)


def test_ses_and_sns_on_moto(stack, moto_server, monkeypatch):
    for name, value in moto_server.environment().items():
        monkeypatch.setenv(name, value)
    boto3.client("ses").verify_email_identity(EmailAddress=SENDER)
    s = stack(email="ses", sms="sns", notification_sender=SENDER)
    device = s.device("alice", "sensor")
    marker = f"moto {time.time_ns()}"
    email = s.trigger(device, "alice@example.com", marker)
    sms = s.trigger(device, "+15551234567", marker)
    deliver(s.settings, lambda: sent(s, email) and sent(s, sms))
    data = moto_server.data()
    [mail] = [m for m in data["ses"]["Message"] if m["body"] == marker]
    assert mail["source"] == SENDER and mail["destinations"]["ToAddresses"] == ["alice@example.com"]
    assert mail["subject"] == "iotcloud notification from sensor"
    [text] = [m for m in data["sns"]["SMS"] if m["message"] == marker]
    assert text["phone_number"] == "+15551234567"
    docs = {d["channel"]: d for d in s.projected("alice")}
    assert docs["email"]["provider"] == "ses" and docs["sms"]["provider"] == "sns"
    assert s.events(sms) == ["Requested", "AttemptStarted", "Sent"]


def test_smtp_on_a_local_server(stack, smtp_server):
    s = stack(email="smtp", smtp_host=smtp_server.host, smtp_port=smtp_server.port, notification_sender=SENDER)
    device = s.device("alice", "sensor")
    email = s.trigger(device, "alice@example.com", "Hello over SMTP")
    deliver(s.settings, lambda: sent(s, email))
    [(mail_from, to, content)] = smtp_server.messages
    assert mail_from == SENDER and to == ["alice@example.com"]
    assert "Subject: iotcloud notification from sensor" in content and "Hello over SMTP" in content
    assert s.projected("alice")[0]["provider"] == "smtp"


def test_provider_down_then_back(stack, tmp_path, monkeypatch):
    port = free_port()
    moto = start_moto_server(tmp_path / "moto.log", port)
    for name, value in moto.environment().items():
        monkeypatch.setenv(name, value)
    s = stack(email="ses", sms="sns", notification_sender=SENDER, notification_retry_first=0.2,
              notification_max_attempts=10)
    device = s.device("alice", "sensor")
    moto.stop()
    sms = s.trigger(device, "+15551234567", "while SNS is down")
    retried = lambda: s.notifications.notification(sms.id).attempts >= 2  # noqa: E731
    deliver(s.settings, retried)
    docs = s.projected("alice")
    assert docs[0]["state"] == "requested" and docs[0]["last_error"] == "EndpointConnectionError"
    assert docs[0]["next_attempt_at"] is not None
    moto = start_moto_server(tmp_path / "moto.log", port)
    try:
        deliver(s.settings, lambda: sent(s, sms))
        assert [m["message"] for m in moto.data()["sns"]["SMS"]] == ["while SNS is down"]
    finally:
        moto.stop()
    kinds = s.events(sms)
    assert kinds[0] == "Requested" and kinds[-2:] == ["AttemptStarted", "Sent"]
    assert kinds.count("AttemptFailed") >= 2 and kinds.count("AttemptStarted") == kinds.count("AttemptFailed") + 1
    failed = [e for e in s.notifications.repository.event_store.get(sms.id) if type(e).__name__ == "AttemptFailed"]
    gaps = [b.retry_at - a.retry_at for a, b in zip(failed, failed[1:])]
    assert all(gap > 0 for gap in gaps)  # backoff: each retry is scheduled later than the one before
    doc = s.projected("alice")[0]
    assert doc["state"] == "sent" and doc["attempts"] == len(failed) + 1


def test_the_last_attempt_fails_for_good(stack, tmp_path, monkeypatch):
    port = free_port()  # nothing listens there: the provider is down throughout
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s = stack(email="ses", notification_sender=SENDER, notification_retry_first=0.05, notification_max_attempts=3)
    device = s.device("alice", "sensor")
    email = s.trigger(device, "alice@example.com", "never arrives")
    deliver(s.settings, lambda: s.notifications.notification(email.id).state == "failed")
    assert s.events(email) == ["Requested", "AttemptStarted", "AttemptFailed", "AttemptStarted", "AttemptFailed",
                               "AttemptStarted", "Failed"]
    doc = s.projected("alice", state="failed")[0]
    assert doc["attempts"] == 3 and doc["failed_at"] is not None


def test_a_rejected_sender_fails_at_once(stack, moto_server, monkeypatch):
    for name, value in moto_server.environment().items():
        monkeypatch.setenv(name, value)
    s = stack(email="ses", notification_sender="unverified@example.org")
    device = s.device("alice", "sensor")
    email = s.trigger(device, "alice@example.com", "rejected")
    deliver(s.settings, lambda: s.notifications.notification(email.id).state == "failed")
    assert s.events(email) == ["Requested", "AttemptStarted", "Failed"]
    assert s.projected("alice")[0]["last_error"] == "MessageRejected"


def test_a_notifier_killed_mid_attempt_resumes_from_the_store(stack, smtp_server, tmp_path):
    # An SMTP server that accepts the connection and never answers: the notifier hangs inside the attempt.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    s = stack(email="smtp", smtp_host="127.0.0.1", smtp_port=silent.getsockname()[1], notification_sender=SENDER)
    device = s.device("alice", "sensor")
    email = s.trigger(device, "alice@example.com", "survives a crash")
    env = {**os.environ, "IOTCLOUD_STATE_DIR": str(s.settings.state_dir), "PERSISTENCE_MODULE": "eventsourcing.sqlite",
           "IOTCLOUD_BROKER": "none", "IOTCLOUD_EMAIL": "smtp", "IOTCLOUD_SMTP_HOST": "127.0.0.1",
           "IOTCLOUD_SMTP_PORT": str(silent.getsockname()[1]), "AWS_PINPOINT_EMAIL": SENDER,
           "IOTCLOUD_MONGODB_URI": s.settings.mongodb_uri}
    with open(tmp_path / "notifier.log", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "iotcloud.cli", "notifier"], env=env, cwd=REPO,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: s.notifications.notification(email.id).state == "attempting", "the attempt to start", 20, 0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
        silent.close()
    assert s.events(email) == ["Requested", "AttemptStarted"]
    # Back with a working SMTP server: the open attempt is recorded as interrupted and a new one is sent.
    moved = s.settings.__class__(**{**s.settings.__dict__, "smtp_host": smtp_server.host, "smtp_port": smtp_server.port})
    deliver(moved, lambda: sent(s, email))
    assert s.events(email) == ["Requested", "AttemptStarted", "AttemptFailed", "AttemptStarted", "Sent"]
    interrupted = [e for e in s.notifications.repository.event_store.get(email.id)][2]
    assert interrupted.error.startswith("interrupted")
    assert len(smtp_server.messages) == 1
    assert "survives a crash" in smtp_server.messages[0][2]
    assert "survives a crash" not in (tmp_path / "notifier.log").read_text()  # the text is never logged


def test_limits_and_delivery_on_postgres(stack, smtp_server):
    s = stack("postgres", email="smtp", smtp_host=smtp_server.host, smtp_port=smtp_server.port,
              notification_sender=SENDER, notification_device_per_minute=2)
    device = s.device("alice", "sensor")
    made = [s.trigger(device, "alice@example.com", f"on postgres {i}") for i in range(3)]
    assert [n.state for n in made] == ["requested", "requested", "refused"]
    deliver(s.settings, lambda: all(sent(s, n) for n in made[:2]))
    assert sorted(m[2].splitlines()[-1] for m in smtp_server.messages) == ["on postgres 0", "on postgres 1"]
    assert {(d["state"], d["provider"]) for d in s.projected("alice")} == {("sent", "smtp"), ("refused", None)}


def test_a_first_start_ignores_calls_answered_long_before_and_records_the_next(stack):
    """A platform upgraded to have a notifier must not send the trigger_notification calls of its past."""
    from commands.context import acting_as
    from gateways.notifications.runtime import STALE_ON_FIRST_START, NotifierService
    from iotcloud.bootstrap import build_device_control
    s = stack()
    device = {**s.device("alice", "sensor"), "correlation_ids": False}
    control = build_device_control(s.settings)

    def answered_call(message: str) -> str:
        params = {"recipient": "alice@example.com", "message": message}
        with acting_as("user:alice"):
            command = control.dispatch(device, "trigger_notification", params, None, None, "api:test")
            command.record_answer(None, params)
            control.record(command)
        return str(command.id)

    answered_call("from before the upgrade")
    later = time.time() + STALE_ON_FIRST_START + 60  # the notifier first starts long after that call
    notifier = NotifierService(s.notifications, control, s.fleet, {}, None, clock=lambda: later)
    notifier.recover()
    notifier.turn(0)
    assert s.projected("alice") == []
    recent = answered_call("after the upgrade")
    notifier.turn(0)
    [doc] = s.projected("alice")
    assert doc["command_id"] == recent and doc["origin"] == "app"
    control.close()


def test_a_restarted_notifier_records_a_call_requested_before_where_it_resumes(stack):
    from commands.context import acting_as
    from gateways.notifications.runtime import NotifierService
    from iotcloud.bootstrap import build_device_control
    s = stack()
    device = {**s.device("alice", "sensor"), "correlation_ids": False}
    control = build_device_control(s.settings)

    def call(message: str):
        with acting_as("user:alice"):
            return control.dispatch(device, "trigger_notification", {"recipient": "a@example.com", "message": message},
                                    None, None, "api:test")

    def answer(command) -> None:
        command.record_answer(None, command.params)
        control.record(command)

    slow, quick = call("answered late"), call("answered first")
    answer(quick)  # the resume point of the next run is this answer, after `slow` was requested
    first = NotifierService(s.notifications, control, s.fleet, {}, None)
    first.recover()
    first.turn(0)
    assert [d["command_id"] for d in s.projected("alice")] == [str(quick.id)]
    answer(slow)  # while no notifier runs
    second = NotifierService(s.notifications, control, s.fleet, {}, None)
    second.recover()
    second.turn(0)
    assert {d["command_id"] for d in s.projected("alice")} == {str(quick.id), str(slow.id)}
    assert len(s.projected("alice")) == 2  # the first one is not recorded again
    control.close()
