"""While the read store is down (killed, restarting) the API says so with 503 problem+json, and a write
that was recorded is answered as the success it is (its read model lagging), never as a failure."""

from __future__ import annotations

import re

from falcon import testing

from gateways.http.app import create_app
from gateways.outbox import Outbox
from iotcloud.bootstrap import build_platform, build_signer
from tests.ports import free_port


def test_a_read_store_outage_answers_503_and_recorded_writes_still_succeed(make_settings):
    settings = make_settings("sqlite", mongodb_uri=f"mongodb://127.0.0.1:{free_port()}/")  # nothing listens there
    signer = build_signer(settings).start()
    platform = build_platform(settings)
    try:
        client = testing.TestClient(create_app(platform))
        signup = client.simulate_post("/v1/auth/signup", json={
            "username": "outage", "password": "correct horse", "email": "outage@example.com",
            "given_name": "Read", "family_name": "Store"})
        assert signup.status_code == 201, signup.text  # the account exists: a retry would be told it is taken
        assert signup.headers["x-read-model"] == "lagging"

        assert platform.identity.settle(), "the confirmation code was not sent in time"
        body = Outbox(settings.state_dir / "outbox.sqlite3").messages(limit=1, recipient="outage@example.com")[0]["body"]
        code = re.search(r"code is (\d{6})", body).group(1)
        assert client.simulate_post("/v1/auth/confirm", json={"username": "outage", "code": code}).status_code == 200
        token = client.simulate_post("/v1/auth/login", json={"username": "outage", "password": "correct horse"}
                                     ).json["access_token"]

        listing = client.simulate_get("/v1/devices", headers={"Authorization": f"Bearer {token}"})
        assert listing.status_code == 503, listing.text
        assert listing.headers["content-type"].startswith("application/problem+json")
        assert listing.json["type"] == "/problems/unavailable"
        assert listing.headers["retry-after"] == "1"
    finally:
        platform.close()
        signer.stop()
