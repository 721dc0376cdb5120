"""DeviceFleet scenarios, run on the in-memory, SQLite and PostgreSQL event stores."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from commands.context import acting_as
from commands.domain.device_ids import DEVICE_ID_PATTERN
from commands.domain.devices import Device
from commands.errors import DeviceNameTaken, DeviceNotFound, InvalidCertificateRequest, ValidationFailed


def common_name(pem: str) -> str:
    cert = x509.load_pem_x509_certificate(pem.encode())
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def events_of(fleet, device_id):
    return list(fleet.events.get(Device.create_id(device_id)))


class TestRegisterDevice:
    def test_issues_a_client_certificate_whose_cn_is_the_new_device_id(self, fleet):
        credentials = fleet.register_device("alice", "kitchen")
        assert DEVICE_ID_PATTERN.match(credentials.device_id)
        cert = x509.load_pem_x509_certificate(credentials.certificate.certificate_pem.encode())
        assert common_name(credentials.certificate.certificate_pem) == credentials.device_id
        assert ExtendedKeyUsageOID.CLIENT_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        ca = x509.load_pem_x509_certificate(credentials.ca_pem.encode())
        cert.verify_directly_issued_by(ca)
        key = serialization.load_pem_private_key(credentials.certificate.private_key_pem.encode(), None)
        assert key.public_key().public_numbers() == cert.public_key().public_numbers()

    def test_records_who_registered_it_and_why(self, fleet):
        with acting_as("user:alice", correlation_id="corr-1", causation_id="req-1"):
            credentials = fleet.register_device("alice", "kitchen")
        (registered,) = events_of(fleet, credentials.device_id)
        assert (registered.actor, registered.correlation_id, registered.causation_id) == ("user:alice", "corr-1", "req-1")
        assert registered.owner == "alice" and registered.name == "kitchen"

    def test_never_stores_the_private_key(self, fleet):
        credentials = fleet.register_device("alice", "kitchen")
        for notification in fleet.recorder.select_notifications(start=1, limit=100):
            assert b"PRIVATE KEY" not in notification.state
        assert "BEGIN PRIVATE KEY" in credentials.certificate.private_key_pem

    def test_device_ids_are_unique_and_unguessable(self, fleet):
        ids = {fleet.register_device("alice", f"d{i}").device_id for i in range(20)}
        assert len(ids) == 20

    def test_names_are_unique_per_owner_but_not_across_owners(self, fleet):
        fleet.register_device("alice", "kitchen")
        with pytest.raises(DeviceNameTaken):
            fleet.register_device("alice", "kitchen")
        assert fleet.register_device("bob", "kitchen").device_id

    @pytest.mark.parametrize("name", ["", " lead", "a/b", "x" * 65, None, 5, "tab\tname"])
    def test_rejects_bad_names(self, fleet, name):
        with pytest.raises(ValidationFailed):
            fleet.register_device("alice", name)

    def test_signs_a_csr_so_the_device_keeps_its_key(self, fleet):
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ignored")]))
               .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
        credentials = fleet.register_device("alice", "own-key", csr)
        cert = x509.load_pem_x509_certificate(credentials.certificate.certificate_pem.encode())
        assert cert.public_key().public_numbers() == key.public_key().public_numbers()
        assert credentials.certificate.private_key_pem == ""
        assert common_name(credentials.certificate.certificate_pem) == credentials.device_id

    def test_rejects_a_malformed_csr(self, fleet):
        with pytest.raises(InvalidCertificateRequest):
            fleet.register_device("alice", "broken", "-----BEGIN CERTIFICATE REQUEST-----\nnope\n")


class TestUnregisterDevice:
    def test_frees_the_name_for_a_new_device(self, fleet):
        first = fleet.register_device("alice", "kitchen")
        fleet.unregister_device("alice", "kitchen")
        second = fleet.register_device("alice", "kitchen")
        assert second.device_id != first.device_id
        assert [type(e).__name__ for e in events_of(fleet, first.device_id)] == ["Registered", "Unregistered"]

    def test_another_owner_cannot_unregister_it(self, fleet):
        fleet.register_device("alice", "kitchen")
        with pytest.raises(DeviceNotFound):
            fleet.unregister_device("mallory", "kitchen")

    def test_twice_is_not_found(self, fleet):
        fleet.register_device("alice", "kitchen")
        fleet.unregister_device("alice", "kitchen")
        with pytest.raises(DeviceNotFound):
            fleet.unregister_device("alice", "kitchen")


class TestReissueCertificate:
    def test_new_serial_same_device(self, fleet):
        first = fleet.register_device("alice", "kitchen")
        second = fleet.reissue_certificate("alice", "kitchen")
        assert second.device_id == first.device_id
        assert second.certificate.serial != first.certificate.serial
        assert common_name(second.certificate.certificate_pem) == first.device_id
        assert [type(e).__name__ for e in events_of(fleet, first.device_id)] == ["Registered", "CertificateReissued"]

    def test_unknown_device(self, fleet):
        with pytest.raises(DeviceNotFound):
            fleet.reissue_certificate("alice", "ghost")


class TestPasswordLogin:
    def test_the_password_is_answered_once_and_only_its_hash_is_stored(self, fleet):
        from commands.broker_passwords import broker_password_matches
        credentials = fleet.register_device("alice", "pw", password_login=True)
        assert len(credentials.broker_password) >= 43  # 32 random bytes, urlsafe base64
        for notification in fleet.recorder.select_notifications(start=1, limit=100):
            assert credentials.broker_password.encode() not in notification.state
        device = fleet.repository.get(Device.create_id(credentials.device_id))
        assert broker_password_matches(device.broker_password_hash, credentials.broker_password)
        assert not broker_password_matches(device.broker_password_hash, credentials.broker_password + "x")
        assert fleet.register_device("alice", "certificate-only").broker_password is None

    def test_rotation_replaces_the_hash_and_only_for_password_devices(self, fleet):
        from commands.broker_passwords import broker_password_matches
        from commands.errors import PasswordLoginNotEnabled
        first = fleet.register_device("alice", "pw", password_login=True)
        device_id, second, _ = fleet.rotate_broker_password("alice", "pw")
        assert device_id == first.device_id and second != first.broker_password
        stored = fleet.repository.get(Device.create_id(device_id)).broker_password_hash
        assert broker_password_matches(stored, second) and not broker_password_matches(stored, first.broker_password)
        fleet.register_device("alice", "cert")
        with pytest.raises(PasswordLoginNotEnabled):
            fleet.rotate_broker_password("alice", "cert")
        with pytest.raises(DeviceNotFound):
            fleet.rotate_broker_password("mallory", "pw")
