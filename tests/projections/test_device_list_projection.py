"""Projector crash-and-restart and rebuild against the MongoDB stand-in, through pymongo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from commands.context import acting_as
from iotcloud.bootstrap import build_event_applications, build_projectors
from commands.pki import CertificateAuthority
from projections.runner import rebuild
from queries.read_models import ReadModelCatalogue, collection_name


def history(accounts_and_fleet, devices: int):
    """Registers, reissues and unregisters devices of a few owners: a realistic event stream."""
    _, fleet = accounts_and_fleet
    with acting_as("user:test"):
        for i in range(devices):
            fleet.register_device(f"owner{i % 4}", f"device-{i}")
        for i in range(0, devices, 5):
            fleet.reissue_certificate(f"owner{i % 4}", f"device-{i}")
        for i in range(0, devices, 7):
            fleet.unregister_device(f"owner{i % 4}", f"device-{i}")
        for i in range(0, devices, 14):
            fleet.register_device(f"owner{i % 4}", f"device-{i}")


def snapshot(db, projection: str, generation: int) -> list[dict]:
    return list(db[collection_name(projection, generation)].find({}).sort([("_id", 1)]))


class FailingAfter:
    """Wraps a projection so that it 'crashes' after n events: applied but not checkpointed."""

    def __init__(self, projection, n: int):
        self._projection, self._left = projection, n
        self.name, self.sources = projection.name, projection.sources

    def prepare(self, collection):
        self._projection.prepare(collection)

    def apply(self, event, position, writer):
        if self._left == 0:
            writer.flush()  # what was applied before the crash reached the read model
            raise RuntimeError("simulated crash")
        self._left -= 1
        self._projection.apply(event, position, writer)


@pytest.fixture
def setup(make_settings, durable_store):
    settings = make_settings(durable_store, projection_batch=25)
    apps = build_event_applications(settings, CertificateAuthority.load_or_create(settings.pki_dir))
    yield settings, apps
    for app in apps:
        app.close()


def test_crash_mid_batch_then_restart_equals_rebuild(setup):
    settings, apps = setup
    history(apps, 60)
    sources = {"Accounts": apps[0], "DeviceFleet": apps[1]}
    projectors, mongo = build_projectors(settings, sources)
    device_list = projectors[0]
    db = mongo[settings.mongodb_database]
    # Crash part-way through a batch, several times, so work is applied without its checkpoint.
    for crash_after in (10, 37, 3, 61):
        crashing = type(device_list)(FailingAfter(device_list.projection, crash_after), sources, db, 25)
        with pytest.raises(RuntimeError):
            while crashing.step():
                pass
    while device_list.step():
        pass
    incremental = snapshot(db, "device_list", 1)
    assert len(incremental) == 60 - len(range(0, 60, 7)) + len(range(0, 60, 14))
    generation = rebuild(device_list)
    assert generation == 2
    assert snapshot(db, "device_list", 2) == incremental
    assert ReadModelCatalogue(db).active_generation("device_list") == 2
    mongo.close()


def test_killed_projector_process_restarts_to_the_same_read_model_as_rebuild(setup):
    settings, apps = setup
    history(apps, 150)
    env = {**os.environ, "IOTCLOUD_STATE_DIR": str(settings.state_dir), "IOTCLOUD_MONGODB_URI": settings.mongodb_uri,
           "IOTCLOUD_MONGODB_DATABASE": settings.mongodb_database, "PERSISTENCE_MODULE": settings.persistence_module,
           "IOTCLOUD_PROJECTION_BATCH": "5", **settings.postgres}
    command = [sys.executable, "-m", "iotcloud.cli", "projector"]
    projectors, mongo = build_projectors(settings, {"Accounts": apps[0], "DeviceFleet": apps[1]})
    catalogue = ReadModelCatalogue(mongo[settings.mongodb_database])
    head = apps[1].recorder.max_notification_id()

    process = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 60
    while catalogue.position("device_list", 1, "DeviceFleet") < head // 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = catalogue.position("device_list", 1, "DeviceFleet")
    assert 0 < killed_at < head, "the projector must be killed mid-stream"

    process = subprocess.Popen(command, env=env)
    try:
        assert catalogue.wait_for("device_list", "DeviceFleet", head, timeout=60)
    finally:
        process.terminate()
        process.wait(10)
    db = mongo[settings.mongodb_database]
    restarted = snapshot(db, "device_list", 1)
    rebuilt = subprocess.run([sys.executable, "-m", "iotcloud.cli", "projections", "rebuild", "device_list"],
                             env=env, capture_output=True, text=True, timeout=120)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "generation 2 is live" in rebuilt.stdout
    assert f"{head}/{head} events" in rebuilt.stderr
    assert snapshot(db, "device_list", 2) == restarted
    mongo.close()


def test_read_model_never_holds_private_keys_or_password_hashes(setup):
    settings, apps = setup
    history(apps, 5)
    projectors, mongo = build_projectors(settings, {"Accounts": apps[0], "DeviceFleet": apps[1]})
    for projector in projectors:
        while projector.step():
            pass
    db = mongo[settings.mongodb_database]
    dump = repr([list(db[name].find({})) for name in db.list_collection_names()])
    assert "PRIVATE KEY" not in dump and "argon2" not in dump
    mongo.close()
