"""The REST API's composition root: `create_app(platform)` wires resources, middleware and errors."""

from __future__ import annotations

import datetime as dt
import functools
import json
import uuid
from dataclasses import dataclass

import falcon
import falcon.media

from gateways.devices.broker_link import WAKE_DEVICES
from gateways.http import compat_v2 as v2
from gateways.http import compat_v2_devices as v2_devices
from gateways.http import compat_v2_history as v2_history
from gateways.http import draining
from gateways.http import problems
from gateways.http.access import RoleLookup
from gateways.http.bodies import bounded_loads, read_bounded
from gateways.http.capacity import ConcurrencyLimit
from gateways.http.metrics import Metrics, RequestMetrics
from gateways.http.middleware import BearerAuthentication, PublicRequestLimit, RequestContext
from gateways.http.openapi import build_document
from gateways.http import static_files
from gateways.http.resources import (accounts, admin, audit, device_control, devices, emulator, history, live,
                                     notifications, service)
from gateways.http.secure_headers import SecureHeaders
from queries.device_changes import DeviceListVersions

METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Route:
    path: str
    resource: object
    suffix: str | None = None

    def methods(self) -> list[str]:
        tail = f"_{self.suffix}" if self.suffix else ""
        return [m for m in METHODS if callable(getattr(self.resource, f"on_{m}{tail}", None))]


def _json_default(value):
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class BoundedJSONHandler(falcon.media.JSONHandler):
    """Reads at most MAX_BODY bytes (with or without a Content-Length) and refuses deep nesting before parsing."""

    def deserialize(self, stream, content_type, content_length):
        return self._deserialize(read_bounded(stream, content_length))


def routes(platform) -> list[Route]:
    identity, fleet, settings = platform.identity, platform.fleet, platform.settings
    rw = platform.rw
    problems_resource = service.Problems()
    wake_for_revocation = functools.partial(platform.outcomes.wake_gateway, WAKE_DEVICES)
    return [
        Route("/healthz", service.Health()),
        Route("/readyz", service.Ready(platform)),
        Route("/problems", problems_resource),
        Route("/problems/{slug}", problems_resource, "one"),
        Route("/.well-known/jwks.json", accounts.Jwks(identity)),
        Route("/v1/auth/signup", accounts.SignUp(identity, rw)),
        Route("/v1/auth/confirm", accounts.ConfirmSignUp(identity, rw)),
        Route("/v1/auth/resend-code", accounts.ResendCode(identity)),
        Route("/v1/auth/login", accounts.Login(identity)),
        Route("/v1/auth/refresh", accounts.Refresh(identity)),
        Route("/v1/auth/logout", accounts.Logout(identity)),
        Route("/v1/auth/logout-everywhere", accounts.LogoutEverywhere(identity)),
        Route("/v1/auth/forgot-password", accounts.ForgotPassword(identity)),
        Route("/v1/auth/reset-password", accounts.ResetPassword(identity)),
        Route("/v1/me", accounts.Me(platform.users)),
        Route("/v1/ca", devices.CertificateAuthorityCertificate(fleet)),
        Route("/v1/devices", devices.Devices(fleet, platform.devices, rw, platform.device_endpoints)),
        Route("/v1/devices/_count", devices.DeviceCount(platform.devices)),
        Route("/v1/devices/_changes", live.DeviceChanges(DeviceListVersions(platform.db), platform.waiting,
                                                         draining.STOPPING)),
        Route("/v1/emulator", emulator.Emulator(platform.emulators, fleet)),
        Route("/v1/devices/{name}", devices.Device(fleet, platform.devices, rw, wake_for_revocation)),
        Route("/v1/devices/{name}/certificate", devices.DeviceCertificate(fleet, rw, platform.device_endpoints)),
        Route("/v1/devices/{name}/password", devices.DevicePassword(fleet, rw)),
        Route("/v1/devices/{name}/commands", device_control.DeviceCommands(platform.calls)),
        Route("/v1/commands/{command_id}", device_control.CommandStatus(platform.commands)),
        Route("/v1/devices/{name}/notifications", notifications.DeviceNotifications(platform.calls)),
        Route("/v1/notifications", notifications.NotificationList(platform.notification_queries)),
        Route("/v1/notifications/{notification_id}", notifications.NotificationItem(platform.notification_queries)),
        *[Route(path, resource) for path, resource in device_control.device_api_routes(platform.calls)],
        *[Route(path, resource) for path, resource in audit.routes(platform)],
        *[Route(path, resource) for path, resource in admin.routes(platform)],
        *[Route(path, resource) for path, resource in history.routes(platform.history, platform.fleet_analytics)],
        # libpyiotcloud v2 compatibility
        Route("/user/signup", v2.UserSignUp(identity, rw)),
        Route("/user/confirm_signup", v2.UserConfirmSignUp(identity, rw)),
        Route("/user/resend_confirmation_code", v2.UserResendCode(identity, rw)),
        Route("/user/forgot_password", v2.UserForgotPassword(identity, rw)),
        Route("/user/confirm_forgot_password", v2.UserConfirmForgotPassword(identity, rw)),
        Route("/user/login", v2.UserLogin(identity, rw)),
        Route("/user/logout", v2.UserLogout(identity, rw)),
        Route("/user", v2.User(identity, rw, platform.users)),
        Route("/devices", v2_devices.DeviceList(identity, rw, platform.devices)),
        Route("/devices/device", v2_devices.DeviceItem(identity, rw, fleet, platform.devices, wake_for_revocation)),
        *[Route(path, resource) for path, resource in v2_devices.device_access_routes(identity, rw, platform.calls)],
        Route("/user/histories", v2_history.UserHistories(identity, rw, platform.history)),
        Route("/devices/histories", v2_history.DeviceHistories(identity, rw, platform.history)),
    ]


def create_app(platform) -> falcon.App:
    public_limit = ConcurrencyLimit(platform.settings.api_shares[2])
    settings = platform.settings
    roles_of = lambda username: platform.accounts.roles(username)  # noqa: E731 - looked up per request
    app = falcon.App(middleware=[SecureHeaders(settings.hsts_seconds), RequestMetrics(), RequestContext(),
                                 PublicRequestLimit(public_limit), BearerAuthentication(platform.identity),
                                 RoleLookup(roles_of)], cors_enable=True)
    handler = BoundedJSONHandler(dumps=functools.partial(json.dumps, default=_json_default), loads=bounded_loads)
    app.req_options.media_handlers[falcon.MEDIA_JSON] = handler
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = handler
    app.req_options.strip_url_path_trailing_slash = True
    problems.install(app)
    table = routes(platform)
    for route in table:
        app.add_route(route.path, route.resource, **({"suffix": route.suffix} if route.suffix else {}))
    app.add_route("/openapi.json", service.OpenApi(build_document(table, platform.settings)))
    app.add_route("/metrics", Metrics(settings.metrics_multiprocess_dir))  # Prometheus text, not in OpenAPI
    static_files.install(app, static_files.WebApp())  # the web app at /, its pages under /app/
    return app
