"""The shared record the agents read: what was thought, called, observed and judged."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel


class Step(BaseModel):
    kind: Literal["thought", "call", "observation", "answer", "feedback"]
    content: str
    data: dict[str, Any] | None = None  # the call or observation, structured


def call_step(name: str, arguments: dict[str, Any]) -> Step:
    return Step(kind="call", content=f"{name}({json.dumps(arguments, ensure_ascii=False)})",
                data={"name": name, "arguments": arguments})


_LABELS = {"thought": "Plan", "call": "Call", "observation": "Result", "answer": "Answer",
           "feedback": "Verifier feedback"}


def render_trajectory(steps: list[Step]) -> str:
    return "\n".join(f"{_LABELS[step.kind]}: {step.content}" for step in steps)
