"""Latency percentiles and /proc readings: CPU seconds, RSS, PSS, process trees, the machine."""

from __future__ import annotations

import os
import platform as pyplatform
import subprocess
from pathlib import Path


def percentiles(values_ms: list[float]) -> dict:
    if not values_ms:
        return {"count": 0}
    v = sorted(values_ms)

    def p(q):
        return round(v[min(len(v) - 1, max(0, int(round(q * len(v) + 0.5)) - 1))], 3)
    return {"count": len(v), "p50_ms": p(0.50), "p90_ms": p(0.90), "p99_ms": p(0.99), "p999_ms": p(0.999),
            "max_ms": round(v[-1], 3), "mean_ms": round(sum(v) / len(v), 3)}


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


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return sorted(found)


def find_pids(needle: str, exe_part: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if exe_part in cmd and needle in cmd:
                pids.append(int(entry.name))
    return pids


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
        "rabbitmq": sh("dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"),
        "erlang": sh("dpkg-query", "-W", "-f=${Version}", "erlang-base"),
        "postgresql": pg_version,
    }



def mib(kib):
    return None if kib is None else round(kib / 1024, 1)


def cpu_delta(before: dict, after: dict, seconds: float, done: int) -> dict:
    out = {}
    for name, end in after.items():
        used = end - before.get(name, 0.0)
        out[name] = {"cpu_s": round(used, 2), "cpu_pct": round(100 * used / seconds, 1) if seconds else None,
                     "cpu_ms_per_call": round(1000 * used / done, 3) if done else None}
    return out

