"""bench/roundtrip/load.py's saturated closed loop: its rate is the calls answered over the time the
clients called, not over that time rounded up to the progress reporter's 2 s grid (which made every
15 s saturated phase 16 s long and its rate 6 % low); and how the report reads a saturated rate
against the raw echo: older results re-timed, newer ones against the echo on both sides of the phase."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from roundtrip.load import Load  # noqa: E402

DURATION = 0.3


class _Http:
    """Answers every call after a millisecond, as a platform that is never the bottleneck would."""

    def build(self, method, path, body, token):
        return (method, path)

    async def call(self, method, path, raw=None, timeout=None):
        await asyncio.sleep(0.001)
        return 200, b"{}"

    async def call_named(self, method, path, body=None, raw=None, timeout=None):
        return (*await self.call(method, path, raw, timeout), None)


class _User:
    username = "u1"
    token = "t"


class _Platform:
    def sampler(self):
        return None

    def cpu(self):
        return {}


def test_a_closed_loop_lasts_its_duration_not_the_reporters_grid():
    load = Load(http=_Http(), owners={"dev-1": _User()}, apis=["get_status"], timeout=5.0, correlation=False,
                platform=_Platform())
    result = asyncio.run(load.closed_loop(1, DURATION, "saturated"))
    # The clients stop within one call of the deadline; the reporter's first tick would be at 2 s.
    assert DURATION <= result["duration_s"] < 1.0
    answered = result["completed"] - result["errors"]
    assert answered > 0
    assert result["throughput"] == pytest.approx(answered / result["duration_s"], rel=0.05)


def test_older_results_are_re_timed_and_newer_ones_compared_with_the_floor_on_both_sides():
    from roundtrip import report
    old = {"config": {"saturate_duration_s": 15.0},
           "saturated": {"throughput": 801.0, "duration_s": 16.01, "completed": 12822, "errors": 0},
           "floor": {"saturated": {"throughput": 2590.9}}}
    assert report.sat_retimed(old) and report.sat_rate(old) == 854.8
    assert report.sat_pct_of_floor(old) == 33.0
    new = {"config": {"saturate_duration_s": 15.0},
           "saturated": {"throughput": 993.4, "duration_s": 15.02, "completed": 14921, "errors": 0},
           "floor": {"saturated": {"throughput": 2725.0, "after": {"throughput": 2975.0}}}}
    assert not report.sat_retimed(new) and report.sat_rate(new) == 993.4
    assert report.floor_sat_rate(new) == 2850.0
    assert report.sat_pct_of_floor(new) == 34.9
