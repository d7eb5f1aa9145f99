"""Function calling as a service: messages and tool specs in, the chosen calls out.

Two ways to decide, compared in benchmarks/tool_calls.py: `direct` lets the caller answer
`[]` itself; `planned` asks the planner first whether any tool is needed, as the tool_use
graph does, and only then runs a caller that must call. On the plain base model `direct`
is the more accurate (the planner rarely says no tool is needed), so it is the default.
"""

from __future__ import annotations

from typing import Any, Literal

from chorus.agents.roles import caller, describe_tools, planner, unique_calls
from chorus.runtime import Model
from chorus.runtime.types import Message
from chorus.tools import ToolRegistry

Strategy = Literal["direct", "planned"]


def conversation_task(messages: list[Message]) -> str:
    """A chat history as one task text; the last user message is what must be served."""
    if not messages:
        return ""
    if len(messages) == 1:
        return messages[0].get("content", "")
    return "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages)


def choose_calls(model: Model, tools: ToolRegistry, task: str, *,
                 strategy: Strategy = "direct", adapters: dict[str, str] | None = None,
                 max_calls: int = 3) -> list[dict[str, Any]]:
    adapters = adapters or {}
    described = describe_tools(tools)
    if strategy == "planned":
        decision = planner(adapters.get("planner")).run(model, task, tools=described)
        if decision.value.next != "call":
            return []
    minimum = 1 if strategy == "planned" else 0
    reply = caller(tools, adapters.get("caller"), min_calls=minimum,
                   max_calls=max_calls).run(model, task, tools=described)
    return unique_calls(reply.value)
