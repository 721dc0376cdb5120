"""The API's side of the socket: a CertificateIssuer that never sees the CA key."""

from __future__ import annotations

import base64
import datetime as dt
import os
import socket
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from commands.errors import SignerUnavailable
from commands.pki import MAX_CSR_BYTES, InvalidCSR, IssuedCertificate, describe_certificate, new_key_and_csr

from .protocol import ProtocolError, receive_frame, send_frame


class SignerClient:
    """Issues device certificates through the signer process.

    Devices that send no CSR get a key generated here, in the API process: that key is the
    device's, returned once to its owner by this very process anyway, so generating it in the
    signer would only widen the signer's interface (it would have to hand private keys out).
    """

    def __init__(self, socket_path: str | os.PathLike, timeout: float = 10.0, connect_wait: float = 3.0):
        self._path = str(Path(socket_path))
        self._timeout = timeout
        self._connect_wait = connect_wait
        self._ca_pem: str | None = None
        self._lock = threading.Lock()

    @property
    def certificate_pem(self) -> str:
        with self._lock:
            if self._ca_pem is None:
                self._ca_pem = self._call({"op": "ca"})["certificate"]
            return self._ca_pem

    def issue_client_certificate(self, common_name: str, *, validity_days: int, key_type: str = "ec",
                                 csr_pem: str | None = None) -> IssuedCertificate:
        key_pem = ""
        if csr_pem:
            if not isinstance(csr_pem, str) or len(csr_pem) > MAX_CSR_BYTES:
                raise InvalidCSR(f"the CSR must be a PEM string of at most {MAX_CSR_BYTES} bytes")
        else:
            key_pem, csr_pem = new_key_and_csr(key_type)
        answer = self._call({"op": "sign", "device_id": common_name, "csr": csr_pem, "validity_days": validity_days})
        certificate = x509.load_pem_x509_certificate(answer["certificate"].encode())
        self._check(certificate, common_name, csr_pem)
        return describe_certificate(certificate, key_pem, common_name)

    def sign_crl(self, revoked: dict[int, dt.datetime], next_update: dt.datetime) -> bytes:
        """A DER CRL from the signer, as `CertificateAuthority.sign_crl` makes one in process."""
        answer = self._call({"op": "crl", "revoked": [[format(serial, "x"), at.isoformat()]
                                                      for serial, at in sorted(revoked.items())],
                             "next_update": next_update.isoformat()}, expect="crl")
        return base64.b64decode(answer["crl"])

    def _check(self, certificate: x509.Certificate, common_name: str, csr_pem: str) -> None:
        """A certificate for another name or key would be handed to the wrong device: refuse it."""
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        requested = x509.load_pem_x509_csr(csr_pem.encode()).public_key()
        same_key = (certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)
                    == requested.public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))
        if [n.value for n in names] != [common_name] or not same_key:
            raise SignerUnavailable("the signer answered with a certificate for another name or key")

    def _call(self, request: dict, expect: str = "certificate") -> dict:
        try:
            with self._connect() as connection:
                send_frame(connection, request)
                answer = receive_frame(connection)
        except (OSError, ProtocolError) as exc:
            raise SignerUnavailable(f"the certificate signer did not answer ({exc.__class__.__name__})") from None
        if answer.get("ok") is True and isinstance(answer.get(expect), str):
            return answer
        if answer.get("error") == "invalid-csr":
            raise InvalidCSR(str(answer.get("detail") or "the CSR was refused"))
        raise SignerUnavailable(f"the signer refused the request: {answer.get('detail')}")

    def _connect(self) -> socket.socket:
        """Connects, waiting up to `connect_wait` seconds for a signer that is (re)starting."""
        deadline = time.monotonic() + self._connect_wait
        while True:
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.settimeout(self._timeout)
            try:
                connection.connect(self._path)
                return connection
            except (FileNotFoundError, ConnectionRefusedError):
                connection.close()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
            except OSError:
                connection.close()
                raise
