"""Settings for every iotcloud process: a literal default, then an environment override.

This is the only module that reads `os.environ` (besides eventsourcing, which reads the
`PERSISTENCE_MODULE` / `POSTGRES_*` variables we hand it through `event_store_env`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from commands.chain import chained_recorder_topic

DEFAULT_STATE_DIR = ".state"
DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8000
DEFAULT_API_WORKERS = 1
DEFAULT_API_THREADS = 32
# Shares of one API worker's threads; 0 means derived from IOTCLOUD_API_THREADS (see api_shares).
DEFAULT_API_WAITING_CALLS_PER_USER = 0    # a quarter of the threads
DEFAULT_API_WAITING_CALLS = 0             # three quarters: the rest stays free for everything else
DEFAULT_API_PUBLIC_PER_ADDRESS = 0        # a quarter of the threads
DEFAULT_MONGODB_URI = ""          # empty: start the embedded nx-27017 stand-in
DEFAULT_MONGODB_DATABASE = "iotcloud"
DEFAULT_EMBEDDED_MONGODB_PORT = 27018
DEFAULT_PERSISTENCE_MODULE = "eventsourcing.sqlite"
DEFAULT_ACCESS_TOKEN_TTL = 900            # 15 minutes
DEFAULT_REFRESH_TOKEN_TTL = 30 * 86400    # 30 days, rotated on every use
DEFAULT_CODE_TTL = 3600                   # confirmation and reset codes
DEFAULT_LOGIN_MAX_FAILURES = 5           # failed logins per username and client address before delays start
DEFAULT_LOGIN_MAX_DELAY = 900             # longest delay (doubling from 1 s) for that username from that client
DEFAULT_DEVICE_CERT_DAYS = 730
DEFAULT_DEVICE_KEY_TYPE = "ec"
DEFAULT_PROJECTION_BATCH = 500
DEFAULT_PROJECTION_WAIT = 2.0             # seconds a write waits for its read model to catch up
# Seconds from one projector batch to the next: the events of that interval share one write per document.
DEFAULT_PROJECTION_INTERVAL = 0.02  # docs/benchmarks.md, history lag: 0.05 was a floor under the lag
# Seconds the projector may hold an open call's history write back for its outcome (one write, not two).
DEFAULT_PROJECTION_HOLD = 0.1
DEFAULT_IDENTITY_PROVIDER = "local"
# Settings read under the names other tools or libpyiotcloud gave them rather than IOTCLOUD_*.
SEED_NAMES = {"persistence_module": "PERSISTENCE_MODULE", "cognito_client_id": "AWS_COGNITO_CLIENT_ID",
              "cognito_userpool_id": "AWS_COGNITO_USERPOOL_ID", "cognito_userpool_region": "AWS_COGNITO_USERPOOL_REGION",
              "notification_sender": "AWS_PINPOINT_EMAIL"}
DEFAULT_NOTIFIER = "outbox"
DEFAULT_LOG_LEVEL = "INFO"
# Argon2id at OWASP's recommended floor (19 MiB, 2 passes): about 50 ms per hash on a 2-core box.
DEFAULT_ARGON2_MEMORY_KIB = 19456
DEFAULT_ARGON2_TIME_COST = 2
DEFAULT_BROKER_HOST = "127.0.0.1"
DEFAULT_MQTT_PORT = 8883
DEFAULT_AMQP_PORT = 5671
DEFAULT_BROKER = "embedded"          # embedded: a private RabbitMQ node; external: IOTCLOUD_BROKER_*; none
DEFAULT_BROKER_AUTH_PORT = 8011
DEFAULT_BROKER_MANAGEMENT_PORT = 15673
DEFAULT_BROKER_DIST_PORT = 25673
DEFAULT_BROKER_EPMD_PORT = 4370
DEFAULT_BROKER_LOOPBACK_PORT = 5681      # plain AMQP on 127.0.0.1, the platform's own services only; 0: off
DEFAULT_COMMAND_TIMEOUT = 5.0
DEFAULT_API_HTTPS_PORT = 8443
DEFAULT_HSTS_SECONDS = 31536000           # a year, as browsers' preload lists ask
# Loopback ports of the /metrics, /healthz, /readyz listener of each process that serves no HTTP API.
DEFAULT_METRICS_HOST = "127.0.0.1"
DEFAULT_PROJECTOR_METRICS_PORT = 9101
DEFAULT_GATEWAY_METRICS_PORT = 9102
DEFAULT_BROKER_AUTH_METRICS_PORT = 9103
DEFAULT_SIGNER_METRICS_PORT = 9104
DEFAULT_NOTIFIER_METRICS_PORT = 9105


@dataclass(frozen=True)
class Settings:
    """Every knob of the platform; `Settings.from_env()` is what the processes use."""

    state_dir: Path = Path(DEFAULT_STATE_DIR)
    api_host: str = DEFAULT_API_HOST
    api_port: int = DEFAULT_API_PORT
    api_workers: int = DEFAULT_API_WORKERS
    api_threads: int = DEFAULT_API_THREADS
    api_waiting_calls_per_user: int = DEFAULT_API_WAITING_CALLS_PER_USER
    api_waiting_calls: int = DEFAULT_API_WAITING_CALLS
    api_public_per_address: int = DEFAULT_API_PUBLIC_PER_ADDRESS
    operators: str = ""               # comma-separated usernames who see /readyz details
    public_url: str = ""
    mongodb_uri: str = DEFAULT_MONGODB_URI
    mongodb_database: str = DEFAULT_MONGODB_DATABASE
    embedded_mongodb_port: int = DEFAULT_EMBEDDED_MONGODB_PORT
    persistence_module: str = DEFAULT_PERSISTENCE_MODULE
    postgres: dict = field(default_factory=dict)
    access_token_ttl: int = DEFAULT_ACCESS_TOKEN_TTL
    refresh_token_ttl: int = DEFAULT_REFRESH_TOKEN_TTL
    code_ttl: int = DEFAULT_CODE_TTL
    login_max_failures: int = DEFAULT_LOGIN_MAX_FAILURES
    login_max_delay: int = DEFAULT_LOGIN_MAX_DELAY
    device_cert_days: int = DEFAULT_DEVICE_CERT_DAYS
    device_key_type: str = DEFAULT_DEVICE_KEY_TYPE
    projection_wait: float = DEFAULT_PROJECTION_WAIT
    projection_batch: int = DEFAULT_PROJECTION_BATCH
    projection_interval: float = DEFAULT_PROJECTION_INTERVAL
    projection_hold: float = DEFAULT_PROJECTION_HOLD
    history_retention_days: float = 0.0  # 0: keep all history; else calls and presence older than this leave the read model
    identity: str = DEFAULT_IDENTITY_PROVIDER      # local or cognito
    cognito_client_id: str = ""                   # the seed's AWS_COGNITO_* names (see SEED_NAMES)
    cognito_userpool_id: str = ""
    cognito_userpool_region: str = ""
    notifier: str = DEFAULT_NOTIFIER
    log_level: str = DEFAULT_LOG_LEVEL
    argon2_memory_kib: int = DEFAULT_ARGON2_MEMORY_KIB
    argon2_time_cost: int = DEFAULT_ARGON2_TIME_COST
    broker_host: str = DEFAULT_BROKER_HOST
    mqtt_port: int = DEFAULT_MQTT_PORT
    amqp_port: int = DEFAULT_AMQP_PORT
    broker: str = DEFAULT_BROKER
    broker_tls_name: str = "localhost"
    broker_auth_port: int = DEFAULT_BROKER_AUTH_PORT
    broker_management_port: int = DEFAULT_BROKER_MANAGEMENT_PORT
    broker_dist_port: int = DEFAULT_BROKER_DIST_PORT
    broker_epmd_port: int = DEFAULT_BROKER_EPMD_PORT
    broker_loopback_port: int = DEFAULT_BROKER_LOOPBACK_PORT
    broker_service_dir: str = ""
    # A RabbitMQ cluster (docs/scaling.md): the other nodes' AMQPS and management addresses,
    # "host:port,host:port", which services fail over to in order, and the type of the durable
    # queues (quorum on a cluster).
    broker_amqp_nodes: str = ""
    broker_management_nodes: str = ""
    broker_queue_type: str = "classic"
    # The management plugin's statistics (per-connection, channel and queue metrics, the UI's charts): off,
    # they cost an idle node with 10,000 devices connected about a sixth of a core (docs/benchmarks.md,
    # step 105). Nothing of the platform reads them; rabbitmq_prometheus does not need them either.
    broker_statistics: str = "off"
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    signer_socket: str = ""              # empty: <state_dir>/signer/signer.sock
    direct_calls: str = "auto"           # the API's short path: auto (on with one API worker), on, off
    api_pin_cpu: str = "on"              # each API worker's threads on one CPU (iotcloud/cpu_pinning.py): on, off
    api_https_port: int = DEFAULT_API_HTTPS_PORT  # 0: no HTTPS listener
    tls_cert_file: str = ""              # bring your own API certificate (PEM chain) ...
    tls_key_file: str = ""               # ... and key; both empty: issued by the platform CA
    tls_names: str = ""                  # extra DNS names / IPs for the issued API certificate
    hsts_seconds: int = DEFAULT_HSTS_SECONDS
    metrics_host: str = DEFAULT_METRICS_HOST
    projector_metrics_port: int = DEFAULT_PROJECTOR_METRICS_PORT  # 0: no listener
    gateway_metrics_port: int = DEFAULT_GATEWAY_METRICS_PORT
    broker_auth_metrics_port: int = DEFAULT_BROKER_AUTH_METRICS_PORT
    signer_metrics_port: int = DEFAULT_SIGNER_METRICS_PORT
    notifier_metrics_port: int = DEFAULT_NOTIFIER_METRICS_PORT
    # Secrets as files (container secrets, Kubernetes Secret volumes), never in the environment:
    postgres_password_file: str = ""     # read into POSTGRES_PASSWORD for the event store
    mongodb_uri_file: str = ""           # a MongoDB URI with its credentials, instead of IOTCLOUD_MONGODB_URI
    # Notifications (README "Notifications"): channels, sender, SMTP, limits.
    email: str = "outbox"                # IOTCLOUD_EMAIL: outbox, ses or smtp
    sms: str = "outbox"                  # IOTCLOUD_SMS: outbox or sns
    notification_sender: str = "iotcloud@localhost"  # the seed's AWS_PINPOINT_EMAIL
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: str = "auto"          # auto (when offered), on (required), off
    notification_device_per_minute: int = 10
    notification_user_per_minute: int = 30
    notification_device_per_day: int = 100
    notification_user_per_day: int = 500
    notification_duplicate_window: float = 30.0
    notification_max_attempts: int = 5
    notification_retry_first: float = 2.0

    @classmethod
    def from_env(cls, environ=None) -> "Settings":
        """Each field `x` is read from `IOTCLOUD_X` (cast to the default's type), except the event
        store, which keeps eventsourcing's own `PERSISTENCE_MODULE` and `POSTGRES_*` variables."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            if f.name == "postgres":
                values["postgres"] = {k: v for k, v in environ.items() if k.startswith("POSTGRES_")}
                continue
            name = SEED_NAMES.get(f.name, f"IOTCLOUD_{f.name.upper()}")
            raw = environ.get(name)
            if raw:
                default = f.default
                values[f.name] = Path(raw) if isinstance(default, Path) else type(default)(raw)
        settings = cls(**values)
        return replace(settings, state_dir=settings.state_dir.resolve())

    @property
    def api_shares(self) -> tuple[int, int, int]:
        """(waiting calls per user, waiting calls in all, concurrent public requests per address)
        for one API worker process."""
        quarter = max(1, self.api_threads // 4)
        return (self.api_waiting_calls_per_user or quarter,
                self.api_waiting_calls or max(1, self.api_threads - quarter),
                self.api_public_per_address or quarter)

    @property
    def direct_calls_enabled(self) -> bool:
        """The short path keeps each line (one call per device and api) in one process's memory, so
        it is on by itself only when one API worker sends calls; with more, every call goes through
        the gateway, which owns the lines of all of them."""
        if self.direct_calls not in ("auto", "on", "off"):
            raise ValueError(f"IOTCLOUD_DIRECT_CALLS must be auto, on or off, not {self.direct_calls!r}")
        return self.direct_calls == "on" or (self.direct_calls == "auto" and self.api_workers == 1)

    @property
    def api_pinned(self) -> bool:
        if self.api_pin_cpu not in ("on", "off"):
            raise ValueError(f"IOTCLOUD_API_PIN_CPU must be on or off, not {self.api_pin_cpu!r}")
        return self.api_pin_cpu == "on"

    @property
    def broker_statistics_enabled(self) -> bool:
        if self.broker_statistics not in ("on", "off"):
            raise ValueError(f"IOTCLOUD_BROKER_STATISTICS must be on or off, not {self.broker_statistics!r}")
        return self.broker_statistics == "on"

    @property
    def broker_alternates(self) -> tuple[tuple[str, int], ...]:
        """IOTCLOUD_BROKER_AMQP_NODES as (host, port) pairs."""
        return host_ports(self.broker_amqp_nodes, "IOTCLOUD_BROKER_AMQP_NODES")

    @property
    def broker_loopback(self) -> int | None:
        """The port the platform's services reach the embedded node on over plain AMQP on 127.0.0.1, or
        None (they use AMQPS with their certificates, as everyone else does): only for a node of our own
        on this machine, and not in a cluster, whose other nodes they fail over to over the network."""
        if self.broker != "embedded" or not self.broker_loopback_port or self.broker_amqp_nodes:
            return None
        return self.broker_loopback_port

    @property
    def broker_management_alternates(self) -> tuple[tuple[str, int], ...]:
        """IOTCLOUD_BROKER_MANAGEMENT_NODES as (host, port) pairs."""
        return host_ports(self.broker_management_nodes, "IOTCLOUD_BROKER_MANAGEMENT_NODES")

    @property
    def operator_names(self) -> frozenset[str]:
        return frozenset(name.strip().lower() for name in self.operators.split(",") if name.strip())

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def signer_socket_path(self) -> Path:
        return Path(self.signer_socket) if self.signer_socket else self.state_dir / "signer" / "signer.sock"

    @property
    def broker_dir(self) -> Path:
        return self.state_dir / "broker"

    @property
    def service_credentials_dir(self) -> Path:
        return Path(self.broker_service_dir) if self.broker_service_dir else self.broker_dir / "services"

    @property
    def uses_embedded_mongodb(self) -> bool:
        return not (self.mongodb_uri or self.mongodb_uri_file)

    @property
    def effective_mongodb_uri(self) -> str:
        if self.mongodb_uri_file:
            return Path(self.mongodb_uri_file).read_text().strip()
        return self.mongodb_uri or f"mongodb://127.0.0.1:{self.embedded_mongodb_port}/"

    @property
    def api_url(self) -> str:
        return self.public_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def api_https_url(self) -> str:
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::") else self.api_host
        return f"https://{host}:{self.api_https_port}" if self.api_https_port else ""

    @property
    def api_tls_files(self) -> tuple[Path, Path]:
        """(certificate chain, key) of the HTTPS listener: yours, or the one the platform CA issues."""
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("set both IOTCLOUD_TLS_CERT_FILE and IOTCLOUD_TLS_KEY_FILE, or neither")
        if self.tls_cert_file:
            return Path(self.tls_cert_file), Path(self.tls_key_file)
        return self.pki_dir / "api" / "cert.pem", self.pki_dir / "api" / "key.pem"

    @property
    def metrics_multiprocess_dir(self) -> Path | None:
        """Several gunicorn workers share their metrics through files here (prometheus_client's
        multiprocess mode); one worker keeps them in memory."""
        return self.state_dir / "metrics" / "api" if self.api_workers > 1 else None

    def event_store_env(self, application_name: str) -> dict[str, str]:
        """The eventsourcing environment for one application (own SQLite file or own PG table)."""
        env = {"PERSISTENCE_MODULE": self.persistence_module}
        if self.persistence_module == "eventsourcing.sqlite":
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            # One file per application: every SQLite recorder uses the table name `stored_events`.
            env["SQLITE_DBNAME"] = str(self.state_dir / f"{application_name.lower()}.events.sqlite3")
            env["SQLITE_LOCK_TIMEOUT"] = "10"
        elif self.persistence_module == "eventsourcing.postgres":
            # eventsourcing opens 5 connections per application per process up front: one platform
            # held 108 of them, past PostgreSQL's default max_connections (100), and the next process
            # (a CLI command) could not connect. Two kept, more opened while a burst needs them.
            env.update({"POSTGRES_POOL_SIZE": "2", "POSTGRES_MAX_OVERFLOW": "8"})
            env.update(self.postgres)
            if self.postgres_password_file:
                env["POSTGRES_PASSWORD"] = Path(self.postgres_password_file).read_text().strip()
        recorder = chained_recorder_topic(self.persistence_module)
        if recorder:  # every durable store links its events into a tamper-evident chain
            env["APPLICATION_RECORDER_TOPIC"] = recorder
        return env

    def describe(self) -> dict[str, object]:
        """Settings safe to print: no passwords."""
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["postgres"] = {k: ("***" if "PASSWORD" in k else v) for k, v in self.postgres.items()}
        shown["smtp_password"] = "***" if self.smtp_password else ""
        shown["mongodb_uri"] = redact_uri(self.mongodb_uri)
        return shown


def redact_uri(uri: str) -> str:
    """A URI with its password replaced by ***, fit for logs and banners."""
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", uri)


def host_ports(value: str, name: str) -> tuple[tuple[str, int], ...]:
    """"host:port,host:port" as pairs ("[::1]:5671" for an IPv6 address)."""
    found = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{name}: {item!r} is not host:port")
        found.append((host.strip("[]"), int(port)))
    return tuple(found)
