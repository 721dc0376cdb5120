"""The API's gunicorn worker: gthread, but no request thread waits for a new client, a thread keeps
the connection of a client that calls again, and liveness probes are answered without one.

gunicorn's gthread worker hands each accepted connection to its thread pool at once, where a
thread waits up to 5 s for the first bytes; a few dozen idle connections therefore hold every
thread, and everything else (health checks included) queues behind them. Here a new connection
waits on the worker's poller until it has sent something, and `GET /healthz` is answered by the
poller itself, so a liveness probe never queues behind busy threads. Every other request goes to
the pool as before. (A client that sends slowly after its first byte still holds a thread until
it finishes: expose the API through a buffering reverse proxy.)

After answering on a kept-alive connection, gthread hands it back to the poller thread, which
re-registers it, wakes when the next request arrives and submits it to the pool again: two
wake-ups of the poller and a pool hand-off per request, the poller's share alone about a third of
the worker's CPU per device call at 300 calls/s (docs/benchmarks.md, issue 7 step 64). Here,
while the worker is not busy (at most a quarter of its threads serving requests), the thread
that answered waits for the connection's next request itself (`_next_request`), for as long as
gunicorn would keep the connection (the keep-alive timeout), so a client that calls again is
served by the same thread with no hand-off. Such a thread gives its connection back to the poller
as soon as the pool needs it: when a request is queued and every thread is taken, the poller
wakes one waiting thread (`_give_back_one`), so connections at rest never hold a thread from a
request that needs one. A busy worker hands connections back as gthread does: there one wake-up
of the poller serves many ready connections.

The HTTPS listener is TLS-wrapped here, per listener, rather than by gunicorn's `certfile` (which
would wrap every listener): one worker serves the HTTPS port and the loopback HTTP port, so the
API's short path (one process owning the device lines) works on both. Each worker loads the
certificate when it starts (gunicorn's HUP restarts workers: that is how a renewed certificate is
taken up without dropping the listeners).
"""

from __future__ import annotations

import errno
import os
import select
import selectors
import socket
import ssl
import threading
import time
from functools import partial

from gunicorn import http
from gunicorn.workers.gthread import TConn, ThreadWorker

from gateways.http import draining
from iotcloud.config import Settings
from iotcloud.cpu_pinning import pin_to_one_cpu
from iotcloud.https import server_context
from iotcloud.settled_config import SettledConfig

PROBE = b"GET /healthz "
HEALTHY = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n"
           b"Cache-Control: no-store\r\nConnection: close\r\n\r\n{\"status\": \"ok\"}")
PEEK = 2048  # a probe's request head fits; anything longer goes to the pool


HANDSHAKE_SECONDS = 10.0
NEXT, BACK, IDLE = "next request", "back to the poller", "idle"  # what a thread keeping a connection saw


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
        if settings.api_pinned:
            # Before gunicorn loads the app: the threads it starts (link, group commit, pool) inherit it.
            # age counts the workers gunicorn has started, restarts included: the next CPU each time.
            pin_to_one_cpu(self.age - 1)
        self.tls_port = settings.api_https_port
        self.tls_context = server_context(settings) if self.tls_port else None
        self._threads_lock = threading.Lock()
        self._queued = 0     # connections submitted to the pool and not yet taken by a thread
        self._in_handle = 0  # pool threads serving or keeping a connection
        self._keeping = 0    # of which waiting for their connection's next request
        # A byte here takes one keeping thread's connection back to the poller.
        self._give_back_r, self._give_back_w = os.pipe()
        os.set_blocking(self._give_back_r, False)
        os.set_blocking(self._give_back_w, False)
        self.cfg = SettledConfig(self.cfg)
        super().init_process()

    def get_thread_pool(self):
        """gthread's pool with every thread started now. The executor starts a thread for a new task
        only when no earlier task has ended since (its idle count), so with threads kept by their
        connections a task could wait behind them while the pool is still short of its size."""
        pool = super().get_thread_pool()
        started = threading.Barrier(self.cfg.threads + 1)
        for _ in range(self.cfg.threads):
            pool.submit(started.wait)
        started.wait()
        return pool

    def handle_exit(self, sig, frame) -> None:
        """SIGTERM: waiting requests answer at once (gateways/http/draining.py), then gunicorn's
        graceful stop finishes the rest."""
        draining.STOPPING.set()
        super().handle_exit(sig, frame)
        self._give_back_one(self.cfg.threads)  # threads keeping connections let them go at once

    def handle(self, conn):
        """gthread's handle, then the connection's next requests for as long as the client keeps
        calling (see the module's docstring). True: back to the poller, kept alive; False: closed."""
        with self._threads_lock:
            self._queued -= 1
            self._in_handle += 1
        try:
            keep = super().handle(conn)
            while keep is True and not conn.is_http2:
                waited = self._next_request(conn)
                if waited is not NEXT:
                    return waited is BACK
                keep = super().handle(conn)
            return keep
        finally:
            with self._threads_lock:
                self._in_handle -= 1

    def _next_request(self, conn):
        """NEXT when `conn` has its next request; BACK to give it back to the poller (the pool needs
        this thread, or the worker stops); IDLE when it stayed idle for the keep-alive time."""
        if conn.parser.unreader.buf.getvalue() or (isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending()):
            return NEXT  # already read: gthread would submit it at once too
        with self._threads_lock:
            serving = self._in_handle - self._keeping  # this thread included
            if not self.alive or serving > self.cfg.threads // 4 or self._short_of_threads():
                # Busy: the poller's one wake-up for many ready connections costs less than a
                # wake-up per thread, and a connection waiting for a thread must get this one.
                return BACK
            self._keeping += 1
        try:
            poll = select.poll()
            poll.register(conn.sock, select.POLLIN)
            poll.register(self._give_back_r, select.POLLIN)
            deadline = time.monotonic() + self.cfg.keepalive
            while self.alive:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return IDLE
                ready = {fd for fd, _ in poll.poll(remaining * 1000)}
                if conn.sock.fileno() in ready:
                    return NEXT  # a request, or the client closed: gthread's handle tells which
                if self._give_back_r in ready:
                    try:
                        os.read(self._give_back_r, 1)
                        return BACK
                    except BlockingIOError:
                        continue  # another keeping thread took that byte
            return BACK
        finally:
            with self._threads_lock:
                self._keeping -= 1

    def _short_of_threads(self) -> bool:
        """Whether the connections queued for the pool outnumber its free threads (under the lock)."""
        return self._in_handle + self._queued > self.cfg.threads

    def _give_back_one(self, threads: int = 1) -> None:
        try:
            os.write(self._give_back_w, b"\0" * threads)
        except OSError:
            pass  # the pipe is full: keeping threads already have bytes to read

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
        with self._threads_lock:
            self._queued += 1
            short = self._keeping and self._short_of_threads()
        if short:
            self._give_back_one()  # every thread is taken: one kept connection goes back to the poller
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
