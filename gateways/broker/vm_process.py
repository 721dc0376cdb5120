"""The broker node's Erlang VM as an operating-system process: whether it still runs, and ending it.

Its pid file goes early in a shutdown, seconds before the VM exits, so these look at the process
itself; a node started while the old VM still shuts down finds its name taken and never boots."""

from __future__ import annotations

import os
import signal
import time


def vm_alive(pid: int) -> bool:
    """Whether the VM `pid` still runs (a zombie has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except (OSError, IndexError):
        return False


def end_vm(pid: int, term_grace: float, kill_grace: float) -> None:
    """SIGTERM to the node's VM (RabbitMQ stops in order), SIGKILL if it is still there `term_grace` s later."""
    for sig, grace in ((signal.SIGTERM, term_grace), (signal.SIGKILL, kill_grace)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_vm_gone(pid, grace):
            return


def wait_vm_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while vm_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
