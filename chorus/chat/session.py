"""A conversation with a graph: turns, their transcript, and resuming after a crash.

The conversation is a LangGraph thread: each turn is one run of the graph on it, checkpointed
step by step, and the transcript is stored message by message. A turn stopped with Ctrl-C is
marked "stopped" and left out of what the agents see next; a turn cut short by a closed
terminal or a killed process is resumed from its last checkpoint by `resume_unfinished`.
"""

from __future__ import annotations

from pathlib import Path

from chorus.agents.calling import conversation_task
from chorus.chat.transcript import ChatMessage, Transcripts
from chorus.errors import ChorusError
from chorus.graphs import GraphRunner, GraphSpec
from chorus.graphs.events import EventSink
from chorus.graphs.runner import Confirm, RunResult
from chorus.memory import RefinementRepository
from chorus.runtime import Model
from chorus.tools import Tool

# Earlier exchanges the agents see with each new message: a 135M model loses the task in
# longer prompts, and the transcript keeps everything anyway.
CONTEXT_EXCHANGES = 2


class ChatSession:
    def __init__(self, spec: GraphSpec, model: Model, transcripts: Transcripts, *,
                 thread: str | None = None, tools: list[Tool] = (),
                 store: str | Path | None = None,
                 refinements: RefinementRepository | None = None):
        self.transcripts = transcripts
        if thread is not None and transcripts.thread(thread) is None:
            known = ", ".join(t["id"] for t in transcripts.recent_threads(5)) or "none yet"
            raise ChorusError(f"No chat thread '{thread}' (recent: {known})")
        self.runner = GraphRunner(spec, model, tools=tools, store=store,
                                  refinements=refinements)
        self.thread = thread or transcripts.new_thread(spec.name, model.name)
        self.last_run_id: str | None = None

    @property
    def spec(self) -> GraphSpec:
        return self.runner.spec  # adapters resolved

    def history(self) -> list[ChatMessage]:
        return self.transcripts.messages(self.thread)

    def unfinished(self) -> bool:
        """Did the process stop in the middle of the last turn (not by Ctrl-C)?"""
        messages = self.history()
        return bool(messages) and messages[-1].role == "user" and \
            messages[-1].status == "pending" and self.runner.pending(self.thread)

    def ask(self, text: str, *, events: EventSink | None = None,
            confirm: Confirm | None = None) -> RunResult:
        message = self.transcripts.add(self.thread, "user", text, status="pending")
        task = self._task(text)
        return self._run(message, task, events, confirm, fresh=True)

    def resume_unfinished(self, *, events: EventSink | None = None,
                          confirm: Confirm | None = None) -> RunResult:
        message_id = self.transcripts.pending_user_message(self.thread)
        return self._run(message_id, None, events, confirm, fresh=False)

    def _run(self, message_id: int, task: str | None, events, confirm, *,
             fresh: bool) -> RunResult:
        try:
            result = self.runner.run(task, thread_id=self.thread, events=events,
                                     confirm=confirm, fresh=fresh)
        except KeyboardInterrupt:
            self.last_run_id = self.runner.last_run_id
            self.transcripts.settle(message_id, "stopped", self.last_run_id)
            raise
        except Exception:
            self.last_run_id = self.runner.last_run_id
            self.transcripts.settle(message_id, "failed", self.last_run_id)
            raise
        self.last_run_id = result.run_id
        self.transcripts.settle(message_id, "done", result.run_id)
        self.transcripts.add(self.thread, "assistant", result.answer, run_id=result.run_id)
        return result

    def _task(self, text: str) -> str:
        answered = []
        messages = self.history()
        for question, reply in zip(messages, messages[1:], strict=False):
            if question.role == "user" and question.status == "done" and \
                    reply.role == "assistant":
                answered += [question, reply]
        recent = answered[-2 * CONTEXT_EXCHANGES:]
        return conversation_task([{"role": m.role, "content": m.content} for m in recent]
                                 + [{"role": "user", "content": text}])

    def reset(self) -> str:
        """A new, empty conversation (the old one stays in the transcripts)."""
        self.thread = self.transcripts.new_thread(self.runner.spec.name,
                                                  self.runner.context.model.name)
        self.last_run_id = None
        return self.thread

    def markdown(self) -> str:
        lines = [f"# chorus chat {self.thread}", ""]
        for message in self.history():
            who = "You" if message.role == "user" else "chorus"
            note = "" if message.status == "done" else f" _({message.status})_"
            lines += [f"**{who}:**{note}", "", message.content, ""]
        return "\n".join(lines)
