"""The embedded read store checkpoints its SQLite WAL in small steps (iotcloud/read_store_server.py):
what it flushes at a time stays small however much is written, so a device call's commit in
PostgreSQL never waits behind megabytes of read-model pages on the same disk."""

from __future__ import annotations

import pymongo

from iotcloud.read_store_server import WAL_AUTOCHECKPOINT_PAGES

WAL_FRAME = 4096 + 24  # a page and its frame header
DEFAULT_CHECKPOINT_BYTES = 1000 * WAL_FRAME  # SQLite's default: the WAL grows to about 4 MB first


def test_the_wal_never_outgrows_a_small_checkpoint(own_read_store, tmp_path):
    with pymongo.MongoClient(own_read_store, serverSelectionTimeoutMS=10_000) as client:
        history = client["checkpoints"]["history"]
        history.create_index([("owner", 1), ("key", -1)])
        for n in range(1500):  # one write per request, as a quiet projector's: about 4,500 WAL frames
            history.insert_one({"_id": f"call-{n:05d}", "owner": f"user-{n % 7}", "key": f"{n:017d}",
                                "request": "x" * 2000})
        assert history.count_documents({}) == 1500
    wal = tmp_path / "checkpoints.db-wal"
    assert wal.exists()
    # The WAL file keeps its high-water mark: frames gathered before one checkpoint, plus one write.
    assert wal.stat().st_size <= (WAL_AUTOCHECKPOINT_PAGES + 20) * WAL_FRAME < DEFAULT_CHECKPOINT_BYTES / 2
