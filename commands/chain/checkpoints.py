"""Signed checkpoints: the chain's head at a moment, signed with the platform CA key and kept beside
the store, so that removing or rewriting events before it is detected even by someone who can
recompute every hash after it (the chain alone cannot tell a rewritten tail from the original)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from commands.chain.verify import Break, ChainedRecorder, Verdict


@dataclass(frozen=True, slots=True)
class Checkpoint:
    log: str
    notification_id: int
    hash: str  # hex
    signed_at: str
    signature: str  # base64 ECDSA/SHA-256 over `statement`

    @property
    def statement(self) -> bytes:
        return f"iotcloud event chain head\0{self.log}\0{self.notification_id}\0{self.hash}\0{self.signed_at}".encode()


class Checkpoints:
    """One JSON line per checkpoint, appended; the newest of each log counts."""

    def __init__(self, path: Path):
        self.path = path

    def sign(self, log: str, verdict: Verdict, sign: Callable[[bytes], bytes]) -> Checkpoint:
        unsigned = Checkpoint(log, verdict.head_id, verdict.head.hex(),
                              dt.datetime.now(dt.timezone.utc).isoformat(), "")
        checkpoint = Checkpoint(**{**asdict(unsigned), "signature": base64.b64encode(sign(unsigned.statement)).decode()})
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.path.open("a") as file:
            file.write(json.dumps(asdict(checkpoint)) + "\n")
        return checkpoint

    def latest(self, log: str) -> Checkpoint | None:
        if not self.path.exists():
            return None
        found = None
        for line in self.path.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("log") == log:
                found = Checkpoint(**entry)
        return found


def check(checkpoint: Checkpoint, public_key, recorder: ChainedRecorder, verdict: Verdict) -> Break | None:
    """Whether an intact chain still holds the signed head (a break names what happened)."""
    if checkpoint.notification_id == 0:
        return None  # signed while the log was empty: nothing to hold
    try:
        public_key.verify(base64.b64decode(checkpoint.signature), checkpoint.statement, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return Break("checkpoint", checkpoint.notification_id, "?", -1,
                     "the checkpoint's signature does not verify with the platform CA certificate")
    if verdict.head_id < checkpoint.notification_id:
        return Break("missing", checkpoint.notification_id, "?", -1,
                     f"a checkpoint signed at {checkpoint.signed_at} covers notifications up to "
                     f"{checkpoint.notification_id}; the log now ends at {verdict.head_id} (its tail was removed)")
    links = recorder.links(checkpoint.notification_id - 1, checkpoint.notification_id)
    if not links or links[0].hash.hex() != checkpoint.hash:
        return Break("altered", checkpoint.notification_id, "?", -1,
                     f"the chain was rewritten up to here since the checkpoint signed at {checkpoint.signed_at}")
    return None
