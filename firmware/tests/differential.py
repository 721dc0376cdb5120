"""Differential check of the C core against simulators/device.py, the reference device.

Usage: python differential.py REPLAY_BINARY FILE_OR_DIR...  (files hold "<topic>\\0<payload>").
Each input goes to a fresh C device (tests/replay.c, fake board) and a fresh Python Device with the
same clock, network facts and GPIO pins; their publishes must be equal byte for byte. Inputs the C
core refuses by design are counted, not compared: payloads beyond IOTC_MAX_PAYLOAD, replies beyond
IOTC_MAX_REPLY, GPIO pins the board does not have, and the number forms documented in
firmware/README.md ("Differences from the Python simulator").
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from simulators.device import Device, NetworkInfo  # noqa: E402

DEVICE_ID = "0123456789abcdef0123456789abcdef01234567"
NET = NetworkInfo(mac="02:00:00:AB:CD:EF", ip="192.168.1.23", subnet="255.255.255.0", gateway="192.168.1.1")
PINS = 32
MAX_PAYLOAD, MAX_REPLY = 256, 512  # iotc_config.h defaults, which replay is built with
REPLIED, SILENT, TOO_LONG, MALFORMED, INVALID, FAILED_HAL, FAILED_REPLY = 0, 1, 4, 5, 6, 7, 8


def _walk(value):
    yield value
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def _documented_difference(payload: bytes) -> bool:
    """Inputs where the C core deliberately differs (firmware/README.md)."""
    try:
        text = payload.decode("utf-8")
        if not text.strip():
            return False
        parsed = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _has_nonascii_space(payload)
    for v in _walk(parsed):
        if isinstance(v, float) and (not math.isfinite(v) or v.is_integer()):
            return True  # NaN/Infinity literals, or integers only after float rounding
        if isinstance(v, float):
            return True  # non-canonical float spellings are echoed as sent
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > 2**63 - 1:
            return True
        if isinstance(v, str) and v.strip() != v.strip(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"):
            return True  # non-ASCII whitespace around numeric strings
        if isinstance(v, str) and any(c.isdigit() and not c.isascii() for c in v):
            return True
    if _depth(parsed) > 8 or _tokens(parsed) > 48:
        return True
    return False


def _has_nonascii_space(payload: bytes) -> bool:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not text.strip() and text.strip(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f") != ""


def _depth(v) -> int:
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    return 0


def _tokens(v) -> int:
    if isinstance(v, dict):
        return 1 + sum(1 + _tokens(x) for x in v.values())
    if isinstance(v, list):
        return 1 + sum(_tokens(x) for x in v)
    return 1


def main(argv: list[str]) -> int:
    logging.disable(logging.CRITICAL)
    argv = [a for a in argv if a != "-v"]
    replay, targets = argv[0], [Path(a) for a in argv[1:]]
    files = [f for t in targets for f in (sorted(p for p in t.iterdir() if p.is_file()) if t.is_dir() else [t])]
    out = subprocess.run([replay, DEVICE_ID, *map(str, files)], capture_output=True, check=True).stdout
    tally, failures = Counter(), []
    for line in out.decode().splitlines():
        name, outcome, *pubs = line.split("\t")
        outcome = int(outcome)
        c_pubs = [(p.split(" ")[0], bytes.fromhex(p.split(" ")[1])) for p in pubs]
        data = Path(name).read_bytes()
        topic, _, payload = data.partition(b"\0")
        dev = Device(DEVICE_ID, notification_recipient="ops@example.com", clock=lambda: 1700000000.5, network=NET,
                     display=lambda *_: None)
        api = dev.request_api(topic.decode("utf-8", "replace"))
        py_pubs = [] if api is None else [(dev.reply_topic(p.api), p.payload) for p in dev.handle(api, payload)]
        if c_pubs == py_pubs:
            tally["equal"] += 1
            continue
        if outcome in (TOO_LONG, FAILED_REPLY) or (outcome == FAILED_HAL and api in ("get_gpio", "set_gpio")):
            tally["bounded"] += 1
            continue
        if _documented_difference(payload) or b"\0" in topic or len(topic) > 200:
            tally["documented"] += 1
            if "-v" in sys.argv:
                print("documented:", topic[-20:], payload[:120], c_pubs, py_pubs)
            continue
        failures.append((name, topic, payload[:200], outcome, c_pubs, py_pubs))
    print(f"differential: {sum(tally.values()) + len(failures)} inputs, {dict(tally)}, {len(failures)} differences")
    for f in failures[:20]:
        print("DIFF", *f, sep="\n  ")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
