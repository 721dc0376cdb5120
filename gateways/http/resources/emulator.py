"""/v1/emulator: the caller's device emulator (gateways/http/emulators.py): start, look, stop."""

from __future__ import annotations

import falcon

from commands.errors import DomainError, ValidationFailed
from commands.fleet import DeviceFleet
from commands.owned_devices import owned_device
from gateways.http.bodies import json_body, text_field
from gateways.http.emulators import DEFAULT_MINUTES, MAX_MINUTES, Emulators


class EmulatorNotRunning(DomainError):
    problem, status, title = "emulator-not-running", 404, "You have no device emulator"


class Emulator:
    def __init__(self, emulators: Emulators, fleet: DeviceFleet):
        self._emulators, self._fleet = emulators, fleet

    def on_get(self, req, resp):
        # None running is an answer, not an error: the web app asks on every device page.
        resp.media = self._emulators.status(req.context.principal.username) or {"device": None, "running": False}

    def on_post(self, req, resp):
        owner = req.context.principal.username
        body = json_body(req)
        device = owned_device(self._fleet, owner, text_field(body, "name", max_length=64))
        minutes = body.get("minutes", DEFAULT_MINUTES)
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= MAX_MINUTES:
            raise ValidationFailed(f"'minutes' must be an integer 1..{MAX_MINUTES}", field="minutes")
        resp.media = self._emulators.start(owner, device, text_field(body, "certificate", max_length=16384),
                                           text_field(body, "private_key", max_length=16384), minutes)
        resp.status = falcon.HTTP_201
        resp.location = "/v1/emulator"

    def on_delete(self, req, resp):
        if not self._emulators.stop(req.context.principal.username):
            raise EmulatorNotRunning("nothing to stop")
        resp.status = falcon.HTTP_204
