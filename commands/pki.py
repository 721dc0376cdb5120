"""The platform certificate authority: issues device, broker and service certificates."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from commands.secret_files import private_directory, read_or_create_secret, write_secret

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
CA_VALIDITY_DAYS = 3650
SERVER_VALIDITY_DAYS = 825
# A P-384 or RSA-4096 CSR is under 2 KB of PEM; anything much larger is padding or an attack.
MAX_CSR_BYTES = 8192
ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1)
ACCEPTED_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)
RSA_MIN_BITS, RSA_MAX_BITS = 2048, 4096


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
        """Loads the CA from `directory`, creating it on first use. The key is read and written only
        through `commands.secret_files`: never through a symlink, created once (O_EXCL), mode 0600."""
        directory = private_directory(directory)
        cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
        key = serialization.load_pem_private_key(
            read_or_create_secret(key_path, lambda: _key_pem(ec.generate_private_key(ec.SECP256R1()))), password=None)
        if cert_path.exists():
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        else:
            # Also the repair path when a crash came between writing the key and its certificate.
            certificate = _self_signed_ca_certificate(key, name)
            write_secret(cert_path, certificate.public_bytes(serialization.Encoding.PEM), replace=True)
        return cls(certificate, key)

    @property
    def certificate_pem(self) -> str:
        return self._certificate.public_bytes(serialization.Encoding.PEM).decode()

    def issue_client_certificate(self, common_name: str, *, validity_days: int, key_type: str = "ec",
                                 csr_pem: str | None = None) -> IssuedCertificate:
        """Issues a clientAuth certificate with CN = `common_name`, for a new key or the CSR's key. Its
        subject also names its own serial (serialNumber, in hex): the broker's connection events show a
        connection's subject but not its serial, and after a reissue the gateway must tell the
        connections of the new certificate from those of the old (gateways/devices/revocation_sweeps.py)."""
        if csr_pem:
            public_key, key_pem = load_csr_public_key(csr_pem), ""
        else:
            key = _generate_key(key_type)
            public_key, key_pem = key.public_key(), _key_pem(key).decode()
        return self._sign(common_name, public_key, key_pem, validity_days,
                          [ExtendedKeyUsageOID.CLIENT_AUTH], san=None, serial_in_subject=True)

    def sign_statement(self, data: bytes) -> bytes:
        """An ECDSA/SHA-256 signature by the CA key (audit checkpoints sign the event chain's head)."""
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))

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

    def _sign(self, common_name, public_key, key_pem, validity_days, usages, san,
              serial_in_subject: bool = False) -> IssuedCertificate:
        now = self._clock()
        serial = secrets.randbits(159) | 1  # 159 random bits: unpredictable serials, as CA/B Forum guidance asks
        subject = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if serial_in_subject:
            subject.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, format(serial, "x")))
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(self._certificate.subject)
            .public_key(public_key)
            .serial_number(serial)
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
        return describe_certificate(certificate, key_pem, common_name)


class CertificateIssuer(Protocol):
    """What DeviceFleet needs from a CA: the local CertificateAuthority or the signer process's client."""

    @property
    def certificate_pem(self) -> str: ...

    def issue_client_certificate(self, common_name: str, *, validity_days: int, key_type: str = "ec",
                                 csr_pem: str | None = None) -> IssuedCertificate: ...


def describe_certificate(certificate: x509.Certificate, key_pem: str, common_name: str) -> IssuedCertificate:
    return IssuedCertificate(
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        private_key_pem=key_pem,
        serial=format(certificate.serial_number, "x"),
        fingerprint_sha256=certificate.fingerprint(hashes.SHA256()).hex(":").upper(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        common_name=common_name,
    )


def new_key_and_csr(key_type: str) -> tuple[str, str]:
    """A fresh device key (PEM) and a CSR it signed, for devices that send no CSR of their own."""
    key = _generate_key(key_type)
    csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
           .sign(key, hashes.SHA256()))
    return _key_pem(key).decode(), csr.public_bytes(serialization.Encoding.PEM).decode()


def _self_signed_ca_certificate(key, name: str) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "iotcloud"),
                         x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return (
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


def load_csr_public_key(csr_pem: str | bytes):
    """Returns the public key of an acceptable, self-signed CSR, or raises InvalidCSR.

    Acceptable: at most MAX_CSR_BYTES (checked before parsing), signed with SHA-2 by the key it
    carries, and that key is EC P-256/P-384 or RSA 2048-4096 bits with a FIPS 186-5 exponent.
    Ed25519 is refused: device TLS with Ed25519 client certificates was not verified against the
    broker (RabbitMQ/Erlang ssl), so the platform will not hand out certificates devices cannot use.
    """
    if isinstance(csr_pem, str):
        try:
            data = csr_pem.encode("ascii")
        except UnicodeEncodeError:
            raise InvalidCSR("the CSR must be ASCII PEM text") from None
    elif isinstance(csr_pem, bytes):
        data = csr_pem
    else:
        raise InvalidCSR("the CSR must be a PEM string")
    if len(data) > MAX_CSR_BYTES:
        raise InvalidCSR(f"the CSR is larger than {MAX_CSR_BYTES} bytes")
    try:
        csr = x509.load_pem_x509_csr(data)
        public_key = csr.public_key()
        hash_algorithm = csr.signature_hash_algorithm
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidCSR("the CSR is not a PEM-encoded PKCS#10 request with a supported key") from exc
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ACCEPTED_CURVES):
            raise InvalidCSR(f"EC keys must be on P-256 or P-384, not {public_key.curve.name}")
    elif isinstance(public_key, rsa.RSAPublicKey):
        if not RSA_MIN_BITS <= public_key.key_size <= RSA_MAX_BITS:
            raise InvalidCSR(f"RSA keys must be {RSA_MIN_BITS} to {RSA_MAX_BITS} bits, not {public_key.key_size}")
        exponent = public_key.public_numbers().e
        if exponent % 2 == 0 or not 2**16 < exponent < 2**256:
            raise InvalidCSR("the RSA public exponent must be odd and between 2^16 and 2^256 (e.g. 65537)")
    else:
        raise InvalidCSR("only EC (P-256, P-384) and RSA (2048-4096 bits) keys are accepted")
    if not isinstance(hash_algorithm, ACCEPTED_HASHES):
        raise InvalidCSR("the CSR must be signed with SHA-256, SHA-384 or SHA-512")
    if not csr.is_signature_valid:
        raise InvalidCSR("the CSR signature does not verify")
    return public_key


def _generate_key(key_type: str):
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class InvalidCSR(ValueError):
    """The certificate signing request cannot be used."""
