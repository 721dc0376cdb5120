"""The signer's side of the socket: validates every request itself and signs only device CSRs."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import re
import secrets
import socket
import threading
from pathlib import Path

from commands.domain.device_ids import is_device_id
from commands.pki import CertificateAuthority, InvalidCSR
from commands.secret_files import private_directory

from .protocol import ProtocolError, receive_frame, send_frame

log = logging.getLogger("iotcloud.signer")

SIGN_FIELDS = frozenset({"op", "device_id", "csr", "validity_days"})
CRL_FIELDS = frozenset({"op", "revoked", "next_update"})
# The broker refuses every device once its CRL lapses, so the API signs long-lived ones (revocation.py).
MAX_CRL_VALIDITY = dt.timedelta(days=3660)
SERIAL = re.compile(r"[0-9a-f]{1,40}")  # RFC 5280: at most 20 octets
MAX_CONNECTIONS = 8          # a local client cannot tie up more threads than this
CONNECTION_TIMEOUT = 5.0     # seconds a client has to send its request
UNIX_PATH_MAX = 107          # sun_path holds 108 bytes, NUL included


class SignerServer:
    """Answers requests on a Unix socket (0600, in a 0700 directory) with `ca`'s signatures."""

    def __init__(self, ca: CertificateAuthority, socket_path: str | os.PathLike, max_validity_days: int):
        self._ca = ca
        self.socket_path = Path(socket_path)
        self._max_days = max_validity_days
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._thread: threading.Thread | None = None

    def start(self) -> "SignerServer":
        self._listener = bind_private_socket(self.socket_path)
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, name="signer", daemon=True)
        self._thread.start()
        log.info("signer listening", extra={"socket": str(self.socket_path)})
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._listener is not None:
            self._listener.close()
        try:
            if self.socket_path.is_socket():
                self.socket_path.unlink()
        except OSError:
            pass

    def answer(self, request: dict) -> dict:
        """The whole policy: a CA certificate, or a client certificate for a device id; nothing else."""
        op = request.get("op")
        if op == "ca" and set(request) == {"op"}:
            return {"ok": True, "certificate": self._ca.certificate_pem}
        if op == "crl" and set(request) == CRL_FIELDS:
            return self._crl(request["revoked"], request["next_update"])
        if op != "sign" or set(request) != SIGN_FIELDS:
            return refusal("bad-request", "only {op: sign, device_id, csr, validity_days}, {op: crl, revoked, "
                                          "next_update} and {op: ca} are served")
        device_id, csr, days = request["device_id"], request["csr"], request["validity_days"]
        if not is_device_id(device_id):
            return refusal("bad-request", "device_id must be a device id (40 lowercase hex digits)")
        if type(days) is not int or not 1 <= days <= self._max_days:
            return refusal("bad-request", f"validity_days must be an integer from 1 to {self._max_days}")
        if not isinstance(csr, str):
            return refusal("invalid-csr", "the CSR must be a PEM string")
        try:
            issued = self._ca.issue_client_certificate(device_id, validity_days=days, csr_pem=csr)
        except InvalidCSR as exc:
            return refusal("invalid-csr", str(exc))
        log.info("issued a device certificate", extra={"device_id": device_id, "serial": issued.serial,
                                                       "validity_days": days})
        return {"ok": True, "certificate": issued.certificate_pem}

    def _crl(self, revoked, next_update) -> dict:
        """Signs a revocation list: it can only take certificates out of use (a bounded lifetime, any serials)."""
        try:
            until = _aware(next_update)
            entries = {int(serial, 16): _aware(at) for serial, at in _pairs(revoked)}
        except (TypeError, ValueError) as exc:
            return refusal("bad-request", f"revoked must be [[serial hex, ISO time], ...] and next_update an "
                                          f"ISO time with a zone ({exc})")
        now = dt.datetime.now(dt.timezone.utc)
        if not now < until <= now + MAX_CRL_VALIDITY:
            return refusal("bad-request", f"next_update must lie within {MAX_CRL_VALIDITY.days} days from now")
        der = self._ca.sign_crl(entries, until)
        log.info("signed a certificate revocation list", extra={"revoked": len(entries)})
        return {"ok": True, "crl": base64.b64encode(der).decode()}

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=0.2):
                continue
            try:
                connection, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                self._slots.release()
                continue
            except OSError:
                self._slots.release()
                if self._stop.is_set():
                    return
                raise
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        try:
            with connection:
                connection.settimeout(CONNECTION_TIMEOUT)
                try:
                    request = receive_frame(connection)
                except ProtocolError as exc:
                    send_frame(connection, refusal("bad-request", str(exc)))
                    return
                send_frame(connection, self.answer(request))
        except OSError:
            pass  # the client went away or was too slow: nothing to answer
        except Exception:
            log.exception("signer request failed")
        finally:
            self._slots.release()


def _pairs(revoked):
    if not isinstance(revoked, list):
        raise TypeError("revoked is not a list")
    for pair in revoked:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and SERIAL.fullmatch(pair[0])):
            raise ValueError(f"bad entry {str(pair)[:80]}")
        yield pair


def _aware(text) -> dt.datetime:
    if not isinstance(text, str) or len(text) > 40:
        raise TypeError("a time must be an ISO 8601 string")
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("a time needs a zone")
    return value


def refusal(error: str, detail: str) -> dict:
    return {"ok": False, "error": error, "detail": detail}


def bind_private_socket(path: Path) -> socket.socket:
    """Listens on `path` with mode 0600 from the first moment: binds a temporary name, restricts it,
    then renames it into place (replacing a stale socket, never a live signer's)."""
    if len(os.fsencode(path)) > UNIX_PATH_MAX:
        raise ValueError(f"the signer socket path {path} is longer than {UNIX_PATH_MAX} bytes; "
                         "set IOTCLOUD_SIGNER_SOCKET to a shorter path")
    folder = private_directory(path.parent)
    if path.exists() and _answers(path):
        raise RuntimeError(f"a signer is already listening on {path}")
    temporary = folder / f".s-{secrets.token_hex(4)}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(temporary))
        os.chmod(temporary, 0o600)
        listener.listen(64)
        os.replace(temporary, path)
    except BaseException:
        listener.close()
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
    return listener


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        try:
            probe.connect(str(path))
            return True
        except OSError:
            return False
