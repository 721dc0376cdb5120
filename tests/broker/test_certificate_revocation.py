"""Revocation as the broker enforces it: a reissued device's old certificate fails the TLS handshake (by
serial: the CN is unchanged), and a device unregistered a moment ago cannot log in even over a TLS session
it opened before, with every core busy."""

from __future__ import annotations

import datetime as dt
import statistics
import time

import pika
import pytest
from broker_testkit import CpuLoad, PendingLogin, amqp_parameters, mqtt_login

from commands.context import acting_as
from gateways.broker.revocation import BrokerRevocation

ROUNDS = 20


@pytest.fixture
def owner(fleet, broker_node, broker_admin):
    """A user of the fleet whose unregister/reissue commands enforce revocation on this broker."""
    fleet.revocation = BrokerRevocation(broker_node.revocations, broker_admin)
    with acting_as("user:tester", correlation_id="revocation-test"):
        yield f"owner-{time.monotonic_ns()}"
    fleet.revocation = None


def credentials(issued, device_id: str, broker_node) -> dict:
    return {"device_id": device_id, "ca": broker_node.authority.certificate_pem,
            "certificate": issued.certificate.certificate_pem, "private_key": issued.certificate.private_key_pem,
            "host": "localhost", "mqtt_port": broker_node.ports.mqtts}


def amqp_login(creds: dict, broker_node, folder) -> bool:
    folder.mkdir(exist_ok=True)
    cert, key = folder / f"{creds['device_id']}-amqp.pem", folder / f"{creds['device_id']}-amqp.key"
    cert.write_text(creds["certificate"])
    key.write_text(creds["private_key"])
    try:
        pika.BlockingConnection(amqp_parameters(broker_node, cert, key)).close()
        return True
    except pika.exceptions.AMQPError:
        return False


def test_a_reissued_certificate_fails_the_handshake_and_the_new_one_logs_in(fleet, owner, broker_node, tmp_path):
    registered = fleet.register_device(owner, "kitchen")
    old = credentials(registered, registered.device_id, broker_node)
    assert mqtt_login(old, tmp_path)

    reissued = fleet.reissue_certificate(owner, "kitchen")
    new = credentials(reissued, registered.device_id, broker_node)

    assert registered.certificate.serial in broker_node.revocations.revoked_serials()
    assert not mqtt_login(old, tmp_path), "the replaced certificate still logs in over MQTT"
    assert not amqp_login(old, broker_node, tmp_path), "the replaced certificate still logs in over AMQP"
    assert mqtt_login(new, tmp_path) and amqp_login(new, broker_node, tmp_path)


def test_the_crl_is_reread_on_every_handshake_and_renewed_before_it_expires(fleet, owner, broker_node):
    revocations = broker_node.revocations
    written = revocations.crl_file.stat().st_mtime_ns
    revocations.ensure()
    assert revocations.crl_file.stat().st_mtime_ns == written  # nothing due: no rewrite
    later = type(revocations)(revocations.directory, broker_node.authority,
                              clock=lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3600))
    later.ensure()
    assert revocations.crl_file.stat().st_mtime_ns != written  # renewed well before nextUpdate


@pytest.mark.serial  # its CPU burners would slow whatever ran beside it
def test_a_login_right_after_unregister_is_refused_under_cpu_load(fleet, owner, broker_node, tmp_path):
    accepted, refused_after = [], []
    with CpuLoad() as burners:
        for round_ in range(ROUNDS):
            name = f"d{round_}"
            registered = fleet.register_device(owner, name)
            creds = credentials(registered, registered.device_id, broker_node)
            deadline = time.monotonic() + 10
            while not mqtt_login(creds, tmp_path):  # the auth backend knows the device
                assert time.monotonic() < deadline, "a registered device never logged in"
            pending = PendingLogin(creds, tmp_path)  # TLS is up before the unregistration
            started = time.monotonic()
            fleet.unregister_device(owner, name)
            if pending.connect():
                accepted.append(round_)
            refused_after.append(time.monotonic() - started)
            assert not mqtt_login(creds, tmp_path), "a fresh handshake with an unregistered certificate succeeded"
    print(f"\n{burners} CPU burners: unregister + refused CONNECT p50 "
          f"{statistics.median(refused_after) * 1000:.0f} ms, max {max(refused_after) * 1000:.0f} ms")
    assert accepted == [], f"an unregistered device logged in right after the unregistration (rounds {accepted})"
