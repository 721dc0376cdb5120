"""Stores recorded before the chain are sealed when first opened; `iotcloud audit verify` exits 0 on
an intact store and non-zero naming the event after a byte is changed in the SQLite file, and a
signed checkpoint catches a removed tail."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from raw_store import RawStore

from commands.chain.verify import verify
from commands.device_control import DeviceControl

DEVICE = {"device_id": "b" * 40, "owner": "bob", "name": "shed"}


def test_a_store_recorded_before_the_chain_is_sealed_when_first_opened(make_settings, durable_store):
    env = make_settings(durable_store).event_store_env("DeviceControl")
    unchained = {k: v for k, v in env.items() if k != "APPLICATION_RECORDER_TOPIC"}
    old = DeviceControl(env=unchained)
    for number in range(5):
        old.request(DEVICE, "get_gpio", {"number": number})
    old.close()
    control = DeviceControl(env=env)
    try:
        assert len(control.recorder.links(0, None)) == 5
        control.request(DEVICE, "get_gpio", {"number": 9})
        verdict = verify(control.recorder)
        assert verdict.intact and verdict.events == 6
        assert control.recorder.seal() == 0  # once only
    finally:
        control.close()


def iotcloud(settings, *args):
    env = {**os.environ, "IOTCLOUD_STATE_DIR": str(settings.state_dir), "PERSISTENCE_MODULE": settings.persistence_module,
           "IOTCLOUD_LOG_LEVEL": "WARNING", **settings.postgres}
    return subprocess.run([sys.executable, "-m", "iotcloud.cli", "audit", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_verify_exits_non_zero_naming_the_changed_event(small_store):
    settings = small_store.settings
    ok = iotcloud(settings, "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "DeviceFleet: intact" in ok.stdout and "DeviceControl: intact" in ok.stdout
    store = RawStore(settings, "DeviceControl")
    try:
        originator_id, version, _, state = store.row(3)
        store.set(3, "state", state.replace(b'"number":2', b'"number":3'))
    finally:
        store.close()
    bad = iotcloud(settings, "verify")
    assert bad.returncode == 1
    assert "DeviceControl: BROKEN: altered DeviceCommand.Requested event at notification 3" in bad.stdout
    assert "DeviceFleet: intact" in bad.stdout


def test_a_signed_checkpoint_catches_a_removed_tail(small_store):
    settings = small_store.settings
    signed = iotcloud(settings, "checkpoint")
    assert signed.returncode == 0, signed.stdout + signed.stderr
    store = RawStore(settings, "DeviceFleet")
    try:
        last = store.ids()[-1]
        store.execute("DELETE FROM {events} WHERE {id} = ?", (last,))
        store.execute("DELETE FROM {chain} WHERE notification_id = ?", (last,))
    finally:
        store.close()
    assert verify(small_store.fleet.recorder).intact  # the chain alone cannot see it
    bad = iotcloud(settings, "verify", "--log", "DeviceFleet")
    assert bad.returncode == 1
    assert f"missing event at notification {last}" in bad.stdout and "tail was removed" in bad.stdout


def test_a_forged_checkpoint_is_refused(small_store):
    settings = small_store.settings
    assert iotcloud(settings, "checkpoint").returncode == 0
    path = settings.state_dir / "audit" / "checkpoints.jsonl"
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    for entry in entries:
        if entry["log"] == "DeviceFleet":
            entry["notification_id"] -= 1  # claims less than was signed, to hide a removed tail
    path.write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    bad = iotcloud(settings, "verify", "--log", "DeviceFleet")
    assert bad.returncode == 1 and "signature does not verify" in bad.stdout


def test_state_and_events_from_the_command_line(small_store):
    settings = small_store.settings
    events = iotcloud(settings, "events", small_store.kitchen)
    assert events.returncode == 0 and len(events.stdout.splitlines()) == 10
    unknown = iotcloud(settings, "events", "0" * 40)
    assert unknown.returncode == 1 and unknown.stdout == "" and "no events" in unknown.stderr
    state = iotcloud(settings, "state", small_store.kitchen, "--revision", "4")
    assert state.returncode == 0 and '"registered": true' in state.stdout and '"revision": 4' in state.stdout
    gone = iotcloud(settings, "state", small_store.kitchen, "--at", "2999-01-01T00:00:00")
    assert gone.returncode == 0 and '"registered": false' in gone.stdout
    early = iotcloud(settings, "state", small_store.kitchen, "--at", "2001-01-01T00:00:00+00:00")
    assert early.returncode == 1 and "did not exist yet" in early.stderr
