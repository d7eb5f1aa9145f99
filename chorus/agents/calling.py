"""Function calling as a service: a request and tool specs in, the chosen calls out.

This is the one implementation of "planner, then caller" outside a graph: `chorus call`,
the demo, the adapter evaluation and the benchmarks all run it. Two ways to decide, compared
in benchmarks/tool_calls.py:
- `direct` (the default, one prompt evaluation): the caller writes a call, which is not
  made if it is made up (`grounding.invented`). Given the choice of not calling,
  Qwen2.5-Coder-0.5B declined requests that plainly needed a call and called for chit-chat,
  with a date or a city it had to invent: that is the signal this strategy reads.
- `planned`: the planner first decides whether any tool is needed, as the tool_use graph
  does, and the caller then reads its thought, as the graph's caller does.
Either way the calls are grounded in the request (chorus.agents.grounding), the model is
made to write one call more while the extra call does more of the request, and a large
catalogue is cut to the most relevant tools.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from chorus.agents.grounding import adds_to, asks_more, released, undone, unshared
from chorus.agents.roles import caller, get_role, planner
from chorus.agents.trajectory import Step, thought_step
from chorus.runtime import GenerationRequest, GenerationResult, Model, library
from chorus.runtime.types import Message
from chorus.tools import ToolRegistry
from chorus.tools.registry import MAX_SHOWN_TOOLS

Strategy = Literal["direct", "planned"]
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

    def ask(index: int, tools: ToolRegistry, part: str | None = None) -> GenerationRequest:
        """The caller's request for the task, or for `part` of it alone (the planner's
        thought was about the whole task)."""
        task, steps = (requests[index][0], thoughts[index]) if part is None else (part, [])
        return caller(tools, adapters.get("caller"), max_calls=max_calls).request(
            task, steps, tools)

    asked = {index: ask(index, requests[index][1]) for index in chosen}
    results = _generate(model, list(asked.values()), batch_size, raise_errors)
    growing = []
    for index, result in zip(asked, results, strict=True):
        task, tools = requests[index]
        if result.error is not None:
            outcomes[index] = None
            continue
        # A model with no tool that fits still writes a call, made up (a date or a city for
        # "Hi there!"): the caller's settle drops it, and `direct` says [] this way.
        made = get_role("caller").settle(result.value, task, tools)
        growing.append(_Progress(index, task, tools, made, result.value))
    _add_calls(model, ask, growing, max_calls, batch_size)
    for progress in growing:
        outcomes[progress.index] = progress.calls
    return outcomes


@dataclass(eq=False)
class _Progress:
    """One request's calls while `_add_calls` grows them."""

    index: int  # of the request, for `ask`
    task: str
    tools: ToolRegistry
    calls: Calls  # the calls to make: settled and grounded
    written: Calls  # the calls as the model wrote them, which a request for more repeats
    left: str = ""  # the part of the task the calls leave undone (`grounding.undone`)
    shown: ToolRegistry | None = None  # the tools, the likeliest for `left` first

    def look_again(self) -> None:
        self.left = undone(self.task, self.calls, self.tools)
        self.shown = self.tools.relevant(self.left, len(self.tools))

    def keep_added(self, result: GenerationResult, *, alone: bool = False) -> bool:
        """Keep the call the model added (the last of `result`; the first where it wrote
        the undone part `alone`) if it does more of the task; whether it was kept."""
        if result.error is not None or not result.value:
            return False
        new = result.value[0] if alone else result.value[-1]
        settled = get_role("caller").settle([new], self.task, self.tools)
        if not settled or not adds_to(settled[0], self.calls, self.tools, self.task):
            return False
        [added] = settled
        self.calls = [released(made, added, self.tools) for made in self.calls] + [
            unshared(added, self.calls, self.tools, self.task)]
        self.written = [*self.written, new] if alone else result.value
        return True


def _add_calls(model: Model, ask: Callable[..., GenerationRequest], growing: list[_Progress],
               max_calls: int, batch_size: int) -> None:
    """A small model writes one call and stops, even when the task asks the same thing for
    several values or two things at once (Qwen2.5-Coder-0.5B: 0 of 16 such requests). So
    each round asks it for one call more, kept only if it does more of the task
    (`grounding.adds_to`); again while calls are kept and the task may ask for more
    (`grounding.asks_more`), up to `max_calls`:
    - its first request again, asking for the calls it wrote and one more
      (`ToolCalls.after`), with the tool likeliest for the part of the task the calls so
      far leave undone (`grounding.undone`) listed first: asked for one call more, the
      model writes the first listed tool again ("void invoice INV-1200" after creating an
      invoice -> `create_invoice` again);
    - the undone part alone, as a request of its own, where it gives values of its own
      ("void invoice INV-1200"): one ask per request is what the model does best. Where
      another tool than those called is likeliest for that part, it is asked first, and
      its first request again only if that call is not kept; for more of the same tool
      ("email addresses of Tom Becker and Aisha Khan") the first request again comes
      first, as it carries what the parts share."""
    pending = [progress for progress in growing if progress.calls]
    while pending := [progress for progress in pending if len(progress.written) < max_calls
                      and asks_more(progress.task, progress.calls, progress.tools)]:
        for progress in pending:
            progress.look_again()
        # another tool's part is asked alone first, more of the same tool again first
        alone_first = [progress for progress in pending if _gives(progress.left) and
                       progress.shown.names()[0] not in {c["name"] for c in progress.calls}]
        grew = _ask_alone(model, ask, alone_first, batch_size)
        again = [progress for progress in pending if progress not in grew]
        prepared = [ask(progress.index, progress.shown) for progress in again]
        prepared = [request.model_copy(update={"output": request.output.after(progress.written)})
                    for progress, request in zip(again, prepared, strict=True)]
        results = _generate(model, prepared, batch_size, raise_errors=False)
        grew += [progress for progress, result in zip(again, results, strict=True)
                 if progress.keep_added(result)]
        grew += _ask_alone(model, ask, [progress for progress in again if progress not in grew
                                        and progress not in alone_first
                                        and _gives(progress.left)], batch_size)
        pending = grew


def _ask_alone(model: Model, ask: Callable[..., GenerationRequest], asked: list[_Progress],
               batch_size: int) -> list[_Progress]:
    """Ask for each request's undone part alone; the requests whose call was kept."""
    results = _generate(model, [ask(progress.index, progress.shown, progress.left)
                                for progress in asked], batch_size, raise_errors=False)
    return [progress for progress, result in zip(asked, results, strict=True)
            if progress.keep_added(result, alone=True)]


# A value of its own in a part of a request: digits, a path or an address, a name.
_VALUE_LIKE = re.compile(r"\d|[/@]|\s[A-Z]")


def _gives(part: str) -> bool:
    """Whether an undone part gives values of its own ("void invoice INV-1200"), rather
    than qualify the calls made ("only ones available right now", "please"): only then is
    it worth a request of its own."""
    return bool(_VALUE_LIKE.search(part))


def _generate(model: Model, requests: list[GenerationRequest], batch_size: int,
              raise_errors: bool) -> list[GenerationResult]:
    if raise_errors:  # through `complete`, which raises and batches with other threads
        return [model.complete(request) for request in requests]
    return model.generate_chunked(requests, batch_size)
