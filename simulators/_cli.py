"""Shared command-line plumbing: credentials options (with the seed's flag aliases), logging, signals."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Callable

from .credentials import Credentials, CredentialsError, load_credentials


def add_credentials_arguments(parser: argparse.ArgumentParser, protocol: str) -> None:
    g = parser.add_argument_group("device")
    g.add_argument("--credentials", "-c", metavar="FILE", help="device credentials JSON (see simulators/README.md)")
    g.add_argument("--device-id", "--USE_DEVICE_ID", dest="device_id", metavar="ID", help="device id (overrides the file)")
    g.add_argument("--ca-file", "--USE_DEVICE_CA", dest="ca_file", metavar="PEM", help="broker CA certificate file")
    g.add_argument("--cert-file", "--USE_DEVICE_CERT", dest="cert_file", metavar="PEM", help="device certificate file")
    g.add_argument("--key-file", "--USE_DEVICE_PKEY", dest="key_file", metavar="PEM", help="device private key file")
    g.add_argument("--host", "--USE_HOST", dest="host", help="broker host (overrides the file)")
    g.add_argument("--port", "--USE_PORT", dest="port", type=int, help=f"broker {protocol.upper()} port (overrides the file)")
    g.add_argument("--username", "--USE_USERNAME", dest="username", metavar="NAME",
                   help="broker username: the device id, for a device registered for password login")
    g.add_argument("--password", "--USE_PASSWORD", dest="password", metavar="SECRET",
                   help="broker password (registration's broker_password); no client certificate is then used")
    add_common_arguments(parser)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--notification-recipient", metavar="WHO",
                        help="recipient of the write_uart 'Hello World' notification; several, comma-separated, get one each (default: file's notification_recipient or user@example.com)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level (stderr)")


def _read(path: str | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CredentialsError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def credentials_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace, protocol: str) -> Credentials:
    try:
        overrides = dict(
            device_id=args.device_id,
            host=args.host,
            ca=_read(args.ca_file, "CA file"),
            certificate=_read(args.cert_file, "certificate file"),
            private_key=_read(args.key_file, "key file"),
            notification_recipient=args.notification_recipient,
            username=args.username,
            password=args.password,
        )
        overrides[f"{protocol}_port"] = args.port
        if args.credentials:
            return load_credentials(args.credentials).with_overrides(**overrides)
        if not args.device_id and args.username and args.password:
            overrides["device_id"] = args.username  # a password device needs only host, port, username, password
        elif not args.device_id:
            parser.error("give --credentials FILE (or --USE_DEVICE_ID with --USE_DEVICE_CA/--USE_DEVICE_CERT/--USE_DEVICE_PKEY)")
        return Credentials(**{k: v for k, v in overrides.items() if v is not None}, source="command line")
    except CredentialsError as exc:
        parser.error(str(exc))
        raise  # unreachable


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # pika and paho log every connection step at INFO; keep them quiet unless debugging.
    for noisy in ("pika", "paho"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)


def install_stop_handlers(stop: Callable[[], None]) -> None:
    """Call ``stop`` (which must be async-signal-safe: set a flag, poke a pipe) on SIGINT/SIGTERM."""

    def handler(signum: int, frame: object) -> None:
        stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
