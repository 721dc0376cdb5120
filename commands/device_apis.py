"""The libpyiotcloud device API catalogue: which parameters each call takes, in wire order.

Parameters are normalised here (GPIO numbers and values become JSON integers, as the FT900
parser needs) so that gateways only serialise them.
"""

from __future__ import annotations

from dataclasses import dataclass

from commands.errors import ValidationFailed

FT900_PAYLOAD_LIMIT = 128  # bytes; the firmware's receive buffer


def _int(name: str, low: int, high: int):
    def convert(value):
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value.strip())
        if not isinstance(value, int) or not low <= value <= high:
            raise ValueError
        return value
    convert.describe = f"an integer {low}..{high}"
    return convert


def _text(max_length: int):
    def convert(value):
        if not isinstance(value, str) or not 0 < len(value) <= max_length or "\x00" in value:
            raise ValueError
        return value
    convert.describe = f"a string of 1..{max_length} characters"
    return convert


def _choice(*choices: str):
    def convert(value):
        if value not in choices:
            raise ValueError
        return value
    convert.describe = "one of " + ", ".join(repr(c) for c in choices)
    return convert


@dataclass(frozen=True)
class DeviceApi:
    name: str
    params: tuple[tuple[str, object], ...] = ()
    answers: bool = True

    def normalise(self, params: dict | None) -> dict:
        params = params or {}
        if not isinstance(params, dict):
            raise ValidationFailed("params must be a JSON object", field="params")
        unknown = set(params) - {name for name, _ in self.params}
        if unknown:
            raise ValidationFailed(f"{self.name} takes no parameter {', '.join(sorted(unknown))}", field="params")
        normalised = {}
        for name, convert in self.params:
            if name not in params:
                raise ValidationFailed(f"{self.name} needs '{name}' ({convert.describe})", field=name)
            try:
                normalised[name] = convert(params[name])
            except (ValueError, TypeError):
                raise ValidationFailed(f"'{name}' must be {convert.describe}", field=name) from None
        return normalised


GPIO_NUMBER = ("number", _int("number", 0, 255))
BIT = ("value", _int("value", 0, 1))
EPOCH = ("value", _int("value", 0, 2**32 - 1))

DEVICE_APIS: dict[str, DeviceApi] = {api.name: api for api in (
    DeviceApi("get_status"),
    DeviceApi("set_status", (("value", _choice("restart")),)),
    DeviceApi("get_gpio", (GPIO_NUMBER,)),
    DeviceApi("set_gpio", (GPIO_NUMBER, BIT)),
    DeviceApi("get_rtc"),
    DeviceApi("set_rtc", (EPOCH,)),
    DeviceApi("get_mac"),
    DeviceApi("get_ip"),
    DeviceApi("get_subnet"),
    DeviceApi("get_gateway"),
    DeviceApi("write_uart", (("value", _text(100)),)),
    DeviceApi("trigger_notification", (("recipient", _text(64)), ("message", _text(64)))),
)}


def device_api(name) -> DeviceApi:
    try:
        return DEVICE_APIS[name]
    except (KeyError, TypeError):
        raise ValidationFailed(f"unknown device api {name!r}; one of {', '.join(DEVICE_APIS)}", field="api") from None
