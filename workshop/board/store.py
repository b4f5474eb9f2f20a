"""The board's events in SQLite (`<workshop dir>/board/board.sqlite`): kept across hub restarts, each counted once.

An event is keyed by its learner and its id, so a resent event (the same id) is stored once, and no learner can
take an id another learner will use.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from workshop.board.events import Event

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    learner TEXT NOT NULL,
    id TEXT NOT NULL,
    exercise TEXT NOT NULL,
    check_name TEXT NOT NULL,
    part TEXT NOT NULL,
    passed INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    hint TEXT,
    received REAL NOT NULL,
    PRIMARY KEY (learner, id)
);
CREATE INDEX IF NOT EXISTS events_received ON events (received);
"""


@dataclass(frozen=True)
class StoredEvent:
    learner: str
    event: Event
    received: float


class Store:
    def __init__(self, path: Path | str) -> None:
        self.db = sqlite3.connect(str(path), isolation_level=None)
        # WAL: a write is one append, and the export reads while checks keep arriving.
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def add(self, learner: str, event: Event, received: float | None = None) -> StoredEvent | None:
        """Store `event`; None when this learner already sent an event with its id."""
        received = time.time() if received is None else received
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (learner, event.id, event.exercise, event.check, event.part, int(event.passed), event.duration_s, event.hint, received),
        )
        return StoredEvent(learner, event, received) if cursor.rowcount == 1 else None

    def events(self, learner: str | None = None) -> Iterator[StoredEvent]:
        """Every event (or one learner's), in the order they arrived."""
        where, args = ("WHERE learner = ?", (learner,)) if learner is not None else ("", ())
        for row in self.db.execute(f"SELECT * FROM events {where} ORDER BY received, rowid", args):
            name, event_id, exercise, check, part, passed, duration, hint, received = row
            yield StoredEvent(name, Event(event_id, exercise, check, part, bool(passed), duration, hint), received)

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM events").fetchone()[0]

    def close(self) -> None:
        self.db.close()
