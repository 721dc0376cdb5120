"""The processes a test's platform started, read from /proc: the one helper the suites share."""

from __future__ import annotations

from pathlib import Path


def children_of(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the live direct children of a process, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
        except (OSError, IndexError, ValueError):
            continue
    return found
