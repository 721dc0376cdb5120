"""API fixtures: falcon's TestClient over the real app, stores and projector."""

from __future__ import annotations

import re
import uuid

import pytest
from falcon import testing

from gateways.http.app import create_app
from gateways.outbox import Outbox
from iotcloud.cli import parser


class Api:
    """A small client for the modern API; names read like the steps of a user story."""

    def __init__(self, running):
        self.running = running
        self.platform = running.platform
        self.client = testing.TestClient(create_app(running.platform))
        self.outbox = Outbox(running.settings.state_dir / "outbox.sqlite3")

    def post(self, path, body=None, token=None, **kw):
        return self.client.simulate_post(path, json=body, headers=self._auth(token), **kw)

    def get(self, path, token=None, **kw):
        return self.client.simulate_get(path, headers=self._auth(token), **kw)

    def delete(self, path, token=None, **kw):
        return self.client.simulate_delete(path, headers=self._auth(token), **kw)

    @staticmethod
    def _auth(token):
        return {"Authorization": f"Bearer {token}"} if token else {}

    def code_for(self, email: str) -> str:
        assert self.platform.identity.settle(), "deferred codes were not sent in time"
        return re.search(r"code is (\d{6})", self.outbox.messages(limit=1, recipient=email)[0]["body"]).group(1)

    def sign_up(self, username: str, password: str = "correct horse") -> str:
        email = f"{username}@example.com"
        answer = self.post("/v1/auth/signup", {"username": username, "password": password, "email": email,
                                               "given_name": "Test", "family_name": username.title()})
        assert answer.status_code == 201, answer.text
        return email

    def signed_in(self, username: str | None = None, password: str = "correct horse") -> str:
        username = username or f"user{uuid.uuid4().hex[:8]}"
        email = self.sign_up(username, password)
        assert self.post("/v1/auth/confirm", {"username": username, "code": self.code_for(email)}).status_code == 200
        answer = self.post("/v1/auth/login", {"username": username, "password": password})
        assert answer.status_code == 200, answer.text
        return answer.json["access_token"]


def cli(settings, *argv) -> int:
    """Runs an `iotcloud` CLI command in-process, as an operator would."""
    args = parser().parse_args(list(argv))
    return args.func(settings, args)


@pytest.fixture
def api(running_platform):
    return Api(running_platform)


def assert_problem(answer, status: int, slug: str):
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json["type"] == f"/problems/{slug}"
    assert answer.json["status"] == status
    assert answer.json["title"] and answer.json["instance"]
