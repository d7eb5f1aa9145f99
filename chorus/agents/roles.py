"""The built-in roles: planner, caller, summarizer, verifier, each with its output contract.

The planner/caller/summarizer split follows alpha-UMi; unlike its free-text
"Next: caller / conclusion / give up", the planner's choice here is constrained.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chorus.agents.agent import Agent
from chorus.tools.registry import MAX_ARGUMENT_STRING, ToolRegistry


class PlannerDecision(BaseModel):
    # The decision comes first: a small model's thought often rambles, and it should not
    # get the chance to talk itself out of the right choice.
    next: Literal["call", "answer", "give_up"]
    thought: str = Field(max_length=80)


class Verdict(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    passed: bool = Field(alias="pass")
    feedback: str = Field(max_length=160)


def describe_tools(tools: ToolRegistry) -> str:
    lines = []
    for item in tools:
        properties = item.parameters.get("properties", {})
        arguments = ", ".join(
            f"{name}: {spec.get('type', 'value')}" for name, spec in properties.items())
        lines.append(f"- {item.name}({arguments}): {item.description}")
    return "\n".join(lines)


def planner(adapter: str | None = None) -> Agent:
    # Budgets cover the longest output the schema allows, so a reply is never cut in half.
    return Agent.from_template("planner", adapter=adapter, output=PlannerDecision,
                               max_new_tokens=112)


def caller(tools: ToolRegistry, adapter: str | None = None, *, min_calls: int = 1,
           max_calls: int = 3) -> Agent:
    """Called once the planner chose to call, so by default it must make a call; with
    `min_calls=0` it may answer [] when no tool fits."""
    when_none = "Reply [] if no tool fits the task." if min_calls == 0 else ""
    return Agent.from_template("caller", adapter=adapter,
                               output=tools.calls_schema(min_calls, max_calls),
                               max_new_tokens=(MAX_ARGUMENT_STRING + 64) * max_calls,
                               fields={"when_none": when_none})


def unique_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A small model may repeat a call word for word; each distinct call is kept once."""
    kept: list[dict[str, Any]] = []
    for call in calls:
        if call not in kept:
            kept.append(call)
    return kept


def summarizer(adapter: str | None = None) -> Agent:
    return Agent.from_template("summarizer", adapter=adapter, max_new_tokens=160,
                               stop_on_repeated_line=True)


def verifier(adapter: str | None = None) -> Agent:
    return Agent.from_template("verifier", adapter=adapter, output=Verdict, max_new_tokens=200)
