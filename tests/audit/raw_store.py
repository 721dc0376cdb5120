"""Direct SQL on an application's stored events and chain, as someone with write access to the
database would tamper with them (no application code in between)."""

from __future__ import annotations

import sqlite3

import psycopg

from iotcloud.config import Settings


class RawStore:
    """`events` and `chain` are the table names; `id` the notification-id column; `?` placeholders."""

    def __init__(self, settings: Settings, application: str):
        self.sqlite = settings.persistence_module == "eventsourcing.sqlite"
        if self.sqlite:
            self.connection = sqlite3.connect(settings.state_dir / f"{application.lower()}.events.sqlite3",
                                              isolation_level=None)
            self.events, self.id = "stored_events", "rowid"
        else:
            pg = settings.postgres
            self.connection = psycopg.connect(dbname=pg["POSTGRES_DBNAME"], host=pg["POSTGRES_HOST"],
                                              port=pg["POSTGRES_PORT"], user=pg["POSTGRES_USER"], autocommit=True)
            self.events, self.id = f'{pg["POSTGRES_SCHEMA"]}.{application.lower()}_events', "notification_id"
        self.chain = f"{self.events}_chain"

    def execute(self, statement: str, params=()) -> list[tuple]:
        statement = statement.format(events=self.events, chain=self.chain, id=self.id)
        if not self.sqlite:
            statement = statement.replace("?", "%s")
        cursor = self.connection.execute(statement, params)
        return list(cursor.fetchall()) if cursor.description else []

    def row(self, notification_id: int) -> tuple:
        """(originator_id, originator_version, topic, state) as stored."""
        found = self.execute("SELECT originator_id, originator_version, topic, state FROM {events} WHERE {id} = ?",
                             (notification_id,))
        originator_id, version, topic, state = found[0]
        return originator_id, version, topic, bytes(state)

    def set(self, notification_id: int, column: str, value) -> None:
        self.execute(f"UPDATE {{events}} SET {column} = ? WHERE {{id}} = ?", (value, notification_id))

    def renumber(self, notification_id: int, new_id: int) -> None:
        self.execute("UPDATE {events} SET {id} = ? WHERE {id} = ?", (new_id, notification_id))

    def ids(self) -> list[int]:
        return [row[0] for row in self.execute("SELECT {id} FROM {events} ORDER BY {id}")]

    def close(self) -> None:
        self.connection.close()
