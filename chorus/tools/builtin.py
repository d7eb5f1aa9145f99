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
MAX_EXPONENT = 10_000  # 9**9**9 would otherwise hang the interpreter


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
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ValueError(f"exponent {right} is too large")
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
        expression: Arithmetic with + - * / // % **, parentheses, pi, e and sqrt, log,
            log10, exp, sin, cos, tan, abs, round, floor, ceil, min, max. Example: 2*(3+4)
    """
    try:
        tree = ast.parse(expression.strip(), mode="eval")
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


def sqlite_query_tool(database: str | Path, *, max_rows: int = 50) -> Tool:
    """A tool that runs read-only SQL on one SQLite file (opened read-only; writes refused)."""
    path = Path(database)

    def sql_query(query: str) -> list[dict]:
        """Run a read-only SQL query (SELECT) on the database and return the rows.

        Args:
            query: One SQL SELECT statement.
        """
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            connection.row_factory = sqlite3.Row
            rows = connection.execute(query).fetchmany(max_rows)
            return [dict(row) for row in rows]
        finally:
            connection.close()

    return Tool.from_function(sql_query, timeout_s=10)


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
        return target.read_text(errors="replace")[:max_chars]

    return Tool.from_function(read_file, timeout_s=10)
