"""Transport-independent behaviour of a libpyiotcloud device (protocol reference §2.2 / §5.1).

:meth:`Device.handle` maps one request ``(api, payload bytes)`` to the messages the
device publishes in answer; :meth:`Device.reply` returns just the reply payload (or
``None``).  Nothing here touches the network: the transports (MQTT, AMQP, fleet) only
turn topics into ``api`` and ``Publish.api`` back into ``server/<id>/<api>`` (or
``server.<id>.<api>``).

Rules:

* Replies are JSON objects written like ``json.dumps`` defaults (``", "`` and ``": "``,
  ASCII only), byte-for-byte what the seed simulator sent.
* **Correlation**: when the request object has a ``"correlation_id"`` key the reply
  carries it back under the same key (appended last); otherwise replies are exactly the
  seed's.
* **Malformed or invalid requests are logged and ignored (no reply)**: payloads that are
  not UTF-8 JSON objects, GPIO numbers that are not non-negative integers, missing
  required fields, unknown APIs.  An ``{"error": ...}`` reply is deliberately not sent:
  servers that correlate by topic only would take it as the answer to another request,
  and without a parsable request there is no correlation id to echo.  An empty payload
  counts as ``{}``.
* GPIO numbers/values are accepted as JSON ints or numeric strings (the v2 Ionic app sent
  strings); replies always carry ints, and values are normalised to 0/1.
* ``set_status`` always answers ``{"value": "restarting"}`` (the simulators never really
  restart), ``set_rtc`` echoes the value without changing the clock (seed behaviour).
* ``write_uart`` displays and echoes the text; if it contains ``Hello World`` the device
  also publishes ``trigger_notification`` with ``{"recipient": <configured>, "message":
  "Hi, How are you today?"}`` (after the reply); a comma-separated recipient list gives one
  trigger per recipient.
* ``trigger_notification`` addressed to the device itself is displayed and not answered;
  any other is echoed unchanged to ``server/<id>/trigger_notification``.
* **A repeated correlation id is not run again** (and not answered again): MQTT QoS 1 is at
  least once, and a broker node that dies between handing a device a request and seeing its
  acknowledgement delivers that request again after the device reconnects. The device keeps
  the last :data:`RECENT_CORRELATION_IDS` string ids (up to :data:`MAX_CORRELATION_ID` UTF-8
  bytes) of requests it ran; devices without correlation ids cannot tell a redelivery apart.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import socket
import struct
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = [
    "Device",
    "Publish",
    "NetworkInfo",
    "host_network_info",
    "dumps",
    "KEYWORD",
    "KEYWORD_MESSAGE",
    "DEFAULT_NOTIFICATION_RECIPIENT",
    "APIS",
]

log = logging.getLogger("simulators.device")

KEYWORD = "Hello World"
KEYWORD_MESSAGE = "Hi, How are you today?"
#: The seed hard-coded a personal address; ours is a placeholder, set per device.
DEFAULT_NOTIFICATION_RECIPIENT = "user@example.com"
CORRELATION_KEY = "correlation_id"
#: How many recent correlation ids a device remembers, and the longest one it remembers; the same
#: bounds as the C core (firmware/core/iotc_config.h), so the three devices drop the same repeats.
RECENT_CORRELATION_IDS = 8
MAX_CORRELATION_ID = 64


def dumps(obj: Any) -> bytes:
    """Serialise like the seed: ``json.dumps`` defaults (``", "``, ``": "``, ensure_ascii)."""
    return json.dumps(obj).encode("ascii")


@dataclass(frozen=True)
class Publish:
    """One message the device sends: to ``server/<id>/<api>`` (QoS 1)."""

    api: str
    payload: bytes

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass(frozen=True)
class NetworkInfo:
    mac: str
    ip: str
    subnet: str
    gateway: str


class InvalidRequest(ValueError):
    pass


# ---------------------------------------------------------------------------------------
# Host network information, stdlib only (Linux /proc and ioctls, with fallbacks).

_SIOCGIFADDR = 0x8915
_SIOCGIFNETMASK = 0x891B
_SIOCGIFHWADDR = 0x8927
_RTF_GATEWAY = 0x2


def _default_route() -> tuple[str | None, str | None]:
    """(interface, gateway) of the IPv4 default route from /proc/net/route."""
    try:
        with open("/proc/net/route", encoding="ascii") as fh:
            next(fh, None)
            for line in fh:
                fields = line.split()
                if len(fields) >= 4 and fields[1] == "00000000":
                    gateway = None
                    if int(fields[3], 16) & _RTF_GATEWAY:
                        gateway = socket.inet_ntoa(struct.pack("<L", int(fields[2], 16)))
                    return fields[0], gateway
    except (OSError, ValueError):
        pass
    return None, None


def _first_interface() -> str | None:
    try:
        names = sorted(os.listdir("/sys/class/net"))
    except OSError:
        return None
    for name in names:
        if name != "lo":
            return name
    return None


def _ifreq(iface: str, request: int) -> bytes | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            return fcntl.ioctl(s.fileno(), request, struct.pack("256s", iface[:15].encode()))
    except OSError:
        return None


def host_network_info() -> NetworkInfo:
    """The host's MAC/IP/netmask/gateway on the default-route interface, with sane fallbacks."""
    iface, gateway = _default_route()
    iface = iface or _first_interface()
    mac = ip = subnet = None
    if iface:
        raw = _ifreq(iface, _SIOCGIFADDR)
        if raw:
            ip = socket.inet_ntoa(raw[20:24])
        raw = _ifreq(iface, _SIOCGIFNETMASK)
        if raw:
            subnet = socket.inet_ntoa(raw[20:24])
        try:
            with open(f"/sys/class/net/{iface}/address", encoding="ascii") as fh:
                mac = fh.read().strip() or None
        except OSError:
            raw = _ifreq(iface, _SIOCGIFHWADDR)
            if raw:
                mac = ":".join(f"{b:02x}" for b in raw[18:24])
    if not mac or mac == "00:00:00:00:00:00":
        node = uuid.getnode()
        mac = ":".join(f"{(node >> s) & 0xFF:02x}" for s in range(40, -1, -8))
    ip = ip or "127.0.0.1"
    subnet = subnet or ("255.0.0.0" if ip.startswith("127.") else "255.255.255.0")
    if not gateway:
        gateway = ip.rsplit(".", 1)[0] + ".1" if not ip.startswith("127.") else "127.0.0.1"
    return NetworkInfo(mac=mac.upper(), ip=ip, subnet=subnet, gateway=gateway)


_host_info_cache: NetworkInfo | None = None


def _cached_host_info() -> NetworkInfo:
    global _host_info_cache
    if _host_info_cache is None:
        _host_info_cache = host_network_info()
    return _host_info_cache


# ---------------------------------------------------------------------------------------

_INT_RE = re.compile(r"^[+-]?\d+$")


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_RE.match(value.strip()):
        return int(value.strip())
    raise InvalidRequest(f"{what} must be an integer or a numeric string, got {value!r}")


def _required(req: dict[str, Any], key: str) -> Any:
    if key not in req:
        raise InvalidRequest(f"missing {key!r}")
    return req[key]


def _remembered_id(req: dict[str, Any]) -> str | None:
    """The request's correlation id if it is one a device remembers: a string of at most
    MAX_CORRELATION_ID UTF-8 bytes (platform command ids are 32 hex digits)."""
    cid = req.get(CORRELATION_KEY)
    if not isinstance(cid, str) or len(cid.encode("utf-8", "surrogatepass")) > MAX_CORRELATION_ID:
        return None
    return cid


def _display_stdout(device_id: str, text: str) -> None:
    print(f"[{device_id}] {text}", flush=True)


@dataclass
class Device:
    """One simulated device.  ``clock``, ``network`` and ``display`` are injectable for tests."""

    device_id: str
    notification_recipient: str = DEFAULT_NOTIFICATION_RECIPIENT
    clock: Callable[[], float] = time.time
    network: NetworkInfo | None = None
    display: Callable[[str, str], None] = _display_stdout
    gpio: dict[int, int] = field(default_factory=dict)
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_CORRELATION_IDS))

    # -- topics ------------------------------------------------------------------------
    def request_api(self, topic: str, sep: str = "/") -> str | None:
        """``<id>/<api>`` -> ``api``; ``None`` for topics not addressed to this device."""
        prefix = self.device_id + sep
        if not topic.startswith(prefix) or len(topic) == len(prefix):
            return None
        return topic[len(prefix):]

    def reply_topic(self, api: str, sep: str = "/") -> str:
        return sep.join(("server", self.device_id, api))

    # -- behaviour ---------------------------------------------------------------------
    def reply(self, api: str, payload: bytes | str) -> bytes | None:
        """The reply payload for one request, or ``None`` when the device sends no reply."""
        for pub in self.handle(api, payload):
            if pub.api == api:
                return pub.payload
        return None

    def handle(self, api: str, payload: bytes | str) -> list[Publish]:
        """Every message the device publishes for one request (reply first)."""
        req = self._parse(api, payload)
        if req is None:
            return []
        handler = getattr(self, "_api_" + api, None) if api in APIS else None
        if handler is None:
            log.warning("%s: unknown api %r ignored", self.device_id, api)
            return []
        remembered = _remembered_id(req)
        if remembered is not None and remembered in self.recent:
            log.warning("%s: repeated %s request (correlation id %.64r) not run again", self.device_id, api,
                        remembered)
            return []
        try:
            reply, extra = handler(req)
        except InvalidRequest as exc:
            log.warning("%s: invalid %s request ignored: %s", self.device_id, api, exc)
            return []
        if remembered is not None:
            self.recent.append(remembered)
        out: list[Publish] = []
        if reply is not None:
            if CORRELATION_KEY in req and CORRELATION_KEY not in reply:
                reply[CORRELATION_KEY] = req[CORRELATION_KEY]
            out.append(Publish(api, dumps(reply)))
        out.extend(extra)
        return out

    def _parse(self, api: str, payload: bytes | str) -> dict[str, Any] | None:
        try:
            text = payload.decode("utf-8") if isinstance(payload, (bytes, bytearray, memoryview)) else payload
            if isinstance(text, memoryview):
                text = bytes(text).decode("utf-8")
            req = json.loads(text) if text.strip() else {}
        except (UnicodeDecodeError, ValueError) as exc:
            log.warning("%s: malformed %s payload ignored (%s): %.80r", self.device_id, api, exc, payload)
            return None
        if not isinstance(req, dict):
            log.warning("%s: %s payload is not a JSON object, ignored: %.80r", self.device_id, api, payload)
            return None
        return req

    def _net(self) -> NetworkInfo:
        if self.network is None:
            self.network = _cached_host_info()
        return self.network

    # Each handler returns (reply dict or None, [extra Publish ...]).
    def _api_get_status(self, req: dict[str, Any]):
        return {"value": "running"}, []

    def _api_set_status(self, req: dict[str, Any]):
        value = req.get("value")
        if value != "restart":
            log.info("%s: set_status %r (answered like restart)", self.device_id, value)
        return {"value": "restarting"}, []

    def _gpio_number(self, req: dict[str, Any]) -> int:
        number = _as_int(_required(req, "number"), "number")
        if number < 0:
            raise InvalidRequest(f"number must be >= 0, got {number}")
        return number

    def _api_get_gpio(self, req: dict[str, Any]):
        number = self._gpio_number(req)
        return {"number": number, "value": self.gpio.get(number, 0)}, []

    def _api_set_gpio(self, req: dict[str, Any]):
        number = self._gpio_number(req)
        value = 1 if _as_int(_required(req, "value"), "value") else 0
        self.gpio[number] = value
        return {"number": number, "value": value}, []

    def _api_get_rtc(self, req: dict[str, Any]):
        return {"value": int(self.clock())}, []

    def _api_set_rtc(self, req: dict[str, Any]):
        return {"value": _required(req, "value")}, []

    def _api_get_mac(self, req: dict[str, Any]):
        return {"value": self._net().mac}, []

    def _api_get_ip(self, req: dict[str, Any]):
        return {"value": self._net().ip}, []

    def _api_get_subnet(self, req: dict[str, Any]):
        return {"value": self._net().subnet}, []

    def _api_get_gateway(self, req: dict[str, Any]):
        return {"value": self._net().gateway}, []

    def _api_write_uart(self, req: dict[str, Any]):
        value = _required(req, "value")
        text = value if isinstance(value, str) else json.dumps(value)
        self.display(self.device_id, text)
        extra = []
        if KEYWORD in text:
            # Several recipients (comma-separated) get one trigger each: an email and an SMS, say.
            for recipient in filter(None, (r.strip() for r in self.notification_recipient.split(","))):
                note = {"recipient": recipient, "message": KEYWORD_MESSAGE}
                extra.append(Publish("trigger_notification", dumps(note)))
        return {"value": value}, extra

    def _api_trigger_notification(self, req: dict[str, Any]):
        if req.get("recipient") == self.device_id:
            self.display(self.device_id, f"notification: {req.get('message', '')}")
            return None, []
        return dict(req), []


#: The APIs the device answers (``set_mac`` is not implemented, as in the seed simulators).
APIS = frozenset(
    {
        "get_status",
        "set_status",
        "get_gpio",
        "set_gpio",
        "get_rtc",
        "set_rtc",
        "get_mac",
        "get_ip",
        "get_subnet",
        "get_gateway",
        "write_uart",
        "trigger_notification",
    }
)
