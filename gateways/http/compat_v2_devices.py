"""libpyiotcloud v2 device routes: the device list, registration, and device access
(/devices/device/<subject>), answered in the v2 envelope (compat_v2.py)."""

from __future__ import annotations

from commands.device_apis import DeviceApi
from commands.errors import DeviceCallFailed, DeviceOffline, DeviceTimeout
from commands.fleet import DeviceFleet
from commands.identity.port import IdentityProvider
from gateways.http.resources.devices import password_login
from commands.notification_rules import DuplicateNotification, InvalidMessage, InvalidRecipient, RecipientNotOwned
from gateways.http.compat_v2 import V2Error, V2Resource, text_fields
from gateways.http.consistency import ReadYourWrites
from gateways.http.device_calls import DeviceCalls
from gateways.http.device_resources import DeviceResource, device_resources, v2_fields
from queries.devices import DeviceListQueries


def _v2_device(doc: dict) -> dict:
    return {"devicename": doc["name"], "deviceid": doc["device_id"], "cert": doc["certificate"]["pem"], "pkey": ""}


class DeviceList(V2Resource):
    def __init__(self, identity: IdentityProvider, rw: ReadYourWrites, devices: DeviceListQueries):
        super().__init__(identity, rw)
        self._devices = devices

    def on_post(self, req, resp):
        def action(body, principal):
            devices = self._devices.list_devices(principal.owner, limit=100)
            return "Devices queried successfully", {"devices": [_v2_device(d) for d in devices]}
        self.respond(req, resp, action)

    on_get = on_post


class DeviceItem(V2Resource):
    def __init__(self, identity: IdentityProvider, rw: ReadYourWrites, fleet: DeviceFleet,
                 devices: DeviceListQueries, wake_gateway=None):
        super().__init__(identity, rw)
        self._fleet, self._devices = fleet, devices
        self._wake_gateway = wake_gateway or (lambda: None)

    def on_post(self, req, resp):
        def action(body, principal):
            (name,) = text_fields(body, "devicename")
            # The seed had no such field; v2 clients add `"login": "password"` as modern ones do.
            credentials = self._fleet.register_device(principal.owner, name, password_login=password_login(body))
            self._rw.devices(None, credentials.position)
            device = {"devicename": name, "deviceid": credentials.device_id,
                      "cert": credentials.certificate.certificate_pem,
                      "pkey": credentials.certificate.private_key_pem, "ca": credentials.ca_pem}
            if credentials.broker_password:
                device.update(username=credentials.device_id, password=credentials.broker_password)
            return "Device registered successfully", {"device": device}
        self.respond(req, resp, action)

    def on_delete(self, req, resp):
        def action(body, principal):
            (name,) = text_fields(body, "devicename")
            position = self._fleet.unregister_device(principal.owner, name)
            self._wake_gateway()
            self._rw.devices(None, position)
            return "Device unregistered successfully", {}
        self.respond(req, resp, action)

    def on_patch(self, req, resp):
        def action(body, principal):
            (name,) = text_fields(body, "devicename")
            device = self._devices.get_device(principal.owner, name)
            return "Device queried successfully", {"device": _v2_device(device)}
        self.respond(req, resp, action)


# -- device access (/devices/device/<subject>) -------------------------------------------------

DEVICE_UNREACHABLE = "Could not communicate with device"
NOTIFICATION_REFUSALS = (InvalidRecipient, InvalidMessage, RecipientNotOwned, DuplicateNotification)


class DeviceAccess(V2Resource):
    """libpyiotcloud's device routes: the resource's parameters, taken from the body beside username,
    token and devicename, become the call (device_resources.py)."""

    def __init__(self, identity: IdentityProvider, rw: ReadYourWrites, calls: DeviceCalls, resource: DeviceResource):
        super().__init__(identity, rw)
        self._calls, self._resource = calls, resource
        if resource.read is None:
            self.on_post = self.on_get = None
        if resource.write is None:
            self.on_put = None

    def _access(self, req, resp, api: DeviceApi) -> None:
        def action(body, principal):
            (name,) = text_fields(body, "devicename")
            params = {field: body[field] for field in v2_fields(api) if field in body}
            try:
                result = self._calls.call(principal.owner, name, api.name, params)
            except (DeviceOffline, DeviceTimeout, DeviceCallFailed) as error:
                raise V2Error(error.status, DEVICE_UNREACHABLE) from None
            except NOTIFICATION_REFUSALS as error:  # libpyiotcloud clients know 400 NG for a bad request
                raise V2Error(400, error.title) from None
            return "Device accessed successfully.", {"value": result.value}
        self.respond(req, resp, action)

    def on_post(self, req, resp):
        self._access(req, resp, self._resource.read)

    on_get = on_post

    def on_put(self, req, resp):
        self._access(req, resp, self._resource.write)


def device_access_routes(identity: IdentityProvider, rw: ReadYourWrites,
                         calls: DeviceCalls) -> list[tuple[str, DeviceAccess]]:
    return [(resource.v2_path, DeviceAccess(identity, rw, calls, resource)) for resource in device_resources()]
