"""The shared record the agents read: what was thought, called, observed and judged."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel


class Step(BaseModel):
    kind: Literal["thought", "call", "observation", "answer", "feedback"]
    content: str
    data: dict[str, Any] | None = None  # the call or observation, structured


# One constructor per kind: the graph at run time and the training data both write steps
# through these, so the text an adapter learns from is the text it will be shown.

def thought_step(text: str) -> Step:
    return Step(kind="thought", content=text)


def call_step(name: str, arguments: dict[str, Any]) -> Step:
    return Step(kind="call", content=f"{name}({json.dumps(arguments, ensure_ascii=False)})",
                data={"name": name, "arguments": arguments})


def observation_step(tool: str, content: str) -> Step:
    return Step(kind="observation", content=f"{tool}: {content}")


def answer_step(text: str) -> Step:
    return Step(kind="answer", content=text)


_LABELS = {"thought": "Plan", "call": "Call", "observation": "Result", "answer": "Answer",
           "feedback": "Verifier feedback"}


def render_trajectory(steps: list[Step]) -> str:
    return "\n".join(f"{_LABELS[step.kind]}: {step.content}" for step in steps)
