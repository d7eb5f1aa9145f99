"""`chorus chat`: talk to a graph of agents in the terminal.

Line editing and a history kept across sessions come from prompt_toolkit on a real terminal;
where there is none (input piped in, TERM=dumb) lines are read plainly, so the command also
works in scripts.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.markdown import Markdown

from chorus.chat.commands import ChatState, run_command
from chorus.chat.session import ChatSession
from chorus.chat.transcript import Transcripts
from chorus.chat.view import TurnView
from chorus.display import shown
from chorus.errors import ChorusError
from chorus.paths import chorus_home


class LineReader:
    """Reads one message: Enter sends it; Esc-Enter or a trailing backslash adds a line."""

    def __init__(self, history: Path):
        self._session = None
        if sys.stdin.isatty() and sys.stdout.isatty() and os.environ.get("TERM") != "dumb":
            from prompt_toolkit import PromptSession
            from prompt_toolkit.history import FileHistory
            from prompt_toolkit.key_binding import KeyBindings

            bindings = KeyBindings()

            @bindings.add("escape", "enter")
            def _newline(event) -> None:
                event.current_buffer.insert_text("\n")

            history.parent.mkdir(parents=True, exist_ok=True)
            self._session = PromptSession(history=FileHistory(str(history)),
                                          key_bindings=bindings)

    def _line(self, prompt: str) -> str:
        if self._session is not None:
            return self._session.prompt(prompt)
        print(prompt, end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            print()
            raise EOFError
        print(line.rstrip("\n"))  # echoed, so a piped session reads as a transcript
        return line.rstrip("\n")

    def read(self) -> str:
        text = self._line("› ")
        while text.endswith("\\"):
            text = text[:-1] + "\n" + self._line("… ")
        return text

    def ask(self, question: str) -> str:
        if self._session is not None:
            from prompt_toolkit import prompt

            return prompt(question)
        return self._line(question)


def run_chat(args, load_model, err: Console) -> int:
    from chorus.graphs import resolve_graph

    console = Console()
    transcripts = Transcripts(chorus_home() / "chat.sqlite")
    if args.resume and transcripts.thread(args.resume) is None:  # before the model loads
        known = ", ".join(t["id"] for t in transcripts.recent_threads(5)) or "none yet"
        raise ChorusError(f"No chat thread '{args.resume}' to resume (recent: {known})")
    spec = resolve_graph(args.graph)
    model = load_model(args, spec)
    session = ChatSession(spec, model, transcripts, thread=args.resume, store=args.store)
    state = ChatState(console=console, session=session)
    reader = LineReader(chorus_home() / "chat_history")
    console.print(f"[bold]chorus chat[/] · graph {shown(spec.name)} · {shown(model.name)} · "
                  f"thread {session.thread} · /help for commands, Ctrl-D to leave",
                  highlight=False)
    if args.resume:
        _replay(console, session)
        if session.unfinished():
            console.print("[yellow]The last turn did not finish; resuming it.[/]")
            _turn(state, reader, lambda view, confirm: session.resume_unfinished(
                events=view, confirm=confirm))
    while not state.quit:
        try:
            text = reader.read()
        except KeyboardInterrupt:
            continue  # Ctrl-C at the prompt clears the line
        except EOFError:
            break
        if not text.strip():
            continue
        if text.startswith("/"):
            run_command(state, text)
            continue
        _turn(state, reader, lambda view, confirm, text=text: session.ask(
            text, events=view, confirm=confirm))
    console.print(f"[dim]Bye. `chorus chat --resume {session.thread}` continues this "
                  "conversation.[/]", highlight=False)
    return 0


def _turn(state: ChatState, reader: LineReader, run) -> None:
    view = TurnView(state.console, verbose=state.verbose)

    def confirm(request: dict) -> bool:
        view.pause()
        call = f"{request['confirm']}({json.dumps(request['arguments'], ensure_ascii=False)})"
        answer = reader.ask(f"Run {call}? [y/N] ")
        return answer.strip().lower() in ("y", "yes")

    try:
        result = run(view, confirm)
    except KeyboardInterrupt:
        view.footer(" · stopped")
        state.console.print("[yellow]Stopped. The next message starts a new turn.[/]")
        return
    except (ChorusError, EOFError) as error:
        view.footer(" · failed")
        state.console.print(f"[red]error:[/] {shown(str(error) or 'input closed')}")
        return
    view.answer(result.answer)
    view.footer()


def _replay(console: Console, session: ChatSession) -> None:
    for message in session.history():
        if message.role == "user":
            note = "" if message.status in ("done", "pending") else f" ({message.status})"
            console.print(f"[bold]› {shown(message.content)}[/][dim]{note}[/]",
                          highlight=False)
        else:
            console.print(Markdown(message.content or "_(no answer)_"))
    console.rule(style="dim")
