"""What every compiled node can reach: the shared model, the tools, the stores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chorus.graphs.events import EventKind, EventSink, GraphEvent
from chorus.memory import RefinementRepository, TraceStore
from chorus.runtime import Model
from chorus.tools import ToolRegistry


@dataclass
class GraphContext:
    model: Model
    tools: ToolRegistry
    traces: TraceStore | None = None
    refinements: RefinementRepository | None = None  # the DVR graph's few-shot memory
    events: EventSink | None = None  # the live display of the current run, if any

    def emit(self, kind: EventKind, node: str, **data: Any) -> None:
        if self.events is not None:
            self.events(GraphEvent(kind, node, data))


def trace_step(context: GraphContext, config, node: str, kind: str, output: Any, *,
               agent: str | None = None, adapter: str | None = None, generation=None,
               constraint: str | None = None) -> None:
    run_id = (config or {}).get("configurable", {}).get("run_id")
    if context.traces is None or run_id is None:
        return
    context.traces.add_step(
        run_id, node=node, kind=kind, output=output, agent=agent, adapter=adapter,
        prompt_tokens=generation.prompt_tokens if generation else 0,
        new_tokens=generation.new_tokens if generation else 0,
        latency_s=generation.latency_s if generation else 0.0, constraint=constraint)
