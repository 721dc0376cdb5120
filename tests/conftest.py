"""Shared fixtures: a real nx-27017 read store, a real PostgreSQL database, platforms per event store."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import uuid
from pathlib import Path

import psycopg
import pytest

from iotcloud.bootstrap import build_platform, build_projectors, build_signer, prepare_state
from iotcloud.config import Settings
from iotcloud.embedded_mongo import nx_command, wait_for_port
from projections.runner import run_projectors
from tests.ports import free_port

PG = {"host": os.environ.get("IOTCLOUD_TEST_PG_HOST", "127.0.0.1"),
      "port": int(os.environ.get("IOTCLOUD_TEST_PG_PORT", "5432")),
      "user": os.environ.get("IOTCLOUD_TEST_PG_USER", "postgres")}


def stop_process(process: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM, and SIGKILL if it is still there after `grace` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


OPS_PORTS = ("API_HTTPS", "PROJECTOR_METRICS", "GATEWAY_METRICS", "BROKER_AUTH_METRICS", "SIGNER_METRICS",
             "NOTIFIER_METRICS", "BROKER_LOOPBACK")


def ops_port_env() -> dict[str, str]:
    """Private ports for a test platform's HTTPS, metrics and services' broker listeners (defaults 8443,
    9101-9105, 5681)."""
    return {f"IOTCLOUD_{name}_PORT": str(free_port()) for name in OPS_PORTS}


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory):
    """A private nx-27017 (MongoDB wire protocol) server, driven through the real pymongo."""
    if os.environ.get("IOTCLOUD_TEST_MONGODB_URI"):
        yield os.environ["IOTCLOUD_TEST_MONGODB_URI"]
        return
    data = tmp_path_factory.mktemp("nx")
    port = free_port()
    with open(data / "out.log", "wb") as out:
        process = subprocess.Popen(nx_command(data, port, data / "nx.log", data / "nx.pid"), stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port(port, 30, process)
    yield f"mongodb://127.0.0.1:{port}/"
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="session")
def postgres_database():
    """A throw-away database on the machine's PostgreSQL (make test starts it)."""
    name = f"iotcloud_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=5, **PG)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG['host']}:{PG['port']} ({exc}); run the tests with `make test`")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield {**PG, "dbname": name}
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_settings(database: dict) -> dict:
    schema = f"s_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(autocommit=True, **database) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return {"POSTGRES_DBNAME": database["dbname"], "POSTGRES_HOST": database["host"],
            "POSTGRES_PORT": str(database["port"]), "POSTGRES_USER": database["user"], "POSTGRES_PASSWORD": "",
            "POSTGRES_SCHEMA": schema}


@pytest.fixture
def make_settings(tmp_path, mongo_uri, request):
    """Builds Settings for one event store kind ('popo', 'sqlite', 'postgres') in a fresh state dir."""
    def make(store: str = "sqlite", **overrides) -> Settings:
        postgres = {}
        if store == "postgres":
            postgres = postgres_settings(request.getfixturevalue("postgres_database"))
        state = tmp_path / f"state-{uuid.uuid4().hex[:6]}"
        values = dict(state_dir=state, mongodb_uri=mongo_uri, mongodb_database=f"t_{uuid.uuid4().hex[:12]}",
                      persistence_module=f"eventsourcing.{store}", postgres=postgres, projection_wait=10.0,
                      argon2_memory_kib=8192, argon2_time_cost=1)
        values.update(overrides)
        settings = Settings(**values)
        prepare_state(settings)
        return settings
    return make


@pytest.fixture(params=["sqlite", "postgres"])
def durable_store(request) -> str:
    """Runs a test once on the embedded SQLite event store and once on PostgreSQL."""
    return request.param


@pytest.fixture(params=["popo", "sqlite", "postgres"])
def any_store(request) -> str:
    return request.param


@pytest.fixture
def fleet(make_settings, any_store):
    """A DeviceFleet with the platform CA, on each event store."""
    from commands.pki import CertificateAuthority
    from iotcloud.bootstrap import build_event_applications
    settings = make_settings(any_store)
    _, fleet = build_event_applications(settings, CertificateAuthority.load_or_create(settings.pki_dir))
    yield fleet
    fleet.close()


class RunningPlatform:
    """A platform plus a projector thread following its own applications, and an in-process signer
    (tests/signer runs the real `iotcloud signer` process where processes are the point)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.signer = build_signer(settings).start()
        self.platform = build_platform(settings)
        self.projectors, self._mongo = build_projectors(
            settings, {"Accounts": self.platform.accounts, "DeviceFleet": self.platform.fleet})
        self._stop = threading.Event()
        # As `iotcloud projector` runs them: with the batch interval that read-your-writes nudges cut short.
        self._thread = threading.Thread(target=run_projectors, args=(self.projectors, self._stop),
                                        kwargs={"min_interval": settings.projection_interval}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._mongo.close()
        self.platform.close()
        self.signer.stop()


@pytest.fixture
def running_platform(make_settings, durable_store):
    running = RunningPlatform(make_settings(durable_store))
    yield running
    running.close()


def pytest_collection_modifyitems(items):
    for item in items:
        if "postgres" in item.name:
            item.add_marker(pytest.mark.postgres)
        item.add_marker(pytest.mark.xdist_group(worker_group(item)))


def worker_group(item) -> str:
    """The unit `pytest -n N --dist loadgroup` (make test) hands to one worker: the folder whose conftest
    starts a session-wide platform, broker node or browser the test uses, so each worker does not start
    its own; otherwise the test's file, whose module-wide fixtures then start once."""
    here = Path(__file__).parent.relative_to(item.config.rootpath).as_posix()
    for definitions in item._fixtureinfo.name2fixturedefs.values():
        for definition in definitions:
            # This file's are cheap to start once per worker (nx-27017, a database, moto).
            if definition.scope == "session" and definition.baseid not in ("", here):
                return definition.baseid
    return item.nodeid.split("::")[0]




@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """moto's standalone server on loopback (SES, SNS, Cognito over HTTP through boto3)."""
    from tests.moto_server import start_moto_server
    server = start_moto_server(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()
