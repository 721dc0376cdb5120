"""libpyiotcloud's device wire protocol: FT900-safe JSON payloads. (Topics and routing keys are in
gateways/broker/topology.py.)

Everything a device publishes is hostile until proven otherwise: answers go through
`gateways.untrusted_json`, which measures them before parsing and lets through only what every
later stage (event store, read store, REST) can carry.
"""

from __future__ import annotations

import json

from commands.device_apis import DEVICE_APIS
from gateways.untrusted_json import MalformedPayload, load_bounded

MAX_ANSWER = 64 * 1024  # bytes


class MalformedAnswer(MalformedPayload):
    """A device answer that is not a JSON object with a `value`."""


def encode_request(params: dict, correlation_id: str | None = None) -> bytes:
    """json.dumps with its default `", "` and `": "` separators and the catalogue's key order:
    the FT900 parser scans for `"number": ` and `"value": ` with exactly one space."""
    body = dict(params)
    if correlation_id:
        body["correlation_id"] = correlation_id
    return json.dumps(body).encode()


# Answers that carry no `value`: the device republishes the request itself.
ECHOING_APIS = frozenset(api.name for api in DEVICE_APIS.values() if api.echoes)


def decode_answer(payload: bytes, api: str = "") -> tuple[object, dict, str | None]:
    """Returns (value, whole answer, echoed correlation id) or raises MalformedAnswer."""
    answer = load_bounded(payload, MAX_ANSWER, "answer", error=MalformedAnswer)
    if not isinstance(answer, dict):
        raise MalformedAnswer("answer is not a JSON object")
    correlation_id = answer.get("correlation_id")
    correlation_id = correlation_id if isinstance(correlation_id, str) else None
    if "value" not in answer:
        if api in ECHOING_APIS:
            return {k: v for k, v in answer.items() if k != "correlation_id"}, answer, correlation_id
        raise MalformedAnswer("answer has no 'value'")
    return answer["value"], answer, correlation_id
