"""The embedded read store: nx-27017 (MongoDB wire protocol on SQLite) on loopback.

nx-27017 0.8.1 has no authentication: it implements no SASL/SCRAM (`saslStart`, `authenticate`)
and no user commands (`createUser`, `usersInfo`), and answers every command it does not know with
`{"ok": 1}`, so a driver given credentials fails its own handshake and a client without any is
served. It listens on TCP only (`--host`/`--port`; no Unix-socket option). So the embedded store is
bound to 127.0.0.1 (never a routable address) and its files live in a 0700 directory. What that
leaves open: any local process can read and write the read models. Authorisation does not trust
the read models (write-side state decides), and nothing secret is projected into them; a
deployment that needs authentication points IOTCLOUD_MONGODB_URI at a real MongoDB with
credentials (mongodb://user:password@host/?authSource=...).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from commands.secret_files import private_directory


LOOPBACK = "127.0.0.1"   # nx-27017 cannot authenticate clients: never bind it anywhere else


def nx_command(data_dir: Path, port: int, log_file: Path, pid_file: Path) -> list[str]:
    """nx-27017 in its thread-per-connection mode, quiet (iotcloud.read_store_server says why)."""
    return [sys.executable, "-m", "iotcloud.read_store_server", "--threaded", "--host", LOOPBACK, "-p", str(port),
            "--data-dir", str(data_dir), "--log-file", str(log_file), "--pid-file", str(pid_file)]


def start_embedded_mongo(state_dir: Path, port: int, timeout: float = 20.0, preexec_fn=None) -> subprocess.Popen:
    """Starts nx-27017 with its data under the state directory; returns once it accepts connections."""
    data_dir = private_directory(state_dir / "mongo")
    if port_open(port):
        raise RuntimeError(f"127.0.0.1:{port} is already in use; set IOTCLOUD_EMBEDDED_MONGODB_PORT "
                           "or IOTCLOUD_MONGODB_URI")
    log = open(data_dir / "nx-27017.out", "ab")
    process = subprocess.Popen(nx_command(data_dir, port, data_dir / "nx-27017.log", data_dir / "nx-27017.pid"),
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                               preexec_fn=preexec_fn)
    wait_for_port(port, timeout, process)
    return process


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port, host):
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {host}:{port}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.0f}s")
        time.sleep(0.05)
