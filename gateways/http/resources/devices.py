"""/v1/devices: register, list, count, get, unregister devices, reissue their certificates, rotate broker passwords."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import falcon

from commands.context import acting_as
from commands.errors import ValidationFailed
from commands.fleet import DeviceCredentials, DeviceFleet
from gateways.http.bodies import json_body, number_param, text_field
from queries.devices import MAX_PAGE, DeviceListQueries
from gateways.http.consistency import ReadYourWrites


@dataclass(frozen=True, slots=True)
class DeviceEndpoints:
    """Where devices connect to the broker, told to them with their credentials (from the composition root)."""

    host: str
    mqtt_port: int
    amqp_port: int


def as_user(req):
    return acting_as(f"user:{req.context.principal.username}", req.context.correlation_id, req.context.request_id)


def device_view(doc: dict) -> dict:
    return {"device_id": doc["device_id"], "name": doc["name"], "status": doc.get("status", "registered"),
            "connection": doc.get("connection", "offline"), "last_seen": doc.get("last_seen"),
            "correlation_ids": doc.get("correlation_ids", False),
            "login": doc.get("login", "certificate"), "password_set_at": doc.get("password_set_at"),
            "registered_at": doc.get("registered_at"), "updated_at": doc.get("updated_at"),
            "certificate": doc.get("certificate")}


def credentials_body(credentials: DeviceCredentials, endpoints: DeviceEndpoints) -> dict:
    """Registration/reissue answer; saved as a file it is what the device simulators read."""
    issued = credentials.certificate
    return {
        "device_id": credentials.device_id, "name": credentials.name,
        "ca": credentials.ca_pem, "certificate": issued.certificate_pem,
        "private_key": issued.private_key_pem or None,
        "certificate_info": {"serial": issued.serial, "fingerprint_sha256": issued.fingerprint_sha256,
                             "not_before": issued.not_before.isoformat(), "not_after": issued.not_after.isoformat()},
        "host": endpoints.host, "mqtt_port": endpoints.mqtt_port, "amqp_port": endpoints.amqp_port,
        **({"login": "password", "username": credentials.device_id, "broker_password": credentials.broker_password}
           if credentials.broker_password else {}),
    }


def password_login(body: dict) -> bool:
    """`"login": "password"` registers a device that may also log in with username (its id) and a password."""
    login = body.get("login", "certificate")
    if login not in ("certificate", "password"):
        raise ValidationFailed("'login' must be \"certificate\" or \"password\"", field="login")
    return login == "password"


class Devices:
    def __init__(self, fleet: DeviceFleet, devices: DeviceListQueries, rw: ReadYourWrites, endpoints: DeviceEndpoints):
        self._fleet, self._devices, self._rw, self._endpoints = fleet, devices, rw, endpoints

    def on_get(self, req, resp):
        owner = req.context.principal.owner
        limit = number_param(req, "limit", 50, 1, MAX_PAGE)
        offset = number_param(req, "offset", 0, 0, 10**9)
        items = [device_view(d) for d in self._devices.list_devices(owner, limit, offset)]
        total = self._devices.count_devices(owner)
        following = offset + len(items)
        resp.media = {"items": items, "total": total, "limit": limit, "offset": offset,
                      "next": f"/v1/devices?limit={limit}&offset={following}" if following < total else None}

    def on_post(self, req, resp):
        body = json_body(req)
        name = text_field(body, "name", max_length=64)
        csr = text_field(body, "csr", required=False, max_length=16384)
        correlation_ids = body.get("correlation_ids", False)
        if not isinstance(correlation_ids, bool):
            raise ValidationFailed("'correlation_ids' must be true or false", field="correlation_ids")
        with as_user(req):
            credentials = self._fleet.register_device(req.context.principal.owner, name, csr, correlation_ids,
                                                      password_login(body))
        self._rw.devices(resp, credentials.position)
        resp.status = falcon.HTTP_201
        resp.location = f"/v1/devices/{quote(name)}"
        resp.media = credentials_body(credentials, self._endpoints)


class DeviceCount:
    def __init__(self, devices: DeviceListQueries):
        self._devices = devices

    def on_get(self, req, resp):
        resp.media = {"count": self._devices.count_devices(req.context.principal.owner)}


class Device:
    def __init__(self, fleet: DeviceFleet, devices: DeviceListQueries, rw: ReadYourWrites, wake_gateway=None):
        self._fleet, self._devices, self._rw = fleet, devices, rw
        self._wake_gateway = wake_gateway or (lambda: None)

    def on_get(self, req, resp, name):
        resp.media = device_view(self._devices.get_device(req.context.principal.owner, name))

    def on_delete(self, req, resp, name):
        with as_user(req):
            position = self._fleet.unregister_device(req.context.principal.owner, name)
        self._wake_gateway()  # it closes the device's live connections
        self._rw.devices(resp, position)
        resp.status = falcon.HTTP_204


class DeviceCertificate:
    def __init__(self, fleet: DeviceFleet, rw: ReadYourWrites, endpoints: DeviceEndpoints):
        self._fleet, self._rw, self._endpoints = fleet, rw, endpoints

    def on_post(self, req, resp, name):
        csr = text_field(json_body(req, required=False), "csr", required=False, max_length=16384)
        with as_user(req):
            credentials = self._fleet.reissue_certificate(req.context.principal.owner, name, csr)
        self._rw.devices(resp, credentials.position)
        resp.media = credentials_body(credentials, self._endpoints)


class DevicePassword:
    """POST /v1/devices/{name}/password: a new broker password, shown once; the old one is refused and the
    connections it opened are closed before the answer."""

    def __init__(self, fleet: DeviceFleet, rw: ReadYourWrites):
        self._fleet, self._rw = fleet, rw

    def on_post(self, req, resp, name):
        with as_user(req):
            device_id, password, position = self._fleet.rotate_broker_password(req.context.principal.owner, name)
        self._rw.devices(resp, position)
        resp.media = {"device_id": device_id, "name": name, "username": device_id, "broker_password": password}


class CertificateAuthorityCertificate:
    public = True

    def __init__(self, fleet: DeviceFleet):
        self._fleet = fleet

    def on_get(self, req, resp):
        resp.content_type = "application/x-pem-file"
        resp.text = self._fleet.ca_certificate_pem
