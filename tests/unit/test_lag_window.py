"""The projector's lag window: percentiles from histograms, against the exact nearest-rank ones."""

import math
import random

import pytest

from projections.lag import LagWindow


def exact(values, p):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Clock:
    def __init__(self, now=1_000.0):
        self.now = now

    def __call__(self):
        return self.now


def fill(window, clock, seconds, per_batch, rng, written=None):
    """Batches every 20 ms for `seconds`; returns every event's lag and wait in ms (and appends
    (written at, lag) per event to `written`)."""
    lags, waits = [], []
    for _ in range(int(seconds * 50)):
        clock.now += 0.02
        began = clock.now - 0.004
        recorded = [clock.now - rng.lognormvariate(-4.5, 1.0) for _ in range(per_batch)]
        window.add(clock.now, recorded, began, clock.now - 0.001, 0.0005)
        lags += [(clock.now - at) * 1000 for at in recorded]
        if written is not None:
            written += [(clock.now, (clock.now - at) * 1000) for at in recorded]
        waits += [(began - at) * 1000 for at in recorded]
    return lags, waits


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_are_within_a_per_cent_of_the_exact_ones_and_the_maximum_is_exact(seed):
    clock, rng = Clock(), random.Random(seed)
    window = LagWindow(seconds=30, clock=clock)
    lags, waits = fill(window, clock, 20, 7, rng)
    summary = window.due()
    assert summary["lag_events"] == len(lags) == 7 * 1000
    assert summary["lag_batches"] == 1000
    assert summary["lag_max_ms"] == round(max(lags), 3)
    for key, values in (("lag", lags), ("lag_wait", waits)):
        for p in (50, 99):
            assert summary[f"{key}_p{p}_ms"] == pytest.approx(exact(values, p), rel=0.011, abs=0.001)
    assert summary["lag_p50_ms"] <= summary["lag_p99_ms"] <= summary["lag_max_ms"]
    # Every batch shares its parts: paced 0.5 ms, applying 3 ms, writing 1 ms.
    assert summary["lag_paced_p50_ms"] == pytest.approx(0.5, rel=0.011)
    assert summary["lag_apply_p99_ms"] == pytest.approx(3.0, rel=0.011)
    assert summary["lag_write_p50_ms"] == pytest.approx(1.0, rel=0.011)


def test_only_the_window_counts_and_an_idle_window_empties():
    """The window holds every event written in a second that ended less than `seconds` ago."""
    clock, written = Clock(), []
    window = LagWindow(seconds=30, clock=clock)
    fill(window, clock, 10, 3, random.Random(8), written)
    clock.now += 15
    fill(window, clock, 10, 5, random.Random(7), written)

    def in_window():
        return [lag for at, lag in written if math.floor(at) + 1 > clock.now - 30]

    for step in (0, 7, 14):  # the first 10 s leave the window second by second
        clock.now += step
        summary = window.due()
        kept = in_window()
        assert summary["lag_events"] == len(kept)
        assert summary["lag_p99_ms"] == pytest.approx(exact(kept, 99), rel=0.011, abs=0.001)
        assert summary["lag_max_ms"] == round(max(kept), 3)
    assert 0 < len(in_window()) < len(written)
    clock.now += 31
    assert window.due() == {"lag_events": 0, "lag_p50_ms": None, "lag_p99_ms": None, "lag_max_ms": None}


def test_a_report_is_made_at_most_once_a_second_and_a_clock_step_back_reads_as_no_lag():
    clock = Clock()
    window = LagWindow(clock=clock)
    window.add(clock.now, [clock.now + 0.002, clock.now - 0.010])  # one recorded "after" it was written
    first = window.due()
    assert first["lag_events"] == 2 and first["lag_p50_ms"] == 0.0
    assert first["lag_p99_ms"] == pytest.approx(10.0, rel=0.011)
    clock.now += 0.5
    assert window.due() is None
    clock.now += 0.5
    assert window.due() is not None
