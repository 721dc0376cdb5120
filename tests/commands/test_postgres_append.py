"""One append on PostgreSQL through the chained recorder: what is stored is what the mapper produced, for
either originator-id column type, and the chain over it verifies."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from commands.chain import chained_recorder_topic
from commands.chain.verify import verify
from tests.conftest import postgres_settings

ROOT = Path(__file__).resolve().parents[2]


class Probe(Aggregate):
    @event("Noted")
    def note(self, text: str, blob: str) -> None:
        self.last = text


@pytest.mark.parametrize("id_type", ["uuid", "text"])
def test_appended_rows_are_the_mapped_events_and_their_chain_verifies(postgres_database, id_type):
    env = {"PERSISTENCE_MODULE": "eventsourcing.postgres", **postgres_settings(postgres_database),
           "POSTGRES_ORIGINATOR_ID_TYPE": id_type,
           "APPLICATION_RECORDER_TOPIC": chained_recorder_topic("eventsourcing.postgres")}
    app = Application(env=env)
    try:
        probes = [Probe(), Probe()]
        probes[0].note("ünïcödé ✓", "".join(map(chr, range(1, 256))))
        probes[1].note("", "")
        for i in range(40):
            probes[0].note(str(i), "x" * i)
        expected = [recording.notification for recording in app.save(*probes)]  # as the mapper stored them
        assert len(expected) == 44

        rows = app.recorder.stored_rows(0, 1000)
        assert [(uuid.UUID(o), v, t, s) for _, o, v, t, s in rows] == [
            (uuid.UUID(str(e.originator_id)), e.originator_version, e.topic, e.state) for e in expected]
        assert app.repository.get(probes[0].id).last == "39"
        verdict = verify(app.recorder)
        assert verdict.intact and verdict.events == len(expected)
    finally:
        app.close()


# A pool connects in the background: a connection may adapt its first query before the recorder's module
# (and with it the global registration of the packed arrays' dumpers) is imported.
EARLY_CONNECTION = """
import sys, uuid, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
conn.execute("SELECT 1")
from commands.chain.binary_arrays import ready, uuid_array
ids = [uuid.uuid4(), uuid.uuid4()]
try:
    conn.execute("SELECT %b::uuid[]", [uuid_array(ids)])
    print("sent without its dumper")
except psycopg.ProgrammingError:
    print("refused without its dumper")
ready(conn)
print("round trip", conn.execute("SELECT %b::uuid[]", [uuid_array(ids)]).fetchone()[0] == ids)
"""


def test_a_connection_older_than_the_module_is_made_ready(postgres_database):
    conninfo = " ".join(f"{key}={value}" for key, value in postgres_database.items())
    out = subprocess.run([sys.executable, "-c", EARLY_CONNECTION, conninfo], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["refused without its dumper", "round trip True"]
