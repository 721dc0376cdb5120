"""A tiny JSON-over-HTTP client for tests that drive a real server process."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


class Http:
    """`http(method, path, body, token)` -> (status, parsed JSON or text); remembers every answer."""

    def __init__(self, base: str):
        self.base = base
        self.seen: list[str] = []

    def __call__(self, method: str, path: str, body=None, token: str | None = None, timeout: float = 30):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                status, text = answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        self.seen.append(text)
        return status, (json.loads(text) if text.strip().startswith(("{", "[")) else text)
