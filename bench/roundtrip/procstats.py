"""Latency percentiles and /proc readings: CPU seconds, RSS, PSS, process trees, the machine."""

from __future__ import annotations

import os
import platform as pyplatform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from roundtrip import say


def percentiles(values_ms: list[float]) -> dict:
    if not values_ms:
        return {"count": 0}
    v = sorted(values_ms)

    def p(q):
        return round(v[min(len(v) - 1, max(0, int(round(q * len(v) + 0.5)) - 1))], 3)
    return {"count": len(v), "p50_ms": p(0.50), "p90_ms": p(0.90), "p99_ms": p(0.99), "p999_ms": p(0.999),
            "max_ms": round(v[-1], 3), "mean_ms": round(sum(v) / len(v), 3)}


def brief(p: dict) -> str:
    """Percentiles for a progress line."""
    return f"p50 {p.get('p50_ms')} p90 {p.get('p90_ms')} p99 {p.get('p99_ms')} max {p.get('max_ms')} ms"


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def status_kib(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def pss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class Proc:
    ppid: int
    cmd: str
    cpu_s: float


def scan() -> dict[int, Proc]:
    """Every process once: parent, command line, CPU seconds so far (one pass over /proc per snapshot)."""
    tick = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                table[int(entry.name)] = Proc(int(fields[1]), cmdline(int(entry.name)),
                                              (int(fields[11]) + int(fields[12])) / tick)
            except (OSError, IndexError, ValueError):
                continue
    return table


def children_of(pid: int, table: dict[int, Proc] | None = None) -> list[int]:
    table = scan() if table is None else table
    return sorted(child for child, proc in table.items() if proc.ppid == pid)


def descendants_of(pid: int, table: dict[int, Proc]) -> set[int]:
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, proc in table.items() if proc.ppid in frontier} - found
        found |= frontier
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def find_pids(needle: str, exe_part: str) -> list[int]:
    return [pid for pid, proc in scan().items() if exe_part in proc.cmd and needle in proc.cmd]


# ----------------------------------------------------------------------------------- machine

def sh(*cmd, env=None, timeout=30) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine(pg_version: str) -> dict:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cores": os.cpu_count(), "cpu_model": cpu, "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": pyplatform.release(), "os": sh("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
        "python": pyplatform.python_version(),
        # The platform's interpreter (deploy/python.sh): an optimised build takes less CPU for the same code.
        "python_executable": os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
        "platform_python_loop_s": python_loop_s(sys.executable),
        "rabbitmq": sh("dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"),
        "erlang": sh("dpkg-query", "-W", "-f=${Version}", "erlang-base"),
        "postgresql": pg_version,
    }



# The host's speed drifts by a factor of two or more between sessions and within one (docs/benchmarks.md,
# steps 23, 50 and 55): every result keeps a reading of it at its start and end, so runs made on
# different hosts are not compared as if on one. The reading is taken with the first python3 on PATH,
# not the platform's interpreter: until step 110 the platform ran on that one, and an interpreter
# change must not read as a faster host (`platform_python_loop_s` is the platform's own).
SPEED_LOOP = ("import time\nt = time.process_time()\ns = 0\nfor i in range(10_000_000):\n    s += i\n"
              "print(time.process_time() - t)")


def python_loop_s(executable: str | None = None) -> float | None:
    """CPU seconds a fresh Python (the PATH's python3 unless given) takes for a loop of 10 M additions
    (lower is a faster host)."""
    out = sh(executable or shutil.which("python3") or sys.executable, "-c", SPEED_LOOP, timeout=60)
    try:
        return round(float(out), 3)
    except ValueError:
        return None


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return (sum(int(x) for x in fields[:8]) - int(fields[3]) - int(fields[4])) / os.sysconf("SC_CLK_TCK")


def wait_quiet(limit_s: float, quiet_pct: float, window_s: float = 5.0) -> tuple[float, float]:
    """Waits (at most `limit_s`) until the shared machine is busy under `quiet_pct` % of all its cores
    over `window_s`; answers (seconds waited, last busy %)."""
    started = time.monotonic()
    while True:
        before = machine_busy_s()
        time.sleep(window_s)
        busy = 100 * (machine_busy_s() - before) / window_s / (os.cpu_count() or 1)
        waited = time.monotonic() - started
        if busy < quiet_pct or waited >= limit_s:
            say(f"machine {busy:.0f} % busy (of all cores) after waiting {waited:.0f} s for it to go quiet")
            return round(waited, 1), round(busy, 1)


def mib(kib):
    return None if kib is None else round(kib / 1024, 1)
