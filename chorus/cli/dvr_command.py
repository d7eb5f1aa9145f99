"""`chorus dvr TEXT`: answer an instruction with Divide–Verify–Refine on the `dvr` graph."""

from __future__ import annotations

import json
import sys

from rich.console import Console

from chorus.display import shown
from chorus.errors import ChorusError, RepositoryError


def run_dvr(args, load_model, console: Console) -> int:
    from chorus.agents.dvr import DvrOutcome
    from chorus.graphs import GraphRunner, resolve_graph
    from chorus.memory import RefinementRepository
    from chorus.memory.refinements import default_repository_path

    spec = resolve_graph(args.graph)
    if not any(node.run == "checks" for node in spec.nodes.values()):
        raise ChorusError(f"Graph {spec.name} is not a DVR graph: it has no `run: checks` node "
                          "to verify constraints (use --graph dvr, or a graph built like it)")
    repository = None
    if not args.no_repository:
        path = args.repository or default_repository_path()
        try:
            repository = RefinementRepository(path)
        except RepositoryError as error:  # refine without examples rather than not at all
            console.print(f"[yellow]warning:[/] {shown(error)}; refining without examples",
                          highlight=False)
    model = load_model(args, spec)
    runner = GraphRunner(spec, model, store=args.store, refinements=repository)

    def show(node: str, update: dict) -> None:
        progress = update.get("dvr") or {}
        if "verdict" in update:  # the checks node
            outcome = DvrOutcome.from_state(progress)
            console.print(f"[bold cyan]{shown(node)}[/] {outcome.best.passed}/"
                          f"{len(outcome.constraints)} constraints pass", highlight=False)
            for result in outcome.best.results:
                if not result.passed:
                    console.print(f"  [red]✗ {result.type}[/] {shown(result.feedback)}",
                                  highlight=False)
        elif "answer" not in update and "constraints" in progress:  # the divider
            compiled = set(progress.get("compiled", ()))
            types = ", ".join(c["type"] + (" (by construction)" if i in compiled else "")
                              for i, c in enumerate(progress["constraints"])) or "none"
            console.print(f"[bold cyan]{shown(node)}[/] constraints: {types}", highlight=False)
        elif "answer" in update:
            console.print(f"[bold cyan]{shown(node)}[/] [dim]{len(update['answer'].split())} "
                          "words[/]",
                          highlight=False)

    try:
        result = runner.run(args.text, on_update=show)
    finally:
        if repository is not None:
            repository.close()
    outcome = DvrOutcome.from_state(result.state["dvr"])
    if args.json:
        sys.stdout.write(json.dumps(outcome.to_json(), ensure_ascii=False) + "\n")
    else:
        for conflict in outcome.conflicts:
            console.print(f"[yellow]conflict:[/] {shown(conflict)}", highlight=False)
        print(outcome.response)
    return 0
