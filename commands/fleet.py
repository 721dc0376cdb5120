"""DeviceFleet: the write side of the device registry (register, unregister, reissue certificates)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from commands.broker_passwords import new_broker_password
from commands.domain.device_ids import new_device_id
from commands.domain.devices import Device, DeviceNameClaim
from commands.errors import (ConcurrentChange, DeviceNameTaken, DeviceNotFound, InvalidCertificateRequest,
                             PasswordLoginNotEnabled, ValidationFailed)
from commands.pki import CertificateAuthority, InvalidCSR, IssuedCertificate

# A device's state at any revision folds at most this many events after its nearest snapshot (audit time travel).
SNAPSHOT_INTERVAL = 100
DEVICE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}\Z")  # \Z: "$" also matches before a final newline


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    """What a registration or reissue hands back once; the private key is never stored."""

    device_id: str
    name: str
    ca_pem: str
    certificate: IssuedCertificate
    position: int
    broker_password: str | None = None  # devices registered for password login: shown once, stored hashed


class CertificateRevocation(Protocol):
    """Makes the broker refuse what the fleet's log revoked: a reissue revokes the previous certificate, an
    unregistration the current one."""

    def enforce(self, fleet: "DeviceFleet", device_id: str) -> None:
        """Returns only once the broker refuses every revoked credential and every connection `device_id` held
        when it was called is closed."""


class DeviceFleet(Application):
    """Registers devices and manages their certificates."""

    env = {"AGGREGATE_CACHE_MAXSIZE": "5000"}
    snapshotting_intervals = {Device: SNAPSHOT_INTERVAL}

    def __init__(self, *args, ca: CertificateAuthority, certificate_days: int = 730, key_type: str = "ec",
                 revocation: CertificateRevocation | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # Called with the topics of every save's events, in the saving thread, before the command returns
        # (commands.device_directory forgets its answers there).
        self.saved_observers: list = []
        self._ca = ca
        self._certificate_days = certificate_days
        self._key_type = key_type
        self.revocation = revocation

    def register_device(self, owner: str, name: str, csr_pem: str | None = None,
                        correlation_ids: bool = False, password_login: bool = False) -> DeviceCredentials:
        check_device_name(name)
        claim = self._existing_claim(owner, name)
        if claim is not None and claim.device_id is not None:
            raise DeviceNameTaken(f"device '{name}' is already registered")
        device_id = new_device_id()
        issued = self._issue(device_id, csr_pem)
        device = Device(device_id=device_id, owner=owner, name=name, certificate=certificate_record(issued),
                        correlation_ids=bool(correlation_ids))
        password = None
        if password_login:
            password, password_hash = new_broker_password()
            device.set_broker_password(password_hash=password_hash)
        if claim is None:
            claim = DeviceNameClaim(owner=owner, name=name, device_id=device_id)
        else:
            claim.reclaim(device_id)
        try:
            recordings = self.save(device, claim)
        except IntegrityError:
            raise DeviceNameTaken(f"device '{name}' is already registered") from None
        return DeviceCredentials(device_id, name, self._ca.certificate_pem, issued, recordings[-1].notification.id,
                                 password)

    def rotate_broker_password(self, owner: str, name: str) -> tuple[str, str, int]:
        """A new broker password for a password-login device: (device id, the password, position). Returns once the
        old password is refused and the connections it opened are closed."""
        device, _ = self._owned_device(owner, name)
        if device.broker_password_hash is None:
            raise PasswordLoginNotEnabled(f"device '{name}' logs in with its certificate only")
        password, password_hash = new_broker_password()
        device.set_broker_password(password_hash=password_hash)
        position = self._save_or_conflict(device)
        # The auth backend reads the log on every login, so the old password is refused from the save on;
        # connections it opened before are closed here, as a revocation closes a certificate's.
        self._enforce_revocation(device.device_id)
        return device.device_id, password, position

    def unregister_device(self, owner: str, name: str) -> int:
        device, claim = self._owned_device(owner, name)
        device.unregister()
        claim.release()
        position = self._save_or_conflict(device, claim)
        self._enforce_revocation(device.device_id)
        return position

    def reissue_certificate(self, owner: str, name: str, csr_pem: str | None = None) -> DeviceCredentials:
        device, _ = self._owned_device(owner, name)
        issued = self._issue(device.device_id, csr_pem)
        device.reissue_certificate(certificate_record(issued))
        position = self._save_or_conflict(device)
        self._enforce_revocation(device.device_id)
        return DeviceCredentials(device.device_id, device.name, self._ca.certificate_pem, issued, position)

    def record_presence(self, device_id: str, online: bool, at: float, protocol: str = "") -> int | None:
        """Records a connect or disconnect the broker reported; ignores unknown or unchanged devices."""
        try:
            device = self.repository.get(Device.create_id(device_id))
        except AggregateNotFoundError:
            return None
        if not device.registered or device.online == online:
            return None
        if online:
            device.connect(at=at, protocol=protocol)
        else:
            device.disconnect(at=at)
        try:
            return self.save(device)[-1].notification.id
        except IntegrityError:
            return None

    def save(self, *objs, **kwargs):
        recordings = super().save(*objs, **kwargs)
        if self.saved_observers:
            topics = [recording.notification.topic for recording in recordings]
            for observer in self.saved_observers:
                observer(topics)
        return recordings

    def _enforce_revocation(self, device_id: str) -> None:
        # After the save: the log is what revocation is derived from, so a crash in between is repaired by
        # the next enforcement (any revocation, or the API's start-up).
        if self.revocation is not None:
            self.revocation.enforce(self, device_id)

    @property
    def ca_certificate_pem(self) -> str:
        return self._ca.certificate_pem

    def _issue(self, device_id: str, csr_pem: str | None) -> IssuedCertificate:
        try:
            return self._ca.issue_client_certificate(device_id, validity_days=self._certificate_days,
                                                     key_type=self._key_type, csr_pem=csr_pem)
        except InvalidCSR as exc:
            raise InvalidCertificateRequest(str(exc)) from None

    def _existing_claim(self, owner: str, name: str) -> DeviceNameClaim | None:
        try:
            return self.repository.get(DeviceNameClaim.create_id(owner, name))
        except AggregateNotFoundError:
            return None

    def _owned_device(self, owner: str, name: str) -> tuple[Device, DeviceNameClaim]:
        claim = self._existing_claim(owner, name)
        if claim is None or claim.device_id is None:
            raise DeviceNotFound(f"device '{name}' is not registered")
        return self.repository.get(Device.create_id(claim.device_id)), claim

    def _save_or_conflict(self, *aggregates) -> int:
        try:
            return self.save(*aggregates)[-1].notification.id
        except IntegrityError:
            raise ConcurrentChange() from None


def check_device_name(name) -> None:
    if not isinstance(name, str) or not DEVICE_NAME_PATTERN.match(name):
        raise ValidationFailed("device name must be 1-64 characters: letters, digits, space, '_', '.', '-',"
                               " starting with a letter or digit", field="name")


def certificate_record(issued: IssuedCertificate) -> dict:
    """The public facts of a certificate, as stored in events (never the private key)."""
    return {
        "serial": issued.serial,
        "fingerprint_sha256": issued.fingerprint_sha256,
        "not_before": issued.not_before.isoformat(),
        "not_after": issued.not_after.isoformat(),
        "pem": issued.certificate_pem,
    }
