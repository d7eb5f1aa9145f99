"""Which tools a request is about: BM25 over each tool's words, for catalogues too big to show.

Full JSON Schemas cost about 190 prompt tokens per tool, so a model cannot be shown a large
catalogue (40 tools fill a 4,096-token context, and a small CPU evaluates prompts at about
100 tokens/s). The index ranks tools by SQLite FTS5's BM25 over their name (split at `_`),
description and parameter names and descriptions, with the Porter stemmer; the agents are
then shown the best few. In memory, built in milliseconds.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from chorus.tools.registry import ToolRegistry
from chorus.tools.tool import Tool

_WORD = re.compile(r"[^\W_]+")
# Words that say nothing about which tool is meant, yet match almost every description.
_STOP = frozenset("""a about after all also am an and any are as at be been but by can could
did do does doing for from get give had has have how i i'm if in into is it its just let me
my need now of on or our please right s show so some than that the their them then there
these this to too up us want was we what when where which who why will with would you your
""".split())
# Column weights for bm25(): a word of the tool's name says more than one of a parameter's.
_WEIGHTS = (4.0, 2.0, 1.0)


def _parameter_text(schema: Any) -> str:
    """Names, descriptions and enum values of every parameter, nested ones included."""
    if isinstance(schema, list):
        return " ".join(_parameter_text(item) for item in schema)
    if not isinstance(schema, dict):
        return ""
    parts = []
    for name, spec in (schema.get("properties") or {}).items():
        parts.append(name.replace("_", " "))
        parts.append(_parameter_text(spec))
    for key in ("description", "title"):
        if isinstance(schema.get(key), str):
            parts.append(schema[key])
    if isinstance(schema.get("enum"), list):
        parts.extend(str(value) for value in schema["enum"])
    for key in ("items", "anyOf", "oneOf"):
        parts.append(_parameter_text(schema.get(key)))
    return " ".join(part for part in parts if part)


class ToolIndex:
    def __init__(self, tools: ToolRegistry):
        self.tools = tools
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute("CREATE VIRTUAL TABLE tool USING fts5(name, description, parameters, "
                         "tokenize='porter unicode61')")
        self._db.executemany("INSERT INTO tool (rowid, name, description, parameters) "
                             "VALUES (?, ?, ?, ?)",
                             [(row, item.name.replace("_", " "), item.description,
                               _parameter_text(item.parameters))
                              for row, item in enumerate(tools)])
        self._by_row = list(tools)

    def rank(self, request: str, limit: int, *,
             columns: tuple[str, ...] = ("name", "description", "parameters")) -> list[Tool]:
        """Up to `limit` tools, most relevant first; none when no word of the request matches
        a word of their `columns`."""
        words = sorted(set(self.words(request)))
        if not words or limit <= 0:
            return []
        query = " OR ".join(f'{{{" ".join(columns)}}} : "{word}"' for word in words)
        weights = ", ".join(map(str, _WEIGHTS))
        rows = self._db.execute(f"SELECT rowid FROM tool WHERE tool MATCH ? "
                                f"ORDER BY bm25(tool, {weights}) LIMIT ?",
                                (query, limit)).fetchall()
        return [self._by_row[row] for (row,) in rows]

    @staticmethod
    def words(request: str) -> list[str]:
        """The words of `request` that are matched against the tools (stop words aside)."""
        return [word for word in map(str.lower, _WORD.findall(request)) if word not in _STOP]

    def shown(self, request: str, limit: int) -> ToolRegistry:
        """The `limit` best ranked tools for `request`, topped up in catalogue order when
        fewer match (a request may share no word with the tool it needs: "12 * 12" and a
        calculator)."""
        ranked = self.rank(request, limit)
        chosen = {item.name for item in ranked}
        ranked += [item for item in self.tools if item.name not in chosen][:limit - len(ranked)]
        return ToolRegistry(ranked)
