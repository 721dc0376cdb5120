"""The gateway lists the broker's connections after each reconnect, then rarely: never every few seconds."""

from gateways.devices.reconcile_schedule import RETRY_AFTER, SAFETY_EVERY, ReconcileSchedule


def test_lists_at_start_then_only_after_a_reconnect_or_the_safety_interval():
    schedule = ReconcileSchedule()
    assert schedule.due(0.0)
    schedule.listed(0.0, ok=True)
    assert not any(schedule.due(t) for t in (1.0, 5.0, 60.0, SAFETY_EVERY - 1))
    assert schedule.due(SAFETY_EVERY)
    schedule.listed(100.0, ok=True)
    schedule.link_opened(130.0)  # the presence queue was declared again: what happened meanwhile is lost
    assert schedule.due(130.0)


def test_a_failed_listing_is_retried_soon():
    schedule = ReconcileSchedule()
    schedule.listed(10.0, ok=False)
    assert not schedule.due(10.0 + RETRY_AFTER - 0.1) and schedule.due(10.0 + RETRY_AFTER)
