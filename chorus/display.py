"""What the command line and the chat show alike: a run's trace as a tree, clipped text."""

from __future__ import annotations

from rich.tree import Tree


def trace_tree(traces, run_id: str) -> Tree:
    """One run's steps: agent, adapter, tokens and time of each, then the answer."""
    run = traces.run(run_id)
    tree = Tree(f"[bold]run {run['run_id']}[/] · graph {run['graph']} · thread "
                f"{run['thread_id']} · {run['status']}")
    tree.add(f"[bold]input:[/] {run['input']}")
    for step in traces.steps(run["run_id"]):
        if step["kind"] == "agent":
            label = (f"[cyan]{step['node']}[/] agent={step['agent']} "
                     f"adapter={step['adapter'] or 'base'} · {step['prompt_tokens']}+"
                     f"{step['new_tokens']} tokens · {step['latency_s']:.2f} s"
                     + (f" · {step['constraint']}" if step["constraint"] else ""))
        else:
            label = f"[magenta]{step['node']}[/] tool"
        tree.add(label).add(clip(step["output"], 300))
    if run["answer"]:
        tree.add(f"[bold green]answer:[/] {run['answer']}")
    return tree


def clip(text: str | None, limit: int = 160) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"
