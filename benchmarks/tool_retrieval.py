"""Tool retrieval: does BM25 (chorus.tools.retrieval) put the tools a request needs among the
few shown to the agents? No model involved: recall is what retrieval can lose, and latency.

Usage: python benchmarks/tool_retrieval.py [--k 3,5,8]

Catalogues: the suite's 48 tools; and 160 tools, the union of the suite, the first round's
benchmark tools (36) and the training catalogue (76), first name wins. Requests: every
request with gold calls of benchmarks/data/suite_cases.jsonl and tool_calls.jsonl. A request
is recalled at k when every tool of its gold calls is among the k ranked first.

A second table asks, for requests with several gold calls, whether the tool of the next call
is the one shown first to the extra call (chorus.agents.calling), the tools ordered for the
whole request or for what the calls before it leave undone (grounding.undone).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from chorus.agents.grounding import undone
from chorus.tools import Tool, ToolRegistry
from chorus.tools.retrieval import ToolIndex

DATA = Path(__file__).parent / "data"
CATALOGUE = Path(__file__).parent.parent / "chorus" / "training" / "catalogue.json"
ROLES = Path(__file__).parent.parent / "data" / "roles"  # the role adapters' training data


def _specs(path: Path) -> list[dict]:
    value = json.loads(path.read_text())
    return value["tools"] if isinstance(value, dict) else value


def _requests(name: str) -> list[dict]:
    lines = (DATA / name).read_text().splitlines()
    return [case for case in map(json.loads, filter(str.strip, lines)) if case["calls"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", default="3,5,8")
    args = parser.parse_args()
    sizes = [int(k) for k in args.k.split(",")]
    union: dict[str, dict] = {}
    for path in (DATA / "suite_tools.json", DATA / "tools.json", CATALOGUE):
        for spec in _specs(path):
            union.setdefault(spec["name"], {key: spec[key] for key in
                                            ("name", "description", "parameters")})
    catalogues = {
        "suite (48 tools)": ToolRegistry.from_openai_file(DATA / "suite_tools.json"),
        f"all ({len(union)} tools)": ToolRegistry(Tool.from_openai(s) for s in union.values()),
    }
    requests = {"suite": _requests("suite_cases.jsonl"),
                "first round": _requests("tool_calls.jsonl")}
    print("| catalogue | requests | " + " | ".join(f"recall@{k}" for k in sizes)
          + " | median ms/request |")
    print("| --- " * (len(sizes) + 3) + "|")
    for label, tools in catalogues.items():
        started = time.perf_counter()
        index = ToolIndex(tools)
        built_ms = (time.perf_counter() - started) * 1000
        for source, cases in requests.items():
            cases = [c for c in cases if all(call["name"] in tools for call in c["calls"])]
            if not cases:
                continue
            recalled = dict.fromkeys(sizes, 0)
            timings = []
            for case in cases:
                started = time.perf_counter()
                ranked = [item.name for item in index.rank(case["request"], max(sizes))]
                timings.append((time.perf_counter() - started) * 1000)
                for k in sizes:
                    recalled[k] += all(call["name"] in ranked[:k] for call in case["calls"])
            cells = " | ".join(f"{recalled[k]}/{len(cases)} ({recalled[k] / len(cases):.0%})"
                               for k in sizes)
            print(f"| {label}, index built in {built_ms:.0f} ms | {source} ({len(cases)}) | "
                  f"{cells} | {statistics.median(timings):.2f} |")
    next_call_first(requests)


def next_call_first(requests: dict[str, list[dict]]) -> None:
    """For the extra call (chorus.agents.calling): is the tool of a request's next gold call
    the one listed first, when the tools are ordered for the whole request and when ordered
    for what the calls before it leave undone (grounding.undone)? And after the last call,
    how often does the order change (a new prompt to evaluate)?"""
    episodes = [json.loads(line) for part in ("train", "eval") for line in
                (ROLES / part / "episodes.jsonl").read_text().splitlines() if line.strip()]
    sources = {"suite": (ToolRegistry.from_openai_file(DATA / "suite_tools.json"),
                         requests["suite"]),
               "first round": (ToolRegistry.from_openai_file(DATA / "tools.json"),
                               requests["first round"]),
               "training episodes": (ToolRegistry.from_openai_file(ROLES / "tools.json"),
                                     [{**case, "request": case["task"]} for case in episodes
                                      if case.get("calls")])}
    print("\n| requests | next call's tool first: ordered for the request | ordered for "
          "what is undone | order changed after the last call |\n| --- | --- | --- | --- |")
    for label, (tools, cases) in sources.items():
        before = after = following = changed = finished = 0
        for case in cases:
            given = ToolRegistry([tools.get(name) for name in case["tools"]]) \
                if "tools" in case else tools
            shown = given.relevant(case["request"])
            for position in range(1, len(case["calls"]) + 1):
                left = undone(case["request"], case["calls"][:position], shown)
                first = shown.relevant(left, len(shown)).names()[0]
                if position == len(case["calls"]):
                    finished += 1
                    changed += first != shown.names()[0]
                    continue
                wanted = case["calls"][position]["name"]
                following += 1
                before += shown.names()[0] == wanted
                after += first == wanted
        print(f"| {label} | {before}/{following} | {after}/{following} | "
              f"{changed}/{finished} |")


if __name__ == "__main__":
    main()
