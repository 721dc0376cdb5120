"""Finding 8 (CA key): certificates come from the `iotcloud signer` process; the API never opens the key."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from commands.domain.device_ids import new_device_id
from iotcloud.bootstrap import build_platform
from tests.api.conftest import Api, assert_problem

# Audit hooks cannot be removed: one hook for the session, recording only while a test asks.
OPENED: list[str] | None = None


def _record_opens(event, args):
    if OPENED is not None and event == "open":
        OPENED.append(str(args[0]))


sys.addaudithook(_record_opens)


def csr_pem(key, algorithm=hashes.SHA256()) -> str:
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "iotcloud-gateway")]))
            .sign(key, algorithm).public_bytes(serialization.Encoding.PEM).decode())


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def raw_call(path, payload: bytes, declared_length: int | None = None) -> dict | None:
    """One request over the signer socket, framed by hand so tests can lie about lengths."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        length = len(payload) if declared_length is None else declared_length
        sock.sendall(struct.pack(">I", length) + payload)
        header = sock.recv(4, socket.MSG_WAITALL)
        if len(header) < 4:
            return None
        (size,) = struct.unpack(">I", header)
        return json.loads(sock.recv(size, socket.MSG_WAITALL))


def call(path, request: dict) -> dict:
    return raw_call(path, json.dumps(request).encode())


@pytest.fixture
def signer_process(make_settings, tmp_path):
    """The real `iotcloud signer` process on a fresh state directory."""
    settings = make_settings("sqlite")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("IOTCLOUD_", "POSTGRES_"))},
           "IOTCLOUD_STATE_DIR": str(settings.state_dir), "IOTCLOUD_DEVICE_CERT_DAYS": "730"}
    log = open(tmp_path / "signer.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "iotcloud.cli", "signer"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while not settings.signer_socket_path.is_socket():
        assert process.poll() is None, (tmp_path / "signer.log").read_text()
        assert time.monotonic() < deadline, "the signer did not listen within 30 s"
        time.sleep(0.05)
    yield settings, process
    process.terminate()
    process.wait(10)
    log.close()


def test_the_api_composition_root_never_opens_the_ca_key(signer_process):
    global OPENED
    settings, _ = signer_process
    ca_key = settings.pki_dir / "ca.key"
    OPENED = []
    try:
        platform = build_platform(settings)
        try:
            credentials = platform.fleet.register_device("alice", "kitchen")
            ca_pem = platform.fleet.ca_certificate_pem
        finally:
            platform.close()
        opened = list(OPENED)
    finally:
        OPENED = None
    assert opened, "the audit hook saw no file opened at all"
    assert not [p for p in opened if os.path.basename(p) == "ca.key"], f"the API opened the CA key: {opened}"
    certificate = x509.load_pem_x509_certificate(credentials.certificate.certificate_pem.encode())
    certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem.encode()))
    assert ca_pem.encode() == (settings.pki_dir / "ca.pem").read_bytes()
    assert "BEGIN PRIVATE KEY" in credentials.certificate.private_key_pem  # the device's own key
    assert ca_key.exists()


def test_the_api_registers_devices_with_no_ca_key_anywhere_it_can_see(signer_process, tmp_path):
    settings, _ = signer_process
    api_settings = dataclasses.replace(settings, state_dir=tmp_path / "api-state",
                                       signer_socket=str(settings.signer_socket_path))
    platform = build_platform(api_settings)
    try:
        credentials = platform.fleet.register_device("alice", "kitchen")
    finally:
        platform.close()
    assert not (api_settings.pki_dir).exists(), "the API created a CA of its own"
    ca = x509.load_pem_x509_certificate((settings.pki_dir / "ca.pem").read_bytes())
    x509.load_pem_x509_certificate(credentials.certificate.certificate_pem.encode()).verify_directly_issued_by(ca)


def test_the_signer_refuses_anything_but_a_device_csr_and_survives(signer_process):
    settings, process = signer_process
    path = settings.signer_socket_path
    device_id, good = new_device_id(), csr_pem(ec.generate_private_key(ec.SECP256R1()))
    sign = {"op": "sign", "device_id": device_id, "csr": good, "validity_days": 30}
    refused = {
        "service identity": {**sign, "device_id": "iotcloud-gateway"},
        "trailing newline": {**sign, "device_id": device_id + "\n"},
        "upper case id": {**sign, "device_id": device_id.upper()},
        "zero days": {**sign, "validity_days": 0},
        "too many days": {**sign, "validity_days": 731},
        "boolean days": {**sign, "validity_days": True},
        "string days": {**sign, "validity_days": "30"},
        "extra field": {**sign, "ca": True},
        "missing field": {k: v for k, v in sign.items() if k != "csr"},
        "server certificate": {"op": "issue_server_certificate", "common_name": "localhost"},
        "ca with extras": {"op": "ca", "key": True},
    }
    for why, request in refused.items():
        assert call(path, request)["error"] == "bad-request", why
    for why, csr in {"secp224r1": csr_pem(ec.generate_private_key(ec.SECP224R1())),
                     "ed25519": csr_pem(ed25519.Ed25519PrivateKey.generate(), algorithm=None),
                     "oversized": good + " " * 9000, "not a csr": "hello", "not a string": ["x"]}.items():
        assert call(path, {**sign, "csr": csr})["error"] == "invalid-csr", why
    assert raw_call(path, b"x" * 16, declared_length=100_000_000)["error"] == "bad-request"
    assert raw_call(path, b"\xff\xfe not json")["error"] == "bad-request"
    assert raw_call(path, b"[" * 30_000)["error"] == "bad-request"
    assert raw_call(path, b"[1, 2]")["error"] == "bad-request"

    assert process.poll() is None
    answer = call(path, sign)
    assert answer["ok"] is True
    certificate = x509.load_pem_x509_certificate(answer["certificate"].encode())
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == device_id
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == \
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime.days <= 31
    assert call(path, {"op": "ca"})["certificate"].encode() == (settings.pki_dir / "ca.pem").read_bytes()


def test_the_socket_and_the_key_are_private(signer_process):
    settings, _ = signer_process
    assert stat.S_ISSOCK(os.lstat(settings.signer_socket_path).st_mode)
    assert mode(settings.signer_socket_path) == 0o600
    assert mode(settings.signer_socket_path.parent) == 0o700
    assert mode(settings.pki_dir / "ca.key") == 0o600
    assert mode(settings.pki_dir) == 0o700 and mode(settings.state_dir) == 0o700


def test_a_second_signer_does_not_steal_a_live_socket(signer_process):
    settings, _ = signer_process
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("IOTCLOUD_", "POSTGRES_"))},
           "IOTCLOUD_STATE_DIR": str(settings.state_dir)}
    second = subprocess.run([sys.executable, "-m", "iotcloud.cli", "signer"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert second.returncode != 0 and "already listening" in second.stderr
    assert call(settings.signer_socket_path, {"op": "ca"})["ok"] is True


class TestThroughTheApi:
    def test_weak_or_unverified_keys_get_a_400_invalid_csr_problem(self, running_platform):
        api = Api(running_platform)
        token = api.signed_in()
        for key, algorithm in ((ec.generate_private_key(ec.SECP192R1()), hashes.SHA256()),
                               (ec.generate_private_key(ec.SECP224R1()), hashes.SHA256()),
                               (ed25519.Ed25519PrivateKey.generate(), None)):
            answer = api.post("/v1/devices", {"name": "weak", "csr": csr_pem(key, algorithm)}, token)
            assert_problem(answer, 400, "invalid-csr")
        good = api.post("/v1/devices", {"name": "p384", "csr": csr_pem(ec.generate_private_key(ec.SECP384R1()))}, token)
        assert good.status_code == 201, good.text

    def test_a_missing_signer_is_a_503_problem_not_a_500(self, running_platform):
        api = Api(running_platform)
        token = api.signed_in()
        running_platform.signer.stop()
        answer = api.post("/v1/devices", {"name": "later"}, token)
        assert_problem(answer, 503, "signer-unavailable")


def test_a_signer_killed_with_sigkill_is_replaced_on_restart(signer_process, tmp_path):
    settings, process = signer_process
    process.kill()
    process.wait(10)
    assert settings.signer_socket_path.is_socket()  # stale: nobody answers on it
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("IOTCLOUD_", "POSTGRES_"))},
           "IOTCLOUD_STATE_DIR": str(settings.state_dir)}
    restarted = subprocess.Popen([sys.executable, "-m", "iotcloud.cli", "signer"], env=env,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if call(settings.signer_socket_path, {"op": "ca"})["ok"]:
                    break
            except OSError:
                pass
            assert restarted.poll() is None and time.monotonic() < deadline, "the signer did not come back"
            time.sleep(0.05)
        assert mode(settings.signer_socket_path) == 0o600
    finally:
        restarted.terminate()
        restarted.wait(10)


def test_a_socket_path_too_long_for_unix_sockets_is_a_clear_error(make_settings, tmp_path):
    from iotcloud.bootstrap import build_signer
    settings = dataclasses.replace(make_settings("sqlite"), signer_socket=str(tmp_path / ("x" * 120) / "s.sock"))
    with pytest.raises(ValueError, match="IOTCLOUD_SIGNER_SOCKET"):
        build_signer(settings).start()


def test_the_signer_signs_revocation_lists_that_only_revoke_and_lapse(signer_process):
    """The API keeps the broker's CRL current through the signer, without the CA key."""
    import datetime as dt

    from gateways.signer import SignerClient
    settings, _ = signer_process
    client = SignerClient(settings.signer_socket_path)
    now = dt.datetime.now(dt.timezone.utc)
    der = client.sign_crl({0x1F2E: now, 7: now - dt.timedelta(hours=1)}, now + dt.timedelta(days=7))
    crl = x509.load_der_x509_crl(der)
    ca = x509.load_pem_x509_certificate(client.certificate_pem.encode())
    assert crl.is_signature_valid(ca.public_key())
    assert sorted(r.serial_number for r in crl) == [7, 0x1F2E]
    path = settings.signer_socket_path
    too_long = call(path, {"op": "crl", "revoked": [], "next_update": (now + dt.timedelta(days=4000)).isoformat()})
    naive = call(path, {"op": "crl", "revoked": [["ab", now.replace(tzinfo=None).isoformat()]],
                        "next_update": (now + dt.timedelta(days=1)).isoformat()})
    junk = call(path, {"op": "crl", "revoked": [["not-hex", now.isoformat()]],
                       "next_update": (now + dt.timedelta(days=1)).isoformat()})
    assert [a["ok"] for a in (too_long, naive, junk)] == [False, False, False]
    assert {a["error"] for a in (too_long, naive, junk)} == {"bad-request"}
    assert client.sign_crl({}, now + dt.timedelta(days=1))  # and it still serves
