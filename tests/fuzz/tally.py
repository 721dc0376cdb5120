"""What the fuzzer sent and got, for the summary at the end of the run."""

from __future__ import annotations

import os
import time
from collections import Counter

# Examples per operation and caller: small in `make test`, raised for the long run (docs/fuzzing.md).
EXAMPLES = int(os.environ.get("IOTCLOUD_FUZZ_EXAMPLES", "5"))
STARTED = time.monotonic()
TALLY: dict[str, Counter] = {"status": Counter(), "class": Counter(), "caller": Counter()}


def record(caller: str, status: int) -> None:
    TALLY["status"][status] += 1
    TALLY["class"][f"{status // 100}xx"] += 1
    TALLY["caller"][caller] += 1
