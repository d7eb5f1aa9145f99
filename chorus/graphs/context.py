"""What compiled nodes can reach: the graph's shared things, and the current run's own.

`GraphContext` is fixed when a graph is compiled (the model, the tools, the stores) and is
shared by every run of it. `RunScope` travels with one run as LangGraph's run context, so
two runs of one compiled graph, even at the same moment, never see each other's display or
trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chorus.graphs.events import EventKind, EventSink, GraphEvent
from chorus.memory import RefinementRepository, ToolJournal, TraceStore
from chorus.runtime import Model
from chorus.tools import ToolRegistry


@dataclass
class GraphContext:
    model: Model
    tools: ToolRegistry
    traces: TraceStore | None = None
    refinements: RefinementRepository | None = None  # the DVR graph's few-shot memory
    journal: ToolJournal | None = None  # tool calls run at most once across crashes


@dataclass(frozen=True)
class RunScope:
    run_id: str | None = None  # where the run's steps are traced
    events: EventSink | None = None  # the live display of this run, if any


def emit(runtime, kind: EventKind, node: str, **data: Any) -> None:
    scope: RunScope | None = getattr(runtime, "context", None)
    if scope is not None and scope.events is not None:
        scope.events(GraphEvent(kind, node, data))


def trace_step(context: GraphContext, runtime, node: str, kind: str, output: Any, *,
               agent: str | None = None, adapter: str | None = None, generation=None,
               constraint: str | None = None) -> None:
    scope: RunScope | None = getattr(runtime, "context", None)
    if context.traces is None or scope is None or scope.run_id is None:
        return
    context.traces.add_step(
        scope.run_id, node=node, kind=kind, output=output, agent=agent, adapter=adapter,
        prompt_tokens=generation.prompt_tokens if generation else 0,
        new_tokens=generation.new_tokens if generation else 0,
        latency_s=generation.latency_s if generation else 0.0, constraint=constraint)
