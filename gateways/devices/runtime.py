"""The device gateway process: follows the DeviceControl log, runs the dispatcher on one broker
connection, records presence and revokes unregistered devices' live connections."""

from __future__ import annotations

import logging
import threading
import time

from eventsourcing.utils import get_topic

from commands.device_control import DeviceControl
from commands.domain.device_commands import DeviceCommand
from commands.domain.device_ids import DEVICE_ID_PATTERN
from commands.domain.devices import Device
from commands.fleet import DeviceFleet
from commands.context import acting_as
from gateways.devices.broker_link import WAKE_COMMANDS, WAKE_DEVICES, BrokerAddress, GatewayLink, Reconnecting
from gateways.devices.dispatcher import Dispatcher
from gateways.devices.reconcile_schedule import ReconcileSchedule
from gateways.devices.revocation_sweeps import RevocationSweeps
from gateways.devices.messages import CommandOutcome, PresenceChange
from gateways.devices.tally import MessageTally
from queries.device_commands import CommandQueries
from queries.read_models import DEVICE_LIST, HISTORY, ReadModelCatalogue

log = logging.getLogger("iotcloud.gateway")
REQUESTED = get_topic(DeviceCommand.Requested)
SENT = get_topic(DeviceCommand.Sent)
UNROUTED = get_topic(DeviceCommand.Unrouted)
ENDED = frozenset(get_topic(e) for e in (DeviceCommand.Succeeded, DeviceCommand.AnswerRejected,
                                         DeviceCommand.TimedOut, DeviceCommand.Expired))
FOLLOWED = [REQUESTED, SENT, UNROUTED, *sorted(ENDED)]
UNREGISTERED = get_topic(Device.Unregistered)
REISSUED = get_topic(Device.CertificateReissued)
BACKUP_POLL = 1.0
PAGE = 1000


class DeviceGateway:
    """Owns the dispatcher; reconnects to the broker by itself and never loses its in-flight state."""

    def __init__(self, control: DeviceControl, fleet: DeviceFleet, db, address: BrokerAddress,
                 revoke=None, clock=time.time, name: str = "gateway", answers_via_api: bool = False):
        self._control, self._fleet, self._db = control, fleet, db
        self._answers_via_api = answers_via_api  # GatewayLink: the API's short path passes answers on
        self._address = address
        self._revoke = revoke
        self._clock = clock
        self._link: GatewayLink | None = None
        self._outbox: list[CommandOutcome] = []
        self.tally = MessageTally()
        self.dispatcher = Dispatcher(control, self._publish, self._outbox.append, self._record_presence,
                                     clock=clock, name=name, tally=self.tally)
        self._position = 0
        self._fleet_position = fleet.recorder.max_notification_id() or 0
        self._sweeps = RevocationSweeps(revoke) if revoke is not None else None
        self._reconcile_at = ReconcileSchedule()

    @property
    def connected(self) -> bool:
        return self._link is not None

    def recover(self) -> list[DeviceCommand]:
        """Finds the commands left open by an earlier run: queued ones are to be sent, sent ones awaited."""
        catalogue = ReadModelCatalogue(self._db)
        generation = catalogue.active_generation(HISTORY)  # where open calls are read from
        projected = catalogue.position(HISTORY, generation, "DeviceControl")
        open_ids = CommandQueries(self._db).open_command_ids()
        self.dispatcher.assume_online(d["device_id"] for d in catalogue.collection(DEVICE_LIST)
                                      .find({"connection": "online"}, {"device_id": 1}))
        commands = [self._control.command(cid) for cid in open_ids]
        self._position = projected
        commands += self._follow_open()
        log.info("gateway recovered", extra={"open_commands": len(commands), "position": self._position})
        return [c for c in commands if not c.is_terminal]

    def run(self, stop: threading.Event) -> None:
        recovered = self.recover()
        retry = Reconnecting("gateway", log)

        def session() -> None:
            nonlocal recovered
            try:
                self._link = GatewayLink(self._address, self._clock, self.tally, self._answers_via_api)
                self._reconcile_at.link_opened(time.monotonic())
                retry.connected()
                if recovered:
                    # Only now: the dispatcher records a command as sent before it publishes it, so
                    # handing it over without a link would mark it sent, never deliver it, and time it out.
                    self.dispatcher.requested(recovered)
                    recovered = []
                self._loop(stop)
            finally:
                if self._link is not None:
                    self._link.close()
                    self._link = None
        retry.run(stop, session)

    def _loop(self, stop: threading.Event) -> None:
        link = self._link
        last_poll = 0.0
        while not stop.is_set():
            deadline = self.dispatcher.next_deadline()
            wait = BACKUP_POLL if deadline is None else min(BACKUP_POLL, max(0.0, deadline - self._clock()))
            link.poll(wait)
            # Before anything is sent: every answer of this poll came before the requests this pass
            # publishes, so a late one is never matched to a call sent after it (it finds the slot free).
            if link.answers:
                answers = list(link.answers)
                link.answers.clear()
                self.dispatcher.answered(answers)
            presence, link.presence = link.presence, []
            for change in presence:
                if self._sweeps is not None:
                    self._sweeps.observe(change)
                try:
                    self.dispatcher.presence(change)
                except Exception:  # noqa: BLE001 - one presence event costs only itself
                    log.exception("could not record a presence change", extra={"device_id": change.device_id})
            if link.unrouted:
                unrouted = list(link.unrouted)
                link.unrouted.clear()
                self.dispatcher.unrouted(unrouted)
            now = time.monotonic()
            backup = now - last_poll >= BACKUP_POLL
            if backup:
                last_poll = now
            if backup or WAKE_COMMANDS in link.wake_reasons:
                self._follow_log()
            if backup or WAKE_DEVICES in link.wake_reasons:
                self._revoke_unregistered()
            link.wake_reasons.clear()
            if self._sweeps is not None:
                self._sweeps.run_due()
            if self._revoke is not None and self._reconcile_at.due(now):
                self._reconcile(now)
            link.ack_answers()
            self.dispatcher.tick()
            self._flush_outcomes()
            self.tally.summarise()

    def _follow_open(self) -> list[DeviceCommand]:
        """Commands requested after our position, as they stand now (at start-up)."""
        commands = []
        while True:
            page = self._control.recorder.select_notifications(start=self._position + 1, limit=PAGE, topics=[REQUESTED])
            if not page:
                return commands
            self._position = page[-1].id
            commands += [self._control.command(notification.originator_id) for notification in page]
            if len(page) < PAGE:
                return commands

    def _follow_log(self) -> None:
        """Reads what was recorded since our position: new commands to queue, commands an API process
        sent itself or was handed back, and commands that ended. Events are applied to the commands
        we hold, so our later decisions start from the stored state. A command the API recorded born
        sent (its Requested carries `sent_at`) reaches the dispatcher already sent: never queued here."""
        cache = self._control.repository.cache
        while True:
            page = self._control.recorder.select_notifications(start=self._position + 1, limit=PAGE, topics=FOLLOWED)
            if not page:
                return
            self._position = page[-1].id
            fresh: dict = {}  # commands requested in this page, in order, not yet handed over
            for notification in page:
                cid = notification.originator_id
                if notification.topic == REQUESTED:
                    fresh[cid] = self._control.mapper.to_domain_event(notification).mutate(None)
                    continue
                command = fresh.get(cid)
                if command is None and cache is not None:
                    try:
                        command = cache.get(cid)
                    except KeyError:
                        command = None
                if command is None:
                    continue  # requested before our position and not open: nothing of ours
                if notification.topic in ENDED:
                    self._control.forget(cid)
                    if fresh.pop(cid, None) is None:
                        self.dispatcher.ended(str(cid), command.device_id)
                    continue
                event = self._control.mapper.to_domain_event(notification)
                if event.originator_version <= command.version:
                    continue  # we recorded it ourselves
                if event.originator_version > command.version + 1:
                    self._control.forget(cid)  # we missed something: read it again when needed
                    continue
                event.mutate(command)
                if cid in fresh:
                    continue
                if notification.topic == SENT:
                    self.dispatcher.sent_elsewhere(command)
                else:
                    self.dispatcher.unrouted_elsewhere(str(cid))
            for command in fresh.values():
                self._control.remember(command)
            self.dispatcher.requested(list(fresh.values()))
            if len(page) < PAGE:
                return

    def _publish(self, command_id: str, device_id: str, api: str, payload: bytes, timeout: float) -> None:
        self._link.publish_request(command_id, device_id, api, payload, timeout)

    def _flush_outcomes(self) -> None:
        if self._outbox and self._link is not None:
            for outcome in self._outbox:
                self._link.publish_outcome(outcome)
            self._outbox.clear()

    def _record_presence(self, change: PresenceChange) -> None:
        if not DEVICE_ID_PATTERN.match(change.device_id):
            return  # services and the admin are not devices
        with acting_as("service:gateway", correlation_id=f"presence:{change.connection}"):
            self._fleet.record_presence(change.device_id, change.online, change.at, change.protocol)

    def _revoke_unregistered(self) -> None:
        page = self._fleet.recorder.select_notifications(start=self._fleet_position + 1, limit=PAGE,
                                                        topics=[UNREGISTERED, REISSUED])
        for notification in page:
            self._fleet_position = notification.id
            if self._sweeps is None:
                continue
            device_id = self._fleet.repository.get(notification.originator_id).device_id
            if notification.topic == UNREGISTERED:
                self._sweeps.unregistered(device_id)
            else:
                event = self._fleet.mapper.to_domain_event(notification)
                self._sweeps.reissued(device_id, event.certificate["serial"])

    def _reconcile(self, now: float) -> None:
        try:
            listed = self._revoke.connections_by_user()
        except Exception:  # noqa: BLE001 - presence events still flow; try again later
            log.warning("could not list the broker's connections", exc_info=True)
            self._reconcile_at.listed(now, ok=False)
            return
        self._reconcile_at.listed(now, ok=True)
        self._sweeps.listed({name for names in listed.values() for name in names})
        devices = {user: names for user, names in listed.items() if DEVICE_ID_PATTERN.match(user)}
        self.dispatcher.reconcile(devices, self._clock())
