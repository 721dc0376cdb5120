"""The gateway's sweeps after a revocation (gateways/devices/revocation_sweeps.py): which connections they
close, told by the certificate the broker's connection events name, through the real management client
against a stand-in for the broker's connection tracking. The broker's own side, with a TLS session set up
before a reissue that logs in seconds later, is tests/control/test_synchronous_revocation.py."""

from __future__ import annotations

import http.server
import json
import threading
from urllib.parse import unquote, urlsplit

import pytest

from commands.pki import CertificateAuthority
from gateways.broker.admin import BrokerAdmin
from gateways.broker.node import AdminCredentials, PrivateBrokerNode
from gateways.broker.node_config import rabbitmq_conf
from gateways.devices.broker_link import certificate_serial
from gateways.devices.messages import PresenceChange
from gateways.devices.revocation_sweeps import REISSUED_SWEEPS_FOR, SWEEP_EVERY, RevocationSweeps
from iotcloud.config import Settings

DEVICE = "d" * 40
NEW, OLD = "a1" * 20, "b2" * 20


class Tracking(http.server.BaseHTTPRequestHandler):
    """`/api/connections/username/<user>` and `DELETE /api/connections/<name>`, over a dict name -> user."""

    connections: dict[str, str] = {}

    def do_GET(self):  # noqa: N802 - the http.server hook's name
        user = unquote(urlsplit(self.path).path.removeprefix("/api/connections/username/"))
        self._answer(200, json.dumps([{"name": n, "user": u} for n, u in self.connections.items() if u == user]))

    def do_DELETE(self):  # noqa: N802
        name = unquote(urlsplit(self.path).path.removeprefix("/api/connections/"))
        self._answer(204 if self.connections.pop(name, None) else 404, "")

    def _answer(self, status: int, body: str):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def broker():
    Tracking.connections = {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tracking)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    admin = BrokerAdmin(f"http://127.0.0.1:{server.server_address[1]}", AdminCredentials("admin", "secret"))
    yield Tracking.connections, admin
    admin.close()
    server.shutdown()
    server.server_close()


def opened(sweeps, live, name: str, certificate: str | None, device_id: str = DEVICE) -> None:
    live[name] = device_id
    sweeps.observe(PresenceChange(device_id, name, True, "MQTT", 0.0, certificate))


def test_after_a_reissue_only_connections_of_another_certificate_are_closed(broker):
    live, admin = broker
    sweeps = RevocationSweeps(admin, clock=Clock())
    opened(sweeps, live, "old", OLD)
    opened(sweeps, live, "older-than-serials", "")  # issued before subjects named the serial
    opened(sweeps, live, "new", NEW)
    opened(sweeps, live, "password", None)  # a password login: no certificate to judge
    opened(sweeps, live, "other-device", OLD, device_id="e" * 40)
    live["not-reported-yet"] = DEVICE  # listed by tracking, its event still on its way: not guessed
    sweeps.reissued(DEVICE, NEW.upper())
    assert sorted(live) == ["new", "not-reported-yet", "other-device", "password"]


def test_a_session_that_logs_in_with_the_old_certificate_during_the_sweeps_is_closed_at_once(broker):
    live, admin = broker
    clock = Clock()
    sweeps = RevocationSweeps(admin, clock=clock)
    sweeps.reissued(DEVICE, NEW)
    clock.now += 3.0  # a TLS session set up before the reissue logs in three seconds later
    opened(sweeps, live, "late-old", OLD)
    opened(sweeps, live, "new", NEW)
    assert sorted(live) == ["new"]
    clock.now += REISSUED_SWEEPS_FOR  # the window is over: a connection is not judged any more
    sweeps.run_due()
    opened(sweeps, live, "much-later", OLD)
    assert sorted(live) == ["much-later", "new"]


def test_after_an_unregistration_every_connection_is_closed_for_a_while(broker):
    live, admin = broker
    clock = Clock()
    sweeps = RevocationSweeps(admin, clock=clock)
    opened(sweeps, live, "cert", NEW)
    opened(sweeps, live, "password", None)
    sweeps.unregistered(DEVICE)
    assert live == {}
    live["listed-a-moment-later"] = DEVICE  # a login accepted just before the unregistration was saved
    clock.now += SWEEP_EVERY / 2
    sweeps.run_due()
    assert list(live) == ["listed-a-moment-later"]  # sweeps are paced
    clock.now += SWEEP_EVERY / 2
    sweeps.run_due()
    assert live == {}


def test_connections_the_broker_no_longer_lists_are_forgotten(broker):
    live, admin = broker
    sweeps = RevocationSweeps(admin, clock=Clock())
    opened(sweeps, live, "kept", NEW)
    opened(sweeps, live, "closed-while-away", NEW)
    sweeps.observe(PresenceChange(DEVICE, "closed-normally", False, "", 0.0))
    sweeps.listed({"kept"})
    assert set(sweeps._certificates) == {"kept"}


def test_the_serial_is_read_from_the_subject_the_broker_reports():
    assert certificate_serial(b"SERIALNUMBER=3A4C,CN=" + DEVICE.encode()) == "3a4c"
    assert certificate_serial("CN=x,2.5.4.5=ff01") == "ff01"
    assert certificate_serial("CN=x") == ""
    assert certificate_serial(None) is None and certificate_serial("") is None


def test_a_device_certificate_names_its_serial_in_its_subject(tmp_path):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    issued = CertificateAuthority.load_or_create(tmp_path).issue_client_certificate(DEVICE, validity_days=1)
    subject = x509.load_pem_x509_certificate(issued.certificate_pem.encode()).subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == DEVICE
    assert subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == issued.serial


def test_the_node_keeps_no_statistics_unless_asked(tmp_path):
    authority = CertificateAuthority.load_or_create(tmp_path / "pki")
    line = "management_agent.disable_metrics_collector = true"
    assert line in rabbitmq_conf(PrivateBrokerNode(tmp_path / "a", authority, auth_backend_url="http://127.0.0.1:1"))
    assert line not in rabbitmq_conf(PrivateBrokerNode(tmp_path / "b", authority, auth_backend_url="http://127.0.0.1:1",
                                                       statistics=True))
    assert Settings().broker_statistics_enabled is False
    assert Settings.from_env({"IOTCLOUD_BROKER_STATISTICS": "on"}).broker_statistics_enabled is True
    with pytest.raises(ValueError, match="IOTCLOUD_BROKER_STATISTICS"):
        _ = Settings.from_env({"IOTCLOUD_BROKER_STATISTICS": "yes"}).broker_statistics_enabled
