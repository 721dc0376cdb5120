"""What every benchmark run does at its end, interrupted or not: stop what it started, write its results."""

from __future__ import annotations

import json
import re
import shutil
import signal
from pathlib import Path

from roundtrip import APIS, DOCS, RESULTS, ROOT, say


def check_arguments(name: str, apis: str) -> None:
    """A result name usable as a file name, device apis the load knows."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise SystemExit("--name: letters, digits, . _ - only")
    unknown = [a for a in apis.split(",") if a.strip() and a.strip() not in APIS]
    if unknown:
        raise SystemExit(f"unknown apis: {unknown} (choose from {','.join(APIS)})")


def _interrupt(*_):
    raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the platform, the simulators and the database are still cleaned up."""
    signal.signal(signal.SIGTERM, _interrupt)


def stop_platform(platform) -> None:
    if platform is None:
        return
    try:
        platform.stop()
    except BaseException as exc:  # noqa: BLE001 - still drop the database and write the results
        say(f"stopping the platform failed: {exc!r}; supervisor pid {platform.process.pid}")


def finish(name: str, result: dict, state: Path, keep_state: bool, update_docs) -> int:
    """Writes bench/results/<name>.json, regenerates the docs table, removes the state; the exit status."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    update_docs()
    say(f"wrote {out.relative_to(ROOT)} and {DOCS.relative_to(ROOT)} (wall clock {result.get('wall_clock_s')} s)")
    if keep_state:
        say(f"state kept in {state}")
    else:
        shutil.rmtree(state, ignore_errors=True)
    for target, check in result.get("targets", {}).items():
        say(f"target {check.get('target', target)}: {check['value']} -> {'met' if check['met'] else 'MISSED'}")
    return 1 if result.get("interrupted") else 0
