"""Wire format: one request and one answer per connection, each a 4-byte big-endian length and
that many bytes of UTF-8 JSON (an object), at most MAX_FRAME bytes.

Requests:  {"op": "sign", "device_id": <40 hex>, "csr": <PEM>, "validity_days": <int>}
           {"op": "ca"}
           {"op": "crl", "revoked": [[<serial hex>, <ISO time>], ...], "next_update": <ISO time>}
Answers:   {"ok": true, "certificate": <PEM>}  or, for "crl", {"ok": true, "crl": <base64 DER>}
           {"ok": false, "error": "invalid-csr" | "bad-request", "detail": <text>}
"""

from __future__ import annotations

import json
import socket
import struct

# A CSR is at most commands.pki.MAX_CSR_BYTES and a certificate under 4 KB; a CRL request lists every
# revoked, unexpired serial (about 60 bytes each), so the bound leaves room for ~100,000 of them.
MAX_FRAME = 8 * 1024 * 1024
HEADER = struct.Struct(">I")


class ProtocolError(ValueError):
    """The peer sent something that is not one bounded JSON object."""


def send_frame(sock: socket.socket, message: dict) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    if len(data) > MAX_FRAME:
        raise ProtocolError(f"message of {len(data)} bytes exceeds {MAX_FRAME}")
    sock.sendall(HEADER.pack(len(data)) + data)


def receive_frame(sock: socket.socket) -> dict:
    (length,) = HEADER.unpack(_receive_exactly(sock, HEADER.size))
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes exceeds {MAX_FRAME}")
    data = _receive_exactly(sock, length)
    try:
        message = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError("the frame is not UTF-8 JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("the frame is not a JSON object")
    return message


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, missing = [], size
    while missing:
        chunk = sock.recv(min(missing, 65536))
        if not chunk:
            raise ProtocolError("the peer closed the connection mid-frame")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)
