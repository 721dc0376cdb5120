"""Write side of a device call alone: the API's commit of Requested (born sent) and the outcome's, on PostgreSQL.

One thread does what the short path does per call (DeviceControl.dispatch, then the answer recorded in
the next shared commit) with no broker, HTTP or read store, so a change to the append path is measured
without the noise of the whole platform. Reports CPU per call of this process (the Python side of the
commit) and of its PostgreSQL backends, and the dispatch latency.

    eval "$(bash deploy/test-postgres.sh .state/test-pg)"     # or any PostgreSQL trusting user postgres
    .venv/bin/python bench/write_side.py --calls 3000 [--threads 1] [--gap-ms 2] [--host 127.0.0.1 --port 5432]

`--prefill 1000000` puts a million filler events in the log first: on a server with autovacuum on, the
log's VACUUM and ANALYZE then take as long as in production, and `dispatches_over_50_ms` shows whether
appends wait for them (docs/benchmarks.md, issue 7 step 111).

`--gap-ms` waits that long between a call's dispatch and its answer (the device's round trip, as in a
sequential run), so the outcome is queued while nothing else commits; `commits_per_call` then shows
whether outcomes ride along with the next call's commit or are committed alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from commands.chain import chained_recorder_topic  # noqa: E402
from commands.device_control import DeviceControl  # noqa: E402

DEVICE = {"device_id": "a" * 40, "owner": "alice", "name": "kitchen"}
TICK = os.sysconf("SC_CLK_TCK")


def commits(admin: str) -> int:
    """The cluster's next transaction id: every write transaction takes one (and so does this query), so
    the difference counts this benchmark's commits on an otherwise quiet server."""
    with psycopg.connect(admin, autocommit=True) as conn:
        return int(conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0])


def backend_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
        except OSError:
            pass
    return total


def prefill(control: DeviceControl, events: int) -> None:
    """`events` filler rows of a call's usual size (no chain links: verify would call them inserted). The
    log's autovacuum is held off while they go in, then given back, so it finds them all at once."""
    recorder = control.recorder
    table = f'"{recorder.datastore.schema}"."{recorder.events_table_name}"'
    with recorder.datastore.get_connection() as conn:
        conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        for start in range(0, events, 100_000):
            conn.execute(f"INSERT INTO {table} (originator_id, originator_version, topic, state) "
                         "SELECT gen_random_uuid(), 1, 'filler', decode(repeat('ab', 330), 'hex') "
                         "FROM generate_series(1, %s)", (min(100_000, events - start),))
            conn.commit()
            print(f"prefilled {min(events, start + 100_000)}/{events} events", file=sys.stderr, flush=True)
        conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = true)")
        conn.commit()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=3000, help="calls per thread (default %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="threads calling at once (default %(default)s)")
    p.add_argument("--gap-ms", type=float, default=0.0,
                   help="wait between dispatch and answer, the device's round trip (default %(default)s)")
    p.add_argument("--prefill", type=int, default=0,
                   help="events put in the log first, in SQL, so that VACUUM and ANALYZE (autovacuum's, when the "
                        "server runs it) take as long as on a log that size (default %(default)s)")
    p.add_argument("--host", default=os.environ.get("IOTCLOUD_TEST_PG_HOST", "127.0.0.1"))
    p.add_argument("--port", default=os.environ.get("IOTCLOUD_TEST_PG_PORT", "5432"))
    p.add_argument("--user", default=os.environ.get("IOTCLOUD_TEST_PG_USER", "postgres"))
    args = p.parse_args()

    database = f"bench_write_{uuid.uuid4().hex[:8]}"
    admin = f"host={args.host} port={args.port} user={args.user} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    env = {"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": database,
           "POSTGRES_HOST": args.host, "POSTGRES_PORT": str(args.port), "POSTGRES_USER": args.user,
           "POSTGRES_PASSWORD": "", "POSTGRES_POOL_SIZE": "2", "POSTGRES_MAX_OVERFLOW": "8",
           "APPLICATION_RECORDER_TOPIC": chained_recorder_topic("eventsourcing.postgres")}
    control = DeviceControl(env=env)
    try:
        if args.prefill:
            prefill(control, args.prefill)
        dispatch_ms: list[float] = []

        def calls(n: int) -> None:
            for i in range(n):
                started = time.perf_counter()
                command = control.dispatch(DEVICE, "get_status", None, None, None, by="api:bench")
                dispatch_ms.append((time.perf_counter() - started) * 1000)
                if args.gap_ms:
                    time.sleep(args.gap_ms / 1000)
                command.record_answer(i, {"status": "running"})
                control.record_later(command)

        calls(100)  # warm: pool, prepared statements
        dispatch_ms.clear()
        with psycopg.connect(admin, autocommit=True) as conn:
            pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,))]
        commits0 = commits(admin)
        cpu0, pg0, wall0 = time.process_time(), backend_cpu(pids), time.perf_counter()
        threads = [threading.Thread(target=calls, args=(args.calls,)) for _ in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        control.record_later(control.dispatch(DEVICE, "get_status", None, None, None, by="api:bench")).result(30)
        total = args.calls * args.threads
        cpu, pg, wall = time.process_time() - cpu0, backend_cpu(pids) - pg0, time.perf_counter() - wall0
        committed = commits(admin) - commits0 - 1
    finally:
        control.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
    quantiles = statistics.quantiles(dispatch_ms, n=1000)
    print(json.dumps({"calls": total, "threads": args.threads, "calls_per_s": round(total / wall, 1),
                      "process_cpu_ms_per_call": round(cpu * 1000 / total, 3),
                      "postgres_cpu_ms_per_call": round(pg * 1000 / total, 3),
                      "commits_per_call": round(committed / total, 3), "gap_ms": args.gap_ms,
                      "dispatch_p50_ms": round(quantiles[499], 3), "dispatch_p99_ms": round(quantiles[989], 3),
                      "dispatch_p999_ms": round(quantiles[998], 3), "dispatch_max_ms": round(max(dispatch_ms), 3),
                      # A commit that waited on a lock (VACUUM, ANALYZE) stands out from the disk's jitter.
                      "dispatches_over_50_ms": sum(ms > 50 for ms in dispatch_ms)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
