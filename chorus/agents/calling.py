"""Function calling as a service: a request and tool specs in, the chosen calls out.

This is the one implementation of "planner, then caller" outside a graph: `chorus call`,
the demo, the adapter evaluation and the benchmarks all run it. Two ways to decide, compared
in benchmarks/tool_calls.py: `direct` lets the caller answer `[]` itself; `planned` asks the
planner first whether any tool is needed, as the tool_use graph does, and then runs a caller
that must call, reading the planner's thought as the graph's caller does. On the plain base
model `direct` is the more accurate (the planner rarely says no tool is needed), so it is
the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from chorus.agents.roles import caller, describe_tools, planner
from chorus.agents.scoring import unique_calls
from chorus.agents.trajectory import Step, thought_step
from chorus.runtime import GenerationRequest, GenerationResult, Model, library
from chorus.runtime.types import Message
from chorus.tools import ToolRegistry

Strategy = Literal["direct", "planned"]
Calls = list[dict[str, Any]]


def conversation_task(messages: list[Message]) -> str:
    """A chat history as one task text; the last user message is what must be served."""
    if not messages:
        return ""
    if len(messages) == 1:
        return messages[0].get("content", "")
    return "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages)


def role_adapters(model: Model) -> dict[str, str | None]:
    """The planner's and the caller's own adapters where they fit this base model, as
    `adapter: auto` gives them in a graph."""
    return {role: library.role_default(model, role) for role in ("planner", "caller")}


def choose_calls(model: Model, tools: ToolRegistry, task: str, *,
                 strategy: Strategy = "direct", adapters: dict[str, str | None] | None = None,
                 max_calls: int = 3) -> Calls:
    """The calls `task` needs ([] for none); a constrained output that fails raises."""
    [result] = _choose(model, [(task, tools)], strategy, adapters or {}, max_calls, 1,
                       raise_errors=True)
    return result


def choose_calls_batch(model: Model, requests: Sequence[tuple[str, ToolRegistry]], *,
                       strategy: Strategy = "direct",
                       adapters: dict[str, str | None] | None = None, max_calls: int = 3,
                       batch_size: int = 8) -> list[Calls | None]:
    """`choose_calls` for many (task, tools) pairs, `batch_size` rows per forward pass;
    None where a constrained output failed (its budget ran out)."""
    return _choose(model, list(requests), strategy, adapters or {}, max_calls, batch_size,
                   raise_errors=False)


def _choose(model: Model, requests: list[tuple[str, ToolRegistry]], strategy: Strategy,
            adapters: dict[str, str | None], max_calls: int, batch_size: int, *,
            raise_errors: bool) -> list[Calls | None]:
    outcomes: list[Calls | None] = [[] for _ in requests]
    thoughts: list[list[Step]] = [[] for _ in requests]
    chosen = list(range(len(requests)))
    if strategy == "planned":
        decide = planner(adapters.get("planner"))
        results = _generate(model, [decide.request(task, tools=describe_tools(tools))
                                    for task, tools in requests], batch_size, raise_errors)
        chosen = []
        for index, result in enumerate(results):
            if result.error is not None:
                outcomes[index] = None
            elif result.value.next == "call":
                thoughts[index] = [thought_step(result.value.thought)]
                chosen.append(index)
    minimum = 1 if strategy == "planned" else 0
    prepared = []
    for index in chosen:
        task, tools = requests[index]
        agent = caller(tools, adapters.get("caller"), min_calls=minimum, max_calls=max_calls)
        prepared.append(agent.request(task, thoughts[index], tools=describe_tools(tools)))
    for index, result in zip(chosen, _generate(model, prepared, batch_size, raise_errors),
                             strict=True):
        outcomes[index] = None if result.error is not None else unique_calls(result.value)
    return outcomes


def _generate(model: Model, requests: list[GenerationRequest], batch_size: int,
              raise_errors: bool) -> list[GenerationResult]:
    if raise_errors:  # through `complete`, which raises and batches with other threads
        return [model.complete(request) for request in requests]
    return model.generate_chunked(requests, batch_size)
