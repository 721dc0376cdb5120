"""The operations listener of the processes that serve no HTTP API (projector, gateway, broker auth,
signer): `GET /metrics` (Prometheus text), `/healthz` (the process runs) and `/readyz` (it can work:
its stores answer, or it holds its lease), on a loopback port by default.

It is a convenience, never a reason to stop: a port already taken (two test platforms on one
machine, a second instance without its own port) is logged and the process works without it.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger("iotcloud.ops")


class OpsServer:
    def __init__(self, host: str, port: int, process: str, ready: Callable[[], bool] = lambda: True):
        self.process, self._ready = process, ready
        self._server: ThreadingHTTPServer | None = None
        if not port:
            return
        try:
            self._server = ThreadingHTTPServer((host, port), self._handler())
        except OSError as exc:
            log.warning("no metrics listener for %s: %s:%s is unavailable (%s)", process, host, port, exc,
                        extra={"service": process, "port": port})
            return
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name=f"{process}-ops", daemon=True).start()

    @property
    def port(self) -> int | None:
        return self._server.server_address[1] if self._server else None

    def _handler(self):
        ops = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._answer(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._answer(200, b'{"status": "ok"}', "application/json")
                elif path == "/readyz":
                    ready = _safely(ops._ready)
                    self._answer(200 if ready else 503, json.dumps(
                        {"status": "ready" if ready else "unavailable"}).encode(), "application/json")
                else:
                    self._answer(404, b'{"status": "not found"}', "application/json")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # scrapes every few seconds: no access log
                pass

        return Handler

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _safely(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:  # noqa: BLE001 - a failing check means not ready, not a broken listener
        return False


def ops_listener(settings, process: str, ready: Callable[[], bool] = lambda: True) -> OpsServer:
    """The listener of `process` (projector, gateway, broker_auth, signer, notifier) on its configured port."""
    return OpsServer(settings.metrics_host, getattr(settings, f"{process}_metrics_port"), process, ready)
