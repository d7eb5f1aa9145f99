"""Scores of role adapters on held-out examples (tools no adapter saw in training).

Each role is run exactly as in a graph: the stored prompt, the agent's output contract and
token budget, greedy decoding, batched.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from chorus.agents import Step, roles
from chorus.runtime import GenerationRequest, GenerationResult, Model
from chorus.tools import Tool, ToolRegistry
from chorus.training.dataset import read_examples

METRICS = {
    "planner": ["decision"],
    "caller": ["tool names", "arguments"],
    "summarizer": ["all numbers kept", "word F1"],
    "verifier": ["verdict"],
}


def read_tools(data: Path) -> dict[str, Tool]:
    specs = json.loads((Path(data) / "tools.json").read_text())
    return {spec["name"]: Tool.from_openai(spec) for spec in specs}


def spread(items: list, limit: int | None) -> list:
    """`limit` items spread over the whole list (files are grouped by tool)."""
    if limit is None or limit >= len(items):
        return items
    step = len(items) / limit
    return [items[int(index * step)] for index in range(limit)]


def role_request(role: str, example: dict, tools: dict[str, Tool],
                 adapter: str | None) -> GenerationRequest:
    if role == "caller":
        agent = roles.caller(ToolRegistry([tools[name] for name in example["tools"]]))
    else:
        agent = {"planner": roles.planner, "summarizer": roles.summarizer,
                 "verifier": roles.verifier}[role]()
    return GenerationRequest(messages=example["messages"], output=agent.output,
                             adapter=adapter, max_new_tokens=agent.max_new_tokens,
                             stop_on_repeated_line=agent.stop_on_repeated_line)


def generate_all(model: Model, requests: Sequence[GenerationRequest], batch_size: int = 8,
                 on_batch: Callable[[int], None] | None = None) -> list[GenerationResult]:
    results: list[GenerationResult] = []
    for start in range(0, len(requests), batch_size):
        results += model.generate_batch(requests[start:start + batch_size])
        if on_batch:
            on_batch(len(results))
    return results


def evaluate_role(model: Model, role: str, data: Path, *, adapter: str | None,
                  limit: int | None = None, batch_size: int = 8) -> dict[str, float]:
    """{"examples": n, metric: share, ...} for `role` on DATA/eval/ROLE.jsonl."""
    examples = spread(read_examples(Path(data), [role], split="eval"), limit)
    tools = read_tools(data)
    results = generate_all(model, [role_request(role, e, tools, adapter) for e in examples],
                           batch_size)
    scores = [score(role, result, example["target"])
              for result, example in zip(results, examples, strict=True)]
    totals = {name: sum(s[i] for s in scores) / len(scores)
              for i, name in enumerate(METRICS[role])}
    return {"examples": len(examples), **totals}


def score(role: str, result: GenerationResult, target: str) -> tuple[float, ...]:
    if role == "summarizer":
        return numbers_kept(result.text, target), word_f1(result.text, target)
    if result.error is not None:
        return (0.0,) * len(METRICS[role])
    gold = json.loads(target)
    value = result.value
    if role == "caller":
        return same_names(value, gold), same_calls(value, gold)
    if role == "planner":
        return (float(value.next == gold["next"]),)
    return (float(value.passed == gold["pass"]),)


def canonical(calls: list[dict]) -> list[str]:
    """Calls as sorted JSON strings: order of calls ignored, 20 == 20.0."""
    def normal(value):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, dict):
            return {key: normal(item) for key, item in value.items()}
        if isinstance(value, list):
            return [normal(item) for item in value]
        return value

    return sorted(json.dumps({"name": c.get("name"), "arguments": normal(c.get("arguments"))},
                             sort_keys=True) for c in calls)


def same_calls(predicted: list[dict], gold: list[dict]) -> float:
    return float(canonical(roles.unique_calls(predicted)) == canonical(gold))


def same_names(predicted: list[dict], gold: list[dict]) -> float:
    names = Counter(c.get("name") for c in roles.unique_calls(predicted))
    return float(names == Counter(c["name"] for c in gold))


_WORD = re.compile(r"[\w.%-]+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _words(text: str) -> list[str]:
    return [w.strip(".").lower() for w in _WORD.findall(text) if w.strip(".")]


def word_f1(predicted: str, gold: str) -> float:
    mine, theirs = Counter(_words(predicted)), Counter(_words(gold))
    common = sum((mine & theirs).values())
    if not common:
        return 0.0
    precision, recall = common / sum(mine.values()), common / sum(theirs.values())
    return 2 * precision * recall / (precision + recall)


def numbers_kept(predicted: str, gold: str) -> float:
    """1 if every number of the gold answer is in the prediction (the facts a summary must
    carry over from the tool results); answers without numbers count if non-empty."""
    needed = set(_NUMBER.findall(gold))
    if not needed:
        return float(bool(predicted.strip()))
    return float(needed <= set(_NUMBER.findall(predicted)))


def read_episodes(data: Path, split: str = "eval") -> list[dict]:
    with (Path(data) / split / "episodes.jsonl").open() as lines:
        return [json.loads(line) for line in lines]


def team_calls(model: Model, episodes: list[dict], tools: dict[str, Tool], *,
               planner: str | None, caller: str | None, gated: bool = True,
               batch_size: int = 8) -> list[list[dict]]:
    """The calls the tool_use graph's first steps make for each episode: the planner
    decides (when `gated`), then the caller writes the calls; [] when the planner did not
    choose to call."""
    def shown(episode) -> ToolRegistry:
        return ToolRegistry([tools[name] for name in episode["tools"]])

    plans: list[list[Step]] = [[] for _ in episodes]  # what the caller reads
    decisions = ["call"] * len(episodes)
    if gated:
        requests = [roles.planner(planner).request(
            e["task"], tools=roles.describe_tools(shown(e))) for e in episodes]
        for index, result in enumerate(generate_all(model, requests, batch_size)):
            decisions[index] = result.value.next if result.error is None else "error"
            if result.error is None:
                plans[index] = [Step(kind="thought", content=result.value.thought)]
    chosen = [i for i, d in enumerate(decisions) if d == "call"]
    requests = [roles.caller(shown(episodes[i]), caller).request(
        episodes[i]["task"], plans[i], tools=roles.describe_tools(shown(episodes[i])))
        for i in chosen]
    calls = {index: (result.value if result.error is None else [])
             for index, result in zip(chosen, generate_all(model, requests, batch_size),
                                      strict=True)}
    return [calls.get(index, []) for index in range(len(episodes))]
