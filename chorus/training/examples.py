"""Role training data from the tool catalogue (catalogue.json), split by tool.

An *episode* is one request played through the tool_use graph by a perfect team: the
planner's decisions, the caller's gold calls, the tools' (fake) results and the final
answer. Each episode yields examples for every role, with prompts rendered by the very
agents that run at inference time, so training and use see the same text:

- planner: the next step (call / answer / give_up) given the trajectory so far;
- caller: the gold call(s), as the constrained decoder writes them (compact JSON);
- summarizer: the answer from the trajectory;
- verifier: pass for the right answer, fail with feedback for a wrong one.

Tools are split per domain: one tool of each domain (chosen by the seed) is held out, so
the eval split asks for tools no adapter saw in training. Requests show the gold tools
among distractors, not the whole catalogue: a caller prompt stays near 300 tokens.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from chorus.agents import Step, get_role, observation_step, roles
from chorus.errors import ChorusError
from chorus.runtime.outputs import COMPACT, ToolCalls
from chorus.tools import Tool, ToolRegistry
from chorus.tools.execution import render

CATALOGUE = Path(__file__).with_name("catalogue.json")
GENERATOR_VERSION = 1
_PLACEHOLDER = re.compile(r"\{([a-z_.]+)\}")


class CatalogueTool(BaseModel):
    name: str
    domain: str
    description: str
    parameters: dict[str, Any]
    values: dict[str, str | list[Any]] = Field(default_factory=dict)
    requests: list[str] = Field(min_length=2)
    results: list[dict[str, Any]] = Field(min_length=1)
    answer: str

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "parameters": self.parameters}


class Exchange(BaseModel):
    request: str
    answer: str


class Catalogue(BaseModel):
    version: int
    values: dict[str, list[Any]]
    tools: list[CatalogueTool]
    chitchat: list[Exchange]
    unsupported: list[Exchange]

    def choices(self, tool: CatalogueTool, parameter: str) -> list[Any]:
        schema = tool.parameters["properties"][parameter]
        if "enum" in schema:
            return list(schema["enum"])
        source = tool.values.get(parameter)
        if source is None:
            raise ChorusError(f"catalogue: {tool.name}.{parameter} has no values")
        return self.values[source] if isinstance(source, str) else source


def load_catalogue(path: Path = CATALOGUE) -> Catalogue:
    try:
        catalogue = Catalogue.model_validate_json(Path(path).read_text())
    except (OSError, ValidationError) as error:
        raise ChorusError(f"Cannot read the tool catalogue {path}: {error}") from error
    for tool in catalogue.tools:
        properties = tool.parameters.get("properties", {})
        for template in tool.requests:
            unknown = set(_PLACEHOLDER.findall(template)) - set(properties)
            missing = set(tool.parameters.get("required", [])) - set(
                _PLACEHOLDER.findall(template))
            if unknown or missing:
                raise ChorusError(f"catalogue: {tool.name}: request {template!r} has unknown "
                                  f"{sorted(unknown)} or lacks required {sorted(missing)}")
        for parameter in properties:
            catalogue.choices(tool, parameter)  # every parameter can be filled
    return catalogue


@dataclass(frozen=True)
class Episode:
    id: str
    kind: str  # single, double, chitchat, unsupported
    task: str
    tools: list[str]  # the tools shown to the agents, in prompt order
    calls: list[dict[str, Any]]  # gold calls, arguments in schema order
    observations: list[str]  # what the tools node writes, one per call
    answer: str
    wrong_answers: list[str]  # plausible but wrong answers, for the verifier

    def record(self) -> dict[str, Any]:
        return self.__dict__.copy()


class _Filler:
    """Turns a tool's templates into concrete requests, calls, results and answers."""

    def __init__(self, catalogue: Catalogue, rng: random.Random):
        self.catalogue = catalogue
        self.rng = rng

    def fill(self, tool: CatalogueTool, template: str) -> dict[str, Any]:
        present = set(_PLACEHOLDER.findall(template))
        arguments = {name: self.rng.choice(self.catalogue.choices(tool, name))
                     for name in tool.parameters["properties"] if name in present}
        result = _substitute(self.rng.choice(tool.results), arguments)
        answer = _render(tool.answer, arguments, result)
        wrong = {_render(tool.answer, arguments, _substitute(other, arguments))
                 for other in tool.results}
        swapped = self._swapped(tool, arguments)
        if swapped is not None:
            wrong.add(_render(tool.answer, swapped, result))
        return {"request": _render(template, arguments, {}),
                "call": {"name": tool.name, "arguments": arguments},
                "observation": observation_step(tool.name, render(result)).content,
                "answer": answer, "wrong": sorted(wrong - {answer})}

    def _swapped(self, tool: CatalogueTool, arguments: dict[str, Any]) -> dict | None:
        """The same arguments with one required value changed: an answer about the wrong
        city, day or person."""
        required = [n for n in tool.parameters.get("required", []) if n in arguments]
        if not required:
            return None
        name = self.rng.choice(required)
        others = [v for v in self.catalogue.choices(tool, name) if v != arguments[name]]
        return {**arguments, name: self.rng.choice(others)} if others else None


def _substitute(value: Any, arguments: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return _render(value, arguments, {})
    if isinstance(value, dict):
        return {key: _substitute(item, arguments) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, arguments) for item in value]
    return value


def _render(template: str, arguments: dict[str, Any], result: dict[str, Any]) -> str:
    def value(match: re.Match) -> str:
        key = match.group(1)
        if key.startswith("result."):
            return str(result.get(key.removeprefix("result."), match.group(0)))
        return str(arguments.get(key, match.group(0)))

    return _PLACEHOLDER.sub(value, template)


def split_tools(catalogue: Catalogue, seed: int) -> tuple[list[str], list[str]]:
    """(train tools, held-out tools): one tool per domain is held out."""
    rng = random.Random(f"split:{seed}")
    held_out = []
    for domain in sorted({t.domain for t in catalogue.tools}):
        names = sorted(t.name for t in catalogue.tools if t.domain == domain)
        if len(names) > 1:
            held_out.append(rng.choice(names))
    train = sorted(t.name for t in catalogue.tools if t.name not in held_out)
    return train, sorted(held_out)


def episodes(catalogue: Catalogue, tool_names: list[str], *, per_tool: int, doubles: int,
             exchanges: tuple[list[Exchange], list[Exchange]], shown: int, seed: int,
             prefix: str) -> list[Episode]:
    rng = random.Random(f"episodes:{prefix}:{seed}")
    filler = _Filler(catalogue, rng)
    by_name = {t.name: t for t in catalogue.tools}
    found: list[Episode] = []

    def shown_tools(gold: list[str]) -> list[str]:
        pool = [n for n in tool_names if n not in gold]
        names = gold + rng.sample(pool, min(len(pool), shown - len(gold)))
        rng.shuffle(names)
        return names

    for name in tool_names:
        tool = by_name[name]
        templates = rng.sample(tool.requests, len(tool.requests))
        for index in range(per_tool):
            filled = filler.fill(tool, templates[index % len(templates)])
            found.append(Episode(
                id=f"{prefix}-{name}-{index}", kind="single", task=filled["request"],
                tools=shown_tools([name]), calls=[filled["call"]],
                observations=[filled["observation"]], answer=filled["answer"],
                wrong_answers=filled["wrong"]))
    for index in range(doubles):
        first, second = rng.sample(tool_names, 2)
        one = filler.fill(by_name[first], rng.choice(by_name[first].requests))
        two = filler.fill(by_name[second], rng.choice(by_name[second].requests))
        joiner = rng.choice([" Also, ", " And ", " Then, ", " After that, "])
        task = one["request"].rstrip() + joiner + _lower_first(two["request"])
        found.append(Episode(
            id=f"{prefix}-double-{index}", kind="double", task=task,
            tools=shown_tools([first, second]), calls=[one["call"], two["call"]],
            observations=[one["observation"], two["observation"]],
            answer=f"{one['answer']} {two['answer']}",
            wrong_answers=[f"{w} {two['answer']}" for w in one["wrong"]][:2]))
    for kind, items in zip(("chitchat", "unsupported"), exchanges, strict=True):
        for index, item in enumerate(items):
            others = [e.answer for e in items if e.answer != item.answer]
            found.append(Episode(
                id=f"{prefix}-{kind}-{index}", kind=kind, task=item.request,
                tools=shown_tools([]), calls=[], observations=[], answer=item.answer,
                wrong_answers=rng.sample(others, min(1, len(others)))))
    return found


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def role_examples(episode: Episode, registry: ToolRegistry) -> dict[str, list[dict]]:
    """Every role's examples from one episode: prompts rendered by the real agents, and the
    trajectory written by the roles' own state updates, as the running graph writes it."""
    tools = ToolRegistry([registry.get(name) for name in episode.tools])
    task = episode.task

    def example(agent, steps: list[Step], target: Any) -> dict:
        request = agent.request(task, steps, tools)
        text = target if isinstance(target, str) else _compact(target)
        example = {"episode": episode.id, "tools": episode.tools, "messages": request.messages,
                   "tool_specs": list(request.tools), "target": text}
        if isinstance(request.output, ToolCalls):  # written in the trained model's format
            example["calls"] = target
        elif not isinstance(target, str):  # JSON, laid out as the trained model writes it
            example["value"] = target
        return example

    planner, summarizer, verifier = _fixed_agents()
    examples: dict[str, list[dict]] = {"planner": [], "caller": [], "summarizer": [],
                                       "verifier": []}

    def decide(steps: list[Step], next_step: str, thought: str) -> list[Step]:
        """The planner's example at this point, and the steps its decision adds."""
        decision = roles.PlannerDecision(next=next_step, thought=thought)
        examples["planner"].append(example(planner, steps, decision.model_dump()))
        return get_role("planner").steps(decision)

    if episode.kind == "chitchat":
        steps = decide([], "answer", "No tool is needed; I can answer directly.")
    elif episode.kind == "unsupported":
        steps = decide([], "give_up", "None of the available tools can do this.")
    else:
        names = " and ".join(call["name"] for call in episode.calls)
        steps = decide([], "call", f"Call {names}.")
        caller = roles.caller(tools)
        # With the planner's thought, as in the graph, and without, as in `chorus call`.
        examples["caller"].append(example(caller, steps, episode.calls))
        examples["caller"].append(example(caller, [], episode.calls))
        steps += get_role("caller").steps(episode.calls)
        steps += [Step(kind="observation", content=o) for o in episode.observations]
        steps += decide(steps, "answer", "The results answer the task.")
    examples["summarizer"].append(example(summarizer, steps, episode.answer))
    judged = [(episode.answer, True)] + [(w, False) for w in episode.wrong_answers[:1]]
    for answer, passed in judged:
        verdict = {"pass": passed, "feedback": "ok" if passed else _feedback(episode)}
        examples["verifier"].append(
            example(verifier, [*steps, *get_role("summarizer").steps(answer)], verdict))
    return examples


@functools.cache
def _fixed_agents():
    # Built once: each agent checks its output schema when it is made.
    return roles.planner(), roles.summarizer(), roles.verifier()


def _feedback(episode: Episode) -> str:
    if episode.calls:
        return "The answer does not match the tool results for this task."
    return "The answer does not respond to what the user asked."


def _compact(value: Any) -> str:
    # What the constrained decoder writes for a model without a call syntax of its own
    # (chat_format.written_json): no whitespace, keys in schema order.
    return json.dumps(value, ensure_ascii=False, separators=COMPACT)


def generate(out: Path, *, seed: int = 0, catalogue_path: Path = CATALOGUE,
             per_tool: tuple[int, int] = (10, 6), doubles: tuple[int, int] = (60, 20),
             shown: int = 5, cap: tuple[int, int] = (400, 120)) -> dict[str, Any]:
    """Write OUT/{train,eval}/{role}.jsonl, episodes.jsonl, OUT/tools.json and
    OUT/manifest.json; returns the manifest. (train, eval) pairs size the two splits;
    `cap` bounds each role file, sampled evenly by the seed."""
    catalogue = load_catalogue(catalogue_path)
    registry = ToolRegistry([Tool.from_openai(t.spec()) for t in catalogue.tools])
    train_tools, eval_tools = split_tools(catalogue, seed)
    rng = random.Random(f"exchanges:{seed}")
    chitchat = rng.sample(catalogue.chitchat, len(catalogue.chitchat))
    unsupported = rng.sample(catalogue.unsupported, len(catalogue.unsupported))
    held = (len(chitchat) // 4, len(unsupported) // 4)
    splits = {
        "train": (train_tools, (chitchat[held[0]:], unsupported[held[1]:])),
        "eval": (eval_tools, (chitchat[:held[0]], unsupported[:held[1]])),
    }
    out = Path(out)
    counts: dict[str, dict[str, int]] = {}
    for index, (split, (names, exchanges)) in enumerate(splits.items()):
        played = episodes(catalogue, names, per_tool=per_tool[index], doubles=doubles[index],
                          exchanges=exchanges, shown=shown, seed=seed, prefix=split)
        by_role: dict[str, list[dict]] = {}
        for episode in played:
            for role, items in role_examples(episode, registry).items():
                by_role.setdefault(role, []).extend(items)
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        _write_jsonl(folder / "episodes.jsonl", [e.record() for e in played])
        counts[split] = {"episodes": len(played)}
        for role, items in by_role.items():
            if len(items) > cap[index]:
                items = random.Random(f"cap:{split}:{role}:{seed}").sample(items, cap[index])
                items.sort(key=lambda e: e["episode"])
            _write_jsonl(folder / f"{role}.jsonl", items)
            counts[split][role] = len(items)
    (out / "tools.json").write_text(json.dumps(
        [t.spec() for t in catalogue.tools], indent=1, ensure_ascii=False) + "\n")
    manifest = {"generator": GENERATOR_VERSION, "catalogue": catalogue.version, "seed": seed,
                "version": _content_hash(out), "train_tools": train_tools,
                "eval_tools": eval_tools, "counts": counts,
                "command": f"chorus adapters data --out {out} --seed {seed}"}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def _content_hash(out: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(out.glob("*/*.jsonl")):
        digest.update(str(path.relative_to(out)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def data_version(data: Path) -> str:
    """The version recorded by `generate`, or a hash of the files for hand-made data."""
    manifest = Path(data) / "manifest.json"
    if manifest.is_file():
        return json.loads(manifest.read_text()).get("version", "unknown")
    return _content_hash(Path(data))
