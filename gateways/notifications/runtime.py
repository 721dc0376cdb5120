"""The notifier process: turns device triggers and echoed app requests into Notification requests,
and delivers accepted ones through the channels, resuming from the event store after any crash.

It follows two logs and one queue, all from one thread:
- DeviceControl: a `trigger_notification` call that succeeded (the device echoed it) is an
  app-initiated request; its notification id derives from the command id, so reading the log
  again after a restart records nothing twice.
- the broker queue `iotcloud.notifier.triggers` (`server.*.trigger_notification`): a device's own
  trigger, unless it is the echo of such a call (same device, recipient and message); acknowledged
  only after it is recorded.
- Notifications: what is due (requested, or a retry whose time has come), and attempts a crash left
  open, which are recorded as interrupted and tried again.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid

from eventsourcing.utils import get_topic

from commands.context import acting_as
from commands.device_control import DeviceControl
from commands.domain.device_commands import DeviceCommand
from commands.domain.notifications import (ATTEMPTING, FROM_APP, FROM_DEVICE, REQUESTED, Notification)
from commands.errors import DomainError
from commands.fleet import DeviceFleet
from commands.notification_channels import Channel, Delivery, DeliveryFailed
from commands.notifications import Notifications
from commands.owned_devices import registered_device
from gateways.broker.topology import TRIGGER_API
from gateways.devices.broker_link import BrokerAddress, Reconnecting
from gateways.notifications.link import MAX_TRIGGER, DeviceChannel, NotifierLink, Trigger
from gateways.notifications.privacy import masked
from gateways.untrusted_json import MalformedPayload, load_bounded

log = logging.getLogger("iotcloud.notifier")
POLL = 0.25             # seconds between reads of the logs when the broker is quiet
PAGE = 1000
ECHO_WINDOW = 120.0     # seconds a trigger_notification call waits to be matched with its echo
DELIVERY_SLICE = 2.0    # seconds of deliveries per loop turn, so the broker link stays serviced
STALE_ON_FIRST_START = 3600.0  # seconds: see recover()
REFUSALS_PER_MINUTE = 5  # refusals recorded per device per minute; a flooding device's rest are dropped

CALL_REQUESTED, CALL_SUCCEEDED = get_topic(DeviceCommand.Requested), get_topic(DeviceCommand.Succeeded)
TRIGGER_BYTES = TRIGGER_API.encode()
OPENED = get_topic(Notification.Requested)
STARTED = get_topic(Notification.AttemptStarted)
RETRY = get_topic(Notification.AttemptFailed)
ENDED = frozenset(get_topic(e) for e in (Notification.Refused, Notification.Sent, Notification.DeliveredToDevice,
                                         Notification.Failed))
FOLLOWED = [OPENED, STARTED, RETRY, *sorted(ENDED)]


class Notifier:
    def __init__(self, notifications: Notifications, control: DeviceControl, fleet: DeviceFleet,
                 channels: dict[str, Channel], address: BrokerAddress | None, clock=time.time):
        self._notifications, self._control, self._fleet = notifications, control, fleet
        self._channels = {**channels, "device": DeviceChannel(lambda: self._link)}
        self._address, self._clock = address, clock
        self._link: NotifierLink | None = None
        self._position = 0                 # in the Notifications log
        self._control_position = 0         # in the DeviceControl log
        self._due: dict[str, float] = {}   # notification id -> when to try it
        self._attempting: set[str] = set()
        self._calls: dict[str, tuple[dict, dict, int]] = {}  # command id -> (device, params, position)
        self._echoes: dict[str, collections.deque] = {}      # device id -> (recipient, message, at, command id)
        self._refusals: dict[str, collections.deque] = {}
        self._first_control_pass = True
        self._stale_before: float | None = None

    # -- start-up -------------------------------------------------------------------------------

    def recover(self) -> None:
        """Reads the whole Notifications log: what is still due, and where the app requests stopped."""
        self._position, resume = 0, 0
        while True:
            page = self._notifications.recorder.select_notifications(start=self._position + 1, limit=PAGE,
                                                                     topics=FOLLOWED)
            for record in page:
                event = self._notifications.mapper.to_domain_event(record)
                if record.topic == OPENED and event.origin == FROM_APP:
                    resume = max(resume, event.source_position)
                self._apply(record.topic, str(record.originator_id), event)
            if not page:
                break
            self._position = page[-1].id
        self._control_position = resume
        # A store that never had a notification: the platform ran without a notifier (an upgrade).
        # Calls answered long before now are history, not requests to send today.
        self._stale_before = self._clock() - STALE_ON_FIRST_START if self._position == 0 else None
        log.info("notifier recovered", extra={"due": len(self._due), "open_attempts": len(self._attempting),
                                              "control_position": resume})

    # -- the loop -------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self.recover()
        retry = Reconnecting("notifier", log)

        def session() -> None:
            try:
                if self._address is not None:
                    self._link = NotifierLink(self._address)
                    retry.connected()
                while not stop.is_set():
                    self.turn(POLL)
            finally:
                if self._link is not None:
                    self._link.close()  # unacknowledged triggers come back on the next connection
                    self._link = None
        retry.run(stop, session)

    def turn(self, wait: float) -> None:
        """One round: hear the broker, read both logs, record triggers, deliver what is due."""
        if self._link is not None:
            self._link.poll(min(wait, self._next_due_in()))
        elif wait:
            time.sleep(min(wait, self._next_due_in()))
        self._follow_control()
        if self._link is not None and self._link.triggers:
            triggers, self._link.triggers = self._link.triggers, []
            for index, trigger in enumerate(triggers):
                try:
                    self._on_trigger(trigger)
                except Exception:
                    self._link.triggers = triggers[index:]  # not acknowledged: kept for the next round
                    raise
                self._link.ack(trigger)
        self._follow_store()
        self._deliver_due()

    def _next_due_in(self) -> float:
        return max(0.0, min(self._due.values(), default=POLL) - self._clock()) if self._due else POLL

    # -- requests -------------------------------------------------------------------------------

    def _follow_control(self) -> None:
        # First pass after a restart: a call answered now may have been requested before where this
        # run started reading (from 0 nothing was, so nothing needs remembering).
        earlier = self._first_control_pass and self._control_position > 0
        requested_here: set[str] = set()
        plain = self._control.mapper.compressor is None and self._control.mapper.cipher is None
        while True:
            page = self._control.recorder.select_notifications(start=self._control_position + 1, limit=PAGE,
                                                               topics=[CALL_REQUESTED, CALL_SUCCEEDED])
            for record in page:
                cid = str(record.originator_id)
                if record.topic == CALL_REQUESTED:
                    if earlier:
                        requested_here.add(cid)
                    if plain and TRIGGER_BYTES not in record.state:
                        self._control_position = record.id
                        continue  # another api: not worth decoding (most calls are)
                    event = self._control.mapper.to_domain_event(record)
                    if event.api == TRIGGER_API:
                        device = {"device_id": event.device_id, "owner": event.owner, "name": event.device_name}
                        self._calls[cid] = (device, event.params, record.id)
                        self._echoes.setdefault(event.device_id, collections.deque(maxlen=64)).append(
                            (event.params.get("recipient"), event.params.get("message"), time.monotonic(), cid))
                elif cid in self._calls or (earlier and cid not in requested_here):
                    if self._stale_before is not None and self._answered_before(record, self._stale_before):
                        self._calls.pop(cid, None)
                    else:
                        self._app_request(cid, record.id)
                self._control_position = record.id
            if len(page) < PAGE:
                break
        self._first_control_pass = False
        self._stale_before = None
        if len(self._calls) > 10_000:  # calls never answered: their echo will not come now
            for cid in list(self._calls)[:5_000]:
                del self._calls[cid]

    def _answered_before(self, record, moment: float) -> bool:
        return self._control.mapper.to_domain_event(record).timestamp.timestamp() < moment

    def _app_request(self, command_id: str, position: int) -> None:
        known = self._calls.pop(command_id, None)
        if known is None:  # requested before where this run started reading (first pass only)
            command = self._control.command(command_id)
            if command.api != TRIGGER_API:
                return
            known = ({"device_id": command.device_id, "owner": command.owner, "name": command.device_name},
                     command.params, position)
        device, params, _ = known
        with acting_as(f"user:{device['owner']}", correlation_id=f"command:{command_id}", causation_id=command_id):
            notification = self._notifications.request(f"command:{command_id}", FROM_APP, device,
                                                       params.get("recipient"), params.get("message"),
                                                       command_id=command_id, source_position=position)
        self._accepted(notification)

    def _on_trigger(self, trigger: Trigger) -> None:
        try:
            body = load_bounded(trigger.payload, MAX_TRIGGER, "trigger")
        except MalformedPayload as error:
            log.info("dropped a malformed trigger", extra={"device_id": trigger.device_id, "reason": str(error)[:120]})
            return
        if not isinstance(body, dict):
            return
        recipient, message = body.get("recipient"), body.get("message")
        if self._is_echo(trigger.device_id, recipient, message):
            return  # the echo of an app's call: recorded from the call's outcome, not here
        device = registered_device(self._fleet, trigger.device_id)
        if device is None:
            return
        try:
            self._notifications.check(device, recipient, message)
        except DomainError as refusal:
            if not self._may_record_refusal(trigger.device_id):
                log.info("refused trigger not recorded (the device floods)", extra={
                    "device_id": trigger.device_id, "reason": refusal.problem})
                return
        with acting_as(f"device:{trigger.device_id}", correlation_id=f"trigger:{uuid.uuid4()}"):
            notification = self._notifications.request(f"trigger:{uuid.uuid4()}", FROM_DEVICE, device,
                                                       recipient, message)
        self._accepted(notification)

    def _is_echo(self, device_id: str, recipient, message) -> bool:
        calls = self._echoes.get(device_id)
        now = time.monotonic()
        while calls and calls[0][2] < now - ECHO_WINDOW:
            calls.popleft()
        for entry in list(calls or ()):
            if entry[0] == recipient and entry[1] == message:
                calls.remove(entry)
                return True
        return False

    def _may_record_refusal(self, device_id: str) -> bool:
        recent = self._refusals.setdefault(device_id, collections.deque())
        now = time.monotonic()
        while recent and recent[0] < now - 60:
            recent.popleft()
        if len(recent) >= REFUSALS_PER_MINUTE:
            return False
        recent.append(now)
        return True

    def _accepted(self, notification: Notification | None) -> None:
        if notification is None:
            return
        extra = {"notification_id": str(notification.id), "device_id": notification.device_id,
                 "channel": notification.channel, "recipient": masked(notification.recipient),
                 "origin": notification.origin, "state": notification.state}
        if notification.state == REQUESTED:
            self._due[str(notification.id)] = self._clock()
            log.info("notification requested", extra=extra)
        else:
            log.info("notification refused", extra=extra)

    # -- delivery -------------------------------------------------------------------------------

    def _follow_store(self) -> None:
        while True:
            page = self._notifications.recorder.select_notifications(start=self._position + 1, limit=PAGE,
                                                                     topics=FOLLOWED)
            for record in page:
                self._apply(record.topic, str(record.originator_id),
                            self._notifications.mapper.to_domain_event(record) if record.topic == RETRY else None)
                self._position = record.id
            if len(page) < PAGE:
                break
        # Nothing is attempted across two reads of the log: an attempt still open was cut short.
        for nid in list(self._attempting):
            self._interrupted(nid)

    def _apply(self, topic: str, nid: str, event) -> None:
        if topic == OPENED:
            self._due.setdefault(nid, self._clock())
        elif topic == STARTED:
            self._due.pop(nid, None)
            self._attempting.add(nid)
        elif topic == RETRY:
            self._attempting.discard(nid)
            self._due[nid] = event.retry_at
        else:
            self._attempting.discard(nid)
            self._due.pop(nid, None)

    def _interrupted(self, nid: str) -> None:
        self._attempting.discard(nid)
        notification = self._notifications.notification(nid)
        if notification.state != ATTEMPTING:
            return
        log.warning("attempt interrupted; its outcome is unknown", extra={"notification_id": nid,
                                                                          "attempt": notification.attempts})
        with acting_as("service:notifier", correlation_id=f"notification:{nid}"):
            self._notifications.record_failure(notification, "interrupted: the notifier stopped during this attempt")
        self._schedule(notification)

    def _deliver_due(self) -> None:
        started = time.monotonic()
        for nid, due in sorted(self._due.items(), key=lambda item: item[1]):
            if due > self._clock() or time.monotonic() - started > DELIVERY_SLICE:
                return
            self._deliver(nid)

    def _deliver(self, nid: str) -> None:
        with acting_as("service:notifier", correlation_id=f"notification:{nid}"):
            try:
                notification = self._notifications.start_attempt(nid)
            except DomainError:
                self._due.pop(nid, None)  # it moved on (refused, sent, failed) meanwhile
                return
            channel = self._channels.get(notification.channel)
            delivery = Delivery(nid, notification.attempts, notification.channel, notification.recipient,
                                notification.message, notification.device_name)
            extra = {"notification_id": nid, "attempt": notification.attempts, "channel": notification.channel,
                     "recipient": masked(notification.recipient)}
            try:
                if channel is None:
                    raise DeliveryFailed(f"no {notification.channel} channel is configured", permanent=True)
                provider_id = channel.deliver(delivery)
            except DeliveryFailed as failure:
                self._notifications.record_failure(notification, failure.reason, failure.permanent)
                log.warning("notification attempt failed: %s", failure.reason, extra={**extra, "state": notification.state})
            except Exception as error:  # noqa: BLE001 - a channel's bug costs this attempt, which is retried
                self._notifications.record_failure(notification, f"channel error ({type(error).__name__})")
                log.exception("notification channel raised", extra=extra)
            else:
                self._notifications.record_sent(notification, channel.provider, str(provider_id)[:200])
                log.info("notification sent", extra={**extra, "provider": channel.provider})
        self._schedule(notification)

    def _schedule(self, notification: Notification) -> None:
        nid = str(notification.id)
        self._attempting.discard(nid)
        if notification.state == REQUESTED and notification.retry_at is not None:
            self._due[nid] = notification.retry_at
        else:
            self._due.pop(nid, None)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
