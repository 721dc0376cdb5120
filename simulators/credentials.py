"""The device credentials file read by every simulator.

Format (JSON object; unknown keys are ignored, so the platform's registration
response can be saved as-is)::

    {"device_id": "<40 lowercase hex>",
     "ca": "<PEM>", "certificate": "<PEM>", "private_key": "<PEM>",
     "host": "127.0.0.1", "mqtt_port": 8883, "amqp_port": 5671,
     "tls": true}

Optional keys:

* ``tls`` (default ``true``).  ``false`` connects in plain text and then the
  PEM keys are not needed -- only for tests against a local plain broker.
* ``username`` / ``password`` (or the registration answer's ``broker_password``):
  with TLS, a device registered with ``"login": "password"`` logs in with them
  (username = its device id) and presents no client certificate; ``ca`` is then
  optional (without it the broker is not verified, as libpyiotcloud's devices
  did).  Without them the device logs in by its certificate CN.  With ``tls``
  false they are the plain test broker's login (AMQP defaults to guest/guest).
* ``notification_recipient``: recipient of the keyword notification that
  ``write_uart`` emits when the text contains ``Hello World``.

Ports default to 8883/5671 with TLS and 1883/5672 without.

Run ``python -m simulators.credentials --make-plain N --out DIR`` to write N
plain-broker credential files (random device ids) for local load tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

from commands.domain.device_ids import is_device_id, new_device_id

__all__ = ["Credentials", "CredentialsError", "load_credentials", "load_many", "make_plain_credentials"]

DEFAULT_HOST = "127.0.0.1"
TLS_PORTS = {"mqtt": 8883, "amqp": 5671}
PLAIN_PORTS = {"mqtt": 1883, "amqp": 5672}

#: Characters that would break MQTT topics (``/ + #``) or AMQP routing keys (``.``) are refused.
_SAFE_ID = re.compile(r"^[A-Za-z0-9_\-:]{1,128}$")


class CredentialsError(ValueError):
    """The credentials file (or flags) cannot be used."""


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise CredentialsError(f"'tls' must be true or false, not {value!r}")


def _as_port(value: Any, key: str) -> int | None:
    if value is None:
        return None
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise CredentialsError(f"{key!r} must be a port number, not {value!r}") from None
    if not 0 < port < 65536:
        raise CredentialsError(f"{key!r} out of range: {port}")
    return port


@dataclass(frozen=True)
class Credentials:
    device_id: str
    host: str = DEFAULT_HOST
    ca: str | None = None
    certificate: str | None = None
    private_key: str | None = None
    mqtt_port: int | None = None
    amqp_port: int | None = None
    tls: bool = True
    username: str | None = None
    password: str | None = None
    notification_recipient: str | None = None
    source: str | None = None  # where it was loaded from, for messages

    def __post_init__(self) -> None:
        if not isinstance(self.device_id, str) or not _SAFE_ID.match(self.device_id):
            raise CredentialsError(
                f"device_id must be 1-128 characters of [A-Za-z0-9_-:] (no '/', '.', '+', '#'), got {self.device_id!r}"
            )
        if self.tls and not self.password_login:
            missing = [k for k in ("ca", "certificate", "private_key") if not getattr(self, k)]
            if missing:
                where = f" in {self.source}" if self.source else ""
                raise CredentialsError(f"TLS needs {', '.join(missing)}{where} (or set \"tls\": false for a plain test broker)")

    @property
    def password_login(self) -> bool:
        """TLS without a client certificate, logging in with username (the device id) and password."""
        return self.tls and bool(self.username) and bool(self.password)

    @property
    def looks_like_registered_id(self) -> bool:
        """True for the platform's 40-lowercase-hex device ids."""
        return is_device_id(self.device_id)

    def port(self, protocol: str) -> int:
        explicit = self.mqtt_port if protocol == "mqtt" else self.amqp_port
        if explicit is not None:
            return explicit
        return (TLS_PORTS if self.tls else PLAIN_PORTS)[protocol]

    def ssl_context(self) -> ssl.SSLContext:
        """Client context: TLS 1.2+, broker verified against ``ca`` with hostname checking, client cert/key loaded."""
        if not self.tls:
            raise CredentialsError("ssl_context() called for plain (tls=false) credentials")
        if self.password_login and not self.ca:
            # libpyiotcloud's devices were configured with host, port, username and password only.
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            return ctx
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=self.ca)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.password_login:
            ctx.check_hostname = True
            return ctx
        # create_default_context already sets CERT_REQUIRED and check_hostname=True; keep them explicit.
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = True
        # load_cert_chain() only takes paths: write the PEMs to a private (0700) temp dir, load, delete.
        with tempfile.TemporaryDirectory(prefix="iotsim-") as tmp:
            cert_path = os.path.join(tmp, "cert.pem")
            key_path = os.path.join(tmp, "key.pem")
            for path, text in ((cert_path, self.certificate), (key_path, self.private_key)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(text or "")
            try:
                ctx.load_cert_chain(cert_path, key_path)
            except ssl.SSLError as exc:
                raise CredentialsError(f"certificate/private_key do not load: {exc}") from exc
        return ctx

    def with_overrides(self, **changes: Any) -> "Credentials":
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **changes) if changes else self

    @classmethod
    def from_mapping(cls, data: Any, source: str | None = None) -> "Credentials":
        if not isinstance(data, dict):
            raise CredentialsError(f"credentials{' in ' + source if source else ''} must be a JSON object")
        if "device_id" not in data:
            raise CredentialsError(f"'device_id' missing{' in ' + source if source else ''}")
        return cls(
            device_id=data["device_id"],
            host=str(data.get("host") or DEFAULT_HOST),
            ca=data.get("ca"),
            certificate=data.get("certificate"),
            private_key=data.get("private_key"),
            mqtt_port=_as_port(data.get("mqtt_port"), "mqtt_port"),
            amqp_port=_as_port(data.get("amqp_port"), "amqp_port"),
            tls=_as_bool(data.get("tls", True)),
            username=data.get("username"),
            password=data.get("password") or data.get("broker_password"),
            notification_recipient=data.get("notification_recipient"),
            source=source,
        )


def load_credentials(path: str | os.PathLike[str]) -> Credentials:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CredentialsError(f"cannot read credentials file {p}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise CredentialsError(f"credentials file {p} is not valid JSON: {exc}") from exc
    return Credentials.from_mapping(data, source=str(p))


def load_many(files: Iterable[str | os.PathLike[str]] = (), directories: Iterable[str | os.PathLike[str]] = ()) -> list[Credentials]:
    """Load credentials from explicit files plus every ``*.json`` in the directories (sorted, de-duplicated by id)."""
    paths: list[Path] = [Path(f) for f in files]
    for d in directories:
        dp = Path(d)
        if not dp.is_dir():
            raise CredentialsError(f"not a directory: {dp}")
        paths.extend(sorted(dp.glob("*.json")))
    seen: dict[str, Credentials] = {}
    for p in paths:
        c = load_credentials(p)
        if c.device_id in seen:
            raise CredentialsError(f"device id {c.device_id} appears in both {seen[c.device_id].source} and {p}")
        seen[c.device_id] = c
    return list(seen.values())


def make_plain_credentials(device_id: str | None = None, host: str = DEFAULT_HOST, mqtt_port: int = 1883, amqp_port: int = 5672, **extra: Any) -> dict[str, Any]:
    """A credentials mapping for a plain local test broker (``"tls": false``)."""
    data: dict[str, Any] = {
        "device_id": device_id or new_device_id(),
        "host": host,
        "mqtt_port": mqtt_port,
        "amqp_port": amqp_port,
        "tls": False,
    }
    data.update(extra)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.credentials",
        description="Write N plain-broker (\"tls\": false) device credential files with random ids, for local load tests.",
    )
    parser.add_argument("--make-plain", type=int, required=True, metavar="N", help="number of files to write")
    parser.add_argument("--out", required=True, help="directory to write <device_id>.json files into")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument("--amqp-port", type=int, default=5672)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for _ in range(args.make_plain):
        data = make_plain_credentials(host=args.host, mqtt_port=args.mqtt_port, amqp_port=args.amqp_port)
        (out / f"{data['device_id']}.json").write_text(json.dumps(data) + "\n", encoding="utf-8")
    print(f"wrote {args.make_plain} plain credential files to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
