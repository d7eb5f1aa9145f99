"""Chat transcripts in SQLite: every message is committed as soon as it exists.

A user message is stored before its turn runs and the reply when the turn ends, so a
terminal closed or a process killed mid-turn loses nothing that was said; `--resume THREAD`
reads the conversation back.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from chorus.errors import ChorusError

SCHEMA = """
CREATE TABLE IF NOT EXISTS threads (
    id TEXT PRIMARY KEY, graph TEXT NOT NULL, model TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, thread TEXT NOT NULL REFERENCES threads(id),
    role TEXT NOT NULL, content TEXT NOT NULL, run_id TEXT, status TEXT NOT NULL,
    created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS messages_by_thread ON messages(thread, id);
"""


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "user" or "assistant"
    content: str
    run_id: str | None
    status: str  # "done", "stopped" (Ctrl-C), "failed", or "pending" for a user message


class Transcripts:
    def __init__(self, path: str | Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as error:
            raise ChorusError(f"Cannot open the chat transcripts {path}: {error}") from error

    def new_thread(self, graph: str, model: str) -> str:
        thread = uuid.uuid4().hex[:8]
        self._db.execute("INSERT INTO threads VALUES (?, ?, ?, ?)",
                         (thread, graph, model, time.time()))
        return thread

    def thread(self, thread: str) -> dict | None:
        row = self._db.execute("SELECT id, graph, model, created FROM threads WHERE id = ?",
                               (thread,)).fetchone()
        return dict(zip(("id", "graph", "model", "created"), row, strict=True)) if row else None

    def add(self, thread: str, role: str, content: str, *, run_id: str | None = None,
            status: str = "done") -> int:
        cursor = self._db.execute(
            "INSERT INTO messages (thread, role, content, run_id, status, created) "
            "VALUES (?, ?, ?, ?, ?, ?)", (thread, role, content, run_id, status, time.time()))
        return cursor.lastrowid

    def settle(self, message_id: int, status: str, run_id: str | None = None) -> None:
        self._db.execute("UPDATE messages SET status = ?, run_id = COALESCE(?, run_id) "
                         "WHERE id = ?", (status, run_id, message_id))

    def pending_user_message(self, thread: str) -> int:
        row = self._db.execute("SELECT id FROM messages WHERE thread = ? AND role = 'user' "
                               "AND status = 'pending' ORDER BY id DESC LIMIT 1",
                               (thread,)).fetchone()
        if row is None:
            raise ChorusError(f"Thread '{thread}' has no unfinished turn")
        return row[0]

    def messages(self, thread: str) -> list[ChatMessage]:
        rows = self._db.execute("SELECT role, content, run_id, status FROM messages "
                                "WHERE thread = ? ORDER BY id", (thread,)).fetchall()
        return [ChatMessage(*row) for row in rows]

    def recent_threads(self, limit: int = 10) -> list[dict]:
        rows = self._db.execute(
            "SELECT t.id, t.graph, t.created, COUNT(m.id), "
            "(SELECT content FROM messages WHERE thread = t.id ORDER BY id LIMIT 1) "
            "FROM threads t LEFT JOIN messages m ON m.thread = t.id "
            "GROUP BY t.id ORDER BY t.created DESC LIMIT ?", (limit,)).fetchall()
        return [dict(zip(("id", "graph", "created", "messages", "first"), row, strict=True))
                for row in rows]

    def close(self) -> None:
        self._db.close()
