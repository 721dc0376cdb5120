"""Several `simulators.fleet` processes started at once (one Python process per a few thousand TLS
sessions keeps the load generator off the critical path), and the credentials split between them."""

from __future__ import annotations

import re
import time
from pathlib import Path

from roundtrip import say
from roundtrip.procstats import cpu_seconds, mib, status_kib
from roundtrip.services import Fleet

PROGRESS = re.compile(r"fleet: (\d+)/(\d+) connected \((\d+) subscribed\).*failures=(\d+)")


def split_credentials(source: Path, groups: dict[str, int], target: Path) -> dict[str, Path]:
    """Moves the *.json files of `source` into one folder per group, in name order: {group: count}."""
    files = sorted(source.glob("*.json"))
    if sum(groups.values()) != len(files):
        raise ValueError(f"{len(files)} credentials files for {sum(groups.values())} devices")
    folders, start = {}, 0
    for group, count in groups.items():
        folder = target / group
        folder.mkdir(parents=True, exist_ok=True)
        for path in files[start:start + count]:
            path.rename(folder / path.name)
        folders[group] = folder
        start += count
    return folders


class FleetGroup:
    """The simulators of one run; `connect` starts them together and waits for the last device."""

    def __init__(self, folders: dict[str, Path], logs: Path):
        self.fleets = {name: Fleet(folder, logs / f"fleet-{name}.log") for name, folder in folders.items()}
        self.sizes = {name: len(list(folder.glob("*.json"))) for name, folder in folders.items()}

    def launch(self, *names: str, extra: tuple[str, ...] = ()) -> None:
        for name in names or self.fleets:
            self.fleets[name].launch(*extra)

    def counts(self, *names: str) -> tuple[int, int, int]:
        """(connected, subscribed, failures) summed over the simulators' latest progress lines."""
        connected = subscribed = failures = 0
        for name in names or self.fleets:
            fleet = self.fleets[name]
            if fleet.connected.is_set():
                connected += self.sizes[name]
                subscribed += self.sizes[name]
            match = PROGRESS.search(fleet.last_line)
            if match and not fleet.connected.is_set():
                connected += int(match.group(1))
                subscribed += int(match.group(3))
            if match:
                failures += int(match.group(4))
        return connected, subscribed, failures

    def wait(self, timeout: float, history: list | None = None, *names: str, report_every: float = 5.0) -> float:
        """Seconds until every named simulator reported all its devices connected and subscribed;
        `history` collects [seconds, connected, subscribed, failed attempts] every `report_every` s."""
        names = names or tuple(self.fleets)
        expected = sum(self.sizes[n] for n in names)
        started = last = time.monotonic()
        while not all(self.fleets[n].connected.is_set() for n in names):
            for n in names:
                process = self.fleets[n].process
                if process is not None and process.poll() is not None:
                    raise RuntimeError(f"simulator {n} exited with {process.returncode}; see {self.fleets[n].log_path}")
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"simulators connected {self.counts(*names)} of {expected} in {timeout:.0f} s")
            if time.monotonic() - last >= report_every:
                last = time.monotonic()
                connected, subscribed, failures = self.counts(*names)
                if history is not None:
                    history.append([round(last - started), connected, subscribed, failures])
                say(f"  connected {connected}/{expected} ({subscribed} subscribed, {failures} failed attempts) "
                    f"after {last - started:.0f} s")
            time.sleep(0.05)
        return time.monotonic() - started

    def stop(self, *names: str) -> None:
        for name in names or self.fleets:
            self.fleets[name].stop()

    def pids(self) -> dict[str, int]:
        return {f"simulator {name}": f.pid for name, f in self.fleets.items()
                if f.process is not None and f.process.poll() is None}

    def memory(self) -> dict:
        per = {name: mib(status_kib(pid, "VmRSS")) for name, pid in self.pids().items()}
        return {"processes_vmrss_mib": per, "total_vmrss_mib": round(sum(v or 0 for v in per.values()), 1)}

    def cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) or 0.0 for name, pid in self.pids().items()}
