"""The embedded read store writes each write command in one SQLite transaction
(iotcloud/read_store_server.py): a projector batch of many documents is one commit in the WAL, not
one per document, and still behaves as MongoDB's unordered writes do: a document that fails fails
alone, and the others are written."""

from __future__ import annotations

import struct
from pathlib import Path

import pymongo
import pytest
from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError

from iotcloud.read_store_server import MAX_SHARED_WRITES

WAL_HEADER, FRAME_HEADER = 32, 24


def commits(wal: Path) -> int:
    """Commit frames in a SQLite WAL file: a frame's header holds, at bytes 4-7, the database's size
    in pages after the commit it ends, and 0 in every other frame."""
    data = wal.read_bytes()
    page_size = struct.unpack(">I", data[8:12])[0]
    frame = FRAME_HEADER + page_size
    salts = data[16:24]  # frames left from before the last checkpoint carry other salts
    return sum(1 for at in range(WAL_HEADER, len(data) - frame + 1, frame)
               if data[at + 8:at + 16] == salts and struct.unpack(">I", data[at + 4:at + 8])[0])


@pytest.fixture
def read_store(own_read_store, tmp_path):
    with pymongo.MongoClient(own_read_store, serverSelectionTimeoutMS=10_000) as client:
        collection = client["batches"]["history"]
        collection.create_index([("owner", 1), ("key", -1)])
        collection.insert_one({"_id": "first", "owner": "u", "key": "0"})
        yield collection, tmp_path / "batches.db-wal"


def test_a_batch_of_inserts_is_one_commit(read_store):
    history, wal = read_store
    before = commits(wal)
    history.bulk_write([InsertOne({"_id": f"call-{n}", "owner": f"u{n % 3}", "key": f"{n:017d}"}) for n in range(12)],
                       ordered=False)
    assert commits(wal) - before == 1
    assert history.count_documents({"_id": {"$regex": "^call-"}}) == 12


def test_a_batch_of_updates_is_one_commit(read_store):
    history, wal = read_store
    history.bulk_write([InsertOne({"_id": f"call-{n}", "owner": "u", "key": f"{n:017d}", "position": 1})
                        for n in range(8)])
    before = commits(wal)
    history.bulk_write([UpdateOne({"_id": f"call-{n}", "position": {"$lt": 2}}, {"$set": {"state": "done", "position": 2}},
                                  upsert=True) for n in range(8)], ordered=False)
    assert commits(wal) - before == 1
    assert history.count_documents({"state": "done", "position": 2}) == 8


def test_a_duplicate_in_a_batch_fails_alone(read_store):
    history, _ = read_store
    with pytest.raises(BulkWriteError) as failed:
        history.bulk_write([InsertOne({"_id": "before", "owner": "u", "key": "1"}),
                            InsertOne({"_id": "first", "owner": "u", "key": "2"}),
                            InsertOne({"_id": "after", "owner": "u", "key": "3"})], ordered=False)
    assert [(error["index"], error["code"]) for error in failed.value.details["writeErrors"]] == [(1, 11000)]
    assert failed.value.details["nInserted"] == 2
    assert sorted(doc["_id"] for doc in history.find()) == ["after", "before", "first"]
    assert history.find_one({"_id": "first"})["key"] == "0"


def test_a_catch_up_batch_commits_in_small_steps(read_store):
    """A batch over the bound keeps SQLite's commit per document, so the WAL never holds megabytes
    waiting for one commit."""
    history, wal = read_store
    before = commits(wal)
    history.bulk_write([InsertOne({"_id": f"call-{n}", "owner": "u", "key": f"{n:017d}"})
                        for n in range(MAX_SHARED_WRITES + 1)], ordered=False)
    assert commits(wal) - before > 1
    assert history.count_documents({"_id": {"$regex": "^call-"}}) == MAX_SHARED_WRITES + 1
