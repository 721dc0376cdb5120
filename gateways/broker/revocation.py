"""Certificate revocation the broker enforces on every TLS handshake, by serial number.

RabbitMQ 3.10 hands its auth backends only the certificate CN, so a reissued device (same CN) cannot be
told apart from the holder of its old key there. The TLS layer can: the node runs with
`ssl_options.crl_check = peer` and Erlang's `ssl_crl_hash_dir` cache, which reads the CRL file of the
issuing CA from a directory on every handshake (no cache, no restart). `CertificateRevocations.sync`
derives that CRL from the DeviceFleet log (a reissue revokes the previous certificate, an unregistration
the current one) and replaces the file atomically, so the broker refuses a revoked certificate from the
moment `sync` returns.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import time
from pathlib import Path

from cryptography import x509
from eventsourcing.utils import get_topic

from commands.domain.devices import Device

log = logging.getLogger("iotcloud.broker.revocation")
REVOKING = [get_topic(Device.CertificateReissued), get_topic(Device.Unregistered)]
CRL_VALIDITY = dt.timedelta(days=3650)
CRL_REFRESH_BEFORE = dt.timedelta(days=90)
PAGE = 1000


def crl_directory(broker_state_dir: str | os.PathLike) -> Path:
    return Path(broker_state_dir) / "crl"


class CertificateRevocations:
    """The CRL in `directory` (OpenSSL hash-dir layout) and the state it is signed from.

    Several API workers may revoke at once: each `sync` runs under an exclusive file lock and reads the log
    after taking it, so the CRL written last always contains every revocation saved before it.
    """

    def __init__(self, directory: str | os.PathLike, authority, clock=None):
        self.directory = Path(directory)
        self._authority = authority
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        ca = x509.load_pem_x509_certificate(authority.certificate_pem.encode())
        self.crl_file = self.directory / f"{subject_hash(ca.subject)}.r0"
        self._state_file = self.directory / "revoked.json"

    def ensure(self) -> None:
        """Writes the CRL when it is missing or due for renewal (without it the broker refuses everyone)."""
        with self._locked():
            state = self._load()
            if self._due(state):
                self._write(state)

    def sync(self, fleet) -> int:
        """Applies every revocation in `fleet`'s log not applied yet; returns how many certificates it added.

        Returns once the new CRL is in place, i.e. once the broker refuses those certificates."""
        with self._locked():
            state = self._load()
            added = 0
            while True:
                page = fleet.recorder.select_notifications(start=state["position"] + 1, limit=PAGE, topics=REVOKING)
                for notification in page:
                    before = fleet.repository.get(notification.originator_id,
                                                  version=notification.originator_version - 1)
                    certificate = before.certificate
                    if certificate["serial"] not in state["revoked"]:
                        state["revoked"][certificate["serial"]] = {
                            "not_after": certificate["not_after"], "device_id": before.device_id,
                            "revoked_at": self._clock().isoformat()}
                        added += 1
                    state["position"] = notification.id
                if len(page) < PAGE:
                    break
            if added or self._due(state):
                self._write(state)
            elif page or not self._state_file.exists():
                self._save(state)
            return added

    def revoked_serials(self) -> set[str]:
        return set(self._load()["revoked"])

    # ------------------------------------------------------------------ files

    def _locked(self):
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return _FileLock(self.directory / ".lock")

    def _load(self) -> dict:
        try:
            state = json.loads(self._state_file.read_text())
        except FileNotFoundError:
            return {"position": 0, "revoked": {}, "next_update": None}
        return state

    def _due(self, state: dict) -> bool:
        if not self.crl_file.exists() or not state.get("next_update"):
            return True
        return dt.datetime.fromisoformat(state["next_update"]) - CRL_REFRESH_BEFORE < self._clock()

    def _write(self, state: dict) -> None:
        now = self._clock()
        # Expired certificates are refused anyway; keep a day of overlap for clock skew.
        state["revoked"] = {serial: entry for serial, entry in state["revoked"].items()
                            if dt.datetime.fromisoformat(entry["not_after"]) > now - dt.timedelta(days=1)}
        next_update = now + CRL_VALIDITY
        der = self._authority.sign_crl({int(serial, 16): dt.datetime.fromisoformat(entry["revoked_at"])
                                        for serial, entry in state["revoked"].items()}, next_update)
        state["next_update"] = next_update.isoformat()
        _replace(self.crl_file, der, 0o644)
        self._save(state)

    def _save(self, state: dict) -> None:
        _replace(self._state_file, json.dumps(state, sort_keys=True).encode(), 0o600)


class BrokerRevocation:
    """The DeviceFleet's `CertificateRevocation` for the embedded node: the CRL first (new logins refused),
    then the device's live connections, both before the API answers."""

    def __init__(self, revocations: CertificateRevocations, admin=None):
        self._revocations = revocations
        self._admin = admin

    def catch_up(self, fleet) -> int:
        return self._revocations.sync(fleet)

    def enforce(self, fleet, device_id: str) -> None:
        self._revocations.sync(fleet)
        if self._admin is None:
            return
        # Every connection the device holds now goes, with no need to tell old from new: the credential that
        # replaces the revoked one (a reissue's certificate, a rotation's password) is still in this process,
        # in the answer not yet sent. (A device with both a certificate and a password loses the other
        # credential's connection too, and logs in again with it.) A TLS session set up before the CRL was
        # replaced may still log in later: the gateway's sweeps close it (gateways/devices/revocation_sweeps.py).
        try:
            closed = self._admin.close_device_connections(device_id, "certificate revoked")
        except Exception:  # noqa: BLE001 - new logins are refused already; the gateway's sweeps retry
            log.exception("could not close the connections of a revoked device")
            return
        if closed:
            log.info("closed a revoked device's connections", extra={"device_id": device_id, "closed": closed})


class _FileLock:
    def __init__(self, path: Path):
        self._path = path

    def __enter__(self):
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def _replace(path: Path, data: bytes, mode: int) -> None:
    """Readers (the broker, another worker) see the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


# ---------------------------------------------------------------- OpenSSL subject hash

def subject_hash(name: x509.Name) -> str:
    """OpenSSL's `X509_NAME_hash` (what `openssl x509 -subject_hash` prints and Erlang's
    `public_key:short_name_hash` computes): SHA-1 of the canonical DER of the name, first 4 bytes LE."""
    canonical = b"".join(_tlv(0x31, b"".join(
        _tlv(0x30, _oid(attribute.oid.dotted_string) + _tlv(0x0C, _canonical_text(attribute.value)))
        for attribute in rdn)) for rdn in name.rdns)
    return format(int.from_bytes(hashlib.sha1(canonical).digest()[:4], "little"), "08x")


def _canonical_text(value) -> bytes:
    if isinstance(value, bytes):
        return value
    text = " ".join(value.split())  # strip, and collapse inner whitespace runs to one space
    return "".join(c.lower() if c.isascii() else c for c in text).encode("utf-8")


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        body.extend(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _tlv(tag: int, body: bytes) -> bytes:
    length = len(body)
    if length < 0x80:
        return bytes([tag, length]) + body
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(encoded)]) + encoded + body
