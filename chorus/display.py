"""What the command line and the chat show alike: a run's trace as a tree, safe text.

Text from models, tools, files and stores is shown, never interpreted: rich markup in it is
escaped (`[/bold]` would crash printing, `[link=...]` would make a link) and control
characters are dropped (escape sequences would drive the terminal).
"""

from __future__ import annotations

import re

from rich.markup import escape
from rich.tree import Tree

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shown(text: object) -> str:
    """`text` made safe to print inside rich markup."""
    return escape(_CONTROL.sub("", str(text)))


def trace_tree(traces, run_id: str) -> Tree:
    """One run's steps: agent, adapter, tokens and time of each, then the answer."""
    run = traces.run(run_id)
    tree = Tree(f"[bold]run {run['run_id']}[/] · graph {shown(run['graph'])} · thread "
                f"{shown(run['thread_id'])} · {run['status']}"
                + (f", resumed by run {run['resumed_by']}" if run["resumed_by"] else ""))
    tree.add(f"[bold]input:[/] {shown(run['input'])}")
    for step in traces.steps(run["run_id"]):
        if step["kind"] == "agent":
            label = (f"[cyan]{shown(step['node'])}[/] agent={shown(step['agent'])} "
                     f"adapter={shown(step['adapter'] or 'base')} · {step['prompt_tokens']}+"
                     f"{step['new_tokens']} tokens · {step['latency_s']:.2f} s"
                     + (f" · {shown(step['constraint'])}" if step["constraint"] else ""))
        else:
            label = f"[magenta]{shown(step['node'])}[/] tool"
        tree.add(label).add(shown(clip(step["output"], 300)))
    if run["answer"]:
        tree.add(f"[bold green]answer:[/] {shown(run['answer'])}")
    return tree


def clip(text: str | None, limit: int = 160) -> str:
    """One line of at most `limit` characters, without control characters (for rich markup,
    pass it through `shown` as well)."""
    text = _CONTROL.sub("", (text or "").replace("\n", " "))
    return text if len(text) <= limit else text[:limit] + "…"
