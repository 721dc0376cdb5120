"""The broker node's Erlang VM as an operating-system process: whether it still runs, and ending it.

Its pid file goes early in a shutdown, seconds before the VM exits, so these look at the process
itself; a node started while the old VM still shuts down finds its name taken and never boots."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

CRASH_DUMP = "erl_crash.dump"  # what a VM that stops on its own writes in its working directory


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


def retire_crash_dump(state_dir: Path) -> None:
    """Moves an earlier start's crash dump aside (kept as `.previous`), so a dump found later is this start's."""
    try:
        (state_dir / CRASH_DUMP).replace(state_dir / f"{CRASH_DUMP}.previous")
    except FileNotFoundError:
        pass


def crash_slogan(state_dir: Path) -> str | None:
    """The reason the VM gave for stopping (the dump's `Slogan:` line), once its dump has it."""
    try:
        with (state_dir / CRASH_DUMP).open("rb") as dump:
            head = dump.read(8192).decode(errors="replace")
    except FileNotFoundError:
        return None
    for line in head.splitlines()[:4]:
        if line.startswith("Slogan: "):
            return line.removeprefix("Slogan: ")
    return None  # still being written


def wait_until_booted(wait_command: list[str], state_dir: Path, timeout: float, **popen) -> tuple[int, str]:
    """Runs `rabbitmqctl wait` (exit status and output) but gives up as soon as the VM stops on its own.

    A VM that cannot start (its distribution port taken, say) halts within seconds and leaves a crash
    dump and no log; `rabbitmqctl wait` alone would wait its whole timeout and report only that."""
    waiter = subprocess.Popen(wait_command, cwd=state_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, **popen)
    deadline = time.monotonic() + timeout
    try:
        while waiter.poll() is None:
            slogan = crash_slogan(state_dir)
            if slogan is not None:
                waiter.kill()
                return -1, f"the Erlang VM stopped: {slogan} (see {state_dir / CRASH_DUMP})\n"
            if time.monotonic() > deadline:
                waiter.kill()
                return -1, f"rabbitmqctl wait gave no answer in {timeout:.0f} s\n"
            time.sleep(0.1)
        return waiter.returncode, waiter.stdout.read()
    finally:
        waiter.wait()
        waiter.stdout.close()
