"""Tools cannot escape, hang or take the run down (issue 14: defects 1-3)."""

import json
import os
import sqlite3
import time

import psutil
import pytest

from chorus.tools import Tool, calculator, execute, sqlite_query_tool, tool
from chorus.tools.execution import render


def _children() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


@pytest.fixture
def shop(tmp_path):
    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE items (name TEXT, price REAL)")
        connection.execute("INSERT INTO items VALUES ('pen', 1.5)")
    return database


def test_sql_tool_cannot_create_or_copy_files(shop, tmp_path):
    query = sqlite_query_tool(shop)
    attempts = [f"VACUUM INTO '{tmp_path / 'copy.db'}'",
                f"ATTACH '{tmp_path / 'new.db'}' AS other",
                "PRAGMA user_version = 7", "CREATE TABLE t (x)", "DROP TABLE items",
                "SELECT load_extension('x')"]
    for statement in attempts:
        observation = execute(query, {"query": statement})
        assert observation.status == "error", statement
        assert "read-only" in observation.content or "not authorized" in observation.content
    assert sorted(path.name for path in tmp_path.iterdir()) == ["shop.db"]
    with sqlite3.connect(shop) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 0
    assert json.loads(execute(query, {"query": "PRAGMA table_info(items)"}).content)[0][
        "name"] == "name"


def test_sql_tool_values_are_bounded_and_blobs_described(shop):
    query = sqlite_query_tool(shop)
    started = time.perf_counter()
    huge = execute(query, {"query": "SELECT zeroblob(1000000000)"})
    assert huge.status == "error" and "too big" in huge.content
    assert time.perf_counter() - started < 5
    small = execute(query, {"query": "SELECT zeroblob(10) AS b"})
    assert json.loads(small.content) == [{"b": "<10 bytes>"}]


def test_a_runaway_query_is_killed_at_its_timeout(shop):
    query = sqlite_query_tool(shop, timeout_s=1)
    before = _children()
    started = time.perf_counter()
    observation = execute(query, {"query": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
                                           "SELECT x + 1 FROM c) SELECT count(*) FROM c"})
    assert observation.status == "timeout"
    assert time.perf_counter() - started < 3
    assert _children() <= before  # nothing keeps burning a core


def test_calculator_refuses_huge_results_before_computing():
    for expression in ("10**5000", "(9**10000)**1000 % 7", "(9**10000)**10000",
                       "10**3000 * 10**3000"):
        started = time.perf_counter()
        observation = execute(calculator, {"expression": expression})
        assert observation.status == "error" and "digits" in observation.content
        assert time.perf_counter() - started < 2
    assert execute(calculator, {"expression": "2**100"}).content == str(2**100)


def test_work_that_holds_the_gil_is_killed_at_the_timeout():
    @tool(timeout_s=1)
    def grind(n: int) -> int:
        """Hold the interpreter."""
        return (9**10000) ** n % 7

    before = _children()
    started = time.perf_counter()
    observation = execute(grind, {"n": 10000})
    assert observation.status == "timeout"
    assert time.perf_counter() - started < 3
    assert _children() <= before


def test_crashes_floods_and_unshowable_results_become_observations():
    @tool
    def segfault(x: int) -> int:
        """Die."""
        os.kill(os.getpid(), 11)
        return x

    @tool(memory_mb=200)
    def hog(megabytes: int) -> int:
        """Allocate."""
        return len(bytearray(megabytes << 20))

    @tool
    def flood(n: int) -> str:
        """Huge text."""
        return "x" * n

    class Unshowable:
        def __repr__(self):
            raise RuntimeError("no")

    @tool
    def odd(x: int) -> object:
        """An object that cannot be shown."""
        return Unshowable()

    assert "SIGSEGV" in execute(segfault, {"x": 1}).content
    assert "memory" in execute(hog, {"megabytes": 2000}).content
    assert execute(hog, {"megabytes": 10}).content == str(10 << 20)
    flooded = execute(flood, {"n": 50_000_000})
    assert flooded.status == "ok" and len(flooded.content) < 2100
    assert "cannot be shown" in execute(odd, {"x": 1}).content
    assert render(10**5000) == "<an integer of about 5001 digits>"


def test_a_tool_that_opts_out_runs_in_this_process():
    seen: list[int] = []

    @tool(isolated=False)
    def remember(x: int) -> int:
        """Keep x."""
        seen.append(x)
        return x

    @tool
    def forget(x: int) -> int:
        """Keep x in a child process."""
        seen.append(x)
        return x

    assert execute(remember, {"x": 1}).ok and execute(forget, {"x": 2}).ok
    assert seen == [1]


@pytest.mark.parametrize("options, message", [
    ({"timeout_s": float("nan")}, "timeout_s"), ({"timeout_s": float("inf")}, "timeout_s"),
    ({"memory_mb": 0}, "memory_mb")])
def test_tool_limits_are_checked(options, message):
    with pytest.raises(Exception, match=message):
        Tool(name="t", description="", parameters={"type": "object"}, **options)


def test_parallel_isolated_calls_each_end_when_their_own_tool_ends():
    """Parallel graph branches run tools at once: a short call forked while a long one runs
    returns when it ends, not when the long one does."""
    from concurrent.futures import ThreadPoolExecutor

    @tool(timeout_s=20)
    def nap(seconds: float) -> float:
        """Sleep."""
        time.sleep(seconds)
        return seconds

    def timed(seconds: float) -> float:
        started = time.perf_counter()
        assert execute(nap, {"seconds": seconds}).ok
        return time.perf_counter() - started

    with ThreadPoolExecutor(2) as pool:
        long = pool.submit(timed, 3.0)
        time.sleep(0.2)  # the short call forks while the long one runs
        short = pool.submit(timed, 0.1)
        assert short.result() < 2.0 and long.result() >= 3.0
