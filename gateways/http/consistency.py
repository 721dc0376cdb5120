"""Read-your-writes: a write answers once the read model it affects has caught up (bounded wait)."""

from __future__ import annotations

from typing import Callable

import falcon
from pymongo.errors import ConnectionFailure

from queries.read_models import DEVICE_LIST, HISTORY, USERS, ReadModelCatalogue


class ReadYourWrites:
    """Waits up to `timeout` for a projection to reach a write's position; says so in X-Read-Model.

    `nudge(source)` (projections.nudge) tells the projector that a caller is waiting on `source`."""

    def __init__(self, catalogue: ReadModelCatalogue, timeout: float, nudge: Callable[[str], None] | None = None):
        self._catalogue = catalogue
        self._timeout = timeout
        self._nudge = nudge

    def devices(self, resp: falcon.Response | None, position: int) -> None:
        self._settle(resp, DEVICE_LIST, "DeviceFleet", position)

    def users(self, resp: falcon.Response | None, position: int) -> None:
        self._settle(resp, USERS, "Accounts", position)

    def commands(self, resp: falcon.Response | None, position: int) -> None:
        """A call's status is read from its history document (queries/device_commands.py)."""
        self._settle(resp, HISTORY, "DeviceControl", position)

    def _settle(self, resp, projection: str, source: str, position: int) -> None:
        try:
            caught_up = self._catalogue.wait_for(projection, source, position, self._timeout, self._nudge)
        except ConnectionFailure:
            # The write is recorded already: answer it (as lagging) rather than fail a call that happened.
            caught_up = False
        if resp is not None:
            resp.set_header("X-Read-Model", "current" if caught_up else "lagging")
