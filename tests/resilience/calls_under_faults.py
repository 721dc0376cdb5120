"""What every fault test of device calls shares: a steady load of calls (each writing a marker its device
prints), and `verify_calls`, the checks afterwards: every accepted call ended exactly once (store and API
agree), none ran twice on a device, rejections were clear and in time, and the read models equal a fresh
rebuild of the store. Used by test_crash_restart.py and test_several_instances.py.
"""

from __future__ import annotations

import collections
import http.client
import json
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass

import pymongo

from queries.timestamps import normalised

TERMINAL_EVENTS = {"Succeeded": "succeeded", "AnswerRejected": "failed", "TimedOut": "timed_out",
                   "Expired": "expired"}
CALL_TIMEOUT = 3         # seconds the device has to answer (waiting calls)
HTTP_BUDGET = 12.0       # no call may take longer than this to get *an* answer, whatever is down
PROBLEM_JSON = "application/problem+json"
MARKER = re.compile(r"\] m:([0-9a-f]{32})$")
# A device that was handed a request again (MQTT QoS 1 redelivery) and did not run it twice.
REPEATED = re.compile(r"repeated \S+ request \(correlation id '([^']+)'\) not run again")
REDELIVERY_LEAD = 1.0  # s: a call sent this long before a broker outage may be in flight when it starts


@dataclass
class Call:
    marker: str
    device: str
    wait: bool
    elapsed: float = 0.0
    status: int | None = None
    content_type: str = ""
    body: object = None
    transport_error: str = ""
    phases: tuple = ()  # what was being done to the platform when the call started and ended
    sent_at: float = 0.0  # time.monotonic() when the request went out

    @property
    def command_id(self) -> str | None:
        return self.body.get("command_id") if isinstance(self.body, dict) else None


def send(base: str, token: str, method: str, path: str, body=None, timeout: float = HTTP_BUDGET) -> Call:
    call = Call(marker="", device="", wait=False)
    request = urllib.request.Request(base + path, data=json.dumps(body).encode() if body is not None else None,
                                     method=method, headers={"Authorization": f"Bearer {token}",
                                                             "Content-Type": "application/json"})
    started = call.sent_at = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            call.status, call.content_type, text = answer.status, answer.headers.get("content-type", ""), answer.read()
    except urllib.error.HTTPError as error:
        call.status, call.content_type, text = error.code, error.headers.get("content-type", ""), error.read()
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as error:
        reason = getattr(error, "reason", error)
        call.transport_error, text = f"{type(reason).__name__}: {reason}", b""
    call.elapsed = time.monotonic() - started
    try:
        call.body = json.loads(text) if text else None
    except ValueError:
        call.body = text.decode(errors="replace")
    return call


class Load:
    """A bounded loop of device calls per thread: mostly `wait: false`, every fifth one waiting."""

    def __init__(self, base: str, token: str, devices: list[str], threads: int, pause: float):
        self.base, self.token, self.devices, self.pause = base, token, devices, pause
        self.calls: list[Call] = []
        self.phase = "steady"
        # (start, end) in time.monotonic() of each broker node outage: only then may a device be handed
        # a request twice (QoS 1 redelivery), and only then is a device dropping a repeat expected.
        self.broker_outages: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def start(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[Call]:
        self._stop.set()
        for thread in self._threads:
            thread.join(HTTP_BUDGET + 5)
        return self.calls

    def _run(self, n: int) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            device, marker, wait = self.devices[(n + i) % len(self.devices)], uuid.uuid4().hex, i % 5 == 0
            body = {"api": "write_uart", "params": {"value": f"m:{marker}"}, "wait": wait, "timeout": CALL_TIMEOUT}
            phase = self.phase
            call = send(self.base, self.token, "POST", f"/v1/devices/{device}/commands", body)
            call.marker, call.device, call.wait, call.phases = marker, device, wait, (phase, self.phase)
            self.calls.append(call)
            self._stop.wait(self.pause if call.status else 0.2)


def _about(marker: str, calls, simulators) -> dict:
    """What a failure report needs of one call: when it was made, how, and what its device printed."""
    call = next((c for c in calls if c.marker == marker), None)
    return {"command_id": getattr(call, "command_id", None), "wait": getattr(call, "wait", None),
            "phases": list(getattr(call, "phases", ()) or ()),
            "device_lines": [line for sim in simulators for line in sim.output().splitlines() if marker in line][:6]}


def wait_for(condition, what: str, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} not within {timeout:.0f} s"
        time.sleep(interval)


def command_events(postgres) -> dict[str, list[tuple[str, bytes]]]:
    """Every DeviceCommand's events (kind, state) by command id, straight from the event store."""
    events: dict[str, list[tuple[str, bytes]]] = collections.defaultdict(list)
    with postgres.connect() as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE '%\\_events'")]
        for table in tables:
            for originator, topic, state in conn.execute(
                    f'SELECT originator_id, topic, state FROM "{table}" WHERE topic LIKE %s '
                    "ORDER BY originator_id, originator_version", ("%DeviceCommand.%",)):
                events[str(originator)].append((topic.rsplit(".", 1)[-1], bytes(state)))
    return events


def store_head(postgres) -> int:
    with postgres.connect() as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE '%\\_events'")]
        return sum(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables)


def read_models(platform) -> dict[str, list[dict]]:
    """The live generation of every read model as readers see it, documents sorted by id.

    Timestamps go through the query layer's `normalised`: nx-27017 stores a datetime written by `$set`
    into an existing document as a string, so the same instant can be stored two ways."""
    client = pymongo.MongoClient(platform.settings.effective_mongodb_uri, serverSelectionTimeoutMS=10000)
    try:
        db = client[platform.settings.mongodb_database]
        active = {doc["_id"]: doc["active"] for doc in db["read_model_catalogue"].find()}
        return {name: sorted((normalised(doc) for doc in db[f"{name}_g{active.get(name, 1)}"].find()),
                             key=lambda d: str(d["_id"]))
                for name in ("device_list", "users", "history")} | {"_generations": [active]}
    finally:
        client.close()


def projections_caught_up(platform) -> bool:
    status = platform.cli("projections", "status", "--json", timeout=60)
    rows = [json.loads(line) for line in status.stdout.splitlines()] if status.returncode == 0 else []
    return bool(rows) and all(row["behind"] == 0 for row in rows)


def signed_up_token(platform) -> str:
    """A new confirmed user's access token (the platform's token lifetime outlasts these tests)."""
    username, http = f"u{uuid.uuid4().hex[:10]}", platform.http
    assert http("POST", "/v1/auth/signup", {"username": username, "password": "correct horse",
                                            "email": f"{username}@example.com", "given_name": "C",
                                            "family_name": "R"})[0] == 201
    assert http("POST", "/v1/auth/confirm", {"username": username,
                                             "code": platform.code_for(f"{username}@example.com")})[0] == 200
    return http("POST", "/v1/auth/login", {"username": username, "password": "correct horse"})[1]["access_token"]


def verify_calls(platform, postgres, tmp_path, token, calls, simulators, extra: dict, title: str = "crash/restart",
                 min_accepted: int = 50, broker_outages: list[tuple[float, float]] = ()) -> dict:
    """What every failure test must show afterwards: each accepted call ended exactly once (store and
    API agree), none ran twice on a device, rejections were clear and in time, and the read models
    equal a fresh rebuild of the store."""
    private_postgres, http = postgres, platform.http
    # Every command the platform recorded ends exactly once, in the store and in the API.
    def all_terminal():
        events = command_events(private_postgres)
        return events if all(any(kind in TERMINAL_EVENTS for kind, _ in evs) for evs in events.values()) else None
    events = wait_for(all_terminal, "every recorded command reaching a terminal state", 60, 1)
    terminal = {cid: [TERMINAL_EVENTS[k] for k, _ in evs if k in TERMINAL_EVENTS] for cid, evs in events.items()}
    twice_ended = {cid: ends for cid, ends in terminal.items() if len(ends) != 1}

    accepted = [c for c in calls if c.command_id]
    unknown_to_store = [c.command_id for c in accepted if c.command_id not in terminal]
    wait_for(lambda: projections_caught_up(platform), "the projector catching up", 60, 1)
    api_disagrees = {}
    for call in accepted:
        answer = send(http.base, token, "GET", f"/v1/commands/{call.command_id}")
        if answer.status != 200 or answer.body["status"] != terminal.get(call.command_id, [None])[0]:
            api_disagrees[call.command_id] = (answer.status, answer.body, terminal.get(call.command_id))

    # Rejected calls got a clear error in time; none hung. A process killed with -9 cannot answer the
    # calls it was serving: only while an API process is being killed may a connection be refused or cut.
    rejected = [c for c in calls if not c.command_id]
    cut = [c for c in rejected if c.transport_error and {"api", "api worker"} & set(c.phases)]
    unclear = [(c.status, c.content_type, c.body, c.transport_error, c.phases) for c in rejected
               if not (c.status in (502, 503) and c.content_type.startswith(PROBLEM_JSON)) and c not in cut]
    hung = [(c.status, c.elapsed, c.transport_error) for c in calls if c.elapsed > HTTP_BUDGET]

    # Devices count executions by the marker each call carries.
    executions = collections.Counter(m.group(1) for sim in simulators for line in sim.output().splitlines()
                                     if (m := MARKER.search(line)))
    duplicates = {marker: count for marker, count in executions.items() if count > 1}
    # Devices drop a repeated correlation id; the platform must never send one twice, so a repeat is
    # only expected for a call in flight when a broker node went down (its acknowledgement lost).
    repeated = [m.group(1).replace("-", "") for sim in simulators for line in sim.output().splitlines()
                if (m := REPEATED.search(line))]
    by_id = {c.command_id.replace("-", ""): c for c in calls if c.command_id}
    outages = [(start - REDELIVERY_LEAD, end) for start, end in broker_outages]
    unexplained_repeats = {cid: _about(by_id[cid].marker, calls, simulators) if cid in by_id else None
                           for cid in repeated
                           if cid not in by_id or not any(lo <= by_id[cid].sent_at <= hi for lo, hi in outages)}
    marker_of = {}
    for cid, evs in events.items():
        found = re.search(rb"m:([0-9a-f]{32})", evs[0][1])
        if found:
            marker_of[cid] = found.group(1).decode()
    succeeded_not_run = [cid for cid, ends in terminal.items() if ends == ["succeeded"]
                         and executions[marker_of.get(cid, "")] != 1 and cid in marker_of]
    rejected_but_run = [c.marker for c in rejected if c.status and executions[c.marker]]

    # Every read model equals a fresh rebuild of the store (the rebuild becomes the live generation).
    for _ in range(5):
        wait_for(lambda: projections_caught_up(platform), "the projector catching up", 60, 1)
        head = store_head(private_postgres)
        live = read_models(platform)
        rebuilt_run = platform.cli("projections", "rebuild")
        assert rebuilt_run.returncode == 0, rebuilt_run.stderr
        rebuilt = read_models(platform)
        if store_head(private_postgres) == head:
            break
    differing = {name: (len(live[name]), len(rebuilt[name])) for name in ("device_list", "users", "history")
                 if live[name] != rebuilt[name]}
    for name in differing:
        (tmp_path / f"{name}.live.json").write_text(json.dumps(live[name], default=str, indent=1))
        (tmp_path / f"{name}.rebuilt.json").write_text(json.dumps(rebuilt[name], default=str, indent=1))

    by_kind = collections.Counter(ends[0] for ends in terminal.values() if ends)
    report = {"calls": len(calls), "accepted": len(accepted),
              "accepted_waiting": sum(1 for c in accepted if c.wait),
              "rejected": collections.Counter(f"{c.status or c.transport_error.split(':')[0]}" for c in rejected),
              "cut_by_api_kill": len(cut),
              "commands_in_store": len(terminal), "terminal_states": dict(by_kind),
              "executions": sum(executions.values()), "duplicates": len(duplicates),
              "repeats_dropped_by_devices": len(repeated),
              "read_models_equal_rebuild": not differing,
              **{k: v for k, v in extra.items() if k != "started"},
              "max_call_seconds": round(max(c.elapsed for c in calls), 2),
              "duration_seconds": round(time.monotonic() - extra["started"], 1)}
    print(f"\n{title} report: " + json.dumps(report, default=dict))
    (tmp_path / "report.json").write_text(json.dumps(report, default=dict))

    assert len(accepted) >= min_accepted, report
    assert not duplicates, f"executed more than once: { {m: (n, _about(m, calls, simulators)) for m, n in duplicates.items()} }"
    assert not unexplained_repeats, f"requests handed to a device twice outside a broker outage: {unexplained_repeats}"
    assert not twice_ended, f"commands with other than one terminal state: {twice_ended}"
    assert not unknown_to_store, f"accepted calls the store does not know: {unknown_to_store}"
    assert not api_disagrees, f"GET /v1/commands disagrees with the store: {list(api_disagrees.items())[:5]}"
    assert not succeeded_not_run, f"succeeded without one execution: {succeeded_not_run}"
    assert not rejected_but_run, f"rejected calls a device executed: {rejected_but_run}"
    assert not unclear, f"rejections without a clear 502/503 problem: {unclear[:5]}"
    assert not hung, f"calls past their {HTTP_BUDGET} s budget: {hung[:5]}"
    assert not differing, f"read models differ from a rebuild: {differing}"
    # Children racing to create the event-store tables at start-up failed on PostgreSQL.
    assert "tuple concurrently updated" not in platform.log()
    # A command recorded as sent while the gateway had no broker link was never delivered.
    assert "no attribute 'publish_request'" not in platform.log(), "a command was marked sent, never published"
    assert platform.process.poll() is None, "the supervisor gave up:\n" + platform.log()[-3000:]
    return report
