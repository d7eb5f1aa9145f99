"""The live view of a chat turn: who speaks (role, adapter), its tokens as they stream, tool
calls and results, verdicts, then the answer as markdown and a footer of tokens and time.

Plain text where there is no colour (NO_COLOR, TERM=dumb, output piped to a file): rich
decides from the console, and every line here still reads as text without its styles.
"""

from __future__ import annotations

import json
import threading
import time

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown

from chorus.display import shown
from chorus.graphs.events import GraphEvent


class TurnView:
    def __init__(self, console: Console, *, verbose: bool = True):
        self.console = console
        self.verbose = verbose
        # Tokens stream to a terminal; a file gets each output once, wrapped to the width.
        self.streams = verbose and console.is_terminal
        self.started = time.perf_counter()
        self.tokens = 0  # prompt and new tokens of every model call in the turn
        self.new_tokens = 0
        self.generation_s = 0.0
        self._streaming: str | None = None  # the node whose tokens are being printed
        self._live: Live | None = None  # the answer, re-rendered as markdown as it grows
        self._answer = ""
        self.shown_answer: str | None = None  # the answer already on screen, if any
        self._active = 0  # agents running now; tokens are streamed only when one runs
        self._lock = threading.Lock()

    def __call__(self, event: GraphEvent) -> None:
        with self._lock:
            getattr(self, f"_{event.kind}")(event)

    def _agent_start(self, event: GraphEvent) -> None:
        self._end_stream()
        self._active += 1
        adapter = event.data.get("adapter") or "base model"
        self.console.print(f"[bold cyan]▸ {shown(event.node)}[/] [dim]· "
                           f"{shown(event.data.get('role', ''))} · adapter "
                           f"{shown(adapter)}[/]", highlight=False)
        if event.data.get("answers") and self.streams and self._active == 1:
            self._answer = ""
            self._live = Live(Markdown(""), console=self.console, refresh_per_second=8,
                              vertical_overflow="visible")
            self._live.start()

    def _token(self, event: GraphEvent) -> None:
        if not self.streams or self._active != 1:
            return
        if self._live is not None:
            self._answer += event.data["text"]
            self._live.update(Markdown(self._answer))
            return
        if self._streaming != event.node:
            self._end_stream()
            self._streaming = event.node
            self.console.print("  ", end="")
        self.console.print(shown(event.data["text"]).replace("\n", "\n  "), end="",
                           style="dim", highlight=False)

    def _agent_done(self, event: GraphEvent) -> None:
        self._end_stream()
        self._active = max(0, self._active - 1)
        generation = event.data.get("generation")
        if generation is not None:
            self.tokens += generation.prompt_tokens + generation.new_tokens
            self.new_tokens += generation.new_tokens
            self.generation_s += generation.latency_s
        output = event.data.get("output")
        if self.verbose and not self.streams and not event.data.get("answers"):
            text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
            self.console.print(f"  [dim]{shown(text)}[/]", highlight=False)
        headline = event.data.get("headline")  # the role's one line: a decision, a verdict
        if headline:
            self.console.print(f"  [bold]{shown(headline)}[/]", highlight=False)

    def _tool_call(self, event: GraphEvent) -> None:
        self._end_stream()
        arguments = json.dumps(event.data.get("arguments", {}), ensure_ascii=False)
        self.console.print(f"[bold magenta]⚙ {shown(event.data['tool'])}[/]"
                           f"({shown(arguments)})", highlight=False)

    def _tool_result(self, event: GraphEvent) -> None:
        status = event.data.get("status", "ok")
        colour = "green" if status == "ok" else "yellow"
        content = str(event.data.get("content", ""))
        clipped = content if len(content) <= 300 else content[:300] + "…"
        self.console.print(f"  [{colour}]→ {shown(clipped)}[/]", highlight=False)

    def _end_stream(self) -> None:
        if self._live is not None:
            self._live.stop()
            if not self.console.is_terminal:  # rich ends the line only on a terminal
                self.console.line()
            self._live = None
            self.shown_answer = self._answer
        if self._streaming is not None:
            self.console.print()
            self._streaming = None

    def pause(self) -> None:
        """End a streamed line, e.g. before asking the user something."""
        with self._lock:
            self._end_stream()

    def answer(self, text: str) -> None:
        """The final answer as markdown, unless it was just streamed as such."""
        self._end_stream()
        if self.shown_answer is not None and self.shown_answer.strip() == text.strip():
            return
        self.console.print(Markdown(text or "_(no answer)_"))

    def footer(self, note: str = "") -> None:
        self._end_stream()
        elapsed = time.perf_counter() - self.started
        rate = self.new_tokens / self.generation_s if self.generation_s else 0.0
        self.console.print(f"[dim]{self.tokens} tokens ({self.new_tokens} new) · "
                           f"{rate:.1f} tokens/s · {elapsed:.1f} s{note}[/]", highlight=False)
