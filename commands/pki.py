"""The platform certificate authority: issues device, broker and service certificates."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
CA_VALIDITY_DAYS = 3650
SERVER_VALIDITY_DAYS = 825


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A freshly signed certificate; `private_key_pem` is empty when the caller kept its own key."""

    certificate_pem: str
    private_key_pem: str
    serial: str
    fingerprint_sha256: str
    not_before: dt.datetime
    not_after: dt.datetime
    common_name: str


class CertificateAuthority:
    """Signs X.509 certificates with the platform CA key kept (mode 0600) in the state directory."""

    def __init__(self, certificate: x509.Certificate, key, clock=None):
        self._certificate = certificate
        self._key = key
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))

    @classmethod
    def load_or_create(cls, directory: str | os.PathLike, name: str = "iotcloud platform CA") -> "CertificateAuthority":
        directory = Path(directory)
        cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
        if cert_path.exists() and key_path.exists():
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            return cls(certificate, key)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "iotcloud"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_VALIDITY_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(key_path, _key_pem(key))
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cls(certificate, key)

    @property
    def certificate_pem(self) -> str:
        return self._certificate.public_bytes(serialization.Encoding.PEM).decode()

    def issue_client_certificate(self, common_name: str, *, validity_days: int, key_type: str = "ec",
                                 csr_pem: str | None = None) -> IssuedCertificate:
        """Issues a clientAuth certificate with CN = `common_name`, for a new key or the CSR's key."""
        if csr_pem:
            public_key, key_pem = load_csr_public_key(csr_pem), ""
        else:
            key = _generate_key(key_type)
            public_key, key_pem = key.public_key(), _key_pem(key).decode()
        return self._sign(common_name, public_key, key_pem, validity_days,
                          [ExtendedKeyUsageOID.CLIENT_AUTH], san=None)

    def sign_crl(self, revoked: dict[int, dt.datetime], next_update: dt.datetime) -> bytes:
        """A DER CRL listing `revoked` (serial number -> revocation time), valid until `next_update`."""
        now = self._clock()
        builder = (x509.CertificateRevocationListBuilder()
                   .issuer_name(self._certificate.subject)
                   .last_update(now - dt.timedelta(minutes=5))
                   .next_update(next_update)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                                  critical=False))
        for serial, revoked_at in sorted(revoked.items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(revoked_at).build())
        return builder.sign(self._key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def issue_server_certificate(self, common_name: str, hostnames: list[str], ips: list[str],
                                 validity_days: int = SERVER_VALIDITY_DAYS) -> IssuedCertificate:
        """Issues a serverAuth certificate (with a new key) for a broker or web listener."""
        key = _generate_key("ec")
        san = [x509.DNSName(h) for h in hostnames] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        return self._sign(common_name, key.public_key(), _key_pem(key).decode(), validity_days,
                          [ExtendedKeyUsageOID.SERVER_AUTH], san=san)

    def _sign(self, common_name, public_key, key_pem, validity_days, usages, san) -> IssuedCertificate:
        now = self._clock()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._certificate.subject)
            .public_key(public_key)
            # 159 random bits: unpredictable serials, as CA/B Forum guidance asks.
            .serial_number(secrets.randbits(159) | 1)
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=validity_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=not isinstance(public_key, ec.EllipticCurvePublicKey),
                                         key_agreement=False, content_commitment=False, data_encipherment=False,
                                         key_cert_sign=False, crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        return IssuedCertificate(
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
            private_key_pem=key_pem,
            serial=format(certificate.serial_number, "x"),
            fingerprint_sha256=certificate.fingerprint(hashes.SHA256()).hex(":").upper(),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            common_name=common_name,
        )


def load_csr_public_key(csr_pem: str):
    """Returns the public key of a well-formed, self-signed CSR, or raises InvalidCSR."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode() if isinstance(csr_pem, str) else csr_pem)
    except (ValueError, TypeError) as exc:
        raise InvalidCSR("the CSR is not a PEM-encoded PKCS#10 request") from exc
    if not csr.is_signature_valid:
        raise InvalidCSR("the CSR signature does not verify")
    public_key = csr.public_key()
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < 2048:
        raise InvalidCSR("RSA keys must be at least 2048 bits")
    if not isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise InvalidCSR("only RSA and EC keys are accepted")
    return public_key


def _generate_key(key_type: str):
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


class InvalidCSR(ValueError):
    """The certificate signing request cannot be used."""
