"""Composition root: builds the applications, adapters and read-side objects from Settings."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from cryptography import x509
from pymongo import MongoClient
from pymongo.database import Database

from commands.accounts import Accounts
from commands.chain.checkpoints import Checkpoints
from commands.device_control import DeviceControl
from commands.device_directory import DeviceDirectory
from commands.fleet import DeviceFleet
from commands.notifications import Notifications
from commands.identity.background import Background
from commands.identity.local import LocalIdentityProvider
from commands.identity.port import IdentityProvider, Notifier
from commands.identity.tokens import TokenIssuer
from commands.pki import CertificateAuthority, CertificateIssuer
from commands.secret_files import private_directory, read_or_create_secret
from gateways.http.consistency import ReadYourWrites
from gateways.http.capacity import ConcurrencyLimit
from gateways.http.device_calls import DeviceCalls
from gateways.http.emulators import Emulators
from gateways.http.direct_calls import DirectCalls
from gateways.http.notification_guard import NotificationGuard
from gateways.http.outcomes import CommandOutcomes
from gateways.http.resources.devices import DeviceEndpoints
from gateways.outbox import Outbox
from gateways.signer import SignerClient, SignerServer
from iotcloud.config import SEED_NAMES, Settings
from iotcloud.metrics import instrument_event_store
from projections.device_list import DeviceListProjection
from projections.history import HistoryProjection
from projections.notifications import NotificationsProjection
from projections.nudge import nudge_for
from projections.runner import Projector
from projections.users import UsersProjection
from projections.wakeup import wakeup_for
from queries.device_commands import CommandQueries
from queries.devices import DeviceListQueries
from queries.fleet_analytics import FleetAnalytics
from queries.history import HistoryQueries
from queries.notifications import NotificationQueries
from queries.read_models import ReadModelCatalogue
from queries.users import UserQueries

DIRECTORY_POLL = 0.1  # seconds between the device directory's reads of a fleet log that cannot notify


@dataclass
class Platform:
    """Everything one API process needs, wired once."""

    settings: Settings
    ca: CertificateIssuer
    accounts: Accounts
    fleet: DeviceFleet
    identity: IdentityProvider
    notifier: Notifier
    mongo: MongoClient
    db: Database
    devices: DeviceListQueries
    users: UserQueries  # or, with Cognito, the provider itself: both answer profile(username)
    catalogue: ReadModelCatalogue
    rw: ReadYourWrites
    control: DeviceControl
    commands: CommandQueries
    outcomes: CommandOutcomes
    calls: DeviceCalls
    device_endpoints: DeviceEndpoints
    history: HistoryQueries
    fleet_analytics: FleetAnalytics
    waiting: ConcurrencyLimit  # requests that wait (device calls, the web app's long polls), per user and in all
    emulators: Emulators
    notifications: Notifications | None = None
    notification_queries: NotificationQueries | None = None
    audit_checkpoints: Checkpoints | None = None
    platform_public_key: object = None  # verifies signed audit checkpoints

    def close(self) -> None:
        self.emulators.close()
        self.identity.settle()  # codes and notices still queued go out before the stores close
        self.calls.close()
        self.outcomes.stop()
        self.mongo.close()
        for app in (self.accounts, self.fleet, self.control, self.notifications):
            if app is not None:
                app.close()


def connect_read_store(settings: Settings) -> tuple[MongoClient, Database]:
    client = MongoClient(settings.effective_mongodb_uri, serverSelectionTimeoutMS=5000, connectTimeoutMS=3000, socketTimeoutMS=15000,
                         tz_aware=True, appname="iotcloud")
    return client, client[settings.mongodb_database]


def build_event_applications(settings: Settings, ca: CertificateIssuer | None = None) -> tuple[Accounts, DeviceFleet]:
    accounts = Accounts(env=settings.event_store_env("Accounts"))
    fleet = DeviceFleet(env=settings.event_store_env("DeviceFleet"), ca=ca,
                        certificate_days=settings.device_cert_days, key_type=settings.device_key_type)
    return instrument_event_store(accounts, "Accounts"), instrument_event_store(fleet, "DeviceFleet")


def build_device_control(settings: Settings, sole_writer: bool = False) -> DeviceControl:
    """`sole_writer`: the gateway records every event after Requested, so its cached commands are
    current and need no catch-up query per change (a conflict evicts and re-reads)."""
    env = settings.event_store_env("DeviceControl")
    if sole_writer:
        env["AGGREGATE_CACHE_FASTFORWARD"] = "n"
    return instrument_event_store(DeviceControl(env=env, default_timeout=settings.command_timeout), "DeviceControl")


def build_notifier(settings: Settings) -> Notifier:
    if settings.notifier != "outbox":
        raise ValueError(f"unknown IOTCLOUD_NOTIFIER {settings.notifier!r} (supported: outbox)")
    return Outbox(settings.state_dir / "outbox.sqlite3")


def build_notifications(settings: Settings, fleet: DeviceFleet) -> Notifications:
    from commands.notification_rules import NotificationLimits
    from commands.owned_devices import registered_device
    limits = NotificationLimits(
        device_per_minute=settings.notification_device_per_minute, user_per_minute=settings.notification_user_per_minute,
        device_per_day=settings.notification_device_per_day, user_per_day=settings.notification_user_per_day,
        duplicate_window=settings.notification_duplicate_window, max_attempts=settings.notification_max_attempts,
        retry_first=settings.notification_retry_first)
    return Notifications(env=settings.event_store_env("Notifications"), limits=limits,
                         device_owner=lambda device_id: (registered_device(fleet, device_id) or {}).get("owner"))


def build_notifier_process(settings: Settings):
    """The notifier process: its applications, channels (IOTCLOUD_EMAIL / IOTCLOUD_SMS) and broker link."""
    from gateways.broker.topology import NOTIFIER_SERVICE
    from gateways.notifications.channels import OutboxChannel, SesEmail, SmtpEmail, SnsSms
    from gateways.notifications.runtime import NotifierService
    from iotcloud.broker import service_address
    outbox = Outbox(settings.state_dir / "outbox.sqlite3")
    emails = {"outbox": lambda: OutboxChannel(outbox, "email"),
              "ses": lambda: SesEmail(settings.notification_sender),
              "smtp": lambda: SmtpEmail(settings.smtp_host, settings.smtp_port, settings.notification_sender,
                                        settings.smtp_user, settings.smtp_password, settings.smtp_starttls)}
    texts = {"outbox": lambda: OutboxChannel(outbox, "sms"), "sns": lambda: SnsSms()}
    if settings.email not in emails or settings.sms not in texts:
        raise ValueError(f"IOTCLOUD_EMAIL must be one of {', '.join(emails)} and IOTCLOUD_SMS one of "
                         f"{', '.join(texts)} (got {settings.email!r}, {settings.sms!r})")
    _, fleet = build_event_applications(settings)
    return NotifierService(build_notifications(settings, fleet), build_device_control(settings), fleet,
                    {"email": emails[settings.email](), "sms": texts[settings.sms]()},
                    service_address(settings, NOTIFIER_SERVICE))


def token_issuer(settings: Settings) -> TokenIssuer:
    """The token-signing key ring (`iotcloud keys rotate` adds a key to it)."""
    return TokenIssuer.load_or_create(settings.state_dir / "keys" / "token-signing.pem", settings.access_token_ttl)


def build_identity(settings: Settings, accounts: Accounts, notifier: Notifier) -> IdentityProvider:
    if settings.identity == "cognito":
        from gateways.cognito.provider import CognitoIdentityProvider, cognito_client
        missing = [name for name in ("cognito_client_id", "cognito_userpool_id", "cognito_userpool_region")
                   if not getattr(settings, name)]
        if missing:
            raise ValueError(f"IOTCLOUD_IDENTITY=cognito needs {', '.join(SEED_NAMES[m] for m in missing)}")
        return CognitoIdentityProvider(
            cognito_client(settings.cognito_userpool_region), settings.cognito_userpool_id,
            settings.cognito_client_id, settings.cognito_userpool_region, notifier,
            max_failures=settings.login_max_failures, max_delay=settings.login_max_delay, defer=Background())
    if settings.identity != "local":
        raise ValueError(f"unknown IOTCLOUD_IDENTITY {settings.identity!r} (supported: local, cognito)")
    return LocalIdentityProvider(
        accounts, token_issuer(settings),
        notifier, load_or_create_secret(settings.state_dir / "keys" / "code.key"),
        refresh_ttl=settings.refresh_token_ttl, code_ttl=settings.code_ttl,
        max_failures=settings.login_max_failures, max_delay=settings.login_max_delay,
        hasher=PasswordHasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib,
                              parallelism=1),
        defer=Background())


def build_platform(settings: Settings) -> Platform:
    # The internet-facing API never opens the CA key: certificates come from the signer process.
    ca = SignerClient(settings.signer_socket_path)
    accounts, fleet = build_event_applications(settings, ca)
    notifier = build_notifier(settings)
    identity = build_identity(settings, accounts, notifier)
    mongo, db = connect_read_store(settings)
    from gateways.broker.topology import API_SERVICE
    from iotcloud.broker import certificate_revocation, service_address
    fleet.revocation = certificate_revocation(settings, ca)
    if fleet.revocation is not None:
        fleet.revocation.catch_up(fleet)  # repairs a crash between a revoking save and its CRL
    control = build_device_control(settings)
    outcomes = CommandOutcomes(service_address(settings, API_SERVICE))
    direct = build_direct_calls(settings, control, outcomes, CommandQueries(db))
    outcomes.start()
    devices = DeviceListQueries(db)
    per_user, in_all, _ = settings.api_shares
    waiting = ConcurrencyLimit(per_user, in_all)
    # On PostgreSQL a waiting write nudges the projector (every application shares one database).
    rw = ReadYourWrites(ReadModelCatalogue(db), settings.projection_wait, nudge_for(control))
    notifications = build_notifications(settings, fleet)
    return Platform(settings=settings, ca=ca, accounts=accounts, fleet=fleet, identity=identity,
                    notifier=notifier, mongo=mongo, db=db, devices=devices,
                    users=identity if settings.identity == "cognito" else UserQueries(db),
                    catalogue=ReadModelCatalogue(db), rw=rw, control=control, commands=CommandQueries(db),
                    outcomes=outcomes,
                    calls=DeviceCalls(control, build_device_directory(fleet), outcomes, rw, waiting, direct,
                                      guard=NotificationGuard(notifications)),
                    device_endpoints=DeviceEndpoints(settings.broker_host, settings.mqtt_port, settings.amqp_port),
                    history=HistoryQueries(db), fleet_analytics=FleetAnalytics(db), waiting=waiting,
                    emulators=Emulators(lambda: fleet.ca_certificate_pem, settings.broker_host, settings.mqtt_port),
                    notifications=notifications, notification_queries=NotificationQueries(db),
                    audit_checkpoints=audit_checkpoints(settings), platform_public_key=platform_public_key(settings))


def build_device_directory(fleet: DeviceFleet) -> DeviceDirectory:
    """Device lookups remembered while the fleet's log is followed: PostgreSQL's commit notifications
    (no nudges), or a poll every 0.1 s of a store that cannot notify."""
    return DeviceDirectory(fleet).follow(
        lambda stop: wakeup_for({"DeviceFleet": fleet}, stop, nudges=False, interval=DIRECTORY_POLL))


def build_direct_calls(settings: Settings, control: DeviceControl, link: CommandOutcomes,
                       commands: CommandQueries) -> DirectCalls | None:
    """The API's short path, when this process is the only one that sends calls itself: its lines
    (one call in flight per device and api) are kept in memory. Lines with unfinished work from an
    earlier run are left to the gateway until that work ends."""
    if not settings.direct_calls_enabled:
        return None
    return DirectCalls(control, link, f"api:{socket.gethostname()}:{os.getpid()}", commands.open_lines)


def build_signer(settings: Settings) -> SignerServer:
    """The signer process: the only long-running one that loads the CA key."""
    return SignerServer(CertificateAuthority.load_or_create(settings.pki_dir), settings.signer_socket_path,
                        max_validity_days=settings.device_cert_days)


def build_projectors(settings: Settings, sources: dict | None = None) -> tuple[list[Projector], MongoClient]:
    """The read-model projectors; `sources` lets a test share in-memory applications with them."""
    sources = dict(sources or {})
    if "Accounts" not in sources or "DeviceFleet" not in sources:
        accounts, fleet = build_event_applications(settings)
        sources.setdefault("Accounts", accounts)
        sources.setdefault("DeviceFleet", fleet)
    sources.setdefault("DeviceControl", build_device_control(settings))
    sources.setdefault("Notifications", Notifications(env=settings.event_store_env("Notifications")))
    mongo, db = connect_read_store(settings)
    batch = settings.projection_batch
    projections = (DeviceListProjection(), UsersProjection(), NotificationsProjection(),
                   HistoryProjection(settings.history_retention_days))
    return [Projector(projection, sources, db, batch) for projection in projections], mongo


def build_audit_applications(settings: Settings) -> dict:
    """Every application log, by name, for auditors (read, and snapshots written for time travel)."""
    accounts, fleet = build_event_applications(settings)
    notifications = Notifications(env=settings.event_store_env("Notifications"))
    return {app.name: app for app in (accounts, fleet, build_device_control(settings), notifications)}


def audit_checkpoints(settings: Settings) -> Checkpoints:
    return Checkpoints(settings.state_dir / "audit" / "checkpoints.jsonl")


def platform_public_key(settings: Settings):
    """The CA certificate's public key, which verifies signed checkpoints (None before `iotcloud init`)."""
    path = settings.pki_dir / "ca.pem"
    return x509.load_pem_x509_certificate(path.read_bytes()).public_key() if path.exists() else None


def prepare_state(settings: Settings) -> None:
    """Creates the CA and signing keys once, before worker processes race to do it."""
    private_directory(settings.state_dir)
    from iotcloud.https import ensure_api_certificate
    ensure_api_certificate(settings, CertificateAuthority.load_or_create(settings.pki_dir))
    token_issuer(settings)
    load_or_create_secret(settings.state_dir / "keys" / "code.key")
    # Create the event-store tables here, once: PostgreSQL fails "CREATE TABLE IF NOT EXISTS" run by
    # several processes at the same moment ("tuple concurrently updated").
    for app in (*build_event_applications(settings), build_device_control(settings),
                Notifications(env=settings.event_store_env("Notifications"))):
        app.close()


def load_or_create_secret(path: Path, size: int = 32) -> bytes:
    return read_or_create_secret(path, lambda: secrets.token_bytes(size))
