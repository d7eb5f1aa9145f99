"""Tool-calling suite: are the calls right (names and arguments), per kind of request?

Usage:
  python benchmarks/tool_calls.py [--model NAME] [--strategy direct|planned]
                                  [--adapters auto|none] [--limit N] [--max-calls N]
                                  [--warm] [--out FILE.json]

Data: benchmarks/data/suite_tools.json (48 tools that no adapter saw in training: optional
parameters with defaults, enums, arrays, nested objects, ten families of similar tools) and
benchmarks/data/suite_cases.jsonl (110 requests, each with the tools it is shown and its gold
calls). `--data legacy` runs the first round's benchmarks/data/tool_calls.jsonl (36 tools, all
shown to every request).

Every request is one `choose_calls` call, the code `chorus call` runs, timed on its own.
A request is right when the calls, as a set, equal the gold ones: names and every argument
exactly (20 == 20.0; an optional argument the request did not give counts as wrong).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import psutil

from chorus.agents.calling import choose_calls, role_adapters
from chorus.agents.scoring import canonical
from chorus.errors import ChorusError
from chorus.runtime import load_model
from chorus.tools import ToolRegistry

DATA = Path(__file__).parent / "data"
CATEGORIES = ("one_call", "same_tool_several", "similar_tools", "two_tools", "no_tool")
LEGACY_CATEGORIES = {"single": "one_call", "double": "two_tools", "none": "no_tool"}


def load_cases(data: str) -> tuple[ToolRegistry, list[dict]]:
    if data == "legacy":
        tools = ToolRegistry.from_openai_file(DATA / "tools.json")
        lines = (DATA / "tool_calls.jsonl").read_text().splitlines()
        cases = [json.loads(line) for line in lines if line.strip()]
        for case in cases:
            case["category"] = LEGACY_CATEGORIES[case["category"]]
            case["tools"] = tools.names()
        return tools, cases
    tools = ToolRegistry.from_openai_file(DATA / "suite_tools.json")
    lines = (DATA / "suite_cases.jsonl").read_text().splitlines()
    return tools, [json.loads(line) for line in lines if line.strip()]


def spread(cases: list[dict], per_category: int | None) -> list[dict]:
    """The first `per_category` cases of each category (a quick look keeps the mix)."""
    if per_category is None:
        return cases
    seen: Counter = Counter()
    kept = []
    for case in cases:
        seen[case["category"]] += 1
        if seen[case["category"]] <= per_category:
            kept.append(case)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="embedded model name, .gguf, directory (default: "
                                        "the default model)")
    parser.add_argument("--backend", default=None, help="transformers or llamacpp (auto)")
    parser.add_argument("--strategy", default="direct", choices=["direct", "planned"])
    parser.add_argument("--adapters", default="auto", choices=["auto", "none"],
                        help="auto: the shipped planner/caller adapters where they fit")
    parser.add_argument("--data", default="suite", choices=["suite", "legacy"])
    parser.add_argument("--limit", type=int, help="first N requests of each category")
    parser.add_argument("--categories", nargs="+", choices=CATEGORIES,
                        help="only these categories (default: all)")
    parser.add_argument("--max-calls", type=int, default=3,
                        help="1 turns off the extra calls the model is made to write")
    parser.add_argument("--warm", action="store_true",
                        help="run each request once before timing it (its prompt cached)")
    parser.add_argument("--out", type=Path, help="also write per-request outcomes here")
    args = parser.parse_args()

    tools, cases = load_cases(args.data)
    cases = spread([case for case in cases
                    if args.categories is None or case["category"] in args.categories],
                   args.limit)
    model = load_model(args.model, backend=args.backend, show_progress=False)
    adapters = role_adapters(model) if args.adapters == "auto" else {}
    print(f"machine: {platform.machine()}, {psutil.cpu_count()} cores; model {model.name} on "
          f"{type(model.backend).__name__}; strategy {args.strategy}; adapters "
          f"{adapters or 'none'}; {len(cases)} requests", file=sys.stderr)
    outcomes = []
    for number, case in enumerate(cases, 1):
        shown = ToolRegistry([tools.get(name) for name in case["tools"]])
        for _ in range(2 if args.warm else 1):
            started = time.perf_counter()
            try:
                calls = choose_calls(model, shown, case["request"], strategy=args.strategy,
                                     adapters=adapters, max_calls=args.max_calls)
            except ChorusError as error:  # a constrained output that ran out of budget
                calls, failure = None, str(error)
            else:
                failure = None
            seconds = time.perf_counter() - started
        right = calls is not None and canonical(calls) == canonical(case["calls"])
        outcomes.append({"id": case["id"], "category": case["category"], "right": right,
                         "seconds": round(seconds, 3), "calls": calls, "gold": case["calls"],
                         "error": failure})
        print(f"[{number}/{len(cases)}] {case['id']} {'ok ' if right else 'BAD'} "
              f"{seconds:5.1f}s {json.dumps(calls)[:150]}", file=sys.stderr, flush=True)
    report(args, model.name, outcomes)
    if args.out:
        args.out.write_text(json.dumps(outcomes, indent=1) + "\n")


def report(args, model_name: str, outcomes: list[dict]) -> None:
    by_category: dict[str, list[dict]] = defaultdict(list)
    for outcome in outcomes:
        by_category[outcome["category"]].append(outcome)
    cells = []
    for category in CATEGORIES:
        group = by_category.get(category, [])
        right = sum(o["right"] for o in group)
        cells.append(f"{right}/{len(group)} ({right / len(group):.0%})" if group else "-")
    total = sum(o["right"] for o in outcomes)
    latency = statistics.median(o["seconds"] for o in outcomes)
    print("| model | strategy | adapters | " + " | ".join(CATEGORIES)
          + " | all | median s/request |")
    print("| --- " * (len(CATEGORIES) + 5) + "|")
    print(f"| {model_name} | {args.strategy} | {args.adapters} | " + " | ".join(cells)
          + f" | {total}/{len(outcomes)} ({total / len(outcomes):.0%}) | {latency:.2f} |")


if __name__ == "__main__":
    main()
