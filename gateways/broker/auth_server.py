"""The HTTPS server of the broker's auth backend: a bounded pool of threads answers questions, one selector
holds the kept-alive connections between questions.

RabbitMQ's httpc keeps its connections to the backend open and opens another whenever all of them are busy,
so in a connect storm it holds as many connections as it has questions in flight. When every kept-alive
connection held a pool thread while it waited for its next question, 10,000 devices connecting at once made
the broker open more connections than the pool had threads: the TLS handshakes of the newer ones waited for a
thread past the broker's connect timeout, the logins behind them failed, and the management API (whose
logins ask this backend too) stopped answering. A connection now holds a thread only while one question is
read and answered.

httpc does not pipeline (each question waits for the previous answer), so a connection has nothing buffered
when it is put back in the selector; bytes TLS already decrypted are answered before it is.
"""

from __future__ import annotations

import collections
import selectors
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer, make_server

WORKERS = 16
HANDSHAKE_TIMEOUT = 5.0  # the TLS handshake, and reading one question once its first byte arrived
IDLE_TIMEOUT = 60.0      # a kept-alive connection silent this long is closed; the broker opens another
MAX_REQUESTS_PER_CONNECTION = 1000


class _KeepAliveServerHandler(ServerHandler):
    http_version = "1.1"


class _QuietHandler(WSGIRequestHandler):
    """HTTP/1.1 keep-alive, one question per `serve_one` call: the server decides where the connection
    waits between questions (BaseRequestHandler would serve the whole connection from its constructor)."""

    protocol_version = "HTTP/1.1"

    def __init__(self, request, client_address, server):  # noqa: super().__init__ would handle() at once
        self.request, self.client_address, self.server = request, client_address, server
        self.setup()

    def serve_one(self) -> bool:
        """Reads and answers one question; whether the connection may carry another."""
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except (TimeoutError, OSError):
            return False
        if not self.raw_requestline or len(self.raw_requestline) > 65536 or not self.parse_request():
            return False
        handler = _KeepAliveServerHandler(self.rfile, self.wfile, self.get_stderr(), self.get_environ(),
                                          multithread=False)
        handler.request_handler = self
        handler.run(self.server.get_app())
        return not self.close_connection

    def log_message(self, format, *args):  # noqa: A002 - signature from BaseHTTPRequestHandler
        pass


class _Connection:
    __slots__ = ("sock", "address", "handler", "served", "idle_since")

    def __init__(self, sock, address, server):
        self.sock, self.address = sock, address
        self.handler = _QuietHandler(sock, address, server)
        self.served = 0
        self.idle_since = time.monotonic()


class _PooledWSGIServer(WSGIServer):
    allow_reuse_address = True
    request_queue_size = 1024
    workers = WORKERS
    idle_timeout = IDLE_TIMEOUT

    def server_activate(self) -> None:
        super().server_activate()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="broker-auth")
        self._open: set[_Connection] = set()
        self._open_lock = threading.Lock()
        self._to_park: collections.deque[_Connection] = collections.deque()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        for end in (self._wake_r, self._wake_w):
            end.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._closing = False
        self._watcher = threading.Thread(target=self._watch_idle, name="broker-auth-idle", daemon=True)
        self._watcher.start()

    def process_request(self, request, client_address) -> None:
        self._submit(self._open_connection, request, client_address)

    def _submit(self, fn, *args) -> None:
        try:
            self._pool.submit(fn, *args)
        except RuntimeError:  # the pool is shut down: the server is closing
            if isinstance(args[0], _Connection):
                self._close(args[0])
            else:
                self.shutdown_request(args[0])

    def _open_connection(self, request, client_address) -> None:
        # The TLS handshake runs on a pool thread: a client that stalls it holds one for HANDSHAKE_TIMEOUT,
        # never the accept loop. wsgiref writes head and body apart: without TCP_NODELAY a kept-alive
        # connection waits for the peer's delayed ACK (40 ms) on every answer.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request.settimeout(HANDSHAKE_TIMEOUT)
        context = getattr(self, "tls_context", None)
        try:
            if context is not None:
                request = context.wrap_socket(request, server_side=True)
            connection = _Connection(request, client_address, self)
        except (OSError, ssl.SSLError):
            self.shutdown_request(request)
            return
        with self._open_lock:
            if self._closing:
                self.shutdown_request(request)
                return
            self._open.add(connection)
        self._serve(connection)

    def _serve(self, connection: _Connection) -> None:
        keep = False
        try:
            while connection.served < MAX_REQUESTS_PER_CONNECTION:
                keep = connection.handler.serve_one()
                connection.served += 1
                sock = connection.sock
                if not keep or not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                    break
        except Exception:  # noqa: BLE001 - one broken request never stops the server
            self.handle_error(connection.sock, connection.address)
            keep = False
        if keep and connection.served < MAX_REQUESTS_PER_CONNECTION:
            connection.idle_since = time.monotonic()
            self._to_park.append(connection)
            self._wake()
        else:
            self._close(connection)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # the pipe is full (already woken) or closed
            pass

    def _watch_idle(self) -> None:
        """The only thread that touches the selector: parks connections, hands readable ones to the pool."""
        next_scan = time.monotonic() + 1.0
        while not self._closing:
            while self._to_park:
                connection = self._to_park.popleft()
                try:
                    self._selector.register(connection.sock, selectors.EVENT_READ, connection)
                except (KeyError, ValueError, OSError):
                    self._close(connection)
            for key, _ in self._selector.select(timeout=1.0):
                if key.data is None:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except OSError:
                        pass
                    continue
                self._selector.unregister(key.fileobj)
                self._submit(self._serve, key.data)
            now = time.monotonic()
            if now < next_scan:
                continue
            next_scan = now + 1.0
            for key in list(self._selector.get_map().values()):
                if key.data is not None and now - key.data.idle_since > self.idle_timeout:
                    self._selector.unregister(key.fileobj)
                    self._close(key.data)

    def _close(self, connection: _Connection) -> None:
        with self._open_lock:
            self._open.discard(connection)
        try:
            connection.handler.finish()
        except Exception:  # noqa: BLE001 - flushing to a peer that is gone
            pass
        self.shutdown_request(connection.sock)

    def server_close(self) -> None:
        super().server_close()
        if not hasattr(self, "_pool"):
            return
        # Kept-alive connections too: a stopped backend answers nothing more.
        with self._open_lock:
            self._closing = True
            connections = list(self._open)
        self._wake()
        self._watcher.join(timeout=5)
        for connection in connections:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()


class AuthBackendServer:
    """Serves a WSGI app over HTTPS with `identity`'s certificate on a loopback port (0 picks a free one),
    from a background thread. `stop` releases the port; `start` binds it again."""

    def __init__(self, app, identity, host: str = "127.0.0.1", port: int = 0):
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
