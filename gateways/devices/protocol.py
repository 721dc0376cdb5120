"""libpyiotcloud's device wire protocol: topics, routing keys and FT900-safe JSON payloads.

Everything a device publishes is hostile until proven otherwise: a payload is measured (size,
encoding, nesting) before the JSON parser sees it, and only answers every later stage can carry
(event store, read store, REST) get through: finite numbers that fit 64 bits, no repeated keys,
no lone surrogates, none of the event store's reserved `{"_type_", "_data_"}` objects, no keys
MongoDB refuses. One answer that breaks the projector would stall every read model behind it.
"""

from __future__ import annotations

import functools
import json
import math
import re

DEVICE_ID = re.compile(r"^[0-9a-f]{40}$")
MAX_ANSWER = 64 * 1024  # bytes
MAX_DEPTH = 32          # nested arrays/objects; FT900 answers nest two levels
MAX_NUMBER = 40         # characters of one number literal (a double's repr needs 24)
INT64 = 2 ** 63         # the read store holds integers as BSON int64

_UNIFY = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# eventsourcing's JSON transcoder reads an object with exactly these keys as one of its own types.
_RESERVED_SHAPE = frozenset({"_type_", "_data_"})


class MalformedPayload(ValueError):
    """A device payload refused before or while parsing it."""


class MalformedAnswer(MalformedPayload):
    """A device answer that is not a JSON object with a `value`."""


def nests_within(payload: bytes, limit: int) -> bool:
    """Whether arrays and objects nest at most `limit` deep where a JSON parser would look, found with
    a few linear passes in C (no recursion, no per-byte Python)."""
    if payload.count(b"[") + payload.count(b"{") <= limit:
        return True
    # Escapes are two bytes, so with escaped backslashes and quotes gone every quote delimits a string.
    outside = b"".join(payload.replace(b"\\\\", b"").replace(b'\\"', b"").split(b'"')[::2])
    return _first_value_within(limit).match(outside.translate(_UNIFY, _NOT_BRACKETS)) is not None


@functools.cache
def _first_value_within(limit: int) -> re.Pattern:
    """Matches a bracket string whose first top-level value (all a parser reads) nests at most
    `limit` deep, closed or cut off. Possessive quantifiers: linear, never backtracks."""
    block = b""
    for _ in range(limit):
        inner = block and rb"(?:" + block + rb")*+"
        block = rb"\[" + inner + rb"(?:\]|\Z)"
    return re.compile(rb"\]|" + block + rb"|\Z")


def load_bounded(payload: bytes, max_bytes: int, what: str = "payload", max_depth: int = MAX_DEPTH,
                 error: type[MalformedPayload] = MalformedPayload) -> object:
    """Parses untrusted JSON with every limit checked first; raises `error`, never anything else."""
    if len(payload) > max_bytes:
        raise error(f"{what} exceeds {max_bytes} bytes")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} is not UTF-8") from None
    if not nests_within(payload, max_depth):
        raise error(f"{what} nests deeper than {max_depth}")
    try:
        loaded = _DECODER.decode(text)
        if _SURROGATE_ESCAPE.search(payload):
            json.dumps(loaded, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate
    except MalformedPayload as problem:
        raise error(f"{what} has {problem}") from None
    except UnicodeEncodeError:
        raise error(f"{what} has a lone surrogate in a string") from None
    except (ValueError, RecursionError):
        raise error(f"{what} is not JSON") from None
    return loaded


def _number_literal(literal: str) -> None:
    if len(literal) > MAX_NUMBER:
        raise MalformedPayload(f"a number longer than {MAX_NUMBER} characters")


def _parse_int(literal: str) -> int:
    _number_literal(literal)  # before int(): long digit strings cost quadratic time
    number = int(literal)
    if not -INT64 <= number < INT64:
        raise MalformedPayload("an integer outside the 64-bit range")
    return number


def _parse_float(literal: str) -> float:
    _number_literal(literal)
    number = float(literal)
    if not math.isfinite(number):
        raise MalformedPayload("a number beyond the range of a double")
    return number


def _refuse_constant(name: str):
    raise MalformedPayload(f"{name} instead of a number")


def _object(pairs: list[tuple[str, object]]) -> dict:
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        raise MalformedPayload("an object with a repeated key")
    if mapping.keys() == _RESERVED_SHAPE:
        raise MalformedPayload("an object with the event store's reserved keys _type_ and _data_")
    if any(key.startswith("$") or "." in key or "\x00" in key for key in mapping):
        raise MalformedPayload("a key the read store cannot hold ('$' first, '.' or NUL)")
    return mapping


_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_int=_parse_int, parse_float=_parse_float,
                            parse_constant=_refuse_constant)


def request_routing_key(device_id: str, api: str) -> str:
    """`<id>.<api>` on amq.topic, which the MQTT plugin delivers to the device as `<id>/<api>`."""
    return f"{device_id}.{api}"


def parse_answer_routing_key(routing_key: str) -> tuple[str, str] | None:
    """(device id, api) of `server.<id>.<api>`, or None for anything else."""
    parts = routing_key.split(".")
    if len(parts) != 3 or parts[0] != "server" or not DEVICE_ID.match(parts[1]) or not parts[2]:
        return None
    return parts[1], parts[2]


def encode_request(params: dict, correlation_id: str | None = None) -> bytes:
    """json.dumps with its default `", "` and `": "` separators and the catalogue's key order:
    the FT900 parser scans for `"number": ` and `"value": ` with exactly one space."""
    body = dict(params)
    if correlation_id:
        body["correlation_id"] = correlation_id
    return json.dumps(body).encode()


# Answers that carry no `value`: the device republishes the request itself.
ECHOING_APIS = frozenset({"trigger_notification"})


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
