"""A private RabbitMQ 3.10 node owned by the platform: TLS-only MQTTS/AMQPS, X.509 identities, HTTP authz;
optionally plain AMQP on 127.0.0.1 for the platform's own services (BrokerPorts.amqp_loopback).

Everything the node writes (config, certificates, mnesia, logs, Erlang cookie) lives under one state
directory, and every socket it opens (epmd included) is bound to 127.0.0.1 on ports chosen by the caller,
so it never meets a system RabbitMQ on the same machine.
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from commands.pki import CertificateAuthority
from commands.secret_files import read_or_create_token, write_secret

from .node_config import advanced_config, rabbitmq_conf
from .vm_process import end_vm, retire_crash_dump, wait_until_booted, wait_vm_gone
from .topology import CLASSIC, durable_queue_arguments
from .revocation import CertificateRevocations, crl_directory

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
PLUGINS = ("rabbitmq_mqtt", "rabbitmq_auth_mechanism_ssl", "rabbitmq_auth_backend_http", "rabbitmq_auth_backend_cache",
           "rabbitmq_event_exchange", "rabbitmq_management")
SERVICE_CERT_VALIDITY_DAYS = 825
LOOPBACK_PASSWORD_FILE = "loopback-password"  # beside a service's key.pem, as private as it
SERVER_CERT_RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class BrokerPorts:
    """Loopback ports of one node. `epmd` is a private epmd, so the system one (4369) is never used.
    `amqp_loopback`: plain AMQP on 127.0.0.1 for the platform's own services on this machine (password
    login; None: no such listener, every client speaks TLS)."""

    mqtts: int = 8883
    amqps: int = 5671
    management: int = 15673
    dist: int = 25673
    epmd: int = 4370
    amqp_loopback: int | None = None


@dataclass(frozen=True, slots=True)
class ServiceCredentials:
    """Files a backend service presents: over AMQPS its certificate (EXTERNAL login, identity =
    certificate CN); over the loopback listener its password (`loopback_password_file`)."""

    name: str
    ca_file: Path
    cert_file: Path
    key_file: Path

    @property
    def loopback_password_file(self) -> Path:
        return self.cert_file.parent / LOOPBACK_PASSWORD_FILE

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


@dataclass(frozen=True, slots=True)
class AdminCredentials:
    """The management-API login; checked by the HTTP auth backend, never valid over AMQP/MQTT."""

    username: str
    password: str


class BrokerStartError(RuntimeError):
    """The node did not come up; the message carries the tail of its log."""


class PrivateBrokerNode:
    """Owns the configuration and the life cycle of one RabbitMQ node in `state_dir`."""

    def __init__(self, state_dir: str | os.PathLike, authority: CertificateAuthority, *,
                 auth_backend_url: str, auth_backend_cafile: str | os.PathLike | None = None,
                 ports: BrokerPorts = BrokerPorts(),
                 node_name: str = "iotcloud", host: str = "127.0.0.1",
                 hostnames: tuple[str, ...] = ("localhost",), start_timeout: float = 90.0,
                 definitions_file: str | os.PathLike | None = None, queue_type: str = CLASSIC,
                 erlang_cookie: str | None = None, statistics: bool = False):
        self.state_dir = Path(state_dir)
        self.authority = authority
        self.auth_backend_url = auth_backend_url.rstrip("/")
        self.auth_backend_cafile = Path(auth_backend_cafile) if auth_backend_cafile else None
        if self.auth_backend_url.startswith("https:") != (self.auth_backend_cafile is not None):
            raise ValueError("an https auth backend needs its pinned certificate (auth_backend_cafile), and only it")
        self.ports = ports
        self.node_name = f"{node_name}@localhost"
        self.host = host
        self.hostnames = hostnames
        self.start_timeout = start_timeout
        # Users and permissions loaded at boot (a broker the platform cannot provision over its API).
        self.definitions_file = Path(definitions_file) if definitions_file else None
        durable_queue_arguments(queue_type)  # refuses an unknown type
        # Of the devices' persistent MQTT sessions (mqtt.durable_queue_type); the platform's own durable
        # queues take theirs from the services' BrokerAddress.
        self.queue_type = queue_type
        # Nodes of one cluster share it (Erlang distribution's shared secret); None: the node's own,
        # created at its first boot.
        self.erlang_cookie = erlang_cookie
        # The management plugin's statistics database (node_config.py); nothing of the platform reads it.
        self.statistics = statistics
        self.certs_dir = self.state_dir / "certs"
        self.services_dir = self.state_dir / "services"
        self.log_dir = self.state_dir / "log"
        self.pid_file = self.state_dir / "rabbitmq.pid"

    # ------------------------------------------------------------------ files

    @property
    def ca_file(self) -> Path:
        return self.certs_dir / "ca.pem"

    @property
    def config_file(self) -> Path:
        return self.state_dir / "rabbitmq.conf"

    @property
    def advanced_config_file(self) -> Path:
        return self.state_dir / "advanced.config"

    @property
    def revocations(self) -> CertificateRevocations:
        """The CRL every client certificate is checked against at each TLS handshake."""
        return CertificateRevocations(crl_directory(self.state_dir), self.authority)

    @property
    def admin_credentials(self) -> AdminCredentials:
        return load_or_create_admin_credentials(self.state_dir)

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.management}"

    def service_credentials(self, name: str) -> ServiceCredentials:
        """Returns (issuing on first use) the client certificate of backend service `name`."""
        self._write_ca()
        folder = self.services_dir / name
        cert_file, key_file = folder / "cert.pem", folder / "key.pem"
        if not (cert_file.exists() and key_file.exists()) or _needs_renewal(cert_file, self.authority):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            issued = self.authority.issue_client_certificate(name, validity_days=SERVICE_CERT_VALIDITY_DAYS)
            write_secret(key_file, issued.private_key_pem.encode(), replace=True)
            cert_file.write_text(issued.certificate_pem)
        credentials = ServiceCredentials(name, self.ca_file, cert_file, key_file)
        read_or_create_token(credentials.loopback_password_file)
        return credentials

    def service_password(self, name: str) -> str:
        """The password service `name` logs in with on the loopback listener (created with its certificate)."""
        return read_or_create_token(self.service_credentials(name).loopback_password_file)

    def _env(self) -> dict[str, str]:
        s = self.state_dir
        # Schedulers that find no work spin before they sleep (busy waiting): a broker that shares the
        # machine with the platform's processes then burns the CPU they need, most of all when it is
        # nearly idle. RabbitMQ's own advice for shared hosts: no busy waiting (docs: "runtime").
        # +IOs false: idle schedulers leave socket polling to the poll thread (Erlang 25). When they
        # polled, both of them sometimes spun for 5-20 s in epoll_wait/timerfd_settime with nothing to
        # run, after clients had come and gone: a core taken from the platform (docs/benchmarks.md 44-45).
        erl_args = "-kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none +IOs false"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update({
            "HOME": str(s / "home"),
            "RABBITMQ_CONF_ENV_FILE": str(s / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_DIST_PORT": str(self.ports.dist),
            "RABBITMQ_CONFIG_FILE": str(s / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(s / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(s / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(s / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.log_dir),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.ports.epmd),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": erl_args,
            "RABBITMQ_CTL_ERL_ARGS": erl_args,
        })
        return env

    def _write_ca(self) -> None:
        self.certs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        ca_pem = self.authority.certificate_pem
        if not self.ca_file.exists() or self.ca_file.read_text() != ca_pem:
            self.ca_file.write_text(ca_pem)

    def write_files(self) -> None:
        """The node's configuration, certificates and CRL, for a RabbitMQ started elsewhere (a container)."""
        self._write_files()

    def _write_files(self) -> None:
        for folder in (self.state_dir, self.state_dir / "home", self.log_dir, self.state_dir / "mnesia"):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.state_dir, 0o700)
        self._write_ca()
        server_cert, server_key = self.certs_dir / "server.pem", self.certs_dir / "server.key"
        if not (server_cert.exists() and server_key.exists()) or _needs_renewal(server_cert, self.authority):
            issued = self.authority.issue_server_certificate(self.hostnames[0], list(self.hostnames), [self.host])
            write_secret(server_key, issued.private_key_pem.encode(), replace=True)
            server_cert.write_text(issued.certificate_pem)
        write_secret(self.config_file, rabbitmq_conf(self).encode(), replace=True)
        write_secret(self.advanced_config_file, advanced_config(self).encode(), replace=True)
        self.revocations.ensure()
        (self.state_dir / "enabled_plugins").write_text("[" + ",".join(PLUGINS) + "].\n")
        (self.state_dir / "rabbitmq-env.conf").write_text("")
        if self.erlang_cookie is not None:
            write_secret(self.cookie_file, self.erlang_cookie.encode(), replace=True)
            os.chmod(self.cookie_file, 0o400)  # Erlang refuses a cookie file others may read

    @property
    def cookie_file(self) -> Path:
        return self.state_dir / "home" / ".erlang.cookie"

    def read_cookie(self) -> str:
        """The node's Erlang cookie (written by its first boot), for the nodes that join it."""
        return self.cookie_file.read_text().strip()

    # ------------------------------------------------------------- life cycle

    def beam_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def is_running(self) -> bool:
        return self.beam_pid() is not None and _port_open(self.host, self.ports.mqtts)

    def start(self) -> None:
        """Writes the configuration and starts the node; blocks until it is ready.

        Idempotent: when the node already runs with the same configuration this is a no-op; when the
        configuration changed (another auth backend URL, other ports) the node is restarted.
        """
        if self.is_running():
            try:
                current = (self.config_file.read_text(), self.advanced_config_file.read_text())
            except OSError:
                current = ("", "")
            if current == (rabbitmq_conf(self), advanced_config(self)):
                self.revocations.ensure()
                return
            self.stop()
        self._write_files()
        deadline = time.monotonic() + self.start_timeout
        self.pid_file.unlink(missing_ok=True)
        retire_crash_dump(self.state_dir)
        raise_open_files_limit()  # inherited by the VM
        subprocess.run([str(RABBITMQ_BIN / "rabbitmq-server"), "-detached"], env=self._env(),
                       cwd=self.state_dir, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        status, output = wait_until_booted([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node_name, "wait",
                                            "--timeout", str(int(self.start_timeout)), str(self.pid_file)],
                                           self.state_dir, self.start_timeout + 10, env=self._env())
        if status != 0:
            raise BrokerStartError(f"node did not start: {output}\n{self.log_tail()}")
        self._wait_for_listeners(deadline)

    def join_cluster(self, seed_node: str) -> None:
        """Makes this running node a member of `seed_node`'s cluster (both must share the Erlang cookie
        and the epmd port). Its own users, queues and messages are dropped: the cluster's are the
        truth. Idempotent: a node already in that cluster only has its app restarted. Quorum queues
        declared before the join get a replica here too (`rabbitmq-queues grow`): without it they
        would keep the members they were declared with and lose their majority with one node."""
        for args in (("stop_app",), ("join_cluster", seed_node), ("start_app",)):
            done = self._ctl(*args, timeout=120)
            already = args[0] == "join_cluster" and "already_member" in done.stdout + done.stderr
            if done.returncode != 0 and not already:
                raise BrokerStartError(f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}\n{self.log_tail()}")
        self._wait_for_listeners(time.monotonic() + self.start_timeout, " after joining")
        if self.queue_type != CLASSIC:
            grown = subprocess.run([str(RABBITMQ_BIN / "rabbitmq-queues"), "-n", self.node_name, "grow",
                                    self.node_name, "all"], env=self._env(), cwd=self.state_dir,
                                   capture_output=True, text=True, timeout=120)
            if grown.returncode != 0:
                raise BrokerStartError(f"rabbitmq-queues grow: {grown.stdout}{grown.stderr}")

    def _wait_for_listeners(self, deadline: float, when: str = "") -> None:
        loopback = (self.ports.management, self.ports.amqp_loopback)
        for port in (self.ports.amqps, self.ports.mqtts, *(p for p in loopback if p)):
            while not _port_open("127.0.0.1" if port in loopback else self.host, port):
                if time.monotonic() > deadline:
                    raise BrokerStartError(f"port {port} did not open{when}\n{self.log_tail()}")
                time.sleep(0.05)

    def cluster_nodes(self) -> list[str]:
        """The running nodes of this node's cluster, as RabbitMQ sees them."""
        done = self._ctl("eval", "rabbit_nodes:all_running().", timeout=60)
        return sorted(name.strip(" '\n") for name in done.stdout.strip().strip("[]").split(",") if name.strip())

    def kill(self) -> None:
        """A crash: SIGKILL to the VM, nothing flushed, no goodbye to the other nodes."""
        pid = self.beam_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            wait_vm_gone(pid, 20)

    def stop(self) -> None:
        """Stops the node and its private epmd; state (mnesia, certificates) is kept for the next start.

        SIGTERM makes the VM stop RabbitMQ in order, as `rabbitmqctl stop` does, without first booting
        a CLI VM and waiting for it to see the node gone (9.8 s per stop with rabbitmqctl here; every
        platform a test starts paid it)."""
        pid = self.beam_pid()
        if pid is not None:
            self._detach_statistics()
            end_vm(pid, 30.0, 10.0)
        self._ctl_epmd_kill()

    def _detach_statistics(self) -> None:
        """Removes the management agent's statistics handler from the running node, so that the stop
        after it takes 1 s instead of 6.

        Stopping the node (SIGTERM, and `rabbitmqctl stop` alike) makes that handler's terminate call
        application:set_env while the application controller is busy stopping the apps: the call waits
        out its 5 s timeout (RabbitMQ 3.10). Removed beforehand, the handler makes the same call at
        once. erl_call (Erlang's own, beside RabbitMQ) talks to the node in milliseconds without
        booting a CLI VM; it reads the cookie from the node's HOME. Should it fail, the stop is only
        5 s longer."""
        erl_call = shutil.which("erl_call") or "/usr/lib/erlang/bin/erl_call"
        try:
            subprocess.run([erl_call, "-sname", self.node_name, "-timeout", "5",
                            "-a", "gen_event delete_handler [rabbit_event, rabbit_mgmt_db_handler, []]"],
                           env=self._env(), cwd=self.state_dir, capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def _ctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node_name, *args],
                              env=self._env(), cwd=self.state_dir, capture_output=True, text=True,
                              timeout=timeout)

    def rabbitmqctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Runs rabbitmqctl against this node (for operations and diagnostics)."""
        return self._ctl(*args, timeout=timeout)

    def _ctl_epmd_kill(self) -> None:
        epmd = shutil.which("epmd") or "/usr/bin/epmd"
        if _port_open("127.0.0.1", self.ports.epmd):
            subprocess.run([epmd, "-port", str(self.ports.epmd), "-kill"], env=self._env(),
                           capture_output=True, timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        logs = sorted(self.log_dir.glob("*.log"), key=lambda p: p.stat().st_mtime)
        if not logs:
            return "(no log)"
        return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> "PrivateBrokerNode":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def raise_open_files_limit() -> int:
    """Raises this process's soft limit of open files to its hard limit and returns it. Every connected
    device is a socket of the broker's VM, which inherits the limit and sizes its socket limit from it at
    boot: a soft limit of 1,024 (a common default) would cap the broker near 900 devices."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def load_or_create_admin_credentials(state_dir: str | os.PathLike) -> AdminCredentials:
    """The management-API login of the node in `state_dir` (password generated once, stored 0600).

    The auth backend must know it (`create_auth_app(..., admin=...)`) before the node starts.
    """
    return AdminCredentials("iotcloud-admin", read_or_create_token(Path(state_dir) / "management-admin.secret"))


def _needs_renewal(cert_file: Path, authority: CertificateAuthority) -> bool:
    try:
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
        ca = x509.load_pem_x509_certificate(authority.certificate_pem.encode())
    except (OSError, ValueError):
        return True
    expiring = certificate.not_valid_after_utc - SERVER_CERT_RENEW_BEFORE < dt.datetime.now(dt.timezone.utc)
    return expiring or certificate.issuer != ca.subject


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
