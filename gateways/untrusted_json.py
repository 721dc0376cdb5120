"""Untrusted JSON, from a device or an HTTP client: measured before it is parsed, and only what every
later stage can carry gets through.

A payload's size, encoding and nesting are checked first (nesting with linear passes in C, so
json's recursion is never reached), then the parser refuses what would fail far from the edge:
numbers that are not finite or do not fit 64 bits (the read store holds BSON int64; long digit
strings cost int() quadratic time), repeated keys, lone surrogates (no UTF-8 for the event store
or a log line), eventsourcing's reserved `{"_type_", "_data_"}` objects (the stored event could not
be read back) and keys MongoDB refuses. One document that breaks the projector would stall every
read model behind it.
"""

from __future__ import annotations

import functools
import json
import math
import re

MAX_DEPTH = 32          # nested arrays/objects; FT900 answers nest two levels, our bodies three
MAX_NUMBER = 40         # characters of one number literal (a double's repr needs 24)
INT64 = 2 ** 63         # the read store holds integers as BSON int64

_UNIFY = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# eventsourcing's JSON transcoder reads an object with exactly these keys as one of its own types.
_RESERVED_SHAPE = frozenset({"_type_", "_data_"})


class MalformedPayload(ValueError):
    """An untrusted JSON document refused before or while parsing it."""


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
