"""CPU accounting per phase: what the platform spends per call, process by process.

Counted: every platform process (supervisor, API master and workers, gateway, projector, signer,
broker auth, read store), the broker (beam.smp and its helpers) and the PostgreSQL backends of the
benchmark's database. Not counted: the load generator (bench client, fleet simulator), and, for
information only, the shared PostgreSQL server processes and the whole machine (other sessions
share it). Idle CPU is measured before a phase with no load at all, so polling shows on its own.
"""

from __future__ import annotations

import time
from typing import Callable

LOAD_GENERATOR = ("bench client", "fleet simulator")
WHOLE_MACHINE = "whole machine (all cores)"
PG_SHARED = "postgres server processes (shared, not counted)"
INFO_ONLY = (WHOLE_MACHINE, PG_SHARED)

Snapshot = Callable[[], dict]


def counted(name: str) -> bool:
    return name not in LOAD_GENERATOR and name not in INFO_ONLY


def _used(before: dict, after: dict) -> dict[str, float]:
    # A process restarted by the supervisor starts from zero again: never charge a negative.
    return {name: max(0.0, end - before.get(name, 0.0)) for name, end in after.items()}


def delta(before: dict, after: dict, seconds: float, calls: int) -> dict:
    """CPU of each process between two snapshots, per call answered and as % of one core."""
    used = _used(before, after)

    def entry(cpu_s: float) -> dict:
        return {"cpu_s": round(cpu_s, 3), "cpu_pct": round(100 * cpu_s / seconds, 1) if seconds else None,
                "ms_per_call": round(1000 * cpu_s / calls, 3) if calls else None}
    return {"calls": calls, "seconds": round(seconds, 2),
            "processes": {name: entry(v) for name, v in sorted(used.items())},
            "total": entry(sum(v for n, v in used.items() if counted(n))),
            "load_generator": entry(sum(v for n, v in used.items() if n in LOAD_GENERATOR)),
            "whole_machine": entry(used.get(WHOLE_MACHINE, 0.0))}


def measure_idle(snapshot: Snapshot, seconds: float) -> dict:
    """CPU per second of each process while nothing is asked of the platform."""
    before = snapshot()
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    used = _used(before, snapshot())
    found = {"seconds": round(elapsed, 2),
             "ms_per_s": {name: round(1000 * v / elapsed, 2) for name, v in sorted(used.items())},
             "total_ms_per_s": round(1000 * sum(v for n, v in used.items() if counted(n)) / elapsed, 2)}
    found["others_ms_per_s"] = others_ms_per_s(found)
    return found


def others_ms_per_s(idle: dict) -> float | None:
    """CPU of everything else on the shared machine while this run was idle."""
    rates = idle.get("ms_per_s") or {}
    if WHOLE_MACHINE not in rates:
        return None
    ours = idle["total_ms_per_s"] + sum(rates.get(n, 0) for n in LOAD_GENERATOR)
    return round(max(0.0, rates[WHOLE_MACHINE] - ours), 2)


def with_idle(cpu: dict, idle: dict | None) -> dict:
    """Adds what the idle rate alone would have cost over the phase, per call (part of the total)."""
    if idle and cpu.get("calls"):
        cpu["idle_ms_per_call_est"] = round(idle["total_ms_per_s"] * cpu["seconds"] / cpu["calls"], 3)
    return cpu


def total_ms_per_call(phase: dict | None) -> float | None:
    """The counted total of a phase, or None for results written before the accounting existed."""
    cpu = (phase or {}).get("cpu") or {}
    return (cpu.get("total") or {}).get("ms_per_call")
