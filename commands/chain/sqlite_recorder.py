"""The SQLite application recorder that links every event it inserts into the chain, in the same
transaction (SQLite serialises writers, and the link is written after the insert took the lock)."""

from __future__ import annotations

from eventsourcing.sqlite import SQLITE3_DEFAULT_LOCK_TIMEOUT, SQLiteApplicationRecorder

from commands.chain.links import ChainWriter, Link
from commands.sqlite_wal import switch_to_wal


class ChainedSQLiteRecorder(ChainWriter, SQLiteApplicationRecorder):
    def __init__(self, datastore, events_table_name: str = "stored_events"):
        self.chain_table_name = f"{events_table_name}_chain"  # the parent builds its statements from it
        pool = datastore.pool
        if not pool.is_sqlite_memory_mode:  # before the pool's first connection tries the switch itself
            switch_to_wal(pool.db_name, pool.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT)
        super().__init__(datastore, events_table_name)

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(),
                f"CREATE TABLE IF NOT EXISTS {self.chain_table_name} (notification_id INTEGER PRIMARY KEY, "
                "previous_id INTEGER NOT NULL, originator_id TEXT NOT NULL, originator_version INTEGER NOT NULL, "
                "hash BLOB NOT NULL)"]

    def _insert_events(self, c, stored_events, **kwargs):
        notification_ids = super()._insert_events(c, stored_events, **kwargs)
        # The inserts above hold the write lock: no other writer can slip in between them and the head.
        self._link_inserted(c, notification_ids, stored_events)
        return notification_ids

    def _head(self, c) -> tuple[int, bytes] | None:
        c.execute(f"SELECT notification_id, hash FROM {self.chain_table_name} ORDER BY notification_id DESC LIMIT 1")
        head = c.fetchone()
        return (head[0], head[1]) if head else None

    def _write_links(self, c, links: list[Link]) -> None:
        c.executemany(f"INSERT INTO {self.chain_table_name} VALUES (?,?,?,?,?)", links)

    def _take_write_lock(self, c) -> None:
        c.execute(f"DELETE FROM {self.chain_table_name} WHERE notification_id < 0")  # a write takes SQLite's lock

    # -- reading, for verification and audit ----------------------------------------------------

    def _rows_after(self, c, after: int, limit: int) -> list[tuple]:
        c.sqlite_cursor.row_factory = None  # plain tuples: verification reads every row
        c.execute(f"SELECT rowid, originator_id, originator_version, topic, state FROM {self.events_table_name} "
                  "WHERE rowid > ? ORDER BY rowid LIMIT ?", (after, limit))
        return c.fetchall()

    def stored_rows(self, after: int, limit: int) -> list[tuple]:
        """(notification id, originator id as text, version, topic, state) after `after`, in log order."""
        with self.datastore.transaction(commit=False) as c:
            return self._rows_after(c, after, limit)

    def links(self, after: int, upto: int | None) -> list[Link]:
        statement = f"SELECT * FROM {self.chain_table_name} WHERE notification_id > ? "
        params: tuple = (after,)
        if upto is not None:
            statement, params = statement + "AND notification_id <= ? ", (after, upto)
        with self.datastore.transaction(commit=False) as c:
            c.sqlite_cursor.row_factory = None
            c.execute(statement + "ORDER BY notification_id", params)
            return list(map(Link._make, c.fetchall()))

    def link_positions(self, originator_id: str, version: int) -> list[int]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT notification_id FROM {self.chain_table_name} "
                      "WHERE originator_id = ? AND originator_version = ?", (originator_id, version))
            return [row[0] for row in c.fetchall()]

    def originators_mentioning(self, topic: str, needle: str) -> list[str]:
        """Aggregates whose event of `topic` contains `needle` in its stored state (a scan in SQL)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT DISTINCT originator_id FROM {self.events_table_name} "
                      "WHERE topic = ? AND instr(state, ?) > 0", (topic, needle.encode()))
            return [row[0] for row in c.fetchall()]

    def positioned_events(self, originator_id: str, gt: int | None = None, lte: int | None = None) -> list[tuple]:
        """(notification id, originator id, version, topic, state) of one aggregate, by version."""
        statement = (f"SELECT rowid, originator_id, originator_version, topic, state FROM {self.events_table_name} "
                     "WHERE originator_id = ? AND originator_version > ? AND originator_version <= ? "
                     "ORDER BY originator_version")
        with self.datastore.transaction(commit=False) as c:
            c.execute(statement, (originator_id, -1 if gt is None else gt, 2**62 if lte is None else lte))
            return [tuple(row) for row in c.fetchall()]
