"""Tool-calling accuracy on the embedded model: unconstrained vs constrained vs planner/caller.

Usage: python benchmarks/tool_calls.py [--dtype float32] [--limit N] [--batch 8]
Data: benchmarks/data/tools.json (OpenAI-style specs), benchmarks/data/tool_calls.jsonl
(requests with gold calls; categories single / none / double).

Scores per request, order of calls ignored:
- name match: the multiset of tool names equals the gold one;
- exact match: names and arguments equal the gold calls (20 == 20.0);
- valid: the output parsed as a JSON list of {name, arguments} calls.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import Counter, defaultdict
from pathlib import Path

import psutil

from chorus.agents.calling import choose_calls_batch
from chorus.agents.roles import caller, describe_tools
from chorus.agents.scoring import canonical
from chorus.runtime import GenerationRequest, load_model
from chorus.tools import ToolRegistry

DATA = Path(__file__).parent / "data"
UNCONSTRAINED_BUDGET = 160


def parse_free_text(text: str) -> list[dict] | None:
    """What an unconstrained model's reply means as calls, or None if it is not JSON calls."""
    text = text.strip()
    candidates = [text]
    if "[" in text and "]" in text:
        candidates.append(text[text.index("["): text.rindex("]") + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            value = [value]
        if isinstance(value, list) and all(
                isinstance(c, dict) and "name" in c and isinstance(c.get("arguments"), dict)
                for c in value):
            return value
    return None


def batched(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start: start + size]


def run_unconstrained(model, tools, described, examples, size):
    agent = caller(tools, min_calls=0)
    outputs = []
    for chunk in batched(examples, size):
        requests = []
        for example in chunk:
            prepared = agent.request(example["request"], tools=described)
            # Two calls take about 60 tokens; more only lets a rambling reply run on.
            requests.append(GenerationRequest(messages=prepared.messages,
                                              max_new_tokens=UNCONSTRAINED_BUDGET))
        for result in model.generate_batch(requests):
            outputs.append(parse_free_text(result.text))
    return outputs


def run_chosen(strategy: str):
    """What `chorus call --strategy STRATEGY` answers: the code users run."""
    def run(model, tools, _described, examples, size):
        requests = [(example["request"], tools) for example in examples]
        return choose_calls_batch(model, requests, strategy=strategy, batch_size=size)
    return run


def score(examples, outputs) -> dict:
    totals: dict[str, Counter] = defaultdict(Counter)
    for example, output in zip(examples, outputs, strict=True):
        for group in ("all", example["category"]):
            totals[group]["n"] += 1
            if output is None:
                continue
            totals[group]["valid"] += 1
            gold_names = sorted(c["name"] for c in example["calls"])
            totals[group]["name"] += sorted(c["name"] for c in output) == gold_names
            totals[group]["exact"] += canonical(output) == canonical(example["calls"])
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--backend", default="transformers",
                        choices=["transformers", "llamacpp"],
                        help="transformers (default): the backend the recorded figures used")
    parser.add_argument("--limit", type=int, help="first N requests only (quick look)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--methods", default="unconstrained,constrained,planned")
    args = parser.parse_args()

    tools = ToolRegistry.from_openai_file(DATA / "tools.json")
    examples = [json.loads(line) for line in (DATA / "tool_calls.jsonl").read_text().splitlines()
                if line.strip()][: args.limit]
    model = load_model(dtype=args.dtype, backend=args.backend, show_progress=False)
    described = describe_tools(tools)
    print(f"machine: {platform.machine()}, {psutil.cpu_count()} cores; model {model.name}, "
          f"{args.dtype}; {len(examples)} requests over {len(tools)} tools; batch {args.batch}")
    methods = {"unconstrained": run_unconstrained, "constrained": run_chosen("direct"),
               "planned": run_chosen("planned")}
    rows = []
    for name in args.methods.split(","):
        started = time.perf_counter()
        outputs = methods[name](model, tools, described, examples, args.batch)
        seconds = time.perf_counter() - started
        totals = score(examples, outputs)
        rows.append((name, totals, seconds))
        print(f"{name}: done in {seconds:.0f} s", flush=True)
    categories = ["all", "single", "double", "none"]
    print("\n| method | " + " | ".join(
        f"{c}: name / exact" for c in categories) + " | valid JSON | seconds |")
    print("| --- " * (len(categories) + 3) + "|")
    for name, totals, seconds in rows:
        cells = []
        for category in categories:
            t = totals[category]
            cells.append(f"{t['name'] / t['n']:.1%} / {t['exact'] / t['n']:.1%}"
                         if t["n"] else "-")
        valid = totals["all"]["valid"] / totals["all"]["n"]
        print(f"| {name} | " + " | ".join(cells) + f" | {valid:.1%} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
