"""py-spy profiles of platform processes under load, summarised to their top frames."""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
from pathlib import Path

from roundtrip import VENV_BIN


def py_spy(pids: dict[str, int], seconds: float, outdir: Path, rate: int = 100, wall: bool = False,
           gil: bool = False) -> dict:
    """Samples each pid with py-spy (raw collapsed stacks) and summarises the top frames; `wall` also
    samples waiting threads, one stack per thread, so a sequential call's wall time can be split up;
    `gil` only the thread holding the GIL: where the Python CPU goes, without threads py-spy takes for
    running that are only waiting."""
    tool = VENV_BIN / "py-spy"
    if not tool.exists():
        found = shutil.which("py-spy")
        if not found:
            return {name: {"error": "py-spy is not installed (make venv installs it from requirements.lock)"}
                    for name in pids}
        tool = Path(found)
    procs = {}
    for name, pid in pids.items():
        path = outdir / f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}.collapsed.txt"
        procs[name] = (path, subprocess.Popen([str(tool), "record", "--pid", str(pid), "-d", str(int(seconds)),
                                               "-r", str(rate), "--nonblocking", "-f", "raw", "-o", str(path)]
                                              + (["--idle", "--threads"] if wall else []) + (["--gil"] if gil else []),
                                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    summary = {}
    for name, (path, proc) in procs.items():
        try:
            _, err = proc.communicate(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            err = b"timeout"
        summary[name] = summarise_collapsed(path) if path.exists() else {"error": err.decode()[-400:]}
        summary[name]["file"] = str(path)
    return summary


def summarise_collapsed(path: Path, top: int = 15) -> dict:
    own, inclusive, total = collections.Counter(), collections.Counter(), 0
    idle_words = ("wait (threading.py", "select (selectors.py", "_wait_for_tstate_lock", "poll (selectors.py",
                  "epoll", "accept (socket.py")
    idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith("process ") and not f.startswith("thread ")]
        total += n
        if not frames:
            continue
        leaf = frames[-1]
        own[leaf] += n
        if any(w in leaf for w in idle_words):
            idle += n
        for f in set(frames):
            inclusive[f] += n
    def fmt(counter):
        return [{"frame": f, "samples": n, "pct": round(100 * n / total, 1)} for f, n in counter.most_common(top)]
    return {"samples": total, "idle_leaf_pct": round(100 * idle / total, 1) if total else None,
            "top_self": fmt(own), "top_inclusive": fmt(inclusive)}

