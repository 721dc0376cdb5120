"""Operational resources: liveness, readiness, problem-type docs and the OpenAPI document."""

from __future__ import annotations

import falcon

from commands.errors import DomainError
from gateways.http import access, problems
from projections.lag import lag_report


class Health:
    public = True
    probe = True  # never refused for capacity: a health check must always answer

    def on_get(self, req, resp):
        resp.media = {"status": "ok"}


class Ready:
    """Ready when the event store and the read store answer. The public answer is the status only;
    store heads and projection positions go to operators (IOTCLOUD_OPERATORS) and holders of the
    `admin` role with a valid token, and to the CLI (`iotcloud projections status`)."""

    public = True
    probe = True

    def __init__(self, platform):
        self._platform = platform

    def on_get(self, req, resp):
        checks, ok, detail = {}, True, self._operator(req)
        for name, app in (("accounts", self._platform.accounts), ("device_fleet", self._platform.fleet)):
            try:
                checks[f"event_store.{name}"] = {"ok": True, "head": app.recorder.max_notification_id() or 0}
            except Exception as exc:  # noqa: BLE001 - readiness reports, it does not fail
                ok, checks[f"event_store.{name}"] = False, {"ok": False, "error": type(exc).__name__}
        try:
            self._platform.db.command("ping")
            checks["read_store"] = {"ok": True, "projections": self._platform.catalogue.status()}
            if detail:  # event recorded -> visible, per projection and source
                checks["projection_lag"] = lag_report(self._platform.catalogue, {
                    "Accounts": self._platform.accounts, "DeviceFleet": self._platform.fleet,
                    "DeviceControl": self._platform.control})
        except Exception as exc:  # noqa: BLE001
            ok, checks["read_store"] = False, {"ok": False, "error": type(exc).__name__}
        resp.status = falcon.HTTP_200 if ok else falcon.HTTP_503
        resp.media = {"status": "ready" if ok else "unavailable"}
        if detail:
            resp.media["checks"] = checks
        resp.cache_control = ["no-store"]

    def _operator(self, req) -> bool:
        operators = self._platform.settings.operator_names
        scheme, _, token = (req.get_header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        try:
            principal = self._platform.identity.authenticate(token.strip())
        except DomainError:
            return False  # a bad token gets the public answer, not an error that confirms anything
        if principal.username.lower() in operators:
            return True
        req.context.principal = principal
        return access.has_role(req.context, "admin")


class Problems:
    public = True

    def on_get(self, req, resp):
        resp.media = {slug: {"type": problems.problem_type(slug), **entry}
                      for slug, entry in problems.catalogue().items()}

    def on_get_one(self, req, resp, slug):
        entry = problems.catalogue().get(slug)
        if entry is None:
            raise falcon.HTTPNotFound(description=f"no problem type '{slug}'")
        resp.media = {"type": problems.problem_type(slug), **entry}


class OpenApi:
    public = True

    def __init__(self, document: dict):
        self._document = document

    def on_get(self, req, resp):
        resp.media = self._document
