"""The broker and its auth backend are bound to each other: with the backend dead nobody logs in, and a
process that takes over the backend's port can neither read the broker's questions nor answer them."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest

from gateways.broker import AuthBackendIdentity

ALLOW = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nallow"


class Squatter:
    """Listens on the backend's port and answers `allow` to whatever arrives, over plain TCP or over TLS
    with a certificate of its own; keeps every byte it received."""

    def __init__(self, port: int, context: ssl.SSLContext | None):
        self.received = bytearray()
        self.connections = 0
        self._accepted: list[socket.socket] = []
        self._context = context
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(64)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._accepted.append(connection)
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        try:
            connection.settimeout(5)
            if self._context is not None:
                connection = self._context.wrap_socket(connection, server_side=True)
            while chunk := connection.recv(65536):
                self.received.extend(chunk)
                connection.sendall(ALLOW)
        except (OSError, ssl.SSLError):
            pass
        finally:
            connection.close()

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in the serving thread
        except OSError:
            pass
        self._listener.close()
        self._thread.join(5)
        for connection in self._accepted:  # kept-alive connections of the broker's HTTP client too
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def backend_down(auth_server):
    """The session's auth backend stopped for the test (its port free), started again afterwards."""
    auth_server.stop()
    yield auth_server.port
    auth_server.start()


def test_a_dead_backend_means_no_device_logins(make_device, mqtt_device, backend_down):
    device = make_device()
    assert mqtt_device(device).wait_connack() is False


@pytest.mark.parametrize("tls", [False, True], ids=["plain-http-squatter", "tls-squatter-own-certificate"])
def test_a_squatter_on_the_backend_port_cannot_let_anyone_in(make_device, mqtt_device, backend_down, auth_identity,
                                                             tmp_path, tls):
    context = None
    if tls:
        context = AuthBackendIdentity.load_or_create(tmp_path).server_context()
    squatter = Squatter(backend_down, context)
    try:
        unregistered = make_device(registered=False)
        assert mqtt_device(unregistered).wait_connack() is False, "the squatter let an unregistered device in"
        assert squatter.connections > 0, "the broker never reached the squatter: the test proves nothing"
        assert auth_identity.secret.encode() not in squatter.received
        assert b"username" not in squatter.received
    finally:
        squatter.close()
