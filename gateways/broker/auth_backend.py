"""The HTTP service RabbitMQ's `rabbitmq_auth_backend_http` consults on every login and permission check.

RabbitMQ POSTs form-encoded fields and reads a plain-text body: `allow [tags]` or `deny`. Whatever goes
wrong here (odd input, a failing directory) the answer is `deny`, never an error page.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
import threading
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import falcon

from .directory import DeviceDirectory
from .node import AdminCredentials
from .policy import DENY, Identities, resource_decision, topic_decision, user_decision, vhost_decision

log = logging.getLogger(__name__)

MAX_BODY = 8192
MAX_FIELDS = 32


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

    def __init__(self, directory: DeviceDirectory, identities: Identities):
        self.directory = directory
        self.identities = identities

    def decide(self, fields: Mapping[str, str]) -> str:
        raise NotImplementedError

    def registered(self, username: str) -> bool:
        return bool(self.directory.is_registered(username))

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        fields: dict[str, str] = {}
        try:
            fields = parse_fields(req.bounded_stream.read(MAX_BODY + 1))
            answer = self.decide(fields)
        except Exception as exc:  # noqa: BLE001 - the broker must get an answer, never a 500
            log.warning("broker auth %s refused (%s): %s", req.path, type(exc).__name__, exc)
            answer = DENY
        if answer == DENY:
            log.info("broker auth deny %s %s", req.path,
                     {k: v for k, v in fields.items() if k != "password"})
        resp.content_type = falcon.MEDIA_TEXT
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


def create_auth_app(directory: DeviceDirectory, service_accounts: Iterable[str] = ("iotcloud-gateway",), *,
                    admin: AdminCredentials | None = None) -> falcon.App:
    """The WSGI app answering `/auth/user`, `/auth/vhost`, `/auth/resource` and `/auth/topic`.

    `service_accounts` are certificate CNs granted the backend-gateway role; `admin` is the management-API
    login (see `load_or_create_admin_credentials`), without which the management API is unusable.
    """
    identities = Identities(frozenset(service_accounts), admin.username if admin else None,
                            admin.password if admin else None)
    app = falcon.App(media_type=falcon.MEDIA_TEXT)
    app.req_options.auto_parse_form_urlencoded = False
    for path, endpoint in (("user", _User), ("vhost", _Vhost), ("resource", _Resource), ("topic", _Topic)):
        app.add_route(f"/auth/{path}", endpoint(directory, identities))
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

    def process_request(self, request, client_address) -> None:
        self._pool.submit(self._handle, request, client_address)

    def _handle(self, request, client_address) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - one broken request never stops the server
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature from BaseHTTPRequestHandler
        pass


class AuthBackendServer:
    """Serves a WSGI app on a loopback port from a background thread (port 0 picks a free port)."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self._server = make_server(host, port, app, server_class=_PooledWSGIServer, handler_class=_QuietHandler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "AuthBackendServer":
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                            name="broker-auth-backend", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> "AuthBackendServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
