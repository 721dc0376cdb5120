"""JSON text as both REST flavours accept it: only what the platform can also store.

`json.loads` accepts two things that later fail far from the edge with a 500: nesting deeper than
the interpreter's recursion limit (RecursionError, not ValueError) and `\\ud800`-style escapes
of unpaired UTF-16 surrogates, which give strings that cannot be encoded as UTF-8 (for a uuid5,
an event, a log line). Both are malformed input, so both raise ValueError here.
"""

from __future__ import annotations

import json
import re

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def loads(text: str | bytes | bytearray):
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode(json.detect_encoding(text))  # strict: no raw surrogates either
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    if _SURROGATE_ESCAPE.search(text):  # rare: only then pay for a second pass
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the JSON has an unpaired UTF-16 surrogate escape") from None
    return value
