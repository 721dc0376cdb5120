"""The gateway's sweeps of a revoked device's connections, for the few seconds after a revocation in which
the broker may still let one in.

The API closes every connection a device holds before it answers an unregistration or a reissue
(gateways/broker/revocation.py), and from then on the broker refuses the revoked certificate at the TLS
handshake. What remains: a login the broker accepted just before the revocation and listed just after the
API's sweep, and a TLS session with the old certificate that was set up before the CRL changed and logs in
later (RabbitMQ 3.10 asks its auth backend about the CN only, which a reissue keeps; the login may come
until the broker's 10 s login timeout). For a while the gateway closes such connections again:

- after an unregistration, every connection of the device;
- after a reissue, every connection whose certificate is not the new one. The broker's `connection.created`
  event shows the certificate's subject, which names its serial (commands/pki.py), so the new certificate's
  connections are known for what they are: no clock is compared, and no broker statistics are needed.
  A connection whose event has not arrived yet is left alone until it does, and is closed then.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from gateways.devices.messages import PresenceChange

log = logging.getLogger("iotcloud.gateway")

# A login the auth backend accepted just before the unregistration was saved is listed a moment later.
UNREGISTERED_SWEEPS_FOR = 7.0
# The broker's login timeout (10 s for MQTT and AMQP), and a margin for a busy machine.
REISSUED_SWEEPS_FOR = 15.0
SWEEP_EVERY = 0.5
REASON = "certificate revoked"


@dataclass(frozen=True, slots=True)
class _Sweeping:
    until: float
    keep: str | None  # the serial of the certificate that stays valid; None: close everything


class RevocationSweeps:
    """Remembers which certificate each live connection logged in with, and sweeps revoked devices."""

    def __init__(self, admin, clock=time.monotonic):
        self._admin = admin
        self._clock = clock
        self._certificates: dict[str, str] = {}  # connection name -> serial its certificate names
        self._sweeping: dict[str, _Sweeping] = {}
        self._last = 0.0

    def observe(self, change: PresenceChange) -> None:
        """Learns a connection's certificate from its event; one that logs in with a revoked certificate
        while its device is swept is closed at once, not at the next sweep."""
        if not change.online:
            self._certificates.pop(change.connection, None)
            return
        if change.certificate is not None:
            self._certificates[change.connection] = change.certificate
        sweeping = self._sweeping.get(change.device_id)
        if sweeping is not None and self._clock() <= sweeping.until and self._revoked(change.connection, sweeping):
            self._close(change.device_id, lambda: int(self._admin.close_connection(change.connection, REASON)))

    def listed(self, live: set[str]) -> None:
        """Forgets connections the broker no longer lists (their close event came while we were away)."""
        for name in [name for name in self._certificates if name not in live]:
            del self._certificates[name]

    def unregistered(self, device_id: str) -> None:
        self._start(device_id, _Sweeping(self._clock() + UNREGISTERED_SWEEPS_FOR, None))

    def reissued(self, device_id: str, serial: str) -> None:
        self._start(device_id, _Sweeping(self._clock() + REISSUED_SWEEPS_FOR, serial.lower()))

    def run_due(self) -> None:
        """Sweeps again every device still in its window (at most every SWEEP_EVERY seconds)."""
        now = self._clock()
        if not self._sweeping or now - self._last < SWEEP_EVERY:
            return
        self._last = now
        for device_id, sweeping in list(self._sweeping.items()):
            if now > sweeping.until:
                del self._sweeping[device_id]
            else:
                self._sweep(device_id, sweeping)

    def _start(self, device_id: str, sweeping: _Sweeping) -> None:
        self._sweeping[device_id] = sweeping
        self._last = self._clock()
        self._sweep(device_id, sweeping)

    def _revoked(self, name: str, sweeping: _Sweeping) -> bool:
        # A connection without a certificate (a password login) or not yet reported is not judged here.
        return sweeping.keep is None or self._certificates.get(name, sweeping.keep) != sweeping.keep

    def _sweep(self, device_id: str, sweeping: _Sweeping) -> None:
        self._close(device_id, lambda: self._admin.close_device_connections(
            device_id, REASON, only=lambda name: self._revoked(name, sweeping)))

    def _close(self, device_id: str, close) -> None:
        try:
            closed = close()
        except Exception:  # noqa: BLE001 - the next sweep retries; new logins are refused anyway
            log.exception("could not close the connections of %s", device_id)
            return
        if closed:
            log.info("closed a revoked device's connections", extra={"device_id": device_id, "closed": closed})
