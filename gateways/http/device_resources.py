"""The device-API table (commands.device_apis.DEVICE_APIS) as HTTP resources, for both REST flavours
and the OpenAPI document: each subject is one resource whose read is its `get_` API and whose write is
the other one (`gpio`: get_gpio and set_gpio).

- modern: /v1/devices/{name}/<subject>, selectors as further path segments (/gpio/{number}); GET
  reads, PUT writes with the other parameters in the JSON body.
- libpyiotcloud v2: /devices/device/<subject>; POST or GET reads, PUT writes; every parameter in the
  body beside username, token and devicename.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from commands.device_apis import DEVICE_APIS, DeviceApi


def selectors(api: DeviceApi | None) -> tuple[str, ...]:
    return tuple(p.name for p in api.params if p.selector) if api else ()


def body_fields(api: DeviceApi | None) -> tuple[str, ...]:
    """What the modern route takes from the JSON body: every parameter but the selectors."""
    return tuple(p.name for p in api.params if not p.selector) if api else ()


def v2_fields(api: DeviceApi | None) -> tuple[str, ...]:
    return tuple(p.name for p in api.params) if api else ()


@dataclass(frozen=True)
class DeviceResource:
    subject: str
    read: DeviceApi | None = None
    write: DeviceApi | None = None

    @property
    def modern_path(self) -> str:
        return f"/v1/devices/{{name}}/{self.subject}" + "".join(f"/{{{s}}}" for s in selectors(self.read or self.write))

    @property
    def v2_path(self) -> str:
        return f"/devices/device/{self.subject}"


def device_resources(apis: dict[str, DeviceApi] = DEVICE_APIS) -> list[DeviceResource]:
    """One resource per subject, in the table's order; a table the routes cannot serve raises at start-up."""
    found: dict[str, DeviceResource] = {}
    for api in apis.values():
        resource = found.get(api.subject, DeviceResource(api.subject))
        role = "read" if api.reads else "write"
        if getattr(resource, role) is not None:
            raise ValueError(f"{api.name} and {getattr(resource, role).name} would both {role} /{api.subject}")
        if api.reads and body_fields(api):
            raise ValueError(f"{api.name}: a GET carries no body, so a read takes selectors only")
        found[api.subject] = resource = replace(resource, **{role: api})
        if resource.read and resource.write and selectors(resource.read) != selectors(resource.write):
            raise ValueError(f"{resource.read.name} and {resource.write.name} share a path: same selectors")
    return list(found.values())
