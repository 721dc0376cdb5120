"""Device answers are parsed under limits checked before the parser runs: nothing a device sends
raises anything but MalformedAnswer, and nothing that passes can break a later stage."""

from __future__ import annotations

import json
import random

import pytest

from gateways.devices.protocol import MAX_ANSWER, MalformedAnswer, decode_answer
from gateways.untrusted_json import MAX_DEPTH

HOSTILE = {
    "nested 20,000 deep": b'{"value": ' + b"[" * 20000 + b"]" * 20000 + b"}",
    "objects nested 10,000 deep": b'{"value": ' + b'{"a":' * 10000 + b"1" + b"}" * 10000 + b"}",
    "nested one past the limit": b'{"value": ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}",
    "unterminated nesting": b'{"value": ' + b"[" * 30000,
    "oversized": b'{"value": "' + b"x" * MAX_ANSWER + b'"}',
    "not UTF-8": b'{"value": "\xff\xfe"}',
    "UTF-16": '{"value": 1}'.encode("utf-16"),
    "lone surrogate": b'{"value": "\\ud800"}',
    "NaN": b'{"value": NaN}',
    "Infinity": b'{"value": -Infinity}',
    "float overflow": b'{"value": 1e999999}',
    "60,000 digits": b'{"value": ' + b"7" * 60000 + b"}",
    "beyond int64": b'{"value": 9223372036854775808}',
    "repeated key": b'{"value": 1, "value": 2}',
    "event store's reserved shape": b'{"value": {"_type_": "uuid_hex", "_data_": "00"}}',
    "dollar key": b'{"value": {"$where": 1}}',
    "NUL in a key": b'{"value": {"a\\u0000": 1}}',
    "array": b"[1, 2]",
    "string": b'"running"',
    "number": b"1",
    "null": b"null",
    "empty": b"",
    "binary": bytes(range(256)) * 4,
    "no value": b'{"number": 1}',
}


@pytest.mark.parametrize("payload", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_answers_are_malformed_answers_and_nothing_else(payload):
    with pytest.raises(MalformedAnswer):
        decode_answer(payload, "get_status")


@pytest.mark.parametrize("payload,value", [
    (b'{"value": "running"}', "running"),
    (b'{"number": 5, "value": 1}', 1),
    (b'{"value": -9223372036854775808}', -9223372036854775808),
    (b'{"value": 1.5e300}', 1.5e300),
    (b'{"value": "\\ud83d\\ude00 [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{"}',
     "\U0001F600 " + "[" * 48 + "{" * 34),
    (b'{"value": "a \\\\\\" [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ \\\\"}', 'a \\" ' + "[" * 55 + " \\"),
    (b'{"value": ' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}",
     json.loads("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))),
    (b'{"value": [' + b"[[]]," * 2000 + b"[]]}", [[[]]] * 2000 + [[]]),
    (b'{"value": {"a.b": 1}}'.replace(b"a.b", b"ab"), {"ab": 1}),
])
def test_legitimate_answers_still_parse(payload, value):
    assert decode_answer(payload, "get_status")[0] == value


def reference_depth(text: bytes) -> tuple[int, bool]:
    """Nesting of the first top-level value, the slow obvious way, and whether the text was read to
    the end of that value (a parser gives up at a backslash outside a string)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in text:
        char = chr(byte)
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "\\":
            return deepest, False
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
            if depth <= 0:
                break
    return deepest, True


def test_the_depth_scan_agrees_with_a_character_by_character_scan():
    from gateways.untrusted_json import nests_within
    rng = random.Random(6)
    alphabet = b'[[[]]]{}"\\a,:'
    for _ in range(5000):
        text = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 160)))
        depth, whole = reference_depth(text)
        if whole:
            assert nests_within(text, 8) == (depth <= 8), text
        elif depth > 8:  # past a parse error the scan may only be stricter
            assert not nests_within(text, 8), text
