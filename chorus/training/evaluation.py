"""Scores of role adapters on held-out examples (tools no adapter saw in training).

Each role is run exactly as in a graph: the stored prompt, the agent's output contract and
token budget, greedy decoding, batched.
"""

from __future__ import annotations

import json
from pathlib import Path

from chorus.agents import AgentOptions, get_role
from chorus.runtime import GenerationRequest, GenerationResult, Model
from chorus.tools import Tool, ToolRegistry
from chorus.training.dataset import read_examples


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
    """The stored prompt, with the output contract and budget the role's agent has."""
    shown = ToolRegistry([tools[name] for name in example.get("tools", [])])
    agent = get_role(role).agent(AgentOptions(tools=shown))
    return GenerationRequest(messages=example["messages"], tools=example.get("tool_specs", ()),
                             output=agent.output,
                             adapter=adapter, max_new_tokens=agent.max_new_tokens,
                             stop_on_repeated_line=agent.stop_on_repeated_line)


def evaluate_role(model: Model, role: str, data: Path, *, adapter: str | None,
                  limit: int | None = None, batch_size: int = 8) -> dict[str, float]:
    """{"examples": n, metric: share, ...} for `role` on DATA/eval/ROLE.jsonl."""
    examples = spread(read_examples(Path(data), [role], split="eval"), limit)
    tools = read_tools(data)
    results = model.generate_chunked(
        [role_request(role, e, tools, adapter) for e in examples], batch_size)
    scores = [score(role, result, example["target"])
              for result, example in zip(results, examples, strict=True)]
    totals = {name: sum(s[i] for s in scores) / len(scores)
              for i, name in enumerate(get_role(role).metrics)}
    return {"examples": len(examples), **totals}


def score(role: str, result: GenerationResult, target: str) -> tuple[float, ...]:
    scored = get_role(role)
    if result.error is not None:
        return (0.0,) * len(scored.metrics)
    return scored.score(result.text if result.value is None else result.value, target)


def read_episodes(data: Path, split: str = "eval") -> list[dict]:
    with (Path(data) / split / "episodes.jsonl").open() as lines:
        return [json.loads(line) for line in lines]
