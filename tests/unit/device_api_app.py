"""The real REST app over a stand-in platform whose device calls answer at once with what the device
would have been sent (validated by the device-API table), for tests of what the table generates."""

from __future__ import annotations

from types import SimpleNamespace

from falcon import testing

from commands.device_apis import device_api
from commands.identity.port import Principal
from gateways.http.app import create_app
from gateways.http.device_calls import CallResult

BEARER = {"Authorization": "Bearer any"}
V2_SESSION = {"username": "alice", "token": {"access": "a", "refresh": "r", "id": "i"}}


class EchoingCalls:
    """Answers every call at once with what the device would have been sent."""

    def call(self, username, name, api, params, **options):
        return CallResult("c0ffee", "succeeded", {"device": name, "api": api, "params": device_api(api).normalise(params)})


class AnyoneIsAlice:
    def authenticate(self, token):
        return Principal("alice", "session")


def device_api_client() -> testing.TestClient:
    """Only what device calls need is real; every other collaborator is absent (None)."""
    settings = SimpleNamespace(api_url="http://test", projection_wait=1.0, api_shares=(10, 10, 100),
                               hsts_seconds=0, metrics_multiprocess_dir=None)
    platform = SimpleNamespace(settings=settings, identity=AnyoneIsAlice(), calls=EchoingCalls(),
                               outcomes=SimpleNamespace(wake_gateway=lambda reason: None), catalogue=None,
                               fleet=None, users=None, devices=None, commands=None, device_endpoints=None, rw=None,
                               notification_queries=None, db=None, waiting=None, emulators=None, history=None,
                               fleet_analytics=None, control=None, accounts=None, audit_checkpoints=None,
                               platform_public_key=None)
    return testing.TestClient(create_app(platform))
