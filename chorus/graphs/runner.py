"""Run a compiled graph: checkpointed by thread, traced by run, resumable after a crash."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.errors import GraphRecursionError
from langgraph.types import Command, Interrupt

from chorus.errors import ChorusError
from chorus.graphs.compiler import build_tools, compile_graph, with_adapters
from chorus.graphs.context import GraphContext, RunScope
from chorus.graphs.events import EventSink
from chorus.graphs.spec import GraphSpec
from chorus.graphs.state import fresh_input
from chorus.graphs.thread_lock import thread_lock
from chorus.memory import RefinementRepository, ToolJournal, TraceStore
from chorus.paths import chorus_home
from chorus.runtime import Model
from chorus.tools import Tool

UpdateSink = Callable[[str, dict[str, Any]], None]  # (node, the state update it wrote)
Confirm = Callable[[dict[str, Any]], bool]  # {"confirm": tool, "arguments": {...}} -> run it?


@dataclass(frozen=True)
class RunResult:
    run_id: str
    thread_id: str
    answer: str
    state: dict[str, Any]
    resumed: bool


def default_store() -> Path:
    return chorus_home() / "runs"


class GraphRunner:
    def __init__(self, spec: GraphSpec, model: Model, *, tools: list[Tool] = (),
                 store: str | Path | None = None,
                 refinements: RefinementRepository | None = None):
        store = Path(store) if store else default_store()
        self.store = store
        try:
            store.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ChorusError(f"Cannot use {store} as the run store: {error}") from error
        self.spec = with_adapters(spec, model)  # 'auto' adapters resolved, once
        self.traces = TraceStore(store / "traces.sqlite")
        try:
            connection = sqlite3.connect(store / "checkpoints.sqlite", check_same_thread=False)
            self.checkpointer = SqliteSaver(connection)
            self.checkpointer.setup()
        except sqlite3.Error as error:
            raise ChorusError(f"Cannot open the run store {store} ({error}): is it a folder "
                              "chorus made, and writable? Pass another with --store") from error
        self.context = GraphContext(model=model, tools=build_tools(self.spec, list(tools)),
                                    traces=self.traces, refinements=refinements,
                                    journal=ToolJournal(store / "tool_calls.sqlite"))
        self.graph = compile_graph(self.spec, self.context, checkpointer=self.checkpointer)
        self.last_run_id: str | None = None

    def pending(self, thread_id: str) -> bool:
        """Did a run on this thread stop before finishing?"""
        return bool(self._snapshot(thread_id).next)

    def state(self, thread_id: str) -> dict[str, Any]:
        """The thread's state at its last checkpoint ({} for a thread never run)."""
        return dict(self._snapshot(thread_id).values)

    def _snapshot(self, thread_id: str):
        return self.graph.get_state({"configurable": {"thread_id": thread_id}})

    def run(self, task: str | None, *, thread_id: str | None = None,
            on_update: UpdateSink | None = None, events: EventSink | None = None,
            confirm: Confirm | None = None, fresh: bool = False) -> RunResult:
        """Start `task` on a thread, or, if that thread's last run did not finish, resume it
        from its last checkpoint (no tool call runs twice: chorus.memory.journal); `fresh` starts
        `task` anyway. `events` receives the live steps (chorus.graphs.events). A tool that
        needs confirmation pauses the run until `confirm({"confirm": tool, "arguments"})`
        answers; without `confirm` such calls are declined."""
        thread_id = thread_id or uuid.uuid4().hex[:12]
        with thread_lock(self.store, thread_id):
            return self._run_locked(task, thread_id, on_update, events, confirm, fresh)

    def _run_locked(self, task, thread_id, on_update, events, confirm, fresh) -> RunResult:
        snapshot = self._snapshot(thread_id)
        resumed = bool(snapshot.next) and not fresh
        config = {"configurable": {"thread_id": thread_id}}
        if resumed:
            pending = snapshot.values.get("task", task)
            if task is not None and task.strip() and task != pending:
                raise ChorusError(
                    f"Thread '{thread_id}' has an unfinished run of {pending[:80]!r}: "
                    "run again without an input to finish it, or use another thread")
            task, graph_input = pending, None
        elif task is None or not task.strip():
            raise ChorusError(f"Thread '{thread_id}' has nothing to resume; give an input")
        else:
            graph_input = fresh_input(task)
        run_id = self.traces.start_run(thread_id=thread_id, graph=self.spec.name, task=task)
        self.last_run_id = run_id  # known even when the run is interrupted
        # We hold the thread's lock: runs of it still marked running died mid-way.
        self.traces.mark_killed(thread_id, resumed_by=run_id if resumed else None,
                                except_run=run_id)
        config["recursion_limit"] = self.spec.max_steps
        scope = RunScope(run_id=run_id, events=events)
        status = "failed"
        try:
            while True:
                paused = self._stream(graph_input, config, scope, on_update)
                if not paused:
                    break
                answers = {item.id: bool(confirm and confirm(item.value)) for item in paused}
                graph_input = Command(resume=answers)
            status = "done"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        except GraphRecursionError:
            raise ChorusError(
                f"The run on thread '{thread_id}' took {self.spec.max_steps} steps without "
                "reaching its end: a loop in the graph never exits (lower the agents' "
                "max_visits, or raise the spec's max_steps)") from None
        finally:
            state = self.graph.get_state(config).values
            self.traces.finish_run(run_id, answer=state.get("answer"), status=status)
        return RunResult(run_id=run_id, thread_id=thread_id, answer=state.get("answer", ""),
                         state=state, resumed=resumed)

    def _stream(self, graph_input, config, scope: RunScope,
                on_update: UpdateSink | None) -> list[Interrupt]:
        """Run until the graph ends or pauses; the interrupts it paused on, if any."""
        paused: list[Interrupt] = []
        # "sync": each step's checkpoint is on disk before the next step starts, so a
        # crash never loses a finished step (LangGraph's default writes them async).
        for update in self.graph.stream(graph_input, config, context=scope,
                                        stream_mode="updates", durability="sync"):
            for node, written in update.items():
                if node == "__interrupt__":
                    paused.extend(written)
                elif on_update and isinstance(written, dict):
                    on_update(node, written)
        return paused
