"""The one device-id rule, for every place that meets a device id: registration, the signer, the
broker's auth policy and permission regexes, the device gateway, the REST API and the simulators.

160 random bits as 40 lowercase hex characters: the shape of libpyiotcloud device ids, so FT900
firmware buffers fit; hex is a valid MQTT client id, one MQTT topic level and one AMQP routing-key
word, and can never act as a wildcard inside the broker patterns built from it. Platform services
(`iotcloud-gateway`, `iotcloud-api`) are not devices: they are named explicitly, and no service
name has this shape.
"""

from __future__ import annotations

import re
import secrets

# The shape alone, for patterns that embed it (broker permission regexes, JSON Schema).
DEVICE_ID_SHAPE = "[0-9a-f]{40}"
# \Z, not $: "$" also matches before a final newline. Anchored both ends, so .match, .fullmatch
# and .search all agree.
DEVICE_ID_PATTERN = re.compile(rf"^{DEVICE_ID_SHAPE}\Z")


def is_device_id(value: object) -> bool:
    return isinstance(value, str) and DEVICE_ID_PATTERN.match(value) is not None


def new_device_id() -> str:
    return secrets.token_hex(20)
