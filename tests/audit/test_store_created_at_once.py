"""Processes that start together (compose services, several replicas) each create the event store's
tables and its append function. None of them may fail: on PostgreSQL two concurrent replaces of one
function fail one of them ("tuple concurrently updated"), so the creating transactions take turns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CREATOR = """
import json, sys
from commands.device_control import DeviceControl
env = json.loads(sys.argv[1])
sys.stdin.readline()  # all start creating at the same moment
DeviceControl(env=env).close()
print("created", flush=True)
"""


def test_processes_creating_the_store_at_once_all_start(make_settings, durable_store):
    settings = make_settings(durable_store)
    for name in ("CreatedAtOnce", "DeviceControl"):  # a new store, then one whose tables exist already
        env = settings.event_store_env(name)
        creators = [subprocess.Popen([sys.executable, "-c", CREATOR, json.dumps(env)], cwd=REPO,
                                     env={**os.environ, "PYTHONPATH": str(REPO)}, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(6)]
        for creator in creators:
            creator.stdin.write(b"go\n")
            creator.stdin.flush()
        outputs = [creator.communicate(timeout=120)[0].decode(errors="replace") for creator in creators]
        failed = [output for creator, output in zip(creators, outputs) if creator.returncode != 0]
        assert not failed, f"{len(failed)} of 6 failed to create {name}:\n{failed[0][-2000:]}"
