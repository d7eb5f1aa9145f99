"""Built-in tools: arithmetic without eval, dates, read-only SQLite, files under one root."""

from __future__ import annotations

import ast
import datetime as dt
import math
import operator
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chorus.tools.tool import Tool, tool

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {"sqrt": math.sqrt, "log": math.log, "log10": math.log10, "exp": math.exp,
              "sin": math.sin, "cos": math.cos, "tan": math.tan, "abs": abs, "round": round,
              "floor": math.floor, "ceil": math.ceil, "min": min, "max": max}
_CONSTANTS = {"pi": math.pi, "e": math.e}
# Integers stay under Python's 4,300-digit str() limit: 9**9**9 would otherwise hang the
# interpreter, and 10**5000 could not be shown. Sizes are checked before computing.
MAX_BITS = 12_000  # about 3,600 decimal digits


def _bits(value: float | int) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def _result_too_large(op: ast.operator, left: float | int, right: float | int) -> bool:
    """Would an integer result exceed MAX_BITS? (float results overflow on their own)"""
    if not (isinstance(left, int) and isinstance(right, int)):
        return False
    if isinstance(op, ast.Pow):
        return right > 0 and abs(left) > 1 and (_bits(left) - 1) * right > MAX_BITS
    if isinstance(op, ast.Mult):
        return _bits(left) + _bits(right) > MAX_BITS + 1
    return False


def _evaluate(node: ast.AST) -> float | int:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) \
            and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if _result_too_large(node.op, left, right):
            raise ValueError(f"the result of {ast.unparse(node)} would have more than "
                             f"{int(MAX_BITS * 0.30103)} digits")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id in _FUNCTIONS and not node.keywords:
        return _FUNCTIONS[node.func.id](*(_evaluate(arg) for arg in node.args))
    raise ValueError(f"unsupported expression: {ast.unparse(node)}")


@tool(timeout_s=5)
def calculator(expression: str) -> float | int:
    """Evaluate an arithmetic expression.

    Args:
        expression: Arithmetic with + - * / // % ** (or ^), parentheses, pi, e and sqrt, log,
            log10, exp, sin, cos, tan, abs, round, floor, ceil, min, max. Example: 2*(3+4)
    """
    # "^" is a power, as calculators and people (and small models) write it. It is read as
    # "**" before parsing: Python parses "^" as XOR, below "-", so 9^2 - 4 would be 9 ^ -2.
    try:
        tree = ast.parse(expression.strip().replace("^", "**"), mode="eval")
    except SyntaxError as error:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from error
    return _evaluate(tree)


@tool(timeout_s=5)
def current_datetime(timezone: str = "UTC") -> str:
    """The current date and time, ISO 8601, with the weekday.

    Args:
        timezone: An IANA time zone such as UTC, Europe/Paris or America/New_York.
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {timezone!r}") from error
    now = dt.datetime.now(zone)
    return f"{now.isoformat(timespec='seconds')} ({now.strftime('%A')})"


# What a read-only query may do; everything else (ATTACH, VACUUM INTO, writes, PRAGMA
# assignments, extensions) is refused by SQLite's authorizer before the statement runs.
_READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                 sqlite3.SQLITE_RECURSIVE}
_READ_PRAGMAS = {"table_info", "table_xinfo", "table_list", "index_list", "index_info",
                 "index_xinfo", "foreign_key_list"}
_REFUSED_FUNCTIONS = {"load_extension"}
MAX_SQL_VALUE_BYTES = 1_000_000  # the largest string or blob a query may build


def _authorize(action: int, first: str | None, second: str | None, *_: object) -> int:
    if action == sqlite3.SQLITE_FUNCTION and second in _REFUSED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    if action in _READ_ACTIONS or (action == sqlite3.SQLITE_PRAGMA and first in _READ_PRAGMAS):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _cell(value: object) -> object:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


def sqlite_query_tool(database: str | Path, *, max_rows: int = 50,
                      timeout_s: float = 10) -> Tool:
    """A tool that runs read-only SQL on one SQLite file. Read-only by construction: the
    file is opened read-only with `query_only` on, no database can be attached, and an
    authorizer allows reads only (so VACUUM INTO, ATTACH and PRAGMA writes cannot create or
    change any file)."""
    path = Path(database)

    def sql_query(query: str) -> list[dict]:
        """Run a read-only SQL query (SELECT) on the database and return the rows.

        Args:
            query: One SQL SELECT statement.
        """
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            connection.execute("PRAGMA query_only = ON")  # a second lock on the same door
            connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_SQL_VALUE_BYTES)
            connection.set_authorizer(_authorize)
            connection.row_factory = sqlite3.Row
            try:
                rows = connection.execute(query).fetchmany(max_rows)
            except sqlite3.DatabaseError as error:
                if "authoriz" in str(error):
                    raise PermissionError("the database is read-only: only SELECT queries "
                                          "(and PRAGMA table_info) are allowed") from None
                raise
            return [{key: _cell(row[key]) for key in row.keys()} for row in rows]
        finally:
            connection.close()

    return Tool.from_function(sql_query, timeout_s=timeout_s)


def file_reader_tool(root: str | Path, *, max_chars: int = 20_000) -> Tool:
    """A tool that reads text files under `root` and nowhere else (no `..`, no symlinks out)."""
    base = Path(root).resolve()

    def read_file(path: str) -> str:
        """Read a text file.

        Args:
            path: The file's path relative to the shared folder.
        """
        target = (base / path).resolve()
        if not target.is_relative_to(base):
            raise PermissionError(f"{path!r} is outside the readable folder")
        if not target.is_file():
            raise FileNotFoundError(f"no file {path!r}")
        with target.open(encoding="utf-8", errors="replace") as handle:
            return handle.read(max_chars)  # never the whole of a huge file

    return Tool.from_function(read_file, timeout_s=10)
