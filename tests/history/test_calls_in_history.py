"""A device call's history document is also its status (GET /v1/commands/{id}) and what the gateway
recovers open calls from: retention never trims an open call, that query uses an index, and the
commands read model it replaced is dropped from stores an earlier version wrote."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from pymongo import MongoClient

from projections.history import HistoryProjection, history_key
from projections.runner import retire_read_models
from queries.device_commands import OPEN, CommandQueries
from queries.read_models import CATALOGUE, CHECKPOINTS, HISTORY, ReadModelCatalogue, collection_name
from tests.history.test_history_read_model import index_used


@pytest.fixture
def db(mongo_uri):
    client = MongoClient(mongo_uri, tz_aware=True)
    name = f"calls_{uuid.uuid4().hex[:8]}"
    yield client[name]
    client.drop_database(name)
    client.close()


def call_document(state: str, requested: float, owner: str = "alice") -> dict:
    command_id = str(uuid.uuid4())
    return {"_id": command_id, "key": history_key(requested, command_id), "event": "command",
            "command_id": command_id, "owner": owner, "device_id": "d" * 40, "device_name": "lamp",
            "api": "get_status", "request": {"verbose": True}, "state": state, "timeout": 5.0,
            "actor": f"user:{owner}", "correlation_id": None, "requested_at": "2026-11-01T10:00:00.000001Z",
            "expires_at": "2026-11-01T10:01:00.000001Z", "sent_at": None, "completed_at": None,
            "result": None, "error": None, "answer": None, "latency_ms": None, "position": 1}


def test_retention_never_trims_a_call_that_is_still_open(db):
    history = db[collection_name(HISTORY, 1)]
    long_ago = dt.datetime.now().timestamp() - 10 * 86400
    documents = {state: call_document(state, long_ago) for state in ("queued", "sent", "succeeded", "expired")}
    history.insert_many(list(documents.values()))
    assert HistoryProjection(retention_days=1).trim(history) == 2
    assert {doc["state"] for doc in history.find({})} == {"queued", "sent"}
    open_ids = CommandQueries(db).open_command_ids()
    assert sorted(open_ids) == sorted(documents[s]["_id"] for s in ("queued", "sent"))


def test_a_calls_status_is_read_from_its_history_document_by_its_owner_only(db):
    history = db[collection_name(HISTORY, 1)]
    doc = call_document("sent", dt.datetime.now().timestamp())
    history.insert_one(doc)
    status = CommandQueries(db).get_command("alice", doc["_id"])
    assert status["status"] == "sent" and status["params"] == {"verbose": True}
    assert status["requested_by"] == "user:alice" and status["command_id"] == doc["_id"]
    assert status["expires_at"] == dt.datetime(2026, 11, 1, 10, 1, 0, 1, tzinfo=dt.timezone.utc)
    assert set(status) == {"command_id", "device_id", "owner", "device_name", "api", "params", "status", "timeout",
                           "expires_at", "requested_at", "requested_by", "correlation_id", "sent_at",
                           "completed_at", "result", "error"}
    from commands.device_control import CommandNotFound
    with pytest.raises(CommandNotFound):
        CommandQueries(db).get_command("mallory", doc["_id"])


def test_the_open_calls_queries_search_the_state_index(recorded):
    recorder, *_ = recorded
    history = recorder.platform.history.collection()
    for query in OPEN:
        assert "state" in (index_used(history.find(query, {"_id": 1}).explain()) or "")


def test_the_retired_commands_read_model_is_dropped_and_nothing_else(db):
    for generation in (1, 2):
        db[collection_name("commands", generation)].insert_one({"_id": "x", "status": "sent"})
        db[CHECKPOINTS].insert_one({"_id": f"commands_g{generation}:DeviceControl",
                                    "collection": f"commands_g{generation}", "source": "DeviceControl", "position": 9})
    db[CATALOGUE].insert_one({"_id": "commands", "active": 2})
    db[collection_name(HISTORY, 1)].insert_one(call_document("sent", 1.0))
    catalogue = ReadModelCatalogue(db)
    catalogue.advance(HISTORY, 1, "DeviceControl", 5)
    assert sorted(retire_read_models(db)) == ["commands_g1", "commands_g2"]
    names = set(db.list_collection_names())
    assert not {"commands_g1", "commands_g2"} & names and collection_name(HISTORY, 1) in names
    assert [row["collection"] for row in ReadModelCatalogue(db).status()] == [collection_name(HISTORY, 1)]
    assert db[CATALOGUE].find_one({"_id": "commands"}) is None
    assert retire_read_models(db) == []  # nothing left to drop: a second start is a no-op
