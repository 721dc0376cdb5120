"""One append on PostgreSQL through the chained recorder: what is stored is what the mapper produced, for
either originator-id column type, and the chain over it verifies."""

from __future__ import annotations

import uuid

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from commands.chain import chained_recorder_topic
from commands.chain.verify import verify
from tests.conftest import postgres_settings


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
