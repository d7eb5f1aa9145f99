"""What running tools in a forked process costs, per call, in a process that holds a model.

Usage:
  python benchmarks/tool_isolation.py [--model qwen2.5-coder-0.5b] [--calls 200]

The same tools are called alternately isolated (the default: a forked child with a hard
timeout and a memory cap) and in a thread (`isolated=False`), in one process that has loaded
the model as a graph run would; medians and the ratio are reported side by side.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from chorus import load_model
from chorus.tools import calculator, execute, sqlite_query_tool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    model = load_model(args.model, backend="llamacpp")
    model.generate("Hello", max_new_tokens=4)  # the process as it is during a run
    database = Path(tempfile.mkdtemp()) / "shop.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE items (name TEXT, price REAL)")
        connection.executemany("INSERT INTO items VALUES (?, ?)",
                               [(f"item {n}", n * 1.5) for n in range(100)])
    cases = {"calculator": (calculator, {"expression": "12 * 12 + sqrt(16)"}),
             "sql_query": (sqlite_query_tool(database),
                           {"query": "SELECT name, price FROM items WHERE price > 50"})}
    rows = []
    for name, (tool, arguments) in cases.items():
        in_thread = dataclasses.replace(tool, isolated=False)
        times = {"isolated": [], "thread": []}
        for _ in range(args.calls):
            for mode, variant in (("isolated", tool), ("thread", in_thread)):
                started = time.perf_counter()
                observation = execute(variant, arguments)
                times[mode].append(time.perf_counter() - started)
                assert observation.ok, observation
        isolated = statistics.median(times["isolated"]) * 1000
        threaded = statistics.median(times["thread"]) * 1000
        rows.append({"tool": name, "isolated_ms": round(isolated, 2),
                     "thread_ms": round(threaded, 2), "extra_ms": round(isolated - threaded, 2)})
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"model": model.name, "rss_mb": psutil.Process().memory_info().rss >> 20,
                      "calls": args.calls, "machine": f"{platform.machine()}, "
                      f"{os.cpu_count()} cores"}))


if __name__ == "__main__":
    main()
