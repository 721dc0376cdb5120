"""The PostgreSQL application recorder that links every event it inserts into the chain, in the same
transaction.

Appends take one lock per events table first, so inserting transactions (from any thread or process)
run one at a time and get increasing notification ids. The links are written under that lock, so the
head read there is the last committed link and no one else can append until this transaction ends:
the chain follows notification order across processes, and survives the group commit (one
transaction, one head read, many links).

That lock is a transaction-scoped advisory lock, not eventsourcing's `LOCK TABLE <events> IN
EXCLUSIVE MODE`: EXCLUSIVE conflicts with the SHARE UPDATE EXCLUSIVE lock that VACUUM and ANALYZE
hold for as long as they run, so every append (every device call) waited on each autovacuum and
autoanalyze of the log, up to the deadlock timeout after which PostgreSQL cancels a blocking
autovacuum (and so never finished vacuuming the log). The append also takes ROW EXCLUSIVE, which
its INSERT needs anyway and which conflicts with EXCLUSIVE: a transaction of the previous version
of this function, still running when a process replaced it, and the seal below are waited for.

The whole append (lock, notify, insert, head, links) is one server-side function called in one
statement: one round trip and one implicit transaction instead of eventsourcing's pipelined
BEGIN/LOCK/INSERT/sync, a head query and a COMMIT (17 socket waits per commit were measured). The
function hashes exactly as commands.chain.links.link_hash does; `verify` recomputes every link in
Python, so the two can never drift apart unnoticed (tests/audit)."""

from __future__ import annotations

import hashlib

from eventsourcing.persistence import InterfaceError, OperationalError, ProgrammingError
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier, Literal

from commands.chain.binary_arrays import bytea_array, int8_array, ready, text_array, uuid_array
from commands.chain.links import ChainWriter, Link


def append_lock_key(schema: str, events_table: str) -> tuple[int, int]:
    """The advisory lock every append to `schema.events_table` takes: two 32-bit keys, a keyspace apart
    from the 64-bit keys of leases (iotcloud.leases) and of table creation (below), so none can collide."""
    digest = hashlib.sha256(f"iotcloud-append:{schema}.{events_table}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True), int.from_bytes(digest[4:8], "big", signed=True)


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
        # The seal (links.ChainWriter.seal, once per store) locks appenders out with the table itself: it
        # conflicts with the ROW EXCLUSIVE every append takes, whichever version of the function runs.
        self._lock = SQL("LOCK TABLE {schema}.{events} IN EXCLUSIVE MODE").format(**names)
        originator_type = self.datastore.originator_id_type
        as_text = ("replace(r.originator_id::text, '-', '')" if originator_type == "uuid" else "r.originator_id::text")
        append = {**names, "append": Identifier(f"{events_table_name}_append"), "channel": Identifier(self.channel_name),
                  "originator_type": SQL(originator_type), "as_text": SQL(as_text),
                  "lock_timeout": SQL(str(int(self.datastore.lock_timeout))),
                  "append_lock": SQL(", ").join(map(Literal, append_lock_key(self.datastore.schema, events_table_name)))}
        self.sql_create_statements.append(SQL(
            "CREATE OR REPLACE FUNCTION {schema}.{append}(ids {originator_type}[], versions bigint[], "
            "topics text[], states bytea[]) RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$\n"
            "DECLARE\n"
            "  z constant bytea := '\\x00'::bytea;\n"
            "  prev_id bigint;\n"
            "  prev bytea;\n"
            "  origin text;\n"
            "  r record;\n"
            "BEGIN\n"
            "  SET LOCAL lock_timeout = '{lock_timeout}s';\n"
            "  PERFORM pg_advisory_xact_lock({append_lock});\n"
            "  LOCK TABLE {schema}.{events} IN ROW EXCLUSIVE MODE;\n"
            "  NOTIFY {channel};\n"
            "  SELECT c.notification_id, c.hash INTO prev_id, prev FROM {schema}.{chain} c "
            "ORDER BY c.notification_id DESC LIMIT 1;\n"
            "  IF NOT FOUND THEN prev_id := 0; prev := decode(repeat('00', 32), 'hex'); END IF;\n"
            "  FOR r IN WITH inserted AS (INSERT INTO {schema}.{events} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(ids, versions, topics, states) "
            "RETURNING notification_id, originator_id, originator_version, topic, state) "
            "SELECT * FROM inserted ORDER BY notification_id LOOP\n"
            "    origin := {as_text};\n"
            "    prev := sha256(prev || convert_to(r.notification_id::text, 'UTF8') || z || convert_to(origin, 'UTF8') "
            "|| z || convert_to(r.originator_version::text, 'UTF8') || z || convert_to(r.topic, 'UTF8') || z || r.state);\n"
            "    INSERT INTO {schema}.{chain} VALUES (r.notification_id, prev_id, origin, r.originator_version, prev);\n"
            "    prev_id := r.notification_id;\n"
            "    RETURN NEXT r.notification_id;\n"
            "  END LOOP;\n"
            "END;\n"
            "$BODY$").format(**append))
        # Processes that start together (compose, several replicas) create the tables and replace the
        # function at once; PostgreSQL fails one of two concurrent replaces ("tuple concurrently
        # updated"). The creating transactions take turns on this lock instead.
        self.sql_create_statements.insert(0, SQL("SELECT pg_advisory_xact_lock(hashtext({key}))").format(
            key=Literal(f"iotcloud-create:{self.datastore.schema}.{events_table_name}")))
        # Binary parameters and explicit types: the arrays are the bulk of a commit's client-side work, and
        # in text format every state is hex-escaped (measured: 132 -> 63 us to convert a two-event commit,
        # with the statement also rendered once instead of on every execute; bench/write_side.py). The
        # arrays are packed by hand (commands/chain/binary_arrays.py), not by psycopg's generic list dumper.
        self._append_call = SQL("SELECT * FROM {schema}.{append}(%b::{originator_type}[], %b::bigint[], "
                                "%b::text[], %b::bytea[])").format(**append)
        self._append_bytes: bytes | None = None
        self._pack_ids = uuid_array if originator_type == "uuid" else (lambda ids: text_array(map(str, ids)))
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

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events, **kwargs):
        """Appends and links `stored_events` in one statement (its own transaction); their notification ids."""
        if not stored_events:
            return []
        columns = (self._pack_ids([e.originator_id for e in stored_events]),
                   int8_array([e.originator_version for e in stored_events]),
                   text_array([e.topic for e in stored_events]), bytea_array([e.state for e in stored_events]))
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            if self._append_bytes is None:  # identifiers are quoted through a connection: once is enough
                self._append_bytes = self._append_call.as_bytes(conn)
            ready(conn)
            curs.execute(self._append_bytes, columns, prepare=True)
            return [row[0] for row in curs.fetchall()]

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
