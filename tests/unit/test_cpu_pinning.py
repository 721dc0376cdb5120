"""iotcloud/cpu_pinning.py: a process's threads kept on one CPU. Pinning is per thread and inherited
by threads started afterwards, so each case runs in a child process (pinning the test runner would
slow every test after it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from iotcloud.config import Settings

REPO = Path(__file__).resolve().parents[2]
CHILD = """
import json, os, sys, threading
from iotcloud.cpu_pinning import pin_to_one_cpu
cpu = pin_to_one_cpu(int(sys.argv[1]))
seen = {}
thread = threading.Thread(target=lambda: seen.update(later=sorted(os.sched_getaffinity(0))))
thread.start(); thread.join()
print(json.dumps({"cpu": cpu, "main": sorted(os.sched_getaffinity(0)), "later": seen["later"]}))
"""


def pinned(index: int, cpus: list[int] | None = None) -> dict:
    command = [sys.executable, "-c", CHILD, str(index)]
    if cpus is not None:
        command = ["taskset", "-c", ",".join(map(str, cpus)), *command]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


ALLOWED = sorted(os.sched_getaffinity(0))
needs_two = pytest.mark.skipif(len(ALLOWED) < 2, reason="a single CPU: there is nothing to choose between")


@needs_two
def test_the_thread_and_the_threads_it_starts_stay_on_one_allowed_cpu():
    first, second = pinned(0), pinned(1)
    assert first["cpu"] == ALLOWED[-1] and second["cpu"] == ALLOWED[-2]
    for result in (first, second):
        assert result["main"] == result["later"] == [result["cpu"]]


@needs_two
def test_only_cpus_the_process_may_use_are_chosen():
    result = pinned(0, cpus=[ALLOWED[0]])
    assert result["cpu"] is None and result["main"] == result["later"] == [ALLOWED[0]]
    result = pinned(3, cpus=ALLOWED[:2])
    assert result["cpu"] == ALLOWED[:2][-1 - 3 % 2]


def test_the_setting_is_on_or_off():
    assert Settings().api_pinned
    assert not Settings(api_pin_cpu="off").api_pinned
    with pytest.raises(ValueError, match="IOTCLOUD_API_PIN_CPU"):
        Settings(api_pin_cpu="yes").api_pinned
