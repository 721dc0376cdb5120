"""Keeps a Python process's threads on one CPU.

One API worker runs Python on one core at a time (the GIL), but the kernel spreads its threads
(requests, the broker link, the group commit, the log writer) over every core, so each hand-off
between them (a latch set, the GIL passed on) wakes a thread on another core. On the 2-vCPU VMs
this platform is measured on, such a wake-up costs 30-40 us of CPU against about 8 on the same core
(docs/benchmarks.md, issue 7 steps 67 and 78): pinned, the worker spent 10-22 % less CPU per call
under load there, and no more or less on a fast host where wake-ups are cheap (step 82). What runs
outside the GIL in that process (TLS records, libpq) loses the second core; that was part of the
measurement.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("iotcloud.cpu_pinning")


def pin_to_one_cpu(index: int) -> int | None:
    """Restricts the calling thread, and every thread it starts afterwards, to one of the CPUs it
    may use (`index` spreads several processes from the last CPU down). The CPU, or None where
    there is only one or the system cannot pin (not Linux)."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    if len(allowed) < 2:
        return None
    cpu = allowed[-1 - index % len(allowed)]
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as refused:  # a container's cpuset changed under us: run unpinned
        log.warning("could not pin to CPU %d (%s); running on CPUs %s", cpu, refused, allowed)
        return None
    return cpu
