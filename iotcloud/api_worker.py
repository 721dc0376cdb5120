"""The API's gunicorn worker: gthread, but no request thread waits for a client, and liveness
probes are answered without one.

gunicorn's gthread worker hands each accepted connection to its thread pool at once, where a
thread waits up to 5 s for the first bytes; a few dozen idle connections therefore hold every
thread, and everything else (health checks included) queues behind them. Here a new connection
waits on the worker's poller until it has sent something, and `GET /healthz` is answered by the
poller itself, so a liveness probe never queues behind busy threads. Every other request goes to
the pool as before. (A client that sends slowly after its first byte still holds a thread until
it finishes: expose the API through a buffering reverse proxy.)

The HTTPS listener is TLS-wrapped here, per listener, rather than by gunicorn's `certfile` (which
would wrap every listener): one worker serves the HTTPS port and the loopback HTTP port, so the
API's short path (one process owning the device lines) works on both. Each worker loads the
certificate when it starts (gunicorn's HUP restarts workers: that is how a renewed certificate is
taken up without dropping the listeners).
"""

from __future__ import annotations

import errno
import selectors
import socket
import ssl
import time
from functools import partial

from gunicorn import http
from gunicorn.workers.gthread import TConn, ThreadWorker

from gateways.http import draining
from iotcloud.config import Settings
from iotcloud.https import server_context

PROBE = b"GET /healthz "
HEALTHY = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n"
           b"Cache-Control: no-store\r\nConnection: close\r\n\r\n{\"status\": \"ok\"}")
PEEK = 2048  # a probe's request head fits; anything longer goes to the pool


HANDSHAKE_SECONDS = 10.0


class TlsConn(TConn):
    """A connection on the HTTPS listener: the TLS handshake runs on the request thread (bounded),
    after the client's first bytes arrived on the poller, like any request."""

    def __init__(self, cfg, sock, client, server, context: ssl.SSLContext):
        super().__init__(cfg, sock, client, server)
        self.context = context

    def init(self):
        if self.initialized:
            return
        self.initialized = True
        raw = self.sock
        raw.setblocking(True)
        raw.settimeout(HANDSHAKE_SECONDS)
        try:
            wrapped = self.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            wrapped.do_handshake()
        except (ssl.SSLError, OSError) as failed:
            # A scanner, a client that distrusts the certificate, a stalled handshake: close quietly.
            raise OSError(errno.ENOTCONN, f"TLS handshake failed: {failed}") from None
        wrapped.settimeout(None)
        self.sock = wrapped
        self.parser = http.get_parser(self.cfg, self.sock, self.client)


class ApiWorker(ThreadWorker):
    def init_process(self) -> None:
        settings = Settings.from_env()
        self.tls_port = settings.api_https_port
        self.tls_context = server_context(settings) if self.tls_port else None
        super().init_process()

    def handle_exit(self, sig, frame) -> None:
        """SIGTERM: waiting requests answer at once (gateways/http/draining.py), then gunicorn's
        graceful stop finishes the rest."""
        draining.STOPPING.set()
        super().handle_exit(sig, frame)

    def accept(self, listener) -> None:
        """gunicorn's accept, with a TLS connection for the HTTPS listener's clients."""
        address = listener.getsockname()
        if self.tls_context is None or address[1] != self.tls_port:
            return super().accept(listener)
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return None
        self.nr_conns += 1
        self.enqueue_req(TlsConn(self.cfg, client_sock, client_addr, address, self.tls_context))
        return None

    def enqueue_req(self, conn) -> None:
        if not conn.initialized:
            head = _peek(conn)
            if head is None and not conn.data_ready and self._can_park():
                self._park(conn)
                return
            if head and not isinstance(conn, TlsConn) and _answered_probe(conn, head):
                self.nr_conns -= 1
                return
        super().enqueue_req(conn)

    def _can_park(self) -> bool:
        # The parking lot is gunicorn's own (pending_conns, closed by murder_pending after the
        # keep-alive timeout); an older gunicorn without it keeps its usual behaviour.
        return hasattr(self, "pending_conns") and hasattr(self, "on_pending_socket_readable")

    def _park(self, conn) -> None:
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))


def _peek(conn) -> bytes | None:
    """What the client has sent so far without consuming it; None if nothing yet."""
    try:
        return conn.sock.recv(PEEK, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return None
    except OSError:
        return b""  # the pool's thread meets the same error and closes the connection


def _answered_probe(conn, head: bytes) -> bool:
    """Answers a complete `GET /healthz` request head, on the poller's thread."""
    end = head.find(b"\r\n\r\n")
    if not head.startswith(PROBE) or end < 0 or b"content-length" in head[:end].lower():
        return False
    try:
        conn.sock.recv(end + 4, socket.MSG_DONTWAIT)
        conn.sock.send(HEALTHY, socket.MSG_DONTWAIT)
    except OSError:
        pass  # the client went away or stopped reading: a probe that gets no answer
    conn.close()
    return True
