"""`chorus run`, `chorus call` and `chorus trace`: graphs, function calling, and their traces."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.prompt import Confirm

from chorus.display import clip, shown, trace_tree
from chorus.errors import ChorusError
from chorus.files import read_json

_SHOWN = {"decision", "pending_calls", "answer", "verdict"}


def run_graph(args, load_model, console: Console) -> int:
    from chorus.graphs import GraphRunner, resolve_graph

    spec = resolve_graph(args.graph)
    model = load_model(args, spec)
    runner = GraphRunner(spec, model, store=args.store)

    def show(node: str, update: dict) -> None:
        for step in update.get("trajectory", []):
            console.print(f"[bold cyan]{shown(node)}[/] [dim]{step['kind']}:[/] "
                          f"{shown(clip(step['content']))}", highlight=False)
        if "verdict" in update and update["verdict"]:
            verdict = update["verdict"]
            colour = "green" if verdict.get("pass") else "red"
            console.print(f"[bold cyan]{shown(node)}[/] [{colour}]verdict: "
                          f"{'pass' if verdict.get('pass') else 'fail'}[/]")

    if args.thread and runner.pending(args.thread):
        console.print(f"[yellow]resuming thread {shown(args.thread)} from its last "
                      "checkpoint[/]")
    def confirm(request: dict) -> bool:
        call = f"{request['confirm']}({json.dumps(request['arguments'], ensure_ascii=False)})"
        return Confirm.ask(f"Run {shown(call)}?", console=console, default=False)

    # A tool that needs confirmation is declined when there is nobody at a terminal to ask.
    result = runner.run(args.input, thread_id=args.thread, on_update=show,
                        confirm=confirm if sys.stdin.isatty() else None)
    console.print(f"[dim]run {result.run_id} on thread {result.thread_id}; "
                  f"`chorus trace show {result.run_id}` for the trace[/]", highlight=False)
    print(result.answer)
    return 0


def call_tools(args, load_model, console: Console) -> int:
    from chorus.agents.calling import choose_calls, conversation_task, role_adapters
    from chorus.tools import ToolRegistry

    tools = ToolRegistry.from_openai_file(args.tools)
    if args.messages:
        messages = read_json(args.messages, "messages file")
        try:
            task = conversation_task(messages)
        except ValueError as error:
            raise ChorusError(f"{args.messages}: {error}") from None
    elif args.text:
        task = args.text
    else:
        raise ChorusError("Give the request as TEXT or --messages FILE")
    model = load_model(args)
    adapters = {} if args.no_adapters else role_adapters(model)
    calls = choose_calls(model, tools, task, strategy=args.strategy, adapters=adapters,
                         max_tools=args.max_tools, max_calls=args.max_calls)
    sys.stdout.write(json.dumps(calls, ensure_ascii=False) + "\n")
    return 0


def show_trace(args, console: Console) -> int:
    from chorus.graphs.runner import default_store
    from chorus.memory import TraceStore

    store = Path(args.store) if args.store else default_store()
    path = store / "traces.sqlite"
    if not path.is_file():
        raise ChorusError(f"No traces yet in {store}")
    traces = TraceStore(path)
    if args.run_id is None:
        for run in traces.recent_runs():
            status = run["status"] + (f" → {run['resumed_by']}" if run["resumed_by"] else "")
            console.print(f"{run['run_id']}  {status:<11} {shown(run['graph']):<10} "
                          f"{shown(clip(run['input'], 60))}", highlight=False)
        return 0
    console.print(trace_tree(traces, args.run_id))
    return 0
