"""The PostgreSQL application recorder that links every event it inserts into the chain, in the same
transaction.

eventsourcing's recorder takes `LOCK TABLE <events> IN EXCLUSIVE MODE` before each insert, so
inserting transactions (from any thread or process) run one at a time and get increasing
notification ids. The link is written after the insert, still under that lock, so the head read
here is the last committed link and no one else can append until this transaction ends: the chain
follows notification order across processes, and survives the group commit (one transaction, one
head read, many links)."""

from __future__ import annotations

from eventsourcing.persistence import ProgrammingError
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from commands.chain.links import ChainWriter, Link


class ChainedPostgresRecorder(ChainWriter, PostgresApplicationRecorder):
    def __init__(self, datastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        if datastore.enable_db_functions:
            # That path inserts through a database function and skips the hook that writes the links.
            raise ProgrammingError("the chained event store needs POSTGRES_ENABLE_DB_FUNCTIONS off")
        self.chain_table_name = f"{events_table_name}_chain"
        self.check_identifier_length(self.chain_table_name)
        names = {"schema": Identifier(self.datastore.schema), "events": Identifier(self.events_table_name),
                 "chain": Identifier(self.chain_table_name)}
        self.sql_create_statements.append(SQL(
            "CREATE TABLE IF NOT EXISTS {schema}.{chain} (notification_id bigint PRIMARY KEY, "
            "previous_id bigint NOT NULL, originator_id text NOT NULL, originator_version bigint NOT NULL, "
            "hash bytea NOT NULL)").format(**names))
        self._head_query = SQL("SELECT notification_id, hash FROM {schema}.{chain} "
                         "ORDER BY notification_id DESC LIMIT 1").format(**names)
        self._insert_links = SQL("INSERT INTO {schema}.{chain} SELECT * FROM unnest("
                                 "%s::bigint[], %s::bigint[], %s::text[], %s::bigint[], %s::bytea[])").format(**names)
        self._lock = SQL("LOCK TABLE {schema}.{events} IN EXCLUSIVE MODE").format(**names)
        self._rows = SQL("SELECT notification_id, replace(originator_id::text, '-', ''), originator_version, topic, "
                         "state FROM {schema}.{events} WHERE notification_id > %s "
                         "ORDER BY notification_id LIMIT %s").format(**names)
        self._links = SQL("SELECT * FROM {schema}.{chain} WHERE notification_id > %s "
                          "AND notification_id <= %s ORDER BY notification_id").format(**names)
        self._positions = SQL("SELECT notification_id FROM {schema}.{chain} "
                              "WHERE originator_id = %s AND originator_version = %s").format(**names)
        self._mentioning = SQL("SELECT DISTINCT replace(originator_id::text, '-', '') FROM {schema}.{events} "
                               "WHERE topic = %s AND position(%s::bytea in state) > 0").format(**names)
        self._of_one = SQL("SELECT notification_id, replace(originator_id::text, '-', ''), originator_version, "
                           "topic, state FROM {schema}.{events} WHERE originator_id = %s AND originator_version > %s "
                           "AND originator_version <= %s ORDER BY originator_version").format(**names)

    def _fetch_ids_after_insert_events(self, curs, stored_events, **kwargs):
        notification_ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        self._link_inserted(curs, notification_ids, stored_events)  # still under the table lock
        return notification_ids

    def _head(self, curs) -> tuple[int, bytes] | None:
        curs.execute(self._head_query, prepare=True)
        head = curs.fetchone()
        return (head["notification_id"], bytes(head["hash"])) if head else None

    def _write_links(self, curs, links: list[Link]) -> None:
        curs.execute(self._insert_links, [list(column) for column in zip(*links)], prepare=True)

    def _rows_after(self, curs, after: int, limit: int) -> list[tuple]:
        curs.execute(self._rows, (after, limit))
        return [tuple(row.values()) for row in curs.fetchall()]

    def _take_write_lock(self, curs) -> None:
        curs.execute(self._lock)

    # -- reading, for verification and audit ----------------------------------------------------

    def _select(self, statement, params) -> list[tuple]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement, params, prepare=True, binary=True)  # bytea as bytes, not hex text
            return curs.fetchall()

    def stored_rows(self, after: int, limit: int) -> list[tuple]:
        """(notification id, originator id as text, version, topic, state) after `after`, in log order."""
        return [(n, o, v, t, bytes(s)) for n, o, v, t, s in self._select(self._rows, (after, limit))]

    def links(self, after: int, upto: int | None) -> list[Link]:
        return [Link(n, p, o, v, h) for n, p, o, v, h in
                self._select(self._links, (after, 2**62 if upto is None else upto))]

    def link_positions(self, originator_id: str, version: int) -> list[int]:
        return [row[0] for row in self._select(self._positions, (originator_id, version))]

    def originators_mentioning(self, topic: str, needle: str) -> list[str]:
        """Aggregates whose event of `topic` contains `needle` in its stored state (a scan in SQL)."""
        return [row[0] for row in self._select(self._mentioning, (topic, needle.encode()))]

    def positioned_events(self, originator_id: str, gt: int | None = None, lte: int | None = None) -> list[tuple]:
        """(notification id, originator id, version, topic, state) of one aggregate, by version."""
        return [(n, o, v, t, bytes(s)) for n, o, v, t, s in
                self._select(self._of_one, (originator_id, -1 if gt is None else gt, 2**62 if lte is None else lte))]
