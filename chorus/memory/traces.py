"""Run traces in SQLite: one row per run, one row per agent or tool step.

Each write is its own transaction, so a run killed midway keeps every step it finished.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from chorus.errors import ChorusError


class TraceStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Graph nodes run in LangGraph's worker threads; one connection, one lock.
        self._lock = threading.Lock()
        try:
            import sqlite_utils  # on use: it costs 0.2 s to import

            self.db = sqlite_utils.Database(sqlite3.connect(self.path, check_same_thread=False))
            self.db.execute("PRAGMA journal_mode=WAL")  # readers never block the running graph
            self.db["runs"].create({"run_id": str, "thread_id": str, "graph": str, "input": str,
                                    "answer": str, "status": str, "started_at": float,
                                    "finished_at": float, "resumed_by": str},
                                   pk="run_id", if_not_exists=True)
            self.db["steps"].create({"id": int, "run_id": str, "seq": int, "node": str,
                                     "agent": str, "adapter": str, "kind": str,
                                     "prompt_tokens": int, "new_tokens": int, "latency_s": float,
                                     "constraint": str, "output": str, "created_at": float},
                                    pk="id", foreign_keys=[("run_id", "runs")], if_not_exists=True)
            self.db["steps"].create_index(["run_id", "seq"], if_not_exists=True)
            if "resumed_by" not in self.db["runs"].columns_dict:  # stores from before the column
                self.db["runs"].add_column("resumed_by", str)
        except sqlite3.Error as error:
            raise ChorusError(f"Cannot open the trace store {self.path} ({error}): is it a "
                              "file chorus made, and writable?") from error

    def start_run(self, *, thread_id: str, graph: str, task: str) -> str:
        run_id = uuid.uuid4().hex[:12]
        with self._lock, self.db.conn:
            self.db["runs"].insert({"run_id": run_id, "thread_id": thread_id, "graph": graph,
                                    "input": task, "status": "running",
                                    "started_at": time.time()})
        return run_id

    def finish_run(self, run_id: str, *, answer: str | None, status: str) -> None:
        with self._lock, self.db.conn:
            self.db["runs"].update(run_id, {"answer": answer, "status": status,
                                            "finished_at": time.time()})

    def mark_killed(self, thread_id: str, *, resumed_by: str | None,
                    except_run: str) -> None:
        """Runs of `thread_id` still marked running (their process died) become `killed`,
        linked to the run that resumed them, if one did."""
        with self._lock, self.db.conn:
            self.db.execute(
                "UPDATE runs SET status = 'killed', resumed_by = ? WHERE thread_id = ? "
                "AND status = 'running' AND run_id != ?", [resumed_by, thread_id, except_run])

    def add_step(self, run_id: str, *, node: str, kind: str, output: Any,
                 agent: str | None = None, adapter: str | None = None,
                 prompt_tokens: int = 0, new_tokens: int = 0, latency_s: float = 0.0,
                 constraint: str | None = None) -> None:
        text = output if isinstance(output, str) else json.dumps(output, default=str)
        with self._lock, self.db.conn:
            seq = self.db.execute("SELECT COUNT(*) FROM steps WHERE run_id = ?",
                                  [run_id]).fetchone()[0]
            self.db["steps"].insert({
                "run_id": run_id, "seq": seq, "node": node, "agent": agent, "adapter": adapter,
                "kind": kind, "prompt_tokens": prompt_tokens, "new_tokens": new_tokens,
                "latency_s": latency_s, "constraint": constraint, "output": text,
                "created_at": time.time()})

    def run(self, run_id: str) -> dict[str, Any]:
        rows = list(self.db["runs"].rows_where("run_id = ? OR run_id LIKE ?",
                                               [run_id, f"{run_id}%"]))
        if len(rows) != 1:
            raise ChorusError(f"No run '{run_id}' in {self.path}" if not rows else
                              f"'{run_id}' matches {len(rows)} runs; give more characters")
        return rows[0]

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        return list(self.db["steps"].rows_where("run_id = ?", [run_id], order_by="seq"))

    def recent_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        return list(self.db["runs"].rows_where(order_by="started_at desc", limit=limit))
