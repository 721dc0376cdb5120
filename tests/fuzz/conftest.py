"""REST fuzzing fixtures: the real falcon app (middleware, error handlers, both REST flavours) over
the SQLite event store and nx-27017, with no broker, driven in process by schemathesis."""

from __future__ import annotations

import re
import time
import uuid

import pytest
import schemathesis
from falcon import testing

from gateways.http.app import create_app
from gateways.outbox import Outbox
from iotcloud.bootstrap import prepare_state
from iotcloud.config import Settings
from tests.conftest import RunningPlatform
from tests.fuzz.tally import EXAMPLES

PASSWORD = "correct horse battery"
LOGOUTS = {("/v1/auth/logout", "post"), ("/user/logout", "post")}
# Ends every session of its caller: fuzzed as a second user, so the shared session lives on.
EVERYWHERE = ("/v1/auth/logout-everywhere", "post")


class FuzzTarget:
    """The app under test, its OpenAPI document as schemathesis reads it, and a confirmed user."""

    def __init__(self, running: RunningPlatform):
        self.running = running
        self.app = create_app(running.platform)
        self.client = testing.TestClient(self.app)
        self.document = self.client.simulate_get("/openapi.json").json
        self.schema = schemathesis.openapi.from_wsgi("/openapi.json", self.app)
        self.outbox = Outbox(running.settings.state_dir / "outbox.sqlite3")
        self.username = f"fuzz{uuid.uuid4().hex[:8]}"
        self.bystander = f"fuzzb{uuid.uuid4().hex[:8]}"
        self.device = "fuzz-kitchen"
        self._sign_up(self.username)
        self._sign_up(self.bystander)
        self.token = self.login()
        answer = self.client.simulate_post("/v1/devices", json={"name": self.device},
                                           headers={"Authorization": f"Bearer {self.token['access']}"})
        assert answer.status_code == 201, answer.text

    def _sign_up(self, username: str) -> None:
        email = f"{username}@example.com"
        answer = self.client.simulate_post("/v1/auth/signup", json={
            "username": username, "password": PASSWORD, "email": email, "given_name": "Fuzz",
            "family_name": "Tester"})
        assert answer.status_code == 201, answer.text
        code = re.search(r"code is (\d{6})", self.outbox.messages(limit=1, recipient=email)[0]["body"]).group(1)
        answer = self.client.simulate_post("/v1/auth/confirm", json={"username": username, "code": code})
        assert answer.status_code == 200, answer.text

    def token_for(self, path: str, method: str) -> dict:
        """The shared session, or a fresh one for a call that ends its session."""
        if (path, method) == EVERYWHERE:
            return self.login(self.bystander)
        return self.login() if (path, method) in LOGOUTS else self.token

    def login(self, username: str | None = None) -> dict:
        """A fresh session: {access, refresh, id} as v2 bodies carry it."""
        answer = self.client.simulate_post("/v1/auth/login", json={"username": username or self.username,
                                                                   "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        tokens = answer.json
        return {"access": tokens["access_token"], "refresh": tokens["refresh_token"], "id": tokens["id_token"]}


@pytest.fixture(scope="session")
def fuzz_target(tmp_path_factory, mongo_uri):
    settings = Settings(state_dir=tmp_path_factory.mktemp("fuzz") / "state", mongodb_uri=mongo_uri,
                        mongodb_database=f"fuzz_{uuid.uuid4().hex[:12]}", persistence_module="eventsourcing.sqlite",
                        broker="none", projection_wait=5.0, argon2_memory_kib=8192, argon2_time_cost=1,
                        # a long run outlasts the default 15-minute token; calls to a device time out fast
                        access_token_ttl=24 * 3600, command_timeout=0.2)
    prepare_state(settings)
    running = RunningPlatform(settings)
    yield FuzzTarget(running)
    running.close()


def pytest_terminal_summary(terminalreporter):
    from tests.fuzz.tally import STARTED, TALLY
    total = sum(TALLY["class"].values())
    if not total:
        return
    write = terminalreporter.write_line
    write(f"REST fuzzing: {total} requests in {time.monotonic() - STARTED:.0f} s "
          f"({EXAMPLES} examples per operation and caller)")
    write("  by class:  " + ", ".join(f"{k} {v}" for k, v in sorted(TALLY["class"].items())))
    write("  by status: " + ", ".join(f"{k} {v}" for k, v in sorted(TALLY["status"].items())))
    write("  by caller: " + ", ".join(f"{k} {v}" for k, v in sorted(TALLY["caller"].items())))
