"""Group commit: concurrent saves share transactions, and each caller gets its own position."""

from __future__ import annotations

import threading

import pytest

from commands.device_control import DeviceControl
from commands.domain.device_commands import DeviceCommand

DEVICE = {"device_id": "a" * 40, "owner": "alice", "name": "kitchen"}


@pytest.fixture
def control(make_settings, any_store):
    app = DeviceControl(env=make_settings(any_store).event_store_env("DeviceControl"))
    yield app
    app.close()


def test_concurrent_requests_all_land_with_distinct_positions(control):
    results, errors = [], []

    def request(n):
        try:
            results.append(control.request(DEVICE, "get_gpio", {"number": n}))
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=request, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    positions = sorted(r.position for r in results)
    assert positions == list(range(1, 41))
    for result in results:
        notification = control.recorder.select_notifications(start=result.position, limit=1)[0]
        assert str(notification.originator_id) == result.command_id
        assert isinstance(control.command(result.command_id), DeviceCommand)


def test_a_failing_save_fails_only_its_caller(control):
    from commands.group_commit import GroupCommit
    saved = []

    def save(*events):
        if any(e.originator_id == bad.id for e in events):
            raise RuntimeError("poisoned")
        saved.extend(e.originator_id for e in events)
        return control.save(*events)

    group = GroupCommit(save)
    good = DeviceCommand(device_id="a" * 40, owner="o", device_name="n", api="get_status", params={}, timeout=1.0,
                         expires_at=0.0, correlate=False)
    bad = DeviceCommand(device_id="a" * 40, owner="o", device_name="n", api="get_status", params={}, timeout=1.0,
                        expires_at=0.0, correlate=False)
    with pytest.raises(RuntimeError):
        group.save(bad)
    assert group.save(good) >= 1 and saved == [good.id]
