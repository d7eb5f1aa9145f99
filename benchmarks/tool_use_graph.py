"""The tool_use graph end to end: right answers to what a tool computes, no calls where none fits.

Usage:
  python benchmarks/tool_use_graph.py [--model qwen2.5-coder-0.5b] [--backend llamacpp]

Each labelled request of benchmarks/data/tool_use_requests.jsonl is one run of the built-in
tool_use graph (calculator, current_datetime), greedy, as `chorus run tool_use` or a chat
turn does it. A request that needs a tool is right when the answer holds the number the
calculator gives (`answer_has`) or the tool it needs was called (`tool`); one that needs no
tool, or a tool the graph lacks, is right when no call was made. Also reported: the
planner's first decision, how many times it ran, and the wall time per run. One JSON line
per request, then a summary line. Run it on two checkouts (`PYTHONPATH=<tree>`, from inside
that tree) to compare code.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from chorus import load_model
from chorus.graphs import GraphRunner, resolve_graph

DATA = Path(__file__).parent / "data" / "tool_use_requests.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="default: the default embedded model")
    parser.add_argument("--backend", default=None)
    args = parser.parse_args()
    model = load_model(args.model, backend=args.backend, show_progress=False)
    runner = GraphRunner(resolve_graph("tool_use"), model, store=Path(tempfile.mkdtemp()))
    cases = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    right, total, seconds = Counter(), Counter(), []
    for case in cases:
        decisions, called = [], []

        def listen(event, decisions=decisions, called=called) -> None:
            if event.kind == "agent_done" and event.data.get("role") == "planner":
                decisions.append(event.data["output"]["next"])
            elif event.kind == "tool_call":
                called.append(f"{event.data['tool']}({json.dumps(event.data['arguments'])})")

        started = time.perf_counter()
        result = runner.run(case["request"], events=listen)
        seconds.append(time.perf_counter() - started)
        if case["needs"] == "tool":
            ok = case["answer_has"] in result.answer if "answer_has" in case \
                else any(call.startswith(f"{case['tool']}(") for call in called)
        else:
            ok = not called
        total[case["needs"]] += 1
        right[case["needs"]] += ok
        print(json.dumps({"request": case["request"], "needs": case["needs"], "right": ok,
                          "first_decision": decisions[:1], "plans": len(decisions),
                          "called": called, "answer": result.answer[:160],
                          "seconds": round(seconds[-1], 2)}), flush=True)
    print(json.dumps({"model": model.name, "machine": f"{platform.machine()}, "
                      f"{platform.python_version()}", "right": sum(right.values()),
                      "of": len(cases), **{needs: f"{right[needs]}/{count}"
                                           for needs, count in total.items()},
                      "median_s": round(statistics.median(seconds), 2)}))


if __name__ == "__main__":
    main()
