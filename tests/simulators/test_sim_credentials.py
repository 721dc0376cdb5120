"""Credentials file, TLS context, CLI aliases, backoff."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys

import pytest

from simulators import amqp_device, fleet, mqtt_device
from simulators._cli import credentials_from_args
from simulators.credentials import Credentials, CredentialsError, load_credentials, load_many, make_plain_credentials
from simulators.mqtt_engine import Backoff

DEV = "83f58e3f7e284892f6da7b020e5c982a6ea16dee"


def write(tmp_path, data, name="device.json"):
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return p


def test_full_file_with_extra_keys(tmp_path, pki):
    cert, key = pki.issue(DEV)
    p = write(tmp_path, {"device_id": DEV, "ca": pki.ca_pem, "certificate": cert, "private_key": key,
                         "host": "broker.example", "mqtt_port": 8883, "amqp_port": 5671,
                         "devicename": "kitchen", "status": "OK", "nested": {"a": 1}})
    c = load_credentials(p)
    assert c.device_id == DEV and c.tls is True and c.host == "broker.example"
    assert c.port("mqtt") == 8883 and c.port("amqp") == 5671
    assert c.looks_like_registered_id


def test_ssl_context_settings(pki):
    cert, key = pki.issue(DEV)
    c = Credentials(device_id=DEV, ca=pki.ca_pem, certificate=cert, private_key=key)
    ctx = c.ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname is True
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert any("Simulator Test CA" in str(ca.get("subject")) for ca in ctx.get_ca_certs())


def test_ssl_context_rejects_mismatched_key(pki):
    cert, _ = pki.issue(DEV)
    _, other_key = pki.issue("other")
    with pytest.raises(CredentialsError, match="do not load"):
        Credentials(device_id=DEV, ca=pki.ca_pem, certificate=cert, private_key=other_key).ssl_context()


def test_tls_defaults_true_and_needs_pems(tmp_path):
    with pytest.raises(CredentialsError, match="TLS needs ca, certificate, private_key"):
        load_credentials(write(tmp_path, {"device_id": DEV}))


@pytest.mark.parametrize("tls", [False, "false", 0, "no"])
def test_plain_mode_needs_no_pems_and_uses_plain_ports(tmp_path, tls):
    c = load_credentials(write(tmp_path, {"device_id": DEV, "tls": tls}))
    assert c.tls is False and c.port("mqtt") == 1883 and c.port("amqp") == 5672
    with pytest.raises(CredentialsError):
        c.ssl_context()


def test_explicit_ports_win(tmp_path):
    c = load_credentials(write(tmp_path, {"device_id": DEV, "tls": False, "mqtt_port": "18830", "amqp_port": 15672}))
    assert (c.port("mqtt"), c.port("amqp")) == (18830, 15672)


@pytest.mark.parametrize("data, message", [
    ({"tls": False}, "device_id"),
    ({"device_id": "abc/def", "tls": False}, "device_id"),
    ({"device_id": "abc.def", "tls": False}, "device_id"),
    ({"device_id": "a#", "tls": False}, "device_id"),
    ({"device_id": "", "tls": False}, "device_id"),
    ({"device_id": DEV, "tls": "maybe"}, "tls"),
    ({"device_id": DEV, "tls": False, "mqtt_port": 70000}, "mqtt_port"),
    ({"device_id": DEV, "tls": False, "amqp_port": "x"}, "amqp_port"),
])
def test_bad_files(tmp_path, data, message):
    with pytest.raises(CredentialsError, match=message):
        load_credentials(write(tmp_path, data))


def test_not_json_or_not_object_or_missing(tmp_path):
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(CredentialsError, match="not valid JSON"):
        load_credentials(tmp_path / "bad.json")
    with pytest.raises(CredentialsError, match="JSON object"):
        load_credentials(write(tmp_path, [DEV]))
    with pytest.raises(CredentialsError, match="cannot read"):
        load_credentials(tmp_path / "missing.json")


def test_uuid_style_ids_are_allowed():
    c = Credentials(device_id="PH80XXRR112219EF", tls=False)
    assert not c.looks_like_registered_id


def test_load_many(tmp_path):
    d = tmp_path / "fleet"
    d.mkdir()
    ids = []
    for _ in range(3):
        data = make_plain_credentials()
        ids.append(data["device_id"])
        write(d, data, f"{data['device_id']}.json")
    (d / "notes.txt").write_text("ignored")
    extra = write(tmp_path, make_plain_credentials(), "extra.json")
    creds = load_many([extra], [d])
    assert len(creds) == 4 and set(ids) <= {c.device_id for c in creds}
    with pytest.raises(CredentialsError, match="appears in both"):
        load_many([d / f"{ids[0]}.json"], [d])


def test_seed_flag_aliases(tmp_path, pki):
    cert, key = pki.issue(DEV)
    (tmp_path / "ca.pem").write_text(pki.ca_pem)
    (tmp_path / "c.pem").write_text(cert)
    (tmp_path / "k.pem").write_text(key)
    parser = mqtt_device.build_parser()
    args = parser.parse_args(["--USE_DEVICE_ID", DEV, "--USE_DEVICE_CA", str(tmp_path / "ca.pem"),
                              "--USE_DEVICE_CERT", str(tmp_path / "c.pem"), "--USE_DEVICE_PKEY", str(tmp_path / "k.pem"),
                              "--USE_HOST", "localhost", "--USE_PORT", "18883"])
    c = credentials_from_args(parser, args, "mqtt")
    assert (c.device_id, c.host, c.port("mqtt"), c.port("amqp")) == (DEV, "localhost", 18883, 5671)
    assert c.certificate == cert and c.private_key == key and c.ca == pki.ca_pem


def test_flags_override_file(tmp_path):
    p = write(tmp_path, {"device_id": DEV, "tls": False, "host": "h1", "amqp_port": 5672})
    parser = amqp_device.build_parser()
    args = parser.parse_args(["--credentials", str(p), "--host", "h2", "--port", "5999", "--notification-recipient", "me@x"])
    c = credentials_from_args(parser, args, "amqp")
    assert (c.host, c.port("amqp"), c.port("mqtt"), c.notification_recipient) == ("h2", 5999, 1883, "me@x")


@pytest.mark.parametrize("module, protocol", [(mqtt_device, "mqtt"), (amqp_device, "amqp")])
def test_seed_username_and_password_flags_alone_make_a_password_device(module, protocol):
    """libpyiotcloud's devices ran with host, port, username and password only: no certificate, no CA."""
    parser = module.build_parser()
    args = parser.parse_args(["--USE_HOST", "localhost", "--USE_PORT", "5999", "--USE_USERNAME", DEV,
                              "--USE_PASSWORD", "s3cret"])
    c = credentials_from_args(parser, args, protocol)
    assert (c.device_id, c.username, c.password, c.port(protocol), c.password_login) == (DEV, DEV, "s3cret", 5999, True)
    context = c.ssl_context()
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname  # as the seed's devices
    if module is amqp_device:
        assert isinstance(amqp_device.connection_parameters(c).credentials, amqp_device.pika.PlainCredentials)


def test_a_saved_password_registration_logs_in_by_password_and_verifies_the_broker(tmp_path, pki):
    data = {"device_id": DEV, "ca": pki.ca_pem, "certificate": "unused", "private_key": "unused",
            "login": "password", "username": DEV, "broker_password": "s3cret"}
    (tmp_path / "d.json").write_text(json.dumps(data))
    c = load_credentials(tmp_path / "d.json")
    assert c.password_login and c.password == "s3cret"
    context = c.ssl_context()  # no client certificate loaded (the PEMs above would not load)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_missing_credentials_is_a_usage_error(capsys):
    parser = mqtt_device.build_parser()
    with pytest.raises(SystemExit) as exc:
        credentials_from_args(parser, parser.parse_args([]), "mqtt")
    assert exc.value.code == 2
    assert "--credentials" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["simulators.mqtt_device", "simulators.amqp_device", "simulators.fleet",
                                    "simulators.credentials"])
def test_help(module):
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout
    assert "libpyiotcloud" in out.stdout or "credential" in out.stdout


def test_fleet_parser_requires_inputs(capsys):
    with pytest.raises(SystemExit):
        fleet.main([])
    assert "--credentials-dir" in capsys.readouterr().err


def test_backoff_grows_caps_and_resets():
    b = Backoff(initial=1, maximum=8, factor=2, jitter=0.0)
    assert [b.next() for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    b.reset()
    assert b.next() == 1


def test_backoff_jitter_bounds():
    lo = Backoff(initial=10, jitter=0.2, rng=lambda: 0.0).next()
    hi = Backoff(initial=10, jitter=0.2, rng=lambda: 1.0).next()
    assert lo == pytest.approx(8.0) and hi == pytest.approx(12.0)
