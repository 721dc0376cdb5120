"""OpenAPI entries of the routes the web app added: the device list's long poll and the device emulator."""

from __future__ import annotations

from gateways.http.openapi_schemas import PEM, S, TIME, obj, string
from gateways.http.resources.live import MAX_WAIT

OPERATIONS = {
    ("/v1/devices/_changes", "get"): (
        "devices", f"Wait (at most {MAX_WAIT} s) until your device list changes: registrations, presence, "
                   "certificates, removals", None, {200: "DeviceListVersion"}, {400, 401}),
    ("/v1/emulator", "get"): ("emulator", "Your device emulator: state and the device's display "
                                          "(device null when you have none)", None, {200: "Emulation"}, set()),
    ("/v1/emulator", "post"): ("emulator", "Bring one of your devices online with a simulator run by the server "
                                           "(its certificate and key; one per user, stops after `minutes`)",
                               "StartEmulator", {201: "Emulation"}, {400, 401, 404, 413, 415, 429}),
    ("/v1/emulator", "delete"): ("emulator", "Stop your device emulator", None, {204: None}, {401, 404}),
}

PARAMETERS = {
    ("/v1/devices/_changes", "get"): [
        {"name": "since", "in": "query", "schema": string(64),
         "description": "the version you have; without it the current version is answered at once"},
        {"name": "wait", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT},
         "description": "seconds to wait for a change (default 0)"}],
}

SCHEMAS = {
    "DeviceListVersion": obj(["version", "changed", "retry_after"], version=S, changed={"type": "boolean"},
                             retry_after={"type": "integer", "description": "seconds to wait before polling again"}),
    "StartEmulator": obj(["name", "certificate", "private_key"], name=string(64), certificate=PEM,
                         private_key=PEM, minutes={"type": "integer", "minimum": 1, "maximum": 30, "default": 10}),
    "Emulation": obj(["device", "running"], device={"type": ["string", "null"]}, device_id=S, running={"type": "boolean"},
                     exit_code={"type": ["integer", "null"]}, started_at=TIME, stops_at=TIME,
                     display={"type": "array", "items": S}),
}
