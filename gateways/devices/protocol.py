"""libpyiotcloud's device wire protocol: FT900-safe JSON payloads. (Topics and routing keys are in
gateways/broker/topology.py.)

Everything a device publishes is hostile until proven otherwise: answers go through
`gateways.untrusted_json`, which measures them before parsing and lets through only what every
later stage (event store, read store, REST) can carry.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from commands.device_apis import DEVICE_APIS
from commands.device_decisions import RecordAnswer, RejectAnswer
from gateways.untrusted_json import MalformedPayload, load_bounded

MAX_ANSWER = 64 * 1024  # bytes
ANSWER_EXCERPT = 256  # bytes of a refused answer kept with its call, for the caller and auditors
log = logging.getLogger("iotcloud.protocol")


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


@dataclass(frozen=True, slots=True)
class ReadAnswer:
    """One device answer as every reader of answers judges it: its value, or why it is refused."""

    value: object
    whole: dict | None           # the answer without its correlation id; None when refused
    correlation_id: str | None
    refusal: str | None          # why it is malformed, or None
    excerpt: str                 # the start of a refused answer ("" otherwise)

    def decision(self, command_id: str) -> RecordAnswer | RejectAnswer:
        """What the answer does to the call it belongs to."""
        if self.refusal is not None:
            return RejectAnswer(command_id, self.refusal, self.excerpt)
        return RecordAnswer(command_id, self.value, self.whole)


def read_answer(payload: bytes, api: str) -> ReadAnswer:
    """Never raises: whatever a payload does to the parser refuses that answer only."""
    try:
        value, whole, correlation_id = decode_answer(payload, api)
    except Exception as problem:  # noqa: BLE001 - MalformedAnswer, or a parser bug a payload found
        if isinstance(problem, MalformedPayload):
            reason = str(problem)
        else:
            reason = "answer could not be read"
            log.exception(reason, extra={"api": api[:64]})
        return ReadAnswer(None, None, None, reason, payload[:ANSWER_EXCERPT].decode("utf-8", "replace"))
    whole.pop("correlation_id", None)
    return ReadAnswer(value, whole, correlation_id, None, "")
