"""The broker node's own figures from its management API: descriptor and socket limits, memory by use."""

from __future__ import annotations

import json
import os
import subprocess
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


# Reductions (Erlang's unit of work) per kind of process over a window: what the broker spends CPU on.
_TOP_WORK = """
Me = self(), Snap = fun() -> maps:from_list([{P, R} || P <- erlang:processes(), P =/= Me, {reductions, R} <- [erlang:process_info(P, reductions)]]) end,
Kind = fun(P) -> case erlang:process_info(P, [registered_name, dictionary, initial_call]) of
    undefined -> gone;
    [{registered_name, []}, {dictionary, D}, {initial_call, IC}] -> proplists:get_value('$initial_call', D, IC);
    [{registered_name, N} | _] -> N end end,
A = Snap(), timer:sleep(SECONDS), B = Snap(),
Sums = maps:fold(fun(P, R, Acc) -> maps:update_with(Kind(P), fun(V) -> V + R - maps:get(P, A, 0) end,
                                                    R - maps:get(P, A, 0), Acc) end, #{}, B),
Total = lists:sum(maps:values(Sums)),
{Total, lists:sublist(lists:reverse(lists:keysort(2, maps:to_list(Sums))), 12)}.
"""


def broker_work(state: Path, epmd_port: int, seconds: float) -> dict:
    """Which kinds of broker processes did the work over `seconds` (rabbitmqctl eval on the node)."""
    broker = state / "broker"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
    env.update(HOME=str(broker / "home"), RABBITMQ_CONF_ENV_FILE=str(broker / "rabbitmq-env.conf"),
               ERL_EPMD_ADDRESS="127.0.0.1", ERL_EPMD_PORT=str(epmd_port),
               RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}")
    node = next((broker / "mnesia").glob("*@localhost")).name
    expr = " ".join(_TOP_WORK.split()).replace("SECONDS", str(int(seconds * 1000)))
    try:
        out = subprocess.run(["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", node, "eval", expr], env=env,
                             capture_output=True, text=True, timeout=seconds + 120)
    except subprocess.TimeoutExpired:
        return {"error": "rabbitmqctl eval timed out"}
    return {"seconds": seconds, "reductions_by_process_kind": out.stdout.strip() or out.stderr.strip()[-500:]}
