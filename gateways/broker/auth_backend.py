"""The HTTP service RabbitMQ's `rabbitmq_auth_backend_http` consults on every login and permission check.

RabbitMQ POSTs form-encoded fields and reads a plain-text body: `allow [tags]` or `deny`. Whatever goes
wrong here (odd input, a failing directory) the answer is `deny`, never an error page.

Only the broker may ask: it calls over HTTPS and pins this service's self-signed certificate (so a process
that squats the port after a crash can neither read the questions nor answer them), and every path starts
with a secret only the broker's configuration knows (so a local caller cannot probe the policy).
"""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import logging
import os
import secrets
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer, make_server

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
HANDSHAKE_TIMEOUT = 5.0
MAX_REQUESTS_PER_CONNECTION = 1000


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
        registered = not password and username not in self.identities.services and self.registered(username)
        return user_decision(username, password, self.identities, registered)


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


class _PooledWSGIServer(WSGIServer):
    """Serves requests on a bounded pool: a connect storm queues instead of spawning a thread (and a
    read-store connection) per request until everything times out."""

    allow_reuse_address = True
    request_queue_size = 1024
    workers = 16

    def server_activate(self) -> None:
        super().server_activate()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="broker-auth")
        self._open: set = set()
        self._open_lock = threading.Lock()

    def process_request(self, request, client_address) -> None:
        self._pool.submit(self._handle, request, client_address)

    def _handle(self, request, client_address) -> None:
        # The TLS handshake runs here, on a pool thread: a client that stalls it holds one worker for
        # HANDSHAKE_TIMEOUT, never the accept loop.
        context = getattr(self, "tls_context", None)
        # wsgiref writes the head and the body apart: without this a kept-alive connection waits for the
        # peer's delayed ACK (40 ms) on every answer.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if context is not None:
            try:
                request.settimeout(HANDSHAKE_TIMEOUT)
                request = context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                self.shutdown_request(request)
                return
        with self._open_lock:
            self._open.add(request)
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - one broken request never stops the server
            self.handle_error(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)
            self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        # Kept-alive connections too: a stopped backend answers nothing more.
        with getattr(self, "_open_lock", threading.Lock()):
            for request in list(getattr(self, "_open", ())):
                try:
                    request.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class _KeepAliveServerHandler(ServerHandler):
    http_version = "1.1"


class _QuietHandler(WSGIRequestHandler):
    """HTTP/1.1 with keep-alive: the broker's httpc reuses its connections, so a question costs no TLS
    handshake. A connection idle for HANDSHAKE_TIMEOUT is closed (it holds a pool thread meanwhile)."""

    protocol_version = "HTTP/1.1"

    def handle(self):
        for _ in range(MAX_REQUESTS_PER_CONNECTION):
            try:
                self.raw_requestline = self.rfile.readline(65537)
            except (TimeoutError, OSError):
                return
            if len(self.raw_requestline) > 65536 or not self.parse_request():
                return
            handler = _KeepAliveServerHandler(self.rfile, self.wfile, self.get_stderr(), self.get_environ(),
                                              multithread=False)
            handler.request_handler = self
            handler.run(self.server.get_app())
            if self.close_connection:
                return

    def log_message(self, format, *args):  # noqa: A002 - signature from BaseHTTPRequestHandler
        pass


class AuthBackendServer:
    """Serves a WSGI app over HTTPS with `identity`'s certificate on a loopback port (0 picks a free one),
    from a background thread. `stop` releases the port; `start` binds it again."""

    def __init__(self, app, identity: AuthBackendIdentity, host: str = "127.0.0.1", port: int = 0):
        self.app, self._identity, self._host = app, identity, host
        self._server: _PooledWSGIServer | None = self._bind(port)
        self._port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    def _bind(self, port: int) -> _PooledWSGIServer:
        server = make_server(self._host, port, self.app, server_class=_PooledWSGIServer, handler_class=_QuietHandler)
        server.tls_context = self._identity.server_context()
        return server

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """The base URL the broker is configured with (secret included: never log it)."""
        return f"https://localhost:{self._port}/{self._identity.secret}"  # the name in its certificate

    def start(self) -> "AuthBackendServer":
        if self._server is None:
            self._server = self._bind(self._port)
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                            name="broker-auth-backend", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        self._server = None

    def __enter__(self) -> "AuthBackendServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
