"""Keeping what a process builds at start-up out of the cyclic garbage collector's full passes.

Modules, the composition root, caches and connection pools live as long as the process; a full
(generation 2) collection still walks all of them, with every thread stopped. In the API worker
that was about 80,000 objects and 31–50 ms per pass, two or three passes a minute under load: stalls
that let calls pile up against the API's waiting-call bound (docs/benchmarks.md, step 49). Frozen,
they are skipped, and a full pass under load took 0.6–1.7 ms. Reference counting still frees them
as usual; only a cycle among them would outlive its use, and start-up leaves none worth collecting
(the collection before the freeze takes whatever it did leave)."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Collects once, then moves every object alive now out of the collector's generations.
    Call it when the process is built and about to serve. Returns the number of objects frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
