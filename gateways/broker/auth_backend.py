"""The HTTP service RabbitMQ's `rabbitmq_auth_backend_http` consults on every login and permission check.

RabbitMQ POSTs form-encoded fields and reads a plain-text body: `allow [tags]` or `deny`. Whatever goes
wrong here (odd input, a failing directory) the answer is `deny`, never an error page.

Only the broker may ask: it calls over HTTPS and pins this service's self-signed certificate (so a process
that squats the port after a crash can neither read the questions nor answer them), and every path starts
with a secret only the broker's configuration knows (so a local caller cannot probe the policy). The HTTPS
server itself is gateways.broker.auth_server.
"""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import logging
import os
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl

import falcon
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .directory import DeviceDirectory
from .node import AdminCredentials
from .policy import DENY, Identities, resource_decision, topic_decision, user_decision, vhost_decision
from .topology import GATEWAY_SERVICE

log = logging.getLogger(__name__)

MAX_BODY = 8192
MAX_FIELDS = 32
TLS_VALIDITY_DAYS = 3650


@dataclass(frozen=True, slots=True)
class AuthBackendIdentity:
    """What binds the broker to its auth backend: a certificate the broker pins (`ca_file`, the only
    certificate its one-off issuer ever signed; that issuer's key is discarded), the backend's key, and the
    path secret the broker puts in front of every question."""

    cert_file: Path
    key_file: Path
    ca_file: Path
    secret: str

    @classmethod
    def load_or_create(cls, broker_state_dir: str | os.PathLike) -> "AuthBackendIdentity":
        folder = Path(broker_state_dir) / "auth-backend"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        cert_file, key_file, ca_file = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
        secret_file = folder / "secret"
        if not cert_file.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            certificate, issuer = _pinned_certificate(key)
            _create_private(key_file, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
            _create_private(ca_file, issuer.public_bytes(serialization.Encoding.PEM))
            _create_private(cert_file, certificate.public_bytes(serialization.Encoding.PEM))
        if not secret_file.exists():
            _create_private(secret_file, secrets.token_urlsafe(32).encode())
        return cls(cert_file, key_file, ca_file, secret_file.read_text().strip())

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


def _pinned_certificate(key) -> tuple[x509.Certificate, x509.Certificate]:
    """A server certificate for 127.0.0.1/localhost and its one-off issuer (Erlang's ssl accepts only a CA
    as trust anchor, not a self-signed leaf). The issuer key never leaves this function."""
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    issuer_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"iotcloud broker auth pin {secrets.token_hex(8)}")])

    def builder(subject, public_key):
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(public_key)
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=TLS_VALIDITY_DAYS)))

    issuer = (builder(issuer_name, issuer_key.public_key())
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=False,
                                           content_commitment=False, key_encipherment=False, data_encipherment=False,
                                           key_agreement=False, encipher_only=False, decipher_only=False),
                             critical=True)
              .sign(issuer_key, hashes.SHA256()))
    certificate = (builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), key.public_key())
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                              x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .sign(issuer_key, hashes.SHA256()))
    return certificate, issuer


def _create_private(path: Path, data: bytes) -> None:
    """O_EXCL: two processes creating the identity at once never mix one's key with the other's cert."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)


class InvalidRequest(ValueError):
    """The backend request cannot be read; it is answered with `deny`."""


def parse_fields(body: bytes) -> dict[str, str]:
    """Parses the form body strictly: UTF-8, no repeated field, bounded size."""
    if len(body) > MAX_BODY:
        raise InvalidRequest("body too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          errors="strict", max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest(str(exc)) from exc
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:
            raise InvalidRequest(f"repeated field {key!r}")
        fields[key] = value
    return fields


def _required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name)
    if value is None:
        raise InvalidRequest(f"missing {name}")
    return value


class _Endpoint:
    """Common plumbing: parse, decide, answer `allow`/`deny` as text; any exception means `deny`."""

    def __init__(self, directory: DeviceDirectory, identities: Identities, secret: str):
        self.directory = directory
        self.identities = identities
        self._secret = secret.encode()

    def decide(self, fields: Mapping[str, str]) -> str:
        raise NotImplementedError

    def registered(self, username: str) -> bool:
        return bool(self.directory.is_registered(username))

    def on_post(self, req: falcon.Request, resp: falcon.Response, key: str) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        if not hmac.compare_digest(key.encode(), self._secret):
            log.warning("broker auth question without the broker's secret refused")
            resp.status, resp.text = falcon.HTTP_403, DENY
            return
        fields: dict[str, str] = {}
        try:
            fields = parse_fields(req.bounded_stream.read(MAX_BODY + 1))
            answer = self.decide(fields)
        except Exception as exc:  # noqa: BLE001 - the broker must get an answer, never a 500
            log.warning("broker auth %s refused (%s): %s", req.path.rsplit("/", 1)[-1], type(exc).__name__, exc)
            answer = DENY
        if answer == DENY:
            log.info("broker auth deny %s %s", req.path.rsplit("/", 1)[-1],
                     {k: v for k, v in fields.items() if k != "password"})
        resp.text = answer


class _User(_Endpoint):
    def decide(self, fields):
        username = _required(fields, "username")
        password = fields.get("password")
        if username in self.identities.services or self.identities.reserved(username):
            return user_decision(username, password, self.identities, False)
        registered = self.registered(username)
        password_hash = self.directory.password_hash(username) if password is not None and registered else None
        return user_decision(username, password, self.identities, registered, password_hash)


class _Vhost(_Endpoint):
    def decide(self, fields):
        username = _required(fields, "username")
        registered = username not in self.identities.services and self.registered(username)
        allowed = vhost_decision(username, _required(fields, "vhost"), fields.get("client_id"),
                                 self.identities, registered)
        return "allow" if allowed else DENY


class _Resource(_Endpoint):
    def decide(self, fields):
        allowed = resource_decision(_required(fields, "username"), _required(fields, "vhost"),
                                    _required(fields, "resource"), _required(fields, "name"),
                                    _required(fields, "permission"), fields.get("client_id"), self.identities)
        return "allow" if allowed else DENY


class _Topic(_Endpoint):
    def decide(self, fields):
        if _required(fields, "resource") != "topic":
            return DENY
        allowed = topic_decision(_required(fields, "username"), _required(fields, "vhost"),
                                 _required(fields, "name"), _required(fields, "permission"),
                                 _required(fields, "routing_key"), fields.get("variable_map.client_id"),
                                 self.identities)
        return "allow" if allowed else DENY


def create_auth_app(directory: DeviceDirectory, service_accounts: Iterable[str] = (GATEWAY_SERVICE,), *,
                    secret: str, admin: AdminCredentials | None = None) -> falcon.App:
    """The WSGI app answering `/<secret>/auth/user`, `.../vhost`, `.../resource` and `.../topic`.

    `service_accounts` are certificate CNs granted the backend-gateway role; `admin` is the management-API
    login (see `load_or_create_admin_credentials`), without which the management API is unusable.
    """
    identities = Identities(frozenset(service_accounts), admin.username if admin else None,
                            admin.password if admin else None)
    app = falcon.App(media_type=falcon.MEDIA_TEXT)
    app.req_options.auto_parse_form_urlencoded = False
    for path, endpoint in (("user", _User), ("vhost", _Vhost), ("resource", _Resource), ("topic", _Topic)):
        app.add_route(f"/{{key}}/auth/{path}", endpoint(directory, identities, secret))
    return app
