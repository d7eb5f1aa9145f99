"""`chorus demo`: the runtime and a graph of agents, end to end on the embedded model."""

from __future__ import annotations

import json

from rich.console import Console
from rich.panel import Panel

from chorus.graphs import GraphRunner, resolve_graph

# Three tools as the caller agent will see them: a union, each branch with its own arguments.
TOOL_CALL = {
    "anyOf": [
        {"type": "object", "required": ["name", "arguments"], "properties": {
            "name": {"const": "get_weather"},
            "arguments": {"type": "object", "required": ["city", "unit"], "properties": {
                "city": {"type": "string", "maxLength": 40},
                "unit": {"enum": ["celsius", "fahrenheit"]}}}}},
        {"type": "object", "required": ["name", "arguments"], "properties": {
            "name": {"const": "convert_currency"},
            "arguments": {"type": "object", "required": ["amount", "source", "target"],
                          "properties": {
                              "amount": {"type": "number", "minimum": 0},
                              "source": {"type": "string", "pattern": "^[A-Z]{3}$"},
                              "target": {"type": "string", "pattern": "^[A-Z]{3}$"}}}}},
        {"type": "object", "required": ["name", "arguments"], "properties": {
            "name": {"const": "search_web"},
            "arguments": {"type": "object", "required": ["query"], "properties": {
                "query": {"type": "string", "maxLength": 80}}}}},
    ]
}

SYSTEM = ("You call tools. Tools: get_weather(city, unit), convert_currency(amount, source, "
          "target), search_web(query). Reply with one JSON tool call.")


def run_demo(model, console: Console, store=None) -> int:
    console.rule(f"chorus demo on {model.name}")
    question = "What is the capital of France? Answer in one sentence."
    console.print(f"[bold]user:[/] {question}")
    console.print("[bold]model:[/] ", end="")
    answer = model.generate(question, max_new_tokens=48,
                            on_text=lambda piece: console.print(piece, end="", markup=False))
    console.print()
    _stats(console, answer)

    request = "Convert 250 euros to US dollars."
    console.print(f"\n[bold]user:[/] {request}   [dim](constrained to a tool call)[/]")
    call = model.generate([{"role": "system", "content": SYSTEM},
                           {"role": "user", "content": request}],
                          output=TOOL_CALL, max_new_tokens=96)
    console.print(Panel(json.dumps(call.value), title="tool call (validated against its schema)"))
    _stats(console, call)

    task = "What is 12 * 12?"
    console.print(f"\n[bold]user:[/] {task}   [dim](the tool_use graph: planner, caller, "
                  "tools, summarizer on one base model)[/]")
    runner = GraphRunner(resolve_graph("tool_use"), model, store=store)
    wearing = ", ".join(f"{name} ({agent.adapter or 'no'} adapter)"
                        for name, agent in runner.spec.agents.items())
    console.print(f"  [dim]agents: {wearing}[/]", highlight=False)

    def show(node: str, update: dict) -> None:
        for step in update.get("trajectory", []):
            console.print(f"  [cyan]{node}[/] [dim]{step['kind']}:[/] {step['content'][:120]}",
                          highlight=False)

    result = runner.run(task, on_update=show)
    console.print(f"[bold]answer:[/] {result.answer}")
    console.print(f"[dim]trace: chorus trace show {result.run_id}[/]", highlight=False)
    print(json.dumps({"answer": answer.text, "tool_call": call.value,
                      "graph_answer": result.answer}))
    return 0


def _stats(console: Console, result) -> None:
    console.print(f"[dim]{result.prompt_tokens} prompt + {result.new_tokens} new tokens, "
                  f"{result.tokens_per_s:.1f} tokens/s, {result.latency_s:.2f} s[/]",
                  highlight=False)
