"""A few hundred devices connected at once through the real broker, auth backend and connection tracking:
what bench/connected_fleet.py measures with 10,000 devices, at a size the test suite affords."""

from __future__ import annotations

import threading
import time

import pytest

from simulators.credentials import Credentials
from simulators.mqtt_engine import MqttDevice, MqttLoop

DEVICES = 200
MAX_CONNECTING = 16  # as bench/connected_fleet.py runs its simulators


@pytest.fixture
def fleet_connected(make_device, broker_node):
    certs = [make_device() for _ in range(DEVICES)]
    ca = broker_node.ca_file.read_text()
    loop = MqttLoop(max_connecting=MAX_CONNECTING)
    for cert in certs:
        loop.add(MqttDevice(Credentials(cert.device_id, host="localhost", ca=ca, certificate=cert.cert_file.read_text(),
                                        private_key=cert.key_file.read_text(), mqtt_port=broker_node.ports.mqtts),
                            loop))
    thread = threading.Thread(target=loop.run, name="test-fleet", daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        while loop.stats.all_subscribed_at is None:
            assert time.monotonic() - started < 90, f"only {loop.stats.subscribed}/{DEVICES} subscribed"
            time.sleep(0.05)
        yield loop, certs
    finally:
        loop.stop()
        thread.join(15)


def test_hundreds_of_devices_are_listed_and_one_is_revoked_alone(fleet_connected, broker_admin, device_directory):
    loop, certs = fleet_connected
    assert loop.stats.failures == 0 and loop.stats.disconnects == 0
    assert loop.stats.peak_connecting == MAX_CONNECTING and loop.stats.connecting == 0

    # Listed the moment they are connected (connection tracking; the statistics database lagged ~5 s,
    # so the devices of the last seconds were missing from the gateway's presence reconciliation).
    listed = broker_admin.connections_by_user()
    missing = [c.device_id for c in certs if len(listed.get(c.device_id, ())) != 1]
    assert missing == []

    victim = certs[len(certs) // 2]
    victim_device = next(d for d in loop.devices if d.id == victim.device_id)
    device_directory.unregister(victim.device_id)
    started = time.monotonic()
    assert broker_admin.close_device_connections(victim.device_id) == 1
    while victim_device.connected:
        assert time.monotonic() - started < 2.0, "the revoked device is still connected"
        time.sleep(0.01)
    time.sleep(1.5)  # its simulator retries after ~1 s: refused, as no longer registered
    assert not victim_device.connected and loop.stats.connected == DEVICES - 1
    assert broker_admin.connections_of(victim.device_id) == []
