"""A write-ahead journal of tool calls: each call is run at most once per graph task.

LangGraph checkpoints a tools node only after it returns; a process killed after a tool ran
but before that write would run the tool again on resume, and one killed during the tool
would too. The journal notes a call before it runs and its observation after, keyed by the
thread and LangGraph's task id (the same task id on resume). On resume a finished call's
observation is replayed, and a call that started but never finished is reported to the
agents as interrupted, not run again: it may already have had its effect.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from chorus.errors import ChorusError


class ToolJournal:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS tool_calls (thread_id TEXT NOT NULL, "
                "task_id TEXT NOT NULL, tool TEXT NOT NULL, arguments TEXT NOT NULL, "
                "started_at REAL NOT NULL, observation TEXT, PRIMARY KEY (thread_id, task_id))")
        except sqlite3.Error as error:
            raise ChorusError(f"Cannot open the tool journal {self.path} ({error}): is it a "
                              "file chorus made, and writable?") from error

    def recorded(self, thread_id: str, task_id: str) -> tuple[bool, dict[str, Any] | None]:
        """(started, observation): (False, None) for a call not seen before, (True, None)
        for one that started and never finished."""
        with self._lock:
            row = self.db.execute("SELECT observation FROM tool_calls WHERE thread_id = ? "
                                  "AND task_id = ?", [thread_id, task_id]).fetchone()
        if row is None:
            return False, None
        return True, (json.loads(row[0]) if row[0] is not None else None)

    def start(self, thread_id: str, task_id: str, tool: str, arguments: dict[str, Any]) -> None:
        with self._lock:  # autocommit: on disk before the tool runs
            self.db.execute("INSERT OR REPLACE INTO tool_calls VALUES (?, ?, ?, ?, ?, NULL)",
                            [thread_id, task_id, tool, json.dumps(arguments, default=str),
                             time.time()])

    def finish(self, thread_id: str, task_id: str, observation: dict[str, Any]) -> None:
        with self._lock:
            self.db.execute("UPDATE tool_calls SET observation = ? WHERE thread_id = ? "
                            "AND task_id = ?", [json.dumps(observation), thread_id, task_id])
