"""Bad input and hostile content end in clear errors (issue 14): each test reproduces a
defect found by probing the CLI and the library, on real stores and the real runner."""

import io
import json
import signal
import subprocess
import sys
import time

import pytest
from pydantic import BaseModel
from rich.console import Console

from chorus.cli.main import main
from chorus.display import trace_tree
from chorus.errors import ChorusError, ContextLengthError, GraphSpecError, ToolSpecError
from chorus.graphs import GraphRunner, GraphSpec
from chorus.graphs.thread_lock import ThreadBusyError
from chorus.graphs.yaml_lines import load_yaml
from chorus.memory import TraceStore
from chorus.tools import Tool, ToolRegistry, execute

HOSTILE = "[/bold] [link=https://evil.example]click[/link] \x1b[31mred\x1b[0m \x07"


def _one_step_graph(**extra) -> GraphSpec:
    return GraphSpec.model_validate({
        "name": "one_step", "agents": {"writer": {"role": "summarizer", "max_new_tokens": 4}},
        "nodes": {"write": {"agent": "writer"}},
        "edges": [{"from": "START", "to": "write"}, {"from": "write", "to": "END"}], **extra})


def _cli(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    from contextlib import redirect_stderr, redirect_stdout

    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue() + err.getvalue()


# -- runs and threads ---------------------------------------------------------------------------

def test_a_thread_is_run_by_one_process_at_a_time(tiny, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from chorus.graphs.thread_lock import thread_lock\n"
         "with thread_lock(Path(sys.argv[1]), 'shared'):\n"
         "    print('held', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    runner = GraphRunner(_one_step_graph(), tiny, store=tmp_path)
    with pytest.raises(ThreadBusyError, match=f"another process \\(pid {holder.pid}\\)"):
        runner.run("Say hi.", thread_id="shared")
    holder.send_signal(signal.SIGKILL)  # the kernel frees the lock of a killed process
    holder.wait()
    assert runner.run("Say hi.", thread_id="shared").answer is not None


def test_runs_that_died_are_marked_killed_when_their_thread_runs_again(tiny, tmp_path):
    runner = GraphRunner(_one_step_graph(), tiny, store=tmp_path)
    dead = runner.traces.start_run(thread_id="t", graph="one_step", task="Say hi.")
    runner.run("Say hello.", thread_id="t")
    assert runner.traces.run(dead)["status"] == "killed"
    listed = _cli("trace", "list", "--store", str(tmp_path))[1]
    assert f"{dead}  killed" in listed


def test_a_new_input_on_an_unfinished_thread_is_refused_not_ignored(tiny, tmp_path):
    spec = GraphSpec.model_validate({
        "name": "two_steps", "agents": {"writer": {"role": "summarizer", "max_new_tokens": 4}},
        "nodes": {"first": {"agent": "writer"}, "second": {"agent": "writer"}},
        "edges": [{"from": "START", "to": "first"}, {"from": "first", "to": "second"},
                  {"from": "second", "to": "END"}]})
    runner = GraphRunner(spec, tiny, store=tmp_path)

    def stop_after_first(node, update):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.run("Say hi.", thread_id="t", on_update=stop_after_first)
    assert runner.pending("t")
    with pytest.raises(ChorusError, match="unfinished run of 'Say hi.'"):
        runner.run("Something else.", thread_id="t")
    assert runner.run("Say hi.", thread_id="t").resumed  # the same input finishes it


def test_reaching_the_step_limit_is_a_clear_error(tiny, tmp_path):
    spec = GraphSpec.model_validate({
        "name": "long", "max_steps": 1,
        "agents": {"writer": {"role": "summarizer", "max_new_tokens": 2}},
        "nodes": {"a": {"agent": "writer"}, "b": {"agent": "writer"}},
        "edges": [{"from": "START", "to": "a"}, {"from": "a", "to": "b"},
                  {"from": "b", "to": "END"}]})
    with pytest.raises(ChorusError, match="took 1 steps without reaching its end"):
        GraphRunner(spec, tiny, store=tmp_path).run("Say hi.")
    with pytest.raises(ValueError, match="less than or equal to 10000"):
        _one_step_graph(max_steps=1_000_000_000)


# -- what is shown -------------------------------------------------------------------------------

def test_markup_and_escapes_in_stored_text_are_shown_not_interpreted(tmp_path):
    traces = TraceStore(tmp_path / "traces.sqlite")
    run = traces.start_run(thread_id=HOSTILE, graph="g", task=HOSTILE)
    traces.add_step(run, node="tools", kind="tool", output={"content": HOSTILE})
    traces.finish_run(run, answer=HOSTILE, status="done")
    console = Console(file=io.StringIO(), width=200, force_terminal=True)
    console.print(trace_tree(traces, run))  # used to raise rich's MarkupError
    text = console.file.getvalue()
    assert "[/bold]" in text and "[link=https://evil.example]" in text
    assert "\x1b[31mred" not in text and "\x07" not in text
    assert "\x1b]8;" not in text  # no hyperlink escape
    code, listed = _cli("trace", "list", "--store", str(tmp_path))
    assert code == 0 and "\x1b[31m" not in listed and "[/bold]" in listed


# -- specs and files -----------------------------------------------------------------------------

def test_yaml_alias_bombs_and_self_references_are_refused_quickly(tmp_path):
    levels = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for previous, name in zip("abcdef", "bcdefg", strict=True):
        levels.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(levels) + "\nname: bomb\n")
    started = time.perf_counter()
    with pytest.raises(GraphSpecError, match="expands to more than 100,000 values"):
        load_yaml(bomb)
    assert time.perf_counter() - started < 2
    loop = tmp_path / "loop.yaml"
    loop.write_text("name: x\nagents: &s\n  a: *s\n")
    with pytest.raises(GraphSpecError, match="refers to the value that contains it"):
        load_yaml(loop)
    shared = tmp_path / "shared.yaml"  # aliases themselves are fine
    shared.write_text("defaults: &d {role: planner}\nagents:\n  a: *d\n  b: *d\n")
    assert load_yaml(shared)[0]["agents"]["b"] == {"role": "planner"}


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe[]", "must be UTF-8 text"),
    (b'[{"name": 123}]', "Invalid tool name 123"),
    (b'[{"name": "f", "description": 5}]', "description must be text"),
    (b'[{"name": "f", "parameters": {"type": "object", "required": ["x"]}}]',
     "'x' not among the properties"),
    (b'[{"name": "f", "parameters": {"type": "object", "properties": {"a": {"$ref": '
     b'"#/$defs/B"}}}}]', "nothing there"),
    (b'[{"name": "f", "parameters": ' + b'{"type": "object", "properties": {"a": ' * 300
     + b"{}" + b"}}" * 300 + b"}]", "nest deeper than 40"),
    (b"[" + b",".join([b'{"name": "f"}'] * 10_001) + b"]", "over the limit of 10,000"),
])
def test_bad_tools_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "tools.json"
    path.write_bytes(content)
    with pytest.raises(ToolSpecError, match=message):
        ToolRegistry.from_openai_file(path)


@pytest.mark.parametrize("args, message", [
    (["call", "--tools", "{tools}", "--messages", "{binary}"], "must be UTF-8 text"),
    (["call", "--tools", "{tools}", "--messages", "{bad_role}"], "role 'wizard' is not one"),
    (["call", "--tools", "{tools}", "--messages", "{bad_content}"], "content must be text"),
    (["generate", "hi", "--schema", "{binary}"], "must be UTF-8 text"),
    (["generate", "hi", "--max-new-tokens", "0"], "at least 1"),
    (["generate", "hi", "--temperature", "nan"], "expected a temperature"),
    (["generate", "hi", "--seed", "1234567890123456789012345"], "expected a seed"),
    (["generate", "hi", "--stop", ""], "cannot be empty"),
    (["generate", "\udcff"], "not valid UTF-8"),
    (["adapters", "train", "--role", "caller", "--data", "x", "--steps", "0"], "at least 1"),
    (["adapters", "train", "--role", "caller", "--data", "x", "--batch-size", "0"],
     "at least 1"),
    (["adapters", "show", "{bad_adapter}"], "Cannot read the adapter"),
    (["memory", "list", "--limit", "-1"], "at least 1"),
    (["trace", "list", "--store", "{corrupt_store}"], "Cannot open the trace store"),
    (["dvr", "Say hi", "--graph", "tool_use"], "not a DVR graph"),
])
def test_bad_command_lines_end_in_one_clear_error(tmp_path, args, message):
    files = {"tools": '[{"name": "f", "parameters": {"type": "object"}}]',
             "bad_role": '[{"role": "wizard", "content": "hi"}]',
             "bad_content": '[{"role": "user", "content": 5}]'}
    paths = {}
    for name, text in files.items():
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(text)
    paths["binary"] = tmp_path / "binary"
    paths["binary"].write_bytes(b"\xff\xfe\x00")
    paths["bad_adapter"] = tmp_path / "adapter"
    paths["bad_adapter"].mkdir()
    (paths["bad_adapter"] / "adapter_config.json").write_text("{not json")
    paths["corrupt_store"] = tmp_path / "store"
    paths["corrupt_store"].mkdir()
    (paths["corrupt_store"] / "traces.sqlite").write_bytes(b"not a database\n" * 100)
    code, output = _cli(*[arg.format(**paths) if "{" in arg else arg for arg in args])
    assert code == 2 and message in output.replace("\n", " ")
    assert "Traceback" not in output


# -- tool schemas and calls ----------------------------------------------------------------------

class Address(BaseModel):
    street: str
    city: str


class Shipment(BaseModel):
    ship_to: Address
    weight_kg: float


def test_refs_in_tool_parameters_resolve_against_the_tools_own_schema(smol_llama):
    shipment = Tool.from_openai({"name": "ship", "description": "Ship a parcel.",
                                 "parameters": Shipment.model_json_schema()})
    tree = Tool.from_openai({"name": "tree", "description": "A labelled tree.", "parameters": {
        "type": "object", "required": ["label"],
        "properties": {"label": {"type": "string"}, "child": {"$ref": "#"}}}})
    registry = ToolRegistry([shipment, tree])
    schema = registry.calls(min_calls=1)
    nested = [{"name": "tree", "arguments": {"label": "x", "child": {"label": "y"}}}]
    assert schema.parse(json.dumps(nested)) == nested
    with pytest.raises(ChorusError):  # "#" is the tool's arguments, not the list of calls
        schema.parse(json.dumps([{"name": "tree", "arguments": {"label": "x", "child": [
            {"name": "tree", "arguments": {"label": "y"}}]}}]))
    # The real model, constrained by that schema, writes a call its tool accepts.
    from chorus.agents.roles import caller

    shown = ToolRegistry([shipment])
    reply = smol_llama.complete(caller(shown).request(
        "Ship 2 kg to 1 Main Street, Springfield.", [], shown))
    assert reply.value and execute(shipment, reply.value[0]["arguments"]).status == \
        "not_executed"


def test_prompts_over_the_context_are_refused_before_any_work(smol_llama, tiny):
    for model in (smol_llama, tiny):
        started = time.perf_counter()
        with pytest.raises(ContextLengthError, match="over the model's context"):
            model.generate("word " * 20_000, max_new_tokens=1)
        assert time.perf_counter() - started < 10


def test_a_tool_result_that_cannot_be_rendered_does_not_end_the_run(tiny, tmp_path):
    """`chorus run tool_use --input "...10**5000"` crashed inside tool execution, and every
    resume of the thread crashed again."""
    def huge(n: int) -> int:
        """A number with n digits."""
        return 10 ** n

    tool = Tool.from_function(huge)
    observation = execute(tool, {"n": 5000})
    assert observation.ok and "5001 digits" in observation.content
