"""Starts `iotcloud run` as `make run` does, on private ports, for the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.conftest import ops_port_env
from tests.ports import free_port


def start_platform(root, extra_env: dict) -> tuple[subprocess.Popen, dict]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "IOTCLOUD_"))},
           "IOTCLOUD_STATE_DIR": str(root / "state"), "PERSISTENCE_MODULE": "eventsourcing.sqlite",
           "IOTCLOUD_ARGON2_MEMORY_KIB": "8192", "IOTCLOUD_ARGON2_TIME_COST": "1",
           **{f"IOTCLOUD_{name}_PORT": str(free_port()) for name in
              ("API", "EMBEDDED_MONGODB", "MQTT", "AMQP", "BROKER_AUTH", "BROKER_MANAGEMENT", "BROKER_DIST",
               "BROKER_EPMD")}, **ops_port_env(), **extra_env}
    log = open(root / "platform.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "iotcloud.cli", "run"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while "Press Ctrl-C to stop." not in (root / "platform.log").read_text():
        assert process.poll() is None, (root / "platform.log").read_text()
        assert time.monotonic() < deadline, "the platform did not start within 120 s"
        time.sleep(0.1)
    return process, env
