"""bench/context_switches.py's arithmetic: switches per call from two /proc snapshots, and a
perf trace's sleeps sorted by what the sleeping thread waited for."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from context_switches import POSTGRES, Census, sleeps_by_cause  # noqa: E402

TRACE = """\
python 101 [000]  1.000001: sched:sched_switch: prev_comm=python prev_pid=101 prev_prio=120 prev_state=S ==> next_comm=x next_pid=9 next_prio=120
\tffffffff82265ec8 __schedule+0x628 ([kernel.kallsyms])
\tffffffff8144a7bd do_futex+0xfd ([kernel.kallsyms])
\t           85f16 __futex_abstimed_wait_common+0xc6 (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t          2a1b2c take_gil+0x1c2 (/usr/lib/libpython3.11.so.1.0)
\t          2a1d00 PyEval_RestoreThread+0x20 (/usr/lib/libpython3.11.so.1.0)
\t          2b0000 acquire_timed+0x40 (/usr/lib/libpython3.11.so.1.0)

python 101 [000]  1.000002: sched:sched_switch: prev_comm=python prev_pid=101 prev_prio=120 prev_state=S ==> next_comm=x next_pid=9 next_prio=120
\tffffffff82265ec8 __schedule+0x628 ([kernel.kallsyms])
\t           85f16 __futex_abstimed_wait_common+0xc6 (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t          2b0000 acquire_timed+0x40 (/usr/lib/libpython3.11.so.1.0)

python 102 [001]  1.000003: sched:sched_switch: prev_comm=python prev_pid=102 prev_prio=120 prev_state=S ==> next_comm=x next_pid=9 next_prio=120
\tffffffff82265ec8 __schedule+0x628 ([kernel.kallsyms])
\tffffffff81500000 do_sys_poll+0x1 ([kernel.kallsyms])

python 102 [001]  1.000004: sched:sched_switch: prev_comm=python prev_pid=102 prev_prio=120 prev_state=R ==> next_comm=x next_pid=9 next_prio=120
\tffffffff82265ec8 __schedule+0x628 ([kernel.kallsyms])
"""


def test_the_first_wait_on_the_stack_names_the_cause_and_a_runnable_thread_was_preempted():
    found = sleeps_by_cause(TRACE, {"101": "ThreadPoolExecutor-0_N", "102": "command-outcomes"}, calls=2)
    # The GIL wait comes back from a lock's acquire: the innermost frame decides.
    assert found["switches_per_call"] == {"GIL": 0.5, "Python lock": 0.5, "I/O poll": 0.5, "preempted": 0.5}
    assert found["share_of_sleeps"] == {"GIL": pytest.approx(1 / 3, abs=1e-3), "Python lock": pytest.approx(1 / 3, abs=1e-3),
                                        "I/O poll": pytest.approx(1 / 3, abs=1e-3)}
    assert found["by_thread_per_call"]["command-outcomes / preempted"] == 0.5


def test_switches_per_call_count_every_thread_and_ignore_a_restarted_ones_reset():
    census = Census({"api worker 1": 1}, {"11": "MainThread", "12": "group-commit"})
    before = {"api worker 1": {"11": (100, 10), "12": (50, 5)}, POSTGRES: {"900": (1000, 0)}}
    after = {"api worker 1": {"11": (120, 14), "12": (40, 5), "13": (6, 2)}, POSTGRES: {"900": (1010, 2)}}
    found = census.per_call(before, after, calls=2)
    api = found["processes"]["api worker 1"]
    assert (api["voluntary"], api["involuntary"]) == (13.0, 3.0)  # 20 + 0 (went backwards) + 6; 4 + 0 + 2
    assert api["threads"]["MainThread"] == {"voluntary": 10.0, "involuntary": 2.0}
    assert api["threads"]["(unnamed)"] == {"voluntary": 3.0, "involuntary": 1.0}
    assert "group-commit" not in api["threads"]
    assert found["processes"][POSTGRES]["threads"]["postgres"] == {"voluntary": 5.0, "involuntary": 1.0}
    assert found["all"] == {"voluntary": 18.0, "involuntary": 4.0}
