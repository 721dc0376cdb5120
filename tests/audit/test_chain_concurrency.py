"""The chain stays one consistent sequence under the group commit: many threads in one process, and
two processes writing to the same store at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from commands.chain.verify import verify
from commands.device_control import DeviceControl
from projections.wakeup import connect_kwargs

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def test_threads_sharing_group_commits_keep_one_chain(make_settings, durable_store):
    control = DeviceControl(env=make_settings(durable_store).event_store_env("DeviceControl"))
    device = {"device_id": "a" * 40, "owner": "alice", "name": "kitchen"}

    def call(worker: int) -> None:
        for n in range(10):
            command = control.dispatch(device, "get_gpio", {"number": worker}, None, None, by="api:test")
            command.record_answer(n, {"value": n})
            control.record_later(command).result(30)

    threads = [threading.Thread(target=call, args=(worker,)) for worker in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        verdict = verify(control.recorder, batch=37)
        assert verdict.intact, verdict.broken.describe()
        assert verdict.events == 16 * 10 * 2 == control.recorder.max_notification_id()  # born sent, answered
    finally:
        control.close()


def test_two_processes_writing_at_once_keep_one_chain(make_settings, durable_store):
    env = make_settings(durable_store).event_store_env("DeviceControl")
    DeviceControl(env=env).close()  # tables first: two processes creating them at once is not the test
    writers = [subprocess.Popen([sys.executable, str(HERE / "chain_writer.py"), json.dumps(env), "120", "6", tag],
                                cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
               for tag in ("one", "two")]
    for writer in writers:
        first = writer.stdout.readline()
        assert first == b"ready\n", (first + writer.stdout.read()).decode(errors="replace")  # the writer's traceback
    for writer in writers:
        writer.stdin.write(b"go\n")
        writer.stdin.flush()
    for writer in writers:
        output, _ = writer.communicate(timeout=240)
        assert writer.returncode == 0, output.decode()
    control = DeviceControl(env=env)
    try:
        verdict = verify(control.recorder, batch=50)
        assert verdict.intact, verdict.broken.describe()
        assert verdict.events == 2 * 120 * 2  # each call: Requested (born sent) and its outcome
        rows = control.recorder.stored_rows(0, 10_000)
        assert len({row[1] for row in rows}) == 2 * 120
        first_writer = [b'"actor":"service:one"' in state for *_, state in rows]
        assert sum(a != b for a, b in zip(first_writer, first_writer[1:])) >= 2, "the writers did not interleave"
    finally:
        control.close()


def test_appends_do_not_wait_for_vacuum_or_analyze(make_settings):
    """VACUUM and ANALYZE, autovacuum's included, hold SHARE UPDATE EXCLUSIVE on the log for as long as they
    run. An append that locked the table EXCLUSIVE (eventsourcing's way) waited for them: every device call
    stalled while the log was analysed. Here an ANALYZE of the log stays open in a transaction (it may run
    in one and keeps its lock until the end) while calls are recorded and answered."""
    import psycopg

    control = DeviceControl(env=make_settings("postgres").event_store_env("DeviceControl"))
    device = {"device_id": "a" * 40, "owner": "alice", "name": "kitchen"}
    recorder = control.recorder
    table = f'"{recorder.datastore.schema}"."{recorder.events_table_name}"'
    recorded = threading.Event()

    def calls() -> None:
        for n in range(3):
            command = control.dispatch(device, "get_gpio", {"number": n}, None, None, by="api:test")
            command.record_answer(n, {"value": n})
            control.record_later(command).result(30)
        recorded.set()

    try:
        with psycopg.connect(**connect_kwargs(control)) as analysing:  # a transaction is open from the first statement
            analysing.execute(f"ANALYZE {table}")
            held = analysing.execute("SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND granted "
                                     "AND relation = %s::regclass", (table,)).fetchall()
            assert ("ShareUpdateExclusiveLock",) in held
            caller = threading.Thread(target=calls, daemon=True)
            caller.start()
            # Released only when the transaction ends: with the old lock nothing is recorded until then.
            assert recorded.wait(30), "a device call waited for ANALYZE of the event log"
            analysing.rollback()
        caller.join(30)
        verdict = verify(recorder, batch=10)
        assert verdict.intact, verdict.broken.describe()
        assert verdict.events == 3 * 2
    finally:
        control.close()
