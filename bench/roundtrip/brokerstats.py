"""The broker node's own figures from its management API: descriptor and socket limits, memory by use."""

from __future__ import annotations

import json
import urllib.request
from base64 import b64encode
from pathlib import Path

from roundtrip import HOST

FIELDS = ("fd_used", "fd_total", "sockets_used", "sockets_total", "proc_used", "mem_used", "mem_limit")


def broker_node(state: Path, management_port: int, timeout: float = 30.0) -> dict:
    password = (state / "broker" / "management-admin.secret").read_text().strip()
    node_name = next((state / "broker" / "mnesia").glob("*@localhost")).name
    request = urllib.request.Request(f"http://{HOST}:{management_port}/api/nodes/{node_name}?memory=true", headers={
        "Authorization": "Basic " + b64encode(f"iotcloud-admin:{password}".encode()).decode()})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            node = json.loads(answer.read())
    except (OSError, ValueError, StopIteration) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    memory = node.get("memory") or {}
    top = sorted(((k, v) for k, v in memory.items() if isinstance(v, int) and k != "total"), key=lambda kv: -kv[1])
    return {**{k: node.get(k) for k in FIELDS},
            "memory_mib": {k: round(v / 2**20, 1) for k, v in top[:10]}}
