"""What a running graph tells a live display: agents starting, tokens, tool calls, results.

Nodes emit events through the run's sink as they happen (a token as soon as it is decoded);
the sink must be quick, and it is called from whichever thread runs the node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

EventKind = Literal["agent_start", "token", "agent_done", "tool_call", "tool_result"]


@dataclass(frozen=True)
class GraphEvent:
    kind: EventKind
    node: str
    data: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[GraphEvent], None]
