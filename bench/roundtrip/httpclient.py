"""A minimal HTTP/1.1 keep-alive client on asyncio streams: the load generator must not be the bottleneck."""

from __future__ import annotations

import asyncio
import json
import socket

from roundtrip import HOST


class HttpError(Exception):
    pass


class Conn:
    """One HTTP/1.1 keep-alive connection on asyncio streams (far cheaper per request than a full client)."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    async def request(self, raw: bytes) -> tuple[int, bytes, bool, str | None]:
        """(status, body, whether the server closes, the request id the server gave the request)."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, chunked, close, request_id = 0, False, False, None
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            k = k.strip().lower()
            if k == b"content-length":
                length = int(v)
            elif k == b"transfer-encoding" and b"chunked" in v.lower():
                chunked = True
            elif k == b"connection" and b"close" in v.lower():
                close = True
            elif k == b"x-request-id":
                request_id = v.strip().decode("ascii", "replace")
        if chunked:
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                body += await self.reader.readexactly(size + 2)
                body = body[:-2]
        else:
            body = await self.reader.readexactly(length) if length else b""
        return status, body, close, request_id

    def close(self):
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001
            pass


class Http:
    def __init__(self, port: int, max_connections: int = 512):
        self.port = port
        self.idle: list[Conn] = []
        self.sem = asyncio.Semaphore(max_connections)
        self.token = ""

    def build(self, method: str, path: str, body: bytes | None, token: str | None = None) -> bytes:
        """One raw request; `token` (a user's access token) overrides the default `self.token`."""
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
        token = self.token if token is None else token
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        return (head + "\r\n").encode() + (body or b"")

    async def call(self, method: str, path: str, body: bytes | None = None, raw: bytes | None = None,
                   timeout: float = 30.0) -> tuple[int, bytes]:
        status, data, _ = await self.call_named(method, path, body, raw, timeout)
        return status, data

    async def call_named(self, method: str, path: str, body: bytes | None = None, raw: bytes | None = None,
                         timeout: float = 30.0) -> tuple[int, bytes, str | None]:
        """As `call`, with the request id the server gave the request (its X-Request-ID)."""
        raw = raw or self.build(method, path, body)
        async with self.sem:
            for attempt in range(len(self.idle) + 2):
                conn = self.idle.pop() if self.idle else None
                reused = conn is not None
                if conn is None:
                    reader, writer = await asyncio.open_connection(HOST, self.port)
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    conn = Conn(reader, writer)
                try:
                    status, data, close, request_id = await asyncio.wait_for(conn.request(raw), timeout)
                    break
                except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as exc:
                    conn.close()
                    # A keep-alive connection the server closed while idle: nothing was processed; retry once.
                    if reused and (not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial):
                        continue
                    raise
                except BaseException:
                    conn.close()
                    raise
            if close:
                conn.close()
            else:
                self.idle.append(conn)
            return status, data, request_id

    async def json(self, method: str, path: str, doc=None, expect=(200, 201, 202), token: str | None = None) -> dict:
        raw = self.build(method, path, None if doc is None else json.dumps(doc).encode(), token)
        status, data = await self.call(method, path, raw=raw)
        if status not in expect:
            raise HttpError(f"{method} {path} -> {status}: {data[:300]!r}")
        return json.loads(data) if data else {}

    def close(self):
        for conn in self.idle:
            conn.close()
        self.idle.clear()
