"""The API's gunicorn worker: gthread, but no request thread waits for a client, and liveness
probes are answered without one.

gunicorn's gthread worker hands each accepted connection to its thread pool at once, where a
thread waits up to 5 s for the first bytes; a few dozen idle connections therefore hold every
thread, and everything else (health checks included) queues behind them. Here a new connection
waits on the worker's poller until it has sent something, and `GET /healthz` is answered by the
poller itself, so a liveness probe never queues behind busy threads. Every other request goes to
the pool as before. (A client that sends slowly after its first byte still holds a thread until
it finishes: expose the API through a buffering reverse proxy.)
"""

from __future__ import annotations

import selectors
import socket
import time
from functools import partial

from gunicorn.workers.gthread import ThreadWorker

PROBE = b"GET /healthz "
HEALTHY = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n"
           b"Cache-Control: no-store\r\nConnection: close\r\n\r\n{\"status\": \"ok\"}")
PEEK = 2048  # a probe's request head fits; anything longer goes to the pool


class ApiWorker(ThreadWorker):
    def enqueue_req(self, conn) -> None:
        if not conn.initialized:
            head = _peek(conn)
            if head is None and not conn.data_ready and self._can_park():
                self._park(conn)
                return
            if head and _answered_probe(conn, head):
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
