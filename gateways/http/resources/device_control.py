"""/v1 device calls: a generic command route, one resource per device-API subject, and command status."""

from __future__ import annotations

import falcon

from commands.device_control import MAX_TIMEOUT, MAX_TTL
from commands.errors import ValidationFailed
from gateways.http.bodies import json_body, number_param
from gateways.http.device_calls import CallResult, DeviceCalls
from gateways.http.device_resources import DeviceResource, body_fields, device_resources
from gateways.http.resources.devices import as_user
from queries.device_commands import CommandQueries


def _flag(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in (None, ""):
        return True
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ValidationFailed(f"'{name}' must be true or false", field=name)


def prefers_async(req: falcon.Request) -> bool:
    """RFC 7240 `Prefer: respond-async`: over the caller's share of waiting calls, accept the call
    (202, poll the command) rather than refuse it."""
    return "respond-async" in (req.get_header("Prefer") or "").lower()


def answer(resp: falcon.Response, result: CallResult) -> None:
    if result.status == "queued":
        resp.status = falcon.HTTP_202
        resp.location = f"/v1/commands/{result.command_id}"
    resp.media = result.as_dict()


class DeviceCommands:
    """POST /v1/devices/{name}/commands: any device API, with timeout, wait and time-to-live."""

    def __init__(self, calls: DeviceCalls):
        self._calls = calls

    def on_post(self, req, resp, name):
        body = json_body(req)
        timeout, ttl = body.get("timeout"), body.get("ttl")
        with as_user(req):
            result = self._calls.call(req.context.principal.owner, name, body.get("api"), body.get("params"),
                                      timeout=timeout, wait=_flag(body.get("wait"), "wait"), ttl=ttl,
                                      defer_when_busy=prefers_async(req))
        answer(resp, result)


class CommandStatus:
    def __init__(self, commands: CommandQueries):
        self._commands = commands

    def on_get(self, req, resp, command_id):
        resp.media = self._commands.get_command(req.context.principal.owner, command_id)


class DeviceApiRoute:
    """One device resource (device_resources.py): GET reads, PUT writes, e.g. /v1/devices/{name}/gpio/{number}."""

    def __init__(self, calls: DeviceCalls, resource: DeviceResource):
        self._calls, self._resource = calls, resource
        if resource.read is None:
            self.on_get = None
        if resource.write is None:
            self.on_put = None

    def _call(self, req, resp, name, api, params):
        with as_user(req):
            result = self._calls.call(req.context.principal.owner, name, api, params,
                                      timeout=number_param(req, "timeout", None, 0, MAX_TIMEOUT, float),
                                      wait=_flag(req.get_param("wait"), "wait"),
                                      ttl=number_param(req, "ttl", None, 0, MAX_TTL, float),
                                      defer_when_busy=prefers_async(req))
        answer(resp, result)

    def on_get(self, req, resp, name, **selected):
        self._call(req, resp, name, self._resource.read.name, selected)

    def on_put(self, req, resp, name, **selected):
        body = json_body(req)
        given = {field: body[field] for field in body_fields(self._resource.write) if field in body}
        self._call(req, resp, name, self._resource.write.name, {**selected, **given})


def device_api_routes(calls: DeviceCalls) -> list[tuple[str, DeviceApiRoute]]:
    return [(resource.modern_path, DeviceApiRoute(calls, resource)) for resource in device_resources()]
