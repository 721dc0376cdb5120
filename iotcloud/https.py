"""The API's HTTPS listener: its certificate (issued by the platform CA unless you bring your own)
and the TLS context each gunicorn worker wraps that listener's connections with."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509

from commands.pki import CertificateAuthority
from commands.secret_files import private_directory, write_secret
from iotcloud.config import Settings

RENEW_BEFORE = dt.timedelta(days=30)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def api_names(settings: Settings) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) the issued certificate covers: loopback, the bind address and
    IOTCLOUD_TLS_NAMES (the names clients use in front of a container or a load balancer)."""
    wanted = [*LOOPBACK_NAMES, settings.api_host, *settings.tls_names.split(",")]
    dns, ips = [], []
    for name in (n.strip() for n in wanted):
        if not name or name in ("0.0.0.0", "::") or name in dns or name in ips:
            continue
        try:
            ipaddress.ip_address(name)
            ips.append(name)
        except ValueError:
            dns.append(name)
    return dns, ips


def ensure_api_certificate(settings: Settings, ca: CertificateAuthority) -> Path | None:
    """Issues the HTTPS certificate when there is none, it expires within 30 days, it was issued by
    another CA or it lacks a name now wanted. A certificate you brought is never touched."""
    if not settings.api_https_port or settings.tls_cert_file:
        return None
    cert_path, key_path = settings.api_tls_files
    dns, ips = api_names(settings)
    if cert_path.exists() and key_path.exists() and _still_good(cert_path, ca, dns, ips):
        return cert_path
    issued = ca.issue_server_certificate("iotcloud api", dns, ips)
    private_directory(cert_path.parent)
    write_secret(key_path, issued.private_key_pem.encode(), replace=True)
    # The chain a client needs beyond its trust anchor: the leaf, then the CA (harmless, and lets
    # clients that were given only the leaf's issuer name build the path).
    write_secret(cert_path, (issued.certificate_pem + ca.certificate_pem).encode(), replace=True)
    return cert_path


def _still_good(cert_path: Path, ca: CertificateAuthority, dns: list[str], ips: list[str]) -> bool:
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    have_dns = set(names.get_values_for_type(x509.DNSName))
    have_ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    ca_certificate = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
    return (certificate.issuer == ca_certificate.subject
            and certificate.not_valid_after_utc - RENEW_BEFORE > dt.datetime.now(dt.timezone.utc)
            and set(dns) <= have_dns and {str(ipaddress.ip_address(i)) for i in ips} <= have_ips)


def server_context(settings: Settings) -> ssl.SSLContext:
    """TLS 1.2+ with Python's default server ciphers; HTTP/1.1 only (ALPN), as gunicorn's threads speak."""
    cert_path, key_path = settings.api_tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_path), str(key_path))
    context.set_alpn_protocols(["http/1.1"])
    return context
