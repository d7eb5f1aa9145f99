"""The `chorus` command line. User errors print as one message and exit 2, never a traceback."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from chorus.cli import adapter_commands, arguments, dvr_command, graph_commands, memory_commands
from chorus.display import shown
from chorus.errors import ChorusError
from chorus.files import read_json
from chorus.tools.registry import MAX_SHOWN_TOOLS

err = Console(stderr=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    for position, argument in enumerate(argv, start=1):
        try:  # bytes that are not UTF-8 reach Python as lone surrogates
            argument.encode("utf-8")
        except UnicodeEncodeError:
            err.print(f"[bold red]error:[/] argument {position} is not valid UTF-8 text")
            return 2
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except ChorusError as error:
        err.print(f"[bold red]error:[/] {shown(error)}", highlight=False)
        return 2
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chorus", description="Small language models that cooperate on one base model.")
    commands = parser.add_subparsers(metavar="COMMAND")

    demo = commands.add_parser("demo", help="answer a question and make a constrained tool call "
                                            "on the embedded model (what `make run` runs)")
    _model_options(demo)
    demo.set_defaults(handler=_demo)

    gen = commands.add_parser("generate", help="generate a reply, optionally constrained")
    gen.add_argument("text", help="the user message")
    _model_options(gen)
    shape = gen.add_mutually_exclusive_group()
    shape.add_argument("--schema", type=Path, help="JSON Schema file the reply must satisfy")
    shape.add_argument("--choice", action="append", help="allowed reply (repeat for each)")
    shape.add_argument("--regex", help="regular expression the whole reply must match")
    shape.add_argument("--constraints", metavar="JSON_OR_FILE",
                       help="response constraints, a JSON list as `chorus dvr --json` reports "
                            "them (or that record, or a file of either): those a grammar "
                            "expresses are met by construction, all are checked")
    gen.add_argument("--adapter", help="LoRA adapter to apply: a name from `chorus adapters "
                                       "list` or a folder")
    gen.add_argument("--max-new-tokens", type=arguments.positive_int, default=256)
    gen.add_argument("--temperature", type=arguments.temperature, default=0.0,
                     help="0 (default) is greedy")
    gen.add_argument("--seed", type=arguments.seed)
    gen.add_argument("--stop", action="append", default=[], type=arguments.stop_string,
                     help="stop string (repeatable)")
    gen.add_argument("--json", action="store_true", help="print the result record as JSON")
    gen.set_defaults(handler=_generate)

    run = commands.add_parser("run", help="run a graph (YAML file or built-in name) on an input")
    run.add_argument("graph", help="graph YAML file, or a built-in: tool_use, verified, dvr")
    run.add_argument("--input", help="the task (omit to resume an unfinished --thread)")
    run.add_argument("--thread", help="thread id: resumes it if its last run did not finish")
    run.add_argument("--store", help="folder of checkpoints and traces "
                                     "(default: CHORUS_HOME/runs)")
    _model_options(run)
    run.set_defaults(handler=lambda a: graph_commands.run_graph(a, _load, err))

    call = commands.add_parser("call", help="print the tool calls a request needs, as JSON")
    call.add_argument("text", nargs="?", help="the request")
    call.add_argument("--tools", required=True, type=Path,
                      help="JSON list of OpenAI-style function specs")
    call.add_argument("--messages", type=Path, help="JSON chat history instead of TEXT")
    call.add_argument("--strategy", choices=["direct", "planned"], default="direct",
                      help="direct (default): the caller's call, not made if it is made "
                           "up (values the request does not give); planned: the planner "
                           "first decides whether a tool is needed (benchmarks/RESULTS.md)")
    call.add_argument("--max-calls", type=arguments.positive_int, default=3,
                      help="at most N calls (default 3); 1 is faster: the model is not made "
                           "to try a call more")
    call.add_argument("--max-tools", type=arguments.positive_int, default=MAX_SHOWN_TOOLS,
                      help="of a larger catalogue, show the agents only the N tools most "
                           f"relevant to the request (BM25; default {MAX_SHOWN_TOOLS})")
    call.add_argument("--no-adapters", action="store_true",
                      help="use the plain base model, not the planner and caller adapters")
    _model_options(call)
    call.set_defaults(handler=lambda a: graph_commands.call_tools(a, _load, err))

    trace = commands.add_parser("trace", help="show run traces")
    trace_commands = trace.add_subparsers(metavar="ACTION", required=True)
    show = trace_commands.add_parser("show", help="one run's steps as a tree")
    show.add_argument("run_id", help="run id (a unique prefix is enough)")
    listing = trace_commands.add_parser("list", help="recent runs")
    for sub in (show, listing):
        sub.add_argument("--store", help="folder of traces (default: CHORUS_HOME/runs)")
    listing.set_defaults(run_id=None)
    for sub in (show, listing):
        sub.set_defaults(handler=lambda a: graph_commands.show_trace(a, Console()))

    dvr = commands.add_parser("dvr", help="answer an instruction with Divide-Verify-Refine: "
                                          "split it into constraints, check, refine")
    dvr.add_argument("text", help="the instruction, constraints included")
    dvr.add_argument("--json", action="store_true",
                     help='print {"response", "constraints", "passed", "iterations", '
                          '"repository_hits", ...} instead of the response')
    dvr.add_argument("--graph", default="dvr", help="DVR graph YAML file or built-in name "
                                                     "(default: dvr)")
    dvr.add_argument("--repository", type=Path, help="refinement repository (default: "
                                                     "CHORUS_HOME/refinements.db)")
    dvr.add_argument("--no-repository", action="store_true",
                     help="refine without past examples and store nothing")
    dvr.add_argument("--store", help="folder of checkpoints and traces "
                                     "(default: CHORUS_HOME/runs)")
    _model_options(dvr)
    dvr.set_defaults(handler=lambda a: dvr_command.run_dvr(a, _load, err))

    chat = commands.add_parser("chat", help="talk to a graph of agents in the terminal: "
                                            "live steps, tool calls, slash commands")
    chat.add_argument("--graph", default="tool_use",
                      help="graph YAML file or built-in name (default: tool_use)")
    chat.add_argument("--resume", metavar="THREAD", help="continue an earlier conversation")
    chat.add_argument("--store", help="folder of checkpoints and traces "
                                      "(default: CHORUS_HOME/runs)")
    _model_options(chat)
    chat.set_defaults(handler=_chat)

    serve = commands.add_parser("serve", help="serve the model and its adapters over an "
                                              "OpenAI-compatible HTTP API")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=arguments.port, default=8000)
    _model_options(serve)
    serve.set_defaults(handler=_serve)

    memory_commands.register(commands)
    adapter_commands.register(commands, _model_options, _load)
    return parser


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="embedded model (qwen2.5-coder-0.5b, smollm2-135m), "
                                        "model directory, .gguf file or hub id (default: "
                                        "CHORUS_MODEL, else qwen2.5-coder-0.5b)")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default=None,
                        help="transformers backend: default CHORUS_DTYPE or auto (bf16 where "
                             "the CPU is fast at it)")
    parser.add_argument("--backend", choices=["auto", "transformers", "llamacpp", "openai"],
                        default=None, help="default: CHORUS_BACKEND or auto (llama.cpp for a "
                                           "GGUF model where it is installed; openai when "
                                           "a --base-url is given)")
    parser.add_argument("--base-url", help="an OpenAI-compatible server to run on (vLLM, "
                                           "SGLang, llama-server, chorus serve), e.g. "
                                           "http://localhost:8000/v1; default CHORUS_BASE_URL")


def _load(args, spec=None):
    """The model the command line names; what it leaves out, a graph spec's `model:` gives."""
    from chorus.runtime import load_model

    written = getattr(spec, "model", None)
    with err.status("loading model"):
        return load_model(args.model or (written and written.name), dtype=args.dtype,
                          backend=args.backend or (written and written.backend),
                          base_url=args.base_url or (written and written.base_url))


def _generate(args) -> int:
    from chorus.checks import check_all
    from chorus.checks.compiling import compile_constraints
    from chorus.runtime import GenerationRequest, Regex
    from chorus.runtime.library import ensure_loaded

    model = _load(args)
    output = None
    if args.schema:
        output = read_json(args.schema, "JSON Schema")
    elif args.choice:
        output = args.choice
    elif args.regex:
        output = Regex(args.regex)
    constraints = _constraints(args.constraints) if args.constraints else None
    if constraints is not None:
        compiled = compile_constraints(constraints, needs_content=True)
        output = compiled.output
        for index, reason in compiled.left.items():
            err.print(f"[dim]{constraints[index].type}: checked only ({reason})[/]",
                      highlight=False)
    adapter = ensure_loaded(model, args.adapter) if args.adapter else None
    stream = not args.json and sys.stdout.isatty()
    result = model.complete(GenerationRequest(
        messages=args.text, output=output, adapter=adapter, max_new_tokens=args.max_new_tokens,
        temperature=args.temperature, seed=args.seed, stop=args.stop),
        on_text=(lambda piece: print(piece, end="", flush=True)) if stream else None,
        raise_errors=constraints is None)  # with constraints the checks say what failed
    record = result.model_dump(mode="json")
    if constraints is not None:
        checked = check_all(result.text, constraints)
        record["constraints"] = [{**c.model_dump(), "passed": r.passed, "feedback": r.feedback,
                                  "compiled": i in compiled.compiled}
                                 for i, (c, r) in enumerate(zip(constraints, checked, strict=True))]
    if args.json:
        print(json.dumps(record))
    else:
        print("" if stream else result.text)
        _footer(result)
        for item in record.get("constraints", ()):
            mark = "[green]✓[/]" if item["passed"] else "[red]✗[/]"
            err.print(f"{mark} {item['type']} {shown(item['feedback'])}", highlight=False)
    return 0


def _constraints(value: str) -> list:
    """Constraints from inline JSON or a file: a list, or a record with "constraints"."""
    from chorus.checks import parse_constraint

    text = value.strip()
    if text.startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ChorusError(f"--constraints is not valid JSON: {error}") from error
    else:
        data = read_json(Path(value), "constraints")
    if isinstance(data, dict) and "constraints" in data:
        data = data["constraints"]
    if not isinstance(data, list):
        raise ChorusError("--constraints must be a JSON list of constraints such as "
                          '[{"type": "lowercase"}], or a `chorus dvr --json` record')
    return [parse_constraint(item) for item in data]


def _footer(result) -> None:
    err.print(f"[dim]{result.prompt_tokens} prompt + {result.new_tokens} new tokens, "
              f"{result.tokens_per_s:.1f} tokens/s, {result.latency_s:.2f} s, "
              f"finish: {result.finish_reason}[/]", highlight=False)


def _chat(args) -> int:
    from chorus.cli.chat_command import run_chat  # langgraph and prompt_toolkit: load on use

    return run_chat(args, _load, err)


def _serve(args) -> int:
    import os

    from chorus.server.http import serve

    api_key = os.environ.get("CHORUS_API_KEY") or None
    if args.host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        err.print(f"[yellow]warning:[/] listening on {shown(args.host)} without an API key; "
                  "set CHORUS_API_KEY to require one")
    model = _load(args)

    def ready(server) -> None:
        host, port = server.server_address[:2]
        err.print(f"serving {shown(model.name)} on http://{host}:{port} "
                  "(POST /v1/chat/completions, GET /v1/models, GET /health"
                  f"{'; API key required' if api_key else ''}); Ctrl-C stops", highlight=False)

    aliases = tuple(filter(None, [args.model, os.environ.get("CHORUS_MODEL")]))
    serve(model, args.host, args.port, api_key=api_key, aliases=aliases, ready=ready,
          log=lambda line: err.print(f"[dim]{shown(line)}[/]", highlight=False))
    return 0


def _demo(args) -> int:
    from chorus.cli.demo import run_demo

    return run_demo(_load(args), err)


if __name__ == "__main__":
    sys.exit(main())
