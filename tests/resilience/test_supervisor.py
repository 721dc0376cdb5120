"""The supervisor's restart policy on real child processes: restart what dies, say how it died, take
dependents down with it, and give up loudly when a child keeps dying."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

import pytest

from iotcloud.config import Settings
from iotcloud.supervisor import Child, ChildSpec, Supervisor, spawner

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def supervise(tmp_path, *specs: ChildSpec) -> tuple[Supervisor, threading.Thread, list]:
    supervisor = Supervisor(Settings(state_dir=tmp_path), backoff_first=0.05, backoff_max=0.2, budget=3, window=30)
    supervisor.children = [Child(spec, spec.start()) for spec in specs]
    result = []
    thread = threading.Thread(target=lambda: result.append(supervisor.wait()), daemon=True)
    thread.start()
    return supervisor, thread, result


def wait_for(condition, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_killed_child_is_restarted_and_the_log_says_how_it_died(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="iotcloud.run")
    supervisor, thread, result = supervise(tmp_path, ChildSpec("worker", spawner(SLEEPER, dict(os.environ))),
                                           ChildSpec("other", spawner(SLEEPER, dict(os.environ))))
    worker, other = supervisor.children
    first, other_pid = worker.process.pid, other.process.pid
    try:
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: worker.process.pid != first and worker.process.poll() is None)
        assert other.process.pid == other_pid and other.process.poll() is None  # the rest keep running
        assert thread.is_alive()
        assert any(f"worker (pid {first}) killed by SIGKILL; restarting it in" in r.getMessage() for r in caplog.records)
        # The supervisor logs the restart right after it took the new process: wait for the line too.
        wait_for(lambda: any(f"worker restarted (pid {worker.process.pid})" in r.getMessage() for r in caplog.records))
    finally:
        supervisor.request_stop()
        thread.join(5)
        supervisor.stop()
    assert result == [0]
    assert all(child.process.poll() is not None for child in supervisor.children)


def test_a_child_that_keeps_dying_stops_the_platform_loudly(tmp_path, caplog):
    failing = [sys.executable, "-c", "import sys; sys.exit(3)"]
    supervisor, thread, result = supervise(tmp_path, ChildSpec("steady", spawner(SLEEPER, dict(os.environ))),
                                           ChildSpec("flaky", spawner(failing, dict(os.environ))))
    thread.join(20)
    supervisor.stop()
    assert result == [1]
    messages = [r.getMessage() for r in caplog.records if r.name == "iotcloud.run"]
    assert sum("flaky" in m and "exited with code 3; restarting it in" in m for m in messages) == 3
    assert any(m.startswith("flaky") and "giving up: stopping the platform" in m for m in messages)
    assert [r.levelname for r in caplog.records if "giving up" in r.getMessage()] == ["CRITICAL"]
    assert supervisor.children[0].process.poll() is not None  # the steady one was stopped too


def test_a_child_takes_down_its_dependents_and_they_come_back_after_it(tmp_path):
    supervisor, thread, result = supervise(
        tmp_path, ChildSpec("backend", spawner(SLEEPER, dict(os.environ)), takes_down=("front",)),
        ChildSpec("front", spawner(SLEEPER, dict(os.environ))))
    backend, front = supervisor.children
    backend_pid, front_pid = backend.process.pid, front.process.pid
    try:
        os.kill(backend_pid, signal.SIGKILL)
        wait_for(lambda: backend.process.pid != backend_pid and front.process.pid != front_pid
                 and backend.process.poll() is None and front.process.poll() is None)
        with pytest.raises(ProcessLookupError):
            os.kill(front_pid, 0)  # the old dependent is really gone, not left beside the new one
    finally:
        supervisor.request_stop()
        thread.join(5)
        supervisor.stop()
    assert result == [0]
