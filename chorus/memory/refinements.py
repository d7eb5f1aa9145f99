"""The refinement repository of the Divide-Verify-Refine loop, in SQLite.

When a response that failed a constraint is rewritten so that it passes, the pair (before,
after) is kept with the checker's feedback; later refinements of the same constraint type
retrieve the textually closest pairs (FTS5, bm25) as few-shot examples.

Several processes may share one file: WAL mode plus a busy timeout make writers wait for each
other instead of failing, and each write is one `BEGIN IMMEDIATE` transaction, so a process
killed midway loses at most the record it was writing. Every SQLite failure surfaces as a
`RepositoryError` that names the file and what to do, so the DVR loop can go on without
retrieval.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chorus.errors import RepositoryError
from chorus.files import read_text
from chorus.paths import chorus_home

_COLUMNS = ("id", "constraint_type", "params", "feedback", "before", "after", "instruction",
            "model", "adapter", "created_at", "uses", "last_used_at")
_SELECT = ", ".join(f'r."{column}"' for column in _COLUMNS)
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31, the last second a date can show
_MAX_QUERY_TOKENS = 64  # a whole response can be the query; bm25 needs only its words

# IF NOT EXISTS everywhere: several processes may create a new file at the same moment.
# The FTS index is an external-content table kept in step by triggers, so deletes and
# evictions remove their rows too; bumping `uses` touches no indexed column, no re-index.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS refinements (
    "id" INTEGER PRIMARY KEY,
    "key" TEXT NOT NULL UNIQUE,
    "constraint_type" TEXT NOT NULL,
    "params" TEXT NOT NULL,
    "feedback" TEXT NOT NULL DEFAULT '',
    "before" TEXT NOT NULL,
    "after" TEXT NOT NULL,
    "instruction" TEXT NOT NULL DEFAULT '',
    "model" TEXT NOT NULL DEFAULT '',
    "adapter" TEXT,
    "created_at" REAL NOT NULL,
    "uses" INTEGER NOT NULL DEFAULT 0,
    "last_used_at" REAL
);
CREATE INDEX IF NOT EXISTS refinements_type ON refinements ("constraint_type", "created_at");
CREATE INDEX IF NOT EXISTS refinements_eviction ON refinements ("uses", "created_at");
CREATE VIRTUAL TABLE IF NOT EXISTS refinements_fts USING fts5(
    "instruction", "feedback", "before",
    content='refinements', content_rowid='id', tokenize='porter unicode61');
CREATE TRIGGER IF NOT EXISTS refinements_fts_insert AFTER INSERT ON refinements BEGIN
    INSERT INTO refinements_fts (rowid, "instruction", "feedback", "before")
    VALUES (new."id", new."instruction", new."feedback", new."before");
END;
CREATE TRIGGER IF NOT EXISTS refinements_fts_delete AFTER DELETE ON refinements BEGIN
    INSERT INTO refinements_fts (refinements_fts, rowid, "instruction", "feedback", "before")
    VALUES ('delete', old."id", old."instruction", old."feedback", old."before");
END;
CREATE TRIGGER IF NOT EXISTS refinements_fts_update
AFTER UPDATE OF "instruction", "feedback", "before" ON refinements BEGIN
    INSERT INTO refinements_fts (refinements_fts, rowid, "instruction", "feedback", "before")
    VALUES ('delete', old."id", old."instruction", old."feedback", old."before");
    INSERT INTO refinements_fts (rowid, "instruction", "feedback", "before")
    VALUES (new."id", new."instruction", new."feedback", new."before");
END;
"""


class Refinement(BaseModel):
    """One successful rewrite: the failing text, the passing text, and why it failed."""

    id: int
    constraint_type: str
    params: dict[str, Any]
    feedback: str
    before: str
    after: str
    instruction: str
    model: str
    adapter: str | None
    created_at: float
    uses: int
    last_used_at: float | None


class _Incoming(BaseModel):
    """A record read back by `import_`: the id is the file's, not ours, so it is ignored."""

    model_config = ConfigDict(extra="ignore")

    constraint_type: str
    params: dict[str, Any]
    feedback: str = ""
    before: str
    after: str
    instruction: str = ""
    model: str = ""
    adapter: str | None = None
    # Times are seconds since 1970 that a date can show (1e400 or NaN would be stored and
    # then break every reader); uses fit SQLite's 64-bit integers.
    created_at: float | None = Field(None, ge=0, le=MAX_TIMESTAMP, allow_inf_nan=False)
    uses: int = Field(0, ge=0, le=2**62)
    last_used_at: float | None = Field(None, ge=0, le=MAX_TIMESTAMP, allow_inf_nan=False)

    @field_validator("params")
    @classmethod
    def _finite_json(cls, params: dict[str, Any]) -> dict[str, Any]:
        try:  # NaN and Infinity are not JSON: stored, they would not read back as written
            json.dumps(params, allow_nan=False)
        except ValueError as error:
            raise ValueError(f"params must be plain JSON ({error})") from None
        return params


@dataclass(frozen=True)
class ImportReport:
    added: int
    duplicates: int
    evicted: int


def default_repository_path() -> Path:
    return chorus_home() / "refinements.db"


def content_key(constraint_type: str, params: dict[str, Any], before: str, after: str) -> str:
    """The de-duplication key: the same rewrite of the same constraint is stored once."""
    canonical = json.dumps([constraint_type, params, before, after], sort_keys=True,
                           ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def fts_query(text: str) -> str | None:
    """Any text as a safe FTS5 query: its words, each quoted, OR-ed; None if it has no word.

    Quoting makes FTS syntax in user text (`"`, `*`, `AND`, `(`, `-`, `col:`) plain words."""
    words = list(dict.fromkeys(re.findall(r"[^\W_]+", text.lower())))[:_MAX_QUERY_TOKENS]
    return " OR ".join(f'"{word}"' for word in words) or None


def _explain(error: sqlite3.Error, path: Path, busy_timeout: float) -> RepositoryError:
    """A sqlite3 error as a RepositoryError that names the file and the fix."""
    name = getattr(error, "sqlite_errorname", "")
    text = str(error)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return RepositoryError(
            f"Refinement repository {path} stayed locked by another process for more than "
            f"{busy_timeout:g} s; retry when that process has finished")
    # OperationalError is a DatabaseError too, but means "cannot now", not "broken file".
    broken = isinstance(error, sqlite3.DatabaseError) and not isinstance(
        error, sqlite3.OperationalError)
    if broken or name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        return RepositoryError(
            f"{path} is not a usable refinement repository ({text}); move it aside "
            f"(mv '{path}' '{path}.broken') and a new one will be started")
    return RepositoryError(f"Cannot use refinement repository {path}: {text}")


class RefinementRepository:
    """Refinements in one SQLite file, de-duplicated by content, capped at `max_records`."""

    def __init__(self, path: str | Path, *, max_records: int = 5000, busy_timeout: float = 10.0):
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, not {max_records}")
        self.path = Path(path)
        self.max_records = max_records
        self.busy_timeout = busy_timeout
        # One connection shared by the caller's threads; the lock serialises them.
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RepositoryError(f"Cannot create the folder of {self.path}: {error}") from error
        with self._lock, self._sqlite_errors():
            self._open()

    def _open(self) -> None:
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves. A deferred transaction
        # that reads then writes can fail at once with SQLITE_BUSY, busy timeout or not.
        # `timeout` is SQLite's busy_timeout: writers wait for each other that long.
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                               check_same_thread=False)
        try:
            import sqlite_utils  # on use: it costs 0.2 s to import, and most commands never do

            self.db = sqlite_utils.Database(conn)
            self.db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            if "refinements_fts" not in self.db.table_names():
                self._create_schema()
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def __enter__(self) -> RefinementRepository:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writes -------------------------------------------------------------------------------

    def add(self, *, constraint_type: str, params: dict[str, Any], feedback: str, before: str,
            after: str, instruction: str = "", model: str = "", adapter: str | None = None) -> int:
        """Store one refinement; returns its id, the existing one's if it is a duplicate."""
        record = _Incoming(constraint_type=constraint_type, params=params, feedback=feedback,
                           before=before, after=after, instruction=instruction, model=model,
                           adapter=adapter)
        with self._write():
            new_id, _ = self._insert(record)
            # The new record is spared: else a full repository of used records never learns.
            self._evict(self.max_records, spare=new_id)
        return new_id

    def import_(self, path: str | Path, *, evict: bool = False) -> ImportReport:
        """Add the records of a JSONL file (as `export` writes).

        Every line is checked before anything is written, so a bad file imports nothing. An
        import that would take the repository over its cap is refused, unless `evict` lets
        the least used, then oldest, records go (which may be earlier ones)."""
        records = _read_jsonl(Path(path))
        added = evicted = 0
        with self._write():
            for record in records:
                added += self._insert(record)[1]
            total = self.db.execute("SELECT COUNT(*) FROM refinements").fetchone()[0]
            if total > self.max_records and not evict:
                raise RepositoryError(
                    f"Importing {added} new refinements would make {total}, over the cap of "
                    f"{self.max_records}; nothing was imported. Allow evicting the least "
                    "used ones (chorus memory import --evict), or import fewer")
            evicted = self._evict(self.max_records)
        return ImportReport(added=added, duplicates=len(records) - added, evicted=evicted)

    def prune(self, max_records: int | None = None) -> int:
        """Evict the least used, then the oldest, records down to the cap; returns how many."""
        cap = self.max_records if max_records is None else max_records
        if cap < 0:
            raise ValueError(f"max_records must not be negative, not {cap}")
        with self._write():
            return self._evict(cap)

    # -- reads --------------------------------------------------------------------------------

    def search(self, text: str, *, constraint_type: str | None = None,
               k: int = 3, touch: bool = True) -> list[Refinement]:
        """The k records closest to `text` (bm25 over instruction, feedback and before).

        With a type, too few text matches are topped up with that type's most used and newest
        records. With `touch`, returned records count as used: `uses` and `last_used_at` go
        up (a frozen repository, as in an evaluation, is searched without touching)."""
        if k <= 0:
            return []
        with self._write():
            rows = self._matches(text, constraint_type, k)
            if constraint_type is not None and len(rows) < k:
                rows += self._fill(constraint_type, [row["id"] for row in rows], k - len(rows))
            now = time.time()
            for row in rows if touch else ():
                self.db.execute('UPDATE refinements SET "uses" = "uses" + 1, '
                                '"last_used_at" = ? WHERE "id" = ?', [now, row["id"]])
                row.update(uses=row["uses"] + 1, last_used_at=now)
        return [_refinement(row) for row in rows]

    def get(self, refinement_id: int) -> Refinement:
        rows = self._select('WHERE r."id" = ?', [refinement_id])
        if not rows:
            raise RepositoryError(f"No refinement {refinement_id} in {self.path}")
        return _refinement(rows[0])

    def list(self, *, constraint_type: str | None = None, limit: int = 50) -> list[Refinement]:
        """Newest first."""
        where, args = ('WHERE r."constraint_type" = ?', [constraint_type]) \
            if constraint_type is not None else ("", [])
        rows = self._select(f'{where} ORDER BY r."created_at" DESC, r."id" DESC LIMIT ?',
                            [*args, limit])
        return [_refinement(row) for row in rows]

    def __len__(self) -> int:
        with self._lock, self._sqlite_errors():
            return self.db.execute("SELECT COUNT(*) FROM refinements").fetchone()[0]

    def export(self, path: str | Path) -> int:
        """Write every record as one JSON object a line, oldest first; returns how many."""
        rows = self._select('ORDER BY r."id"', [])
        try:
            with open(path, "w", encoding="utf-8") as file:
                for row in rows:
                    file.write(_refinement(row).model_dump_json() + "\n")
        except OSError as error:
            raise RepositoryError(f"Cannot write {path}: {error}") from error
        return len(rows)

    # -- internals ----------------------------------------------------------------------------

    @contextmanager
    def _sqlite_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as error:
            raise _explain(error, self.path, self.busy_timeout) from error

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One IMMEDIATE transaction: it takes the write lock first (waiting up to the busy
        timeout) and commits or rolls back whole, so no write is ever half done."""
        with self._lock, self._sqlite_errors(), self._transaction():
            yield

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.conn.in_transaction:
                self.db.conn.execute("ROLLBACK")
            raise

    def _create_schema(self) -> None:
        with self._transaction():
            for statement in _statements(_SCHEMA):
                self.db.execute(statement)

    def _insert(self, record: _Incoming) -> tuple[int, bool]:
        """(id, True) for a new record, (existing id, False) for a duplicate."""
        key = content_key(record.constraint_type, record.params, record.before, record.after)
        existing = self.db.execute('SELECT "id" FROM refinements WHERE "key" = ?',
                                   [key]).fetchone()
        if existing:
            return existing[0], False
        cursor = self.db.execute(
            'INSERT INTO refinements ("key", "constraint_type", "params", "feedback", "before", '
            '"after", "instruction", "model", "adapter", "created_at", "uses", "last_used_at") '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [key, record.constraint_type, json.dumps(record.params, sort_keys=True,
                                                     ensure_ascii=False),
             record.feedback, record.before, record.after, record.instruction, record.model,
             record.adapter, record.created_at or time.time(), record.uses,
             record.last_used_at])
        return cursor.lastrowid, True

    def _evict(self, cap: int, spare: int | None = None) -> int:
        """Delete the least used, then oldest, records beyond `cap` (the triggers keep FTS in
        step). Runs inside the caller's transaction."""
        excess = self.db.execute("SELECT COUNT(*) FROM refinements").fetchone()[0] - cap
        if excess <= 0:
            return 0
        return self.db.execute(
            'DELETE FROM refinements WHERE "id" IN (SELECT "id" FROM refinements '
            'WHERE "id" IS NOT ? ORDER BY "uses", "created_at", "id" LIMIT ?)',
            [spare, excess]).rowcount

    def _matches(self, text: str, constraint_type: str | None, k: int) -> list[dict[str, Any]]:
        query = fts_query(text)
        if query is None:
            return []
        type_filter = 'AND r."constraint_type" = ?' if constraint_type is not None else ""
        return self._rows(
            f"SELECT {_SELECT} FROM refinements_fts JOIN refinements r "
            f'ON r."id" = refinements_fts.rowid WHERE refinements_fts MATCH ? {type_filter} '
            "ORDER BY bm25(refinements_fts), r.\"id\" DESC LIMIT ?",
            [query, *([constraint_type] if constraint_type is not None else []), k])

    def _fill(self, constraint_type: str, taken: list[int], n: int) -> list[dict[str, Any]]:
        placeholders = ", ".join("?" for _ in taken)
        return self._rows(
            f'SELECT {_SELECT} FROM refinements r WHERE r."constraint_type" = ? '
            f'AND r."id" NOT IN ({placeholders}) '
            'ORDER BY r."uses" DESC, r."created_at" DESC, r."id" DESC LIMIT ?',
            [constraint_type, *taken, n])

    def _select(self, clause: str, args: list[Any]) -> list[dict[str, Any]]:
        with self._lock, self._sqlite_errors():
            return self._rows(f"SELECT {_SELECT} FROM refinements r {clause}", args)

    def _rows(self, sql: str, args: list[Any]) -> list[dict[str, Any]]:
        cursor = self.db.execute(sql, args)
        return [dict(zip(_COLUMNS, row, strict=True)) for row in cursor.fetchall()]


def _read_jsonl(path: Path) -> list[_Incoming]:
    lines = read_text(path, "refinements file", RepositoryError).splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(_Incoming.model_validate_json(line))
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise RepositoryError(f"{path} line {number}: "
                                  f"{where + ': ' if where else ''}{problem['msg']}") from None
    return records


def _refinement(row: dict[str, Any]) -> Refinement:
    return Refinement(**{**row, "params": json.loads(row["params"])})


def _statements(script: str) -> Iterator[str]:
    """Split a script into statements; a trigger's body ends at `END;`, not at its first `;`."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""
