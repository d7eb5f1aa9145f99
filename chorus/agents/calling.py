"""Function calling as a service: a request and tool specs in, the chosen calls out.

This is the one implementation of "planner, then caller" outside a graph: `chorus call`,
the demo, the adapter evaluation and the benchmarks all run it. Two ways to decide, compared
in benchmarks/tool_calls.py: `direct` lets the caller answer `[]` itself (the default: one
prompt evaluation instead of two, but small models almost never answer `[]`); `planned`
asks the planner first whether any tool is needed, as the tool_use graph does, and then
runs a caller that must call, reading the planner's thought as the graph's caller does.
Either way the calls are grounded in the request (chorus.agents.grounding), a follow-up
round asks for calls still missing, and a large catalogue is cut to the most relevant tools.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from chorus.agents.grounding import grounded
from chorus.agents.roles import caller, get_role, planner
from chorus.agents.trajectory import Step, call_step, thought_step
from chorus.runtime import GenerationRequest, GenerationResult, Model, library
from chorus.runtime.types import Message
from chorus.tools import ToolRegistry
from chorus.tools.registry import MAX_SHOWN_TOOLS

Strategy = Literal["direct", "planned"]
# In the trajectory, not the system prompt: the caller's prompt state over the tools is reused.
FOLLOW_UP = thought_step("The calls above are made. Add the calls the task still needs (the "
                         "same tool for another value, or another tool), or reply [] if they "
                         "do all it asks.")
Calls = list[dict[str, Any]]


CHAT_ROLES = ("system", "user", "assistant", "tool")


def conversation_task(messages: list[Message]) -> str:
    """A chat history as one task text; the last user message is what must be served.
    Raises ValueError naming the first message that is not `{"role", "content": text}`."""
    if not isinstance(messages, list):
        raise ValueError('expected a JSON list of chat messages [{"role": ..., "content": ...}]')
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, dict):
            raise ValueError(f"message {number} is not an object with role and content")
        if message.get("role", "user") not in CHAT_ROLES:
            raise ValueError(f"message {number}: role {message.get('role')!r} is not one of "
                             f"{', '.join(CHAT_ROLES)}")
        if not isinstance(message.get("content", ""), str):
            raise ValueError(f"message {number}: content must be text")
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
                 max_calls: int = 3, max_tools: int = MAX_SHOWN_TOOLS) -> Calls:
    """The calls `task` needs ([] for none); a constrained output that fails raises. Of a
    catalogue over `max_tools`, the agents see the `max_tools` most relevant to the task."""
    [result] = _choose(model, [(task, tools.relevant(task, max_tools))], strategy,
                       adapters or {}, max_calls, 1, raise_errors=True)
    return result


def choose_calls_batch(model: Model, requests: Sequence[tuple[str, ToolRegistry]], *,
                       strategy: Strategy = "direct",
                       adapters: dict[str, str | None] | None = None, max_calls: int = 3,
                       max_tools: int = MAX_SHOWN_TOOLS, batch_size: int = 8
                       ) -> list[Calls | None]:
    """`choose_calls` for many (task, tools) pairs, `batch_size` rows per forward pass;
    None where a constrained output failed (its budget ran out)."""
    shown = [(task, tools.relevant(task, max_tools)) for task, tools in requests]
    return _choose(model, shown, strategy, adapters or {}, max_calls, batch_size,
                   raise_errors=False)


def _choose(model: Model, requests: list[tuple[str, ToolRegistry]], strategy: Strategy,
            adapters: dict[str, str | None], max_calls: int, batch_size: int, *,
            raise_errors: bool) -> list[Calls | None]:
    outcomes: list[Calls | None] = [[] for _ in requests]
    thoughts: list[list[Step]] = [[] for _ in requests]
    chosen = list(range(len(requests)))
    if strategy == "planned":
        decide = planner(adapters.get("planner"))
        results = _generate(model, [decide.request(task, tools=tools)
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
        prepared.append(agent.request(task, thoughts[index], tools))
    for index, result in zip(chosen, _generate(model, prepared, batch_size, raise_errors),
                             strict=True):
        task, tools = requests[index]
        outcomes[index] = None if result.error is not None \
            else get_role("caller").settle(result.value, task, tools)
    _add_follow_up_calls(model, requests, outcomes, thoughts, adapters, max_calls, batch_size)
    return outcomes


def _add_follow_up_calls(model: Model, requests: list[tuple[str, ToolRegistry]],
                         outcomes: list[Calls | None], thoughts: list[list[Step]],
                         adapters: dict[str, str | None], max_calls: int,
                         batch_size: int) -> None:
    """A small model writes one call and stops, even when the task asks the same thing for
    several values or two things at once. Ask again, showing the calls made so far; keep a
    new call only if every value in it comes from the task."""
    pending = [index for index, calls in enumerate(outcomes) if calls]
    while pending:
        pending = [index for index in pending if len(outcomes[index]) < max_calls]
        prepared = []
        for index in pending:
            task, tools = requests[index]
            made = [call_step(call["name"], call["arguments"]) for call in outcomes[index]]
            agent = caller(tools, adapters.get("caller"), min_calls=0, max_calls=1)
            prepared.append(agent.request(task, [*thoughts[index], *made, FOLLOW_UP], tools))
        grew = []
        results = _generate(model, prepared, batch_size, raise_errors=False)
        for index, result in zip(pending, results, strict=True):
            if result.error is not None:
                continue
            task, tools = requests[index]
            added = [call for call in get_role("caller").settle(result.value, task, tools)
                     if call not in outcomes[index] and grounded(call, tools, task)]
            if added:
                outcomes[index] = outcomes[index] + added
                grew.append(index)
        pending = grew


def _generate(model: Model, requests: list[GenerationRequest], batch_size: int,
              raise_errors: bool) -> list[GenerationResult]:
    if raise_errors:  # through `complete`, which raises and batches with other threads
        return [model.complete(request) for request in requests]
    return model.generate_chunked(requests, batch_size)
