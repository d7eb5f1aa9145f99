"""Roles: what kind of agent a graph node runs, each one object in one registry.

A role holds everything chorus needs to know about its agents: how to build one (prompt
template, output contract, token budget), what its output writes into the graph's state and
trajectory, the one line that shows it in traces and chat, and how its examples are scored.
The graph compiler, the trainer, the evaluation and the chat view all ask the registry.

The planner/caller/summarizer split follows alpha-UMi; unlike its free-text
"Next: caller / conclusion / give up", the planner's choice here is constrained. Users add
roles with `register_role(Role.custom(...))` or a graph spec's `roles:` section.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from string import Template
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chorus.agents.agent import Agent
from chorus.agents.grounding import ground_calls, invented, with_named_options
from chorus.agents.prompting import load_template
from chorus.agents.scoring import (
    numbers_kept,
    same_calls,
    same_names,
    same_text,
    unique_calls,
    word_f1,
)
from chorus.agents.trajectory import Step, answer_step, call_step, thought_step
from chorus.errors import ChorusError
from chorus.tools.registry import MAX_ARGUMENT_STRING, ToolRegistry

Writes = Literal["answer", "decision"]


class PlannerDecision(BaseModel):
    # The decision comes first: a small model's thought often rambles, and it should not
    # get the chance to talk itself out of the right choice.
    next: Literal["call", "answer", "give_up"]
    thought: str = Field(max_length=80)


class Verdict(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    passed: bool = Field(alias="pass")
    feedback: str = Field(max_length=160)


@dataclass(frozen=True)
class AgentOptions:
    """What a graph spec (or a program) fixes about one agent of a role."""

    adapter: str | None = None
    tools: ToolRegistry | None = None
    max_calls: int | None = None
    max_new_tokens: int | None = None
    constraints: tuple[Any, ...] = ()  # format constraints on a written answer


def _no_steps(_value: Any) -> list[Step]:
    return []


def _nothing(_value: Any) -> dict[str, Any]:
    return {}


def _no_headline(_output: Any) -> str | None:
    return None


def _as_written(value: Any, _request: str, _tools: ToolRegistry | None,
                _steps: Sequence[Step] = ()) -> Any:
    return value


def _same_value(value: Any, target: str) -> tuple[float, ...]:
    if isinstance(value, str):
        return (same_text(value, target),)
    return (float(json.loads(target) == value),)


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    # The agent of this role; None for roles whose graph node does its own work (DVR).
    build: Callable[[AgentOptions], Agent] | None = None
    steps: Callable[[Any], list[Step]] = _no_steps  # what its output adds to the trajectory
    writes: Callable[[Any], dict[str, Any]] = _nothing  # other state fields it sets
    headline: Callable[[Any], str | None] = _no_headline  # its output (as JSON) in one line
    # What is kept of an output, given the request, the tools and the trajectory so far
    # (the caller's grounding).
    settle: Callable[[Any, str, ToolRegistry | None, Sequence[Step]], Any] = _as_written
    metrics: tuple[str, ...] = ("exact",)
    score: Callable[[Any, str], tuple[float, ...]] = _same_value  # (output, gold target)
    needs_tools: bool = False
    answers: bool = False  # its output is the graph's reply to the user
    trainable: bool = True  # has examples and can get an adapter of its own

    def agent(self, options: AgentOptions = AgentOptions()) -> Agent:
        if self.build is None:
            raise ChorusError(f"Role '{self.name}' runs a graph node of its own, not an agent")
        if self.needs_tools and not (options.tools and len(options.tools)):
            raise ChorusError(f"A {self.name} needs at least one tool")
        built = self.build(options)
        if options.max_new_tokens:
            built = replace(built, max_new_tokens=options.max_new_tokens)
        return built

    def update(self, value: Any) -> dict[str, Any]:
        """The graph-state update an output of this role writes (at run time, and when
        training trajectories are played)."""
        return {**self.writes(value),
                "trajectory": [step.model_dump() for step in self.steps(value)]}

    @classmethod
    def custom(cls, name: str, prompt: str, *, output: Any = None,
               writes: Writes | None = None, description: str = "",
               max_new_tokens: int = 256) -> Role:
        """A role from a prompt template ($tools becomes the tools' JSON Schemas, one per
        line; the task and trajectory follow as the user message) and an
        optional output contract; `writes` puts its output into the state's `answer` (and
        ends a graph's reply) or `decision` (for routes)."""
        def build(options: AgentOptions) -> Agent:
            return Agent(name=name, instructions=prompt, adapter=options.adapter,
                         output=output, max_new_tokens=max_new_tokens,
                         stop_on_repeated_line=output is None)

        def steps(value: Any) -> list[Step]:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            return [answer_step(text) if writes == "answer" else thought_step(text)]

        def written(value: Any) -> dict[str, Any]:
            return {writes: value if isinstance(value, str) else json.dumps(value)} \
                if writes else {}

        return cls(name=name, description=description or f"custom role {name}", build=build,
                   steps=steps, writes=written, answers=writes == "answer")


_REGISTRY: dict[str, Role] = {}


def register_role(role: Role, *, replace_existing: bool = False) -> Role:
    if role.name in _REGISTRY and not replace_existing:
        raise ChorusError(f"A role named '{role.name}' is already registered")
    if not role.name.replace("_", "a").replace("-", "a").isalnum():
        raise ChorusError(f"Invalid role name {role.name!r}: use letters, digits, '_' or '-'")
    _REGISTRY[role.name] = role
    return role


def get_role(name: str) -> Role:
    if name not in _REGISTRY:
        raise ChorusError(f"Unknown role '{name}' (known: {', '.join(_REGISTRY)}); register "
                          "it with chorus.agents.register_role or a graph's `roles:` section")
    return _REGISTRY[name]


def role_names(*, trainable: bool | None = None) -> list[str]:
    return [name for name, role in _REGISTRY.items()
            if trainable is None or role.trainable == trainable]


# --- planner -------------------------------------------------------------------------------

def planner(adapter: str | None = None) -> Agent:
    # Budgets cover the longest output the schema allows, so a reply is never cut in half.
    return Agent.from_template("planner", adapter=adapter, output=PlannerDecision,
                               max_new_tokens=112, sees_tools=True)


def _planner_headline(output: Any) -> str | None:
    if not isinstance(output, dict):
        return None
    return f"next: {output.get('next')} — {output.get('thought', '')}"


register_role(Role(
    name="planner", description="decides the next step: call a tool, answer, or give up",
    build=lambda o: planner(o.adapter),
    steps=lambda decision: [thought_step(decision.thought)],
    writes=lambda decision: {"decision": decision.next},
    headline=_planner_headline, metrics=("decision",),
    score=lambda decision, target: (float(decision.next == json.loads(target)["next"]),)))


# --- caller --------------------------------------------------------------------------------

def caller(tools: ToolRegistry, adapter: str | None = None, *, min_calls: int = 1,
           max_calls: int = 3) -> Agent:
    """Called once the planner chose to call, so by default it must make a call; with
    `min_calls=0` it may answer [] when no tool fits. The prompt is the same either way (the
    grammar enforces the minimum), so every caller over the same tools shares one prompt
    state: the tools are evaluated once."""
    return Agent.from_template("caller", adapter=adapter,
                               output=tools.calls(min_calls, max_calls),
                               max_new_tokens=(MAX_ARGUMENT_STRING + 64) * max_calls,
                               sees_tools=True)


def _new_calls(calls: list[dict[str, Any]], request: str, tools: ToolRegistry,
               steps: Sequence[Step] = ()) -> list[dict[str, Any]]:
    """The calls worth making: grounded in the conversation (the request and the results so
    far), not made up (a model with no tool that fits still writes one, with values of its
    own: `calculator("2*(3+4)")` for "Hi there!"), and not made already in this run (their
    results are in the trajectory: a planner that says "call" again once the result is in
    gets no second call, and the run goes on to its answer); with the options the request
    names that the model left out (`grounding.with_named_options`)."""
    made = [step.data for step in steps if step.kind == "call"]
    heard = "\n".join([request, *(step.content for step in steps
                                  if step.kind == "observation")])
    asked = [call for call in ground_calls(calls, tools, heard)
             if not invented(call, tools, heard)]
    # options are filled in once the made-up calls are gone (a code the request names does
    # not make a call asked for), from the request alone (a result may list every code)
    completed = unique_calls([with_named_options(call, tools, request) for call in asked])
    return [call for call in completed if call not in made]


register_role(Role(
    name="caller", description="writes the tool calls of the next step (constrained JSON)",
    build=lambda o: caller(o.tools, o.adapter, max_calls=o.max_calls or 3),
    steps=lambda calls: [call_step(c["name"], c["arguments"]) for c in unique_calls(calls)],
    # "answer" when nothing is left to call: a graph may route on it past its tools node.
    writes=lambda calls: {"pending_calls": unique_calls(calls),
                          "decision": "call" if calls else "answer"},
    settle=_new_calls,
    metrics=("tool names", "arguments"), needs_tools=True,
    score=lambda calls, target: (same_names(calls, json.loads(target)),
                                 same_calls(calls, json.loads(target)))))


# --- summarizer ----------------------------------------------------------------------------

def summarizer(adapter: str | None = None, constraints: Sequence[Any] = ()) -> Agent:
    """`constraints` (as `chorus dvr --json` lists them): those a grammar expresses are
    compiled into the answer's decoding grammar, and all are stated in the prompt."""
    alone = load_template("summarizer_alone")  # where no tool gave a result
    if not constraints:
        return Agent.from_template("summarizer", adapter=adapter, max_new_tokens=160,
                                   stop_on_repeated_line=True, instructions_alone=alone)
    # Imported here: the checks' models cost `chorus call` 50 ms it never needs.
    from chorus.checks import parse_constraint
    from chorus.checks.compiling import compile_constraints

    parsed = [parse_constraint(constraint) for constraint in constraints]
    # "$" doubled: the instructions are a template, and a keyword may be "$5".
    stated = "\n".join(f"- {constraint.describe()}".replace("$", "$$") for constraint in parsed)

    def required(template: Template) -> Template:
        return Template(f"{template.template}\n\nThe answer must also meet these "
                        f"requirements:\n{stated}")

    return Agent("summarizer", required(load_template("summarizer")), adapter=adapter,
                 max_new_tokens=256, output=compile_constraints(parsed).output,
                 stop_on_repeated_line=True, instructions_alone=required(alone))


register_role(Role(
    name="summarizer", description="writes the final answer from the tool results",
    build=lambda o: summarizer(o.adapter, o.constraints),
    steps=lambda text: [answer_step(text)], writes=lambda text: {"answer": text},
    answers=True, metrics=("all numbers kept", "word F1"),
    score=lambda text, target: (numbers_kept(text, target), word_f1(text, target))))


# --- verifier ------------------------------------------------------------------------------

def verifier(adapter: str | None = None) -> Agent:
    return Agent.from_template("verifier", adapter=adapter, output=Verdict, max_new_tokens=200)


def _verdict_headline(output: Any) -> str | None:
    if not isinstance(output, dict):
        return None
    return f"verdict: {'✓ pass' if output.get('pass') else '✗ fail'} {output.get('feedback', '')}"


register_role(Role(
    name="verifier", description="judges the answer: pass, or fail with feedback",
    build=lambda o: verifier(o.adapter),
    steps=lambda verdict: [] if verdict.passed else [Step(kind="feedback",
                                                          content=verdict.feedback)],
    writes=lambda verdict: {"verdict": {"pass": verdict.passed, "feedback": verdict.feedback}},
    headline=_verdict_headline, metrics=("verdict",),
    score=lambda verdict, target: (float(verdict.passed == json.loads(target)["pass"]),)))


# --- Divide-Verify-Refine: their graph nodes run the DVR steps (chorus.agents.dvr) ---------

for _name, _what in (("divider", "splits an instruction into checkable constraints"),
                     ("writer", "writes the first answer to an instruction"),
                     ("refiner", "rewrites an answer to fix one failed constraint")):
    register_role(Role(name=_name, description=_what, trainable=False))
