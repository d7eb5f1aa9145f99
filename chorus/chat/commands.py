"""Slash commands of `chorus chat`. Each prints to the session's console; a mistake (an
unknown command, a missing argument) prints a hint, never a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from chorus.chat.session import ChatSession
from chorus.display import shown
from chorus.errors import ChorusError


@dataclass
class ChatState:
    console: Console
    session: ChatSession
    verbose: bool = True
    quit: bool = False


Handler = Callable[[ChatState, str], None]


NARROW = 70  # below this width a table's columns get too thin: print records instead


def _print_rows(console: Console, headers: list[str], rows: list[list[str]]) -> None:
    if console.width >= NARROW:
        table = Table(*headers)
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    for row in rows:
        details = " · ".join(f"{h}: {v}" for h, v in zip(headers[1:], row[1:], strict=True)
                             if v and v != "-")
        console.print(f"[bold]{shown(row[0])}[/] {shown(details)}", highlight=False)


def _help(state: ChatState, _argument: str) -> None:
    table = Table.grid(padding=(0, 2))
    for name, (_, usage, summary) in COMMANDS.items():
        table.add_row(shown(f"/{name}{' ' + usage if usage else ''}"), summary)
    state.console.print(table)
    state.console.print("[dim]Enter sends; Esc then Enter, or a line ending in \\, starts a new "
                        "line. Ctrl-C stops a turn, Ctrl-D leaves.[/]")


def _graph(state: ChatState, _argument: str) -> None:
    spec = state.session.spec
    tree = Tree(f"[bold]{shown(spec.name)}[/] [dim]{shown(spec.description)}[/]")
    for name, node in spec.nodes.items():
        if node.agent:
            agent = spec.agents[node.agent]
            label = (f"[cyan]{shown(name)}[/] · {agent.role} · adapter "
                     f"{shown(agent.adapter or 'base model')}")
        else:
            label = f"[magenta]{shown(name)}[/] · run {node.run}"
        if node.max_visits:
            label += f" [dim](at most {node.max_visits} visits, then {node.on_limit})[/]"
        branch = tree.add(label)
        for edge in spec.edges:
            if name not in edge.sources:
                continue
            if edge.route is not None:
                for value, target in edge.route.cases.items():
                    branch.add(f"→ {shown(target)} [dim]when {edge.route.field} = "
                               f"{shown(value)}[/]")
            else:
                branch.add(f"→ {shown(', '.join(edge.targets()))}")
    state.console.print(tree)


def _tools(state: ChatState, _argument: str) -> None:
    tools = state.session.runner.context.tools
    if not len(tools):
        state.console.print("This graph has no tools.")
        return
    rows = [[item.name, ", ".join(item.parameters.get("properties", {})), item.description,
             "yes" if item.needs_confirmation else ""] for item in tools]
    _print_rows(state.console, ["tool", "arguments", "description", "asks first"], rows)


def _adapters(state: ChatState, _argument: str) -> None:
    from chorus.runtime.library import available

    registry = state.session.runner.context.model.adapters
    users = {}
    for name, agent in state.session.spec.agents.items():
        users.setdefault(agent.adapter, []).append(name)
    rows = [[info.name, ", ".join(users.get(info.name, [])) or "-", str(info.rank),
             f"{info.size_bytes / 1e6:.1f} MB", info.source or "created in memory"]
            for info in registry.list()]
    if None in users:
        rows.append(["(base model)", ", ".join(users[None]), "-", "-", "-"])
    _print_rows(state.console, ["adapter", "used by", "rank", "size", "source"], rows)
    idle = [item.name for item in available() if item.name not in registry]
    if idle:
        state.console.print(f"[dim]also available: {', '.join(idle)}[/]")


def _memory(state: ChatState, argument: str) -> None:
    from chorus.memory.refinements import RefinementRepository, default_repository_path

    path = default_repository_path()
    if not path.is_file():
        state.console.print(f"The refinement repository {path} is empty: DVR runs fill it.")
        return
    repository = RefinementRepository(path)
    try:
        found = (repository.search(argument, k=5, touch=False) if argument
                 else repository.list(limit=10))
    finally:
        repository.close()
    if not found:
        state.console.print("No refinements" + (f" match '{argument}'." if argument else "."))
        return
    _print_rows(state.console, ["id", "constraint", "feedback", "after"],
                [[str(item.id), item.constraint_type, item.feedback, item.after[:120]]
                 for item in found])


def _trace(state: ChatState, _argument: str) -> None:
    from chorus.display import trace_tree

    if state.session.last_run_id is None:
        state.console.print("No turn has run yet in this session.")
        return
    state.console.print(trace_tree(state.session.runner.traces, state.session.last_run_id))


def _verbose(state: ChatState, argument: str) -> None:
    if argument not in ("on", "off"):
        state.console.print(f"Usage: /verbose on|off (now {'on' if state.verbose else 'off'})")
        return
    state.verbose = argument == "on"
    state.console.print(f"verbose {argument}: " + ("tokens stream as they are generated"
                        if state.verbose else "only steps, tool calls and answers"))


def _reset(state: ChatState, _argument: str) -> None:
    thread = state.session.reset()
    state.console.print(f"New conversation, thread {thread}.")


def _save(state: ChatState, argument: str) -> None:
    if not argument:
        state.console.print("Usage: /save FILE (the transcript as markdown)")
        return
    path = Path(argument).expanduser()
    try:
        path.write_text(state.session.markdown() + "\n")
    except OSError as error:
        state.console.print(f"[red]Cannot write {shown(str(path))}: {shown(str(error))}[/]")
        return
    state.console.print(f"Saved the transcript to {shown(str(path))}.")


def _quit(state: ChatState, _argument: str) -> None:
    state.quit = True


COMMANDS: dict[str, tuple[Handler, str, str]] = {
    "help": (_help, "", "this list"),
    "graph": (_graph, "", "the current graph: agents, adapters, routes"),
    "tools": (_tools, "", "the tools the agents can call"),
    "adapters": (_adapters, "", "loaded LoRA adapters and which agent wears each"),
    "memory": (_memory, "[query]", "the refinement repository (recent, or matching query)"),
    "trace": (_trace, "", "the last turn's steps: agent, adapter, tokens, time"),
    "verbose": (_verbose, "on|off", "stream tokens as they are generated, or not"),
    "reset": (_reset, "", "start a new conversation"),
    "save": (_save, "FILE", "write the transcript as markdown"),
    "quit": (_quit, "", "leave (Ctrl-D too)"),
}
ALIASES = {"exit": "quit", "q": "quit", "?": "help"}


def run_command(state: ChatState, line: str) -> None:
    name, _, argument = line[1:].strip().partition(" ")
    name = ALIASES.get(name.lower(), name.lower())
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" Did you mean /{close[0]}?" if close else ""
        state.console.print(f"Unknown command /{shown(name)}.{hint} Type /help for the list.")
        return
    try:
        COMMANDS[name][0](state, argument.strip())
    except ChorusError as error:
        state.console.print(f"[red]error:[/] {shown(str(error))}")
