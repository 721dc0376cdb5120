#!/usr/bin/env python3
"""Context switches per device call: how many times a call puts each process's threads to sleep
(voluntary) or has them preempted (involuntary), and, with --why, what the API worker's threads
were waiting for when they slept.

A count, not a time: it moves far less with the shared host's speed than latency or CPU do, so a
change to the call path's threads can be judged on a slow or noisy host (docs/benchmarks.md, issue 7
steps 67 and 74). On this kind of VM every wake-up of an idle vCPU leaves the VM, so each sleep
costs tens of microseconds of someone's time.

Uses bench/command_roundtrip.py's machinery (roundtrip/): starts `iotcloud run` in a temporary state
directory on a throw-away PostgreSQL database, signs users up, registers and connects --devices
simulated devices, warms up, then a sequential phase and one open-loop phase per --rates, reading
/proc/<pid>/task/*/status before and after each. Thread names come from `py-spy dump` (Python
threads) once the platform is up. --why records the API worker's `sched:sched_switch` events with
DWARF call stacks (`perf record`, 3 s per open-loop phase) and sorts each sleep by the first of
take_gil / drop_gil (the GIL), a Python lock's acquire, poll/epoll/select (I/O) or a sleep on its
stack. Writes bench/results/switches/<name>.json.

    .venv/bin/python bench/context_switches.py --name ctx-s21 --rates 150 --why
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from roundtrip import say  # noqa: E402
from roundtrip.httpclient import Http  # noqa: E402
from roundtrip.load import Load  # noqa: E402
from roundtrip.phases import settle  # noqa: E402
from roundtrip.procstats import machine, python_loop_s  # noqa: E402
from roundtrip.runs import stop_platform  # noqa: E402
from roundtrip.services import Platform, Postgres, find_postgres  # noqa: E402
from roundtrip.users import small_fleet  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "switches"
PY_SPY = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "py-spy"
POSTGRES = "postgres backends (all)"
# The first of these on a sleeping thread's stack says what it waited for (innermost first).
WAITS = {"take_gil": "GIL", "drop_gil": "GIL", "acquire_timed": "Python lock",
         "lock_PyThread_acquire_lock": "Python lock", "PyThread_acquire_lock_timed": "Python lock",
         "do_sys_poll": "I/O poll", "do_select": "I/O poll", "__x64_sys_epoll_wait": "I/O poll",
         "do_epoll_wait": "I/O poll", "__x64_sys_clock_nanosleep": "sleep", "hrtimer_nanosleep": "sleep"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True)
    p.add_argument("--devices", type=int, default=20)
    p.add_argument("--users", type=int, default=8)
    p.add_argument("--sequential", type=int, default=2000, help="sequential calls (default %(default)s; 0: none)")
    p.add_argument("--rates", default="150", help="open-loop rates, calls/s (default %(default)s)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per rate (default %(default)s)")
    p.add_argument("--why", action="store_true", help="also sort the API worker's sleeps by cause (needs perf)")
    return p.parse_args(argv)


def thread_counts(pid: int) -> dict[str, tuple[int, int]]:
    """tid -> (voluntary, involuntary) switches so far, for every live thread of `pid`."""
    found = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:
            continue
        counts = dict(re.findall(r"^(voluntary_ctxt_switches|nonvoluntary_ctxt_switches):\s*(\d+)", status, re.M))
        found[tid] = (int(counts.get("voluntary_ctxt_switches", 0)), int(counts.get("nonvoluntary_ctxt_switches", 0)))
    return found


def postgres_pids() -> list[int]:
    done = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True)
    return [int(p) for p in done.stdout.split()]


def python_thread_names(pids) -> dict[str, str]:
    """tid -> Python thread name (pool threads' numbers folded: ThreadPoolExecutor-0_N)."""
    names = {}
    for pid in pids:
        try:
            out = subprocess.run([str(PY_SPY), "dump", "--pid", str(pid)], capture_output=True, text=True,
                                 timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        for tid, name in re.findall(r'Thread (\d+) \((?:idle|active)[^)]*\): "([^"]*)"', out):
            names[tid] = re.sub(r"_\d+$", "_N", name.strip())
    return names


class Census:
    def __init__(self, processes: dict[str, int], names: dict[str, str]):
        self.processes, self.names = processes, names

    def snapshot(self) -> dict[str, dict[str, tuple[int, int]]]:
        snap = {name: thread_counts(pid) for name, pid in self.processes.items()}
        snap[POSTGRES] = {tid: c for pid in postgres_pids() for tid, c in thread_counts(pid).items()}
        return snap

    def per_call(self, before, after, calls: int) -> dict:
        """Per process: voluntary and involuntary switches per call, and the threads that made them."""
        report = {}
        for process, threads in after.items():
            by_name: dict[str, list[int]] = {}  # thread name -> [voluntary, involuntary]
            for tid, (v, n) in threads.items():
                v0, n0 = before.get(process, {}).get(tid, (0, 0))
                counts = by_name.setdefault(self.names.get(tid, "postgres" if process == POSTGRES else "(unnamed)"), [0, 0])
                counts[0] += max(0, v - v0)
                counts[1] += max(0, n - n0)
            switched = sorted(((name, v, n) for name, (v, n) in by_name.items() if v + n), key=lambda row: -row[1] - row[2])
            if not switched:
                continue
            report[process] = {
                "voluntary": round(sum(v for _, v, _ in switched) / calls, 2),
                "involuntary": round(sum(n for _, _, n in switched) / calls, 2),
                "threads": {name: {"voluntary": round(v / calls, 2), "involuntary": round(n / calls, 2)}
                            for name, v, n in switched}}
        report = dict(sorted(report.items(), key=lambda kv: -(kv[1]["voluntary"] + kv[1]["involuntary"])))
        return {"calls": calls, "all": {"voluntary": round(sum(r["voluntary"] for r in report.values()), 1),
                                        "involuntary": round(sum(r["involuntary"] for r in report.values()), 1)},
                "processes": report}


def why(data: Path, names: dict[str, str], calls: int) -> dict:
    """The API worker's sleeps by cause and thread, per call of the traced seconds."""
    return sleeps_by_cause(subprocess.run(["perf", "script", "-i", str(data)], capture_output=True, text=True).stdout,
                           names, calls)


def sleeps_by_cause(text: str, names: dict[str, str], calls: int) -> dict:
    """`perf script` output of sched:sched_switch events with call stacks, sorted by what each waited for."""
    causes: Counter = Counter()
    by_thread: Counter = Counter()
    for block in text.split("\n\n"):
        lines = block.strip().split("\n")
        head = re.search(r"prev_pid=(\d+) .*prev_state=(\S+)", lines[0]) if lines else None
        if head is None:
            continue
        thread = names.get(head.group(1), "(unnamed)")
        if not head.group(2).startswith(("S", "D")):
            cause = "preempted"
        else:
            symbols = [re.sub(r"^\s*[0-9a-f]+ ", "", line).split("+")[0].split(" ")[0] for line in lines[1:]]
            cause = next((WAITS[s] for s in symbols if s in WAITS), "other")
        causes[cause] += 1
        by_thread[(thread, cause)] += 1
    slept = sum(v for k, v in causes.items() if k != "preempted") or 1
    return {"calls": calls, "switches_per_call": {k: round(v / calls, 2) for k, v in causes.most_common()},
            "share_of_sleeps": {k: round(v / slept, 3) for k, v in causes.most_common() if k != "preempted"},
            "by_thread_per_call": {f"{t} / {c}": round(v / calls, 2) for (t, c), v in by_thread.most_common(16)}}


async def measure(args, state: Path, platform: Platform, result: dict) -> None:
    http = Http(platform.api_port)
    owners, fleet = await small_fleet(http, platform, state, args.devices, args.users)
    load = Load(http, owners, ["get_status"], 10.0, False, platform)
    try:
        say("warm-up: 50/s for 3 s")
        await load.open_loop(50, 3, "warm-up")
        processes = dict(platform.processes())
        processes["fleet simulator"] = fleet.pid
        thread_names = python_thread_names([pid for name, pid in processes.items() if "beam" not in name])
        census = Census(processes, thread_names)
        api = next(pid for name, pid in processes.items() if name.startswith("api worker"))
        if args.sequential:
            await settle(platform)
            before = census.snapshot()
            run = await load.sequential(args.sequential)
            result["sequential"] = {"latency": run["latency"],
                                    **census.per_call(before, census.snapshot(), args.sequential)}
        for rate in [float(r) for r in args.rates.split(",") if r.strip()]:
            await settle(platform)
            data = state / f"sched-{rate:g}.data"
            perf = None
            if args.why:
                perf = subprocess.Popen(["perf", "record", "-q", "-e", "sched:sched_switch", "--call-graph",
                                         "dwarf,16384", "-p", str(api), "-o", str(data), "--", "sleep", "3"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            before = census.snapshot()
            run = await load.open_loop(rate, args.duration, f"{rate:g}/s")
            phase = {"rate": rate, "latency": run["latency_from_schedule"],
                     **census.per_call(before, census.snapshot(), run["completed"])}
            if perf is not None:
                perf.wait()
                phase["api_worker_sleeps"] = why(data, thread_names, max(1, round(rate * 3)))
            result.setdefault("open_loop", []).append(phase)
    finally:
        fleet.stop()
        http.close()


def summary(result: dict) -> None:
    for label, phase in [("sequential", result.get("sequential"))] + \
            [(f"{p['rate']:g}/s", p) for p in result.get("open_loop", [])]:
        if not phase:
            continue
        say(f"{label}: p50 {phase['latency']['p50_ms']} ms; switches per call {phase['all']['voluntary']} voluntary "
            f"+ {phase['all']['involuntary']} involuntary")
        for process, row in phase["processes"].items():
            say(f"  {process:34s} {row['voluntary']:6.2f} {row['involuntary']:6.2f}")
        if phase.get("api_worker_sleeps"):
            say(f"  API worker's switches per call by cause: {phase['api_worker_sleeps']['switches_per_call']}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.why and shutil.which("perf") is None:
        raise SystemExit("--why needs perf (Debian: linux-perf)")
    state = Path(tempfile.mkdtemp(prefix="iotcloud-switches-"))
    result = {"name": args.name, "kind": "context_switches",
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "config": vars(args)}
    host, port, user = find_postgres()
    pg = Postgres(host, port, user)
    pg.create()
    platform = None
    started = time.monotonic()
    try:
        result["machine"] = machine(pg.version)
        result["machine"]["python_loop_s"] = {"start": python_loop_s()}
        platform = Platform(state, pg.env(), 1, 32, "info")
        say(f"starting iotcloud run in {state}")
        platform.start()
        asyncio.run(measure(args, state, platform, result))
        result["machine"]["python_loop_s"]["end"] = python_loop_s()
    finally:
        stop_platform(platform)
        pg.drop()
        result["wall_clock_s"] = round(time.monotonic() - started, 1)
        shutil.rmtree(state, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{args.name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    summary(result)
    say(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
