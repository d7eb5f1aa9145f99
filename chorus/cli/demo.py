"""`chorus demo`: what `make run` shows, on the embedded model, through the paths a user takes.

Three steps: a plain streamed reply (`chorus generate`), the tool calls a request needs from
the caller agent, shown every tool's full JSON Schema (`chorus call`), and the tool_use graph
answering a question with a real tool (`chorus run tool_use`).
"""

from __future__ import annotations

import json

from rich.console import Console
from rich.panel import Panel

from chorus.agents.calling import choose_calls, role_adapters
from chorus.display import shown
from chorus.graphs import GraphRunner, resolve_graph
from chorus.tools import Tool, ToolRegistry

# Declared-only tools, as `chorus call --tools FILE` reads them: their calls are shown, not run.
DEMO_TOOLS = [
    {"name": "get_weather", "description": "Current weather in a city.",
     "parameters": {"type": "object", "required": ["city"], "properties": {
         "city": {"type": "string", "description": "city name, e.g. Paris"},
         "unit": {"enum": ["celsius", "fahrenheit"], "default": "celsius"}}}},
    {"name": "convert_currency", "description": "Convert an amount of money between "
                                                "currencies.",
     "parameters": {"type": "object", "required": ["amount", "source", "target"],
                    "properties": {
                        "amount": {"type": "number", "description": "amount to convert"},
                        "source": {"type": "string", "pattern": "^[A-Z]{3}$",
                                   "description": "ISO code of the currency to convert from"},
                        "target": {"type": "string", "pattern": "^[A-Z]{3}$",
                                   "description": "ISO code of the currency to convert to"}}}},
    {"name": "search_web", "description": "Search the web.",
     "parameters": {"type": "object", "required": ["query"], "properties": {
         "query": {"type": "string", "description": "what to search for"}}}},
]


def run_demo(model, console: Console, store=None) -> int:
    console.rule(f"chorus demo on {model.name}")
    question = "What is the capital of France? Answer in one sentence."
    console.print(f"[bold]user:[/] {question}   [dim](chorus generate)[/]")
    console.print("[bold]model:[/] ", end="")
    answer = model.generate(question, max_new_tokens=48,
                            on_text=lambda piece: console.print(piece, end="", markup=False))
    console.print()
    _stats(console, answer)

    request = "Convert 250 euros to US dollars."
    tools = ToolRegistry([Tool.from_openai(spec) for spec in DEMO_TOOLS])
    console.print(f"\n[bold]user:[/] {request}   [dim](chorus call: the caller agent "
                  f"chooses among {', '.join(tools.names())})[/]")
    calls = choose_calls(model, tools, request, adapters=role_adapters(model))
    console.print(Panel(shown(json.dumps(calls, ensure_ascii=False)),
                        title="tool calls (constrained, validated against each tool's schema)"))

    task = "What is 12 * 12?"
    console.print(f"\n[bold]user:[/] {task}   [dim](chorus run tool_use: planner, caller, "
                  "tools, summarizer on one base model)[/]")
    runner = GraphRunner(resolve_graph("tool_use"), model, store=store)
    wearing = ", ".join(f"{name} ({agent.adapter or 'no'} adapter)"
                        for name, agent in runner.spec.agents.items())
    console.print(f"  [dim]agents: {shown(wearing)}[/]", highlight=False)

    def show(node: str, update: dict) -> None:
        for step in update.get("trajectory", []):
            console.print(f"  [cyan]{shown(node)}[/] [dim]{step['kind']}:[/] "
                          f"{shown(step['content'][:120])}", highlight=False)

    result = runner.run(task, on_update=show)
    console.print(f"[bold]answer:[/] {shown(result.answer)}")
    console.print(f"[dim]trace: chorus trace show {result.run_id}[/]", highlight=False)
    print(json.dumps({"answer": answer.text, "tool_calls": calls,
                      "graph_answer": result.answer}))
    return 0


def _stats(console: Console, result) -> None:
    console.print(f"[dim]{result.prompt_tokens} prompt + {result.new_tokens} new tokens, "
                  f"{result.tokens_per_s:.1f} tokens/s, {result.latency_s:.2f} s[/]",
                  highlight=False)
