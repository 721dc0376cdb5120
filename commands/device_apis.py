"""The libpyiotcloud device API catalogue: which parameters each call takes, in wire order.

The one source for everything per API: validation here, and (gateways/http/device_resources.py)
the modern and libpyiotcloud v2 routes and their OpenAPI entries. APIs are named `<verb>_<subject>`
as in libpyiotcloud: `get_*` read, the others (`set_`, `write_`, `trigger_`) write, and the read and
the write of one subject (`get_gpio`, `set_gpio`) are one HTTP resource.

Parameters are normalised here (GPIO numbers and values become JSON integers, as the FT900
parser needs) so that gateways only serialise them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from commands.errors import ValidationFailed

FT900_PAYLOAD_LIMIT = 128  # bytes; the firmware's receive buffer


@dataclass(frozen=True)
class Param:
    """One parameter: how it is normalised, and how it is described to callers."""

    name: str
    convert: Callable[[object], object] = field(repr=False)  # raises ValueError or TypeError
    describe: str    # in error messages: "an integer 0..255"
    hint: str        # in one-line summaries: "0|1"
    schema: dict     # JSON Schema of the normalised value
    selector: bool = False  # names a part of the device (a GPIO pin), not a value: the modern URL carries it


def integer(name: str, low: int, high: int, hint: str | None = None, selector: bool = False) -> Param:
    def convert(value):
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value.strip())
        if not isinstance(value, int) or not low <= value <= high:
            raise ValueError
        return value
    if hint is None:
        hint = f"{low}|{high}" if high == low + 1 else f"{low}..{high}"
    return Param(name, convert, f"an integer {low}..{high}", hint, {"type": "integer", "minimum": low, "maximum": high},
                 selector)


def text(name: str, max_length: int) -> Param:
    def convert(value):
        if not isinstance(value, str) or not 0 < len(value) <= max_length or "\x00" in value:
            raise ValueError
        return value
    return Param(name, convert, f"a string of 1..{max_length} characters", "text",
                 {"type": "string", "minLength": 1, "maxLength": max_length})


def choice(name: str, *choices: str) -> Param:
    def convert(value):
        if value not in choices:
            raise ValueError
        return value
    return Param(name, convert, "one of " + ", ".join(repr(c) for c in choices), "|".join(choices),
                 {"enum": list(choices)})


@dataclass(frozen=True)
class DeviceApi:
    name: str
    params: tuple[Param, ...] = ()
    answer: str = ""      # what the answer's value is, where the name does not say it
    echoes: bool = False  # the device answers by republishing the request, with no `value`

    def param(self, name: str) -> Param:
        return next(param for param in self.params if param.name == name)

    @property
    def reads(self) -> bool:
        return self.name.startswith("get_")

    @property
    def subject(self) -> str:
        """The part of the device it reads or writes: `gpio` for get_gpio and set_gpio."""
        return self.name.partition("_")[2]

    def normalise(self, params: dict | None) -> dict:
        params = params or {}
        if not isinstance(params, dict):
            raise ValidationFailed("params must be a JSON object", field="params")
        unknown = set(params) - {param.name for param in self.params}
        if unknown:
            raise ValidationFailed(f"{self.name} takes no parameter {', '.join(sorted(unknown))}", field="params")
        normalised = {}
        for param in self.params:
            if param.name not in params:
                raise ValidationFailed(f"{self.name} needs '{param.name}' ({param.describe})", field=param.name)
            try:
                normalised[param.name] = param.convert(params[param.name])
            except (ValueError, TypeError):
                raise ValidationFailed(f"'{param.name}' must be {param.describe}", field=param.name) from None
        return normalised


GPIO_NUMBER = integer("number", 0, 255, hint="GPIO number", selector=True)
BIT = integer("value", 0, 1)
EPOCH = integer("value", 0, 2**32 - 1, hint="epoch seconds")

DEVICE_APIS: dict[str, DeviceApi] = {api.name: api for api in (
    DeviceApi("get_status"),
    DeviceApi("set_status", (choice("value", "restart"),)),
    DeviceApi("get_gpio", (GPIO_NUMBER,)),
    DeviceApi("set_gpio", (GPIO_NUMBER, BIT)),
    DeviceApi("get_rtc", answer="epoch seconds"),
    DeviceApi("set_rtc", (EPOCH,)),
    DeviceApi("get_mac"),
    DeviceApi("get_ip"),
    DeviceApi("get_subnet"),
    DeviceApi("get_gateway"),
    DeviceApi("write_uart", (text("value", 100),)),
    DeviceApi("trigger_notification", (text("recipient", 64), text("message", 64)), echoes=True),
)}


def device_api(name) -> DeviceApi:
    try:
        return DEVICE_APIS[name]
    except (KeyError, TypeError):
        raise ValidationFailed(f"unknown device api {name!r}; one of {', '.join(DEVICE_APIS)}", field="api") from None
