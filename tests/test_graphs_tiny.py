"""Graphs on the tiny random model: real LangGraph runs, checkpoints, traces, resume, CLI.

The tiny model's choices are random, but every agent output is constrained, so the graph
machinery is exercised for real; what the calls contain is not asserted.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chorus.graphs import GraphRunner, GraphSpec, resolve_graph
from chorus.graphs.state import add_counts, extend_steps, fresh_input, merge

SUPPORT = Path(__file__).parent / "support"


def test_tool_use_graph_runs_to_an_answer_and_records_a_trace(tiny, tmp_path):
    runner = GraphRunner(resolve_graph("tool_use"), tiny, store=tmp_path)
    seen = []
    result = runner.run("What is 2 + 2?", on_update=lambda node, update: seen.append(node))
    assert seen[0] == "plan" and seen[-1] == "answer"
    assert result.state["visits"]["plan"] <= 4  # the planner loop is bounded
    assert result.answer == result.state["answer"]
    kinds = [step["kind"] for step in result.state["trajectory"]]
    assert kinds[0] == "thought" and kinds[-1] == "answer"

    run = runner.traces.run(result.run_id)
    assert (run["status"], run["input"], run["answer"]) == ("done", "What is 2 + 2?",
                                                             result.answer)
    steps = runner.traces.steps(result.run_id)
    agents = [s for s in steps if s["kind"] == "agent"]
    assert [s["node"] for s in agents][0] == "plan" and agents[-1]["node"] == "answer"
    assert all(s["new_tokens"] > 0 and s["latency_s"] > 0 for s in agents)
    assert sum(s["kind"] == "tool" for s in steps) == kinds.count("observation")
    assert not runner.pending(result.thread_id)


def test_a_second_run_on_a_thread_starts_fresh(tiny, tmp_path):
    runner = GraphRunner(resolve_graph("tool_use"), tiny, store=tmp_path)
    first = runner.run("What is 2 + 2?", thread_id="t1")
    second = runner.run("What is 3 + 3?", thread_id="t1")
    assert second.state["task"] == "What is 3 + 3?"
    kinds = [step["kind"] for step in second.state["trajectory"]]
    # Not appended to the first run: one answer, and the planner's count starts again.
    assert kinds[0] == "thought" and kinds.count("answer") == 1
    assert first.state["trajectory"][-1]["kind"] == "answer"
    assert second.state["visits"]["plan"] <= 4


def test_reducers_reset_on_a_fresh_input():
    start = fresh_input("t")
    assert extend_steps([{"kind": "answer"}], start["trajectory"]) == []
    assert extend_steps([{"kind": "a"}], [{"kind": "b"}]) == [{"kind": "a"}, {"kind": "b"}]
    assert add_counts({"plan": 3}, start["visits"]) == {}
    assert merge({"plan": {"next": "call"}}, start["outputs"]) == {}
    assert merge({"a": 1}, {"b": 2}) == {"a": 1, "b": 2}
    assert add_counts({"plan": 3}, {"plan": 1, "call": 1}) == {"plan": 4, "call": 1}


def _child(tiny_model_dir, store, thread, log, **env):
    return subprocess.Popen(
        [sys.executable, str(SUPPORT / "resume_graph.py"), str(tiny_model_dir), str(store),
         thread, str(log)], env={**os.environ, **env}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def test_a_killed_run_resumes_without_running_any_tool_call_twice(tiny_model_dir, tmp_path):
    log = tmp_path / "calls.log"
    child = _child(tiny_model_dir, tmp_path / "store", "th", log, HANG_ON_CALL="2")
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().split()) < 2):
        assert child.poll() is None, child.stderr.read()
        time.sleep(0.2)
    child.kill()  # in the middle of the second tool call
    child.wait()
    first_call = log.read_text().split()[0]
    assert len(log.read_text().split()) == 2

    resumed = _child(tiny_model_dir, tmp_path / "store", "th", log)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == "RESUMED"
    # Nothing ran again: the finished call is not repeated, and the call the kill cut
    # short is reported to the agents as interrupted (it may have had its effect).
    notes = log.read_text().split()
    assert len(notes) == 2 and notes[0] == first_call
    observations = [line for line in lines if line.startswith("observation")]
    assert len(observations) == 2 and "as call 1" in observations[0]
    assert "interrupted when the process stopped" in observations[1]
    # The killed run is marked so, and linked to the run that finished its work.
    from chorus.memory import TraceStore

    killed, resumed_run = sorted(TraceStore(tmp_path / "store" / "traces.sqlite").recent_runs(),
                                 key=lambda run: run["started_at"])
    assert (killed["status"], killed["resumed_by"]) == ("killed", resumed_run["run_id"])
    assert resumed_run["status"] == "done"


def _chorus(*args, **env):
    return subprocess.run([sys.executable, "-m", "chorus.cli.main", *args],
                          capture_output=True, text=True, env={**os.environ, **env},
                          timeout=300)


def test_chorus_call_prints_only_a_json_list_of_valid_calls(tiny_model_dir, tmp_path):
    specs = [{"name": "get_weather", "description": "Weather in a city.",
              "parameters": {"type": "object", "required": ["city"],
                             "properties": {"city": {"type": "string", "maxLength": 20}}}},
             {"name": "add", "description": "Add two numbers.",
              "parameters": {"type": "object", "required": ["a", "b"],
                             "properties": {"a": {"type": "number"},
                                            "b": {"type": "number"}}}}]
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(specs))
    messages = tmp_path / "messages.json"
    messages.write_text(json.dumps([{"role": "user", "content": "Weather in Oslo?"}]))
    for source in (["Weather in Oslo?"], ["--messages", str(messages)]):
        for strategy in ("planned", "direct"):
            done = _chorus("call", "--tools", str(tools), *source, "--strategy", strategy,
                           "--model", str(tiny_model_dir), "--dtype", "float32")
            assert done.returncode == 0, done.stderr
            calls = json.loads(done.stdout)
            assert isinstance(calls, list)
            for call in calls:
                assert call["name"] in {"get_weather", "add"}
                assert set(call["arguments"]) >= ({"city"} if call["name"] == "get_weather"
                                                  else {"a", "b"})


@pytest.mark.parametrize("args, message", [
    (["run", "missing.yaml", "--input", "x"], "Cannot read graph spec"),
    (["call", "--tools", "missing.json", "hi"], "Cannot read tools file"),
    (["trace", "show", "nope", "--store", "{tmp}"], "No traces yet"),
])
def test_cli_errors_are_one_line_without_traceback(args, message, tmp_path):
    done = _chorus(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_chorus_run_and_trace_show(tiny_model_dir, tmp_path):
    done = _chorus("run", "tool_use", "--input", "What is 2 + 2?", "--store", str(tmp_path),
                   "--model", str(tiny_model_dir), "--dtype", "float32")
    assert done.returncode == 0, done.stderr
    assert "plan" in done.stderr and "answer" in done.stderr  # steps shown live
    run_id = done.stderr.split("chorus trace show ")[1].split()[0].rstrip("`")
    shown = _chorus("trace", "show", run_id[:6], "--store", str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert f"run {run_id}" in shown.stdout and "agent=planner" in shown.stdout
    listed = _chorus("trace", "list", "--store", str(tmp_path))
    assert run_id in listed.stdout


def test_parallel_fan_out_and_join(tiny, tmp_path):
    """`to: [a, b]` runs both branches in one step; `from: [a, b]` waits for both."""
    spec = GraphSpec.model_validate({
        "name": "fan",
        "agents": {"writer": {"role": "summarizer", "max_new_tokens": 4},
                   "judge": {"role": "verifier"}},
        "nodes": {"draft_a": {"agent": "writer"}, "draft_b": {"agent": "writer"},
                  "judge": {"agent": "judge"}},
        "edges": [{"from": "START", "to": ["draft_a", "draft_b"]},
                  {"from": ["draft_a", "draft_b"], "to": "judge"},
                  {"from": "judge", "to": "END"}],
    })
    steps = []
    result = GraphRunner(spec, tiny, store=tmp_path).run(
        "Say hi.", on_update=lambda node, update: steps.append(node))
    assert sorted(steps[:2]) == ["draft_a", "draft_b"] and steps[2:] == ["judge"]
    assert result.state["visits"] == {"draft_a": 1, "draft_b": 1, "judge": 1}
    assert set(result.state["verdict"]) == {"pass", "feedback"}
    drafts = result.state["outputs"]
    assert isinstance(drafts["draft_a"], str) and isinstance(drafts["draft_b"], str)
    assert result.state["answer"] in (drafts["draft_a"], drafts["draft_b"])


def test_a_summarizers_answer_meets_its_format_constraints(tiny, tmp_path):
    spec = GraphSpec.model_validate({
        "name": "formatted",
        "agents": {"writer": {"role": "summarizer", "max_new_tokens": 12, "constraints": [
            {"type": "lowercase"}, {"type": "no_commas"}]}},
        "nodes": {"answer": {"agent": "writer"}},
        "edges": [{"from": "START", "to": "answer"}, {"from": "answer", "to": "END"}]})
    answer = GraphRunner(spec, tiny, store=tmp_path).run("Say hi.").answer
    assert answer == answer.lower() and "," not in answer and answer.strip()
    with pytest.raises(ValueError, match="writes no answer"):
        GraphSpec.model_validate({**spec.model_dump(by_alias=True), "agents": {
            "writer": {"role": "planner", "constraints": [{"type": "lowercase"}]}}})


def test_verified_graph_ends_after_a_pass_or_its_bounded_retries(tiny, tmp_path):
    result = GraphRunner(resolve_graph("verified"), tiny, store=tmp_path).run("What is 2 + 2?")
    visits = result.state["visits"]
    assert 1 <= visits["verify"] <= 2 and visits["answer"] >= visits["verify"]
    verdict = result.state["verdict"]
    if visits["verify"] == 1 and not verdict["pass"]:
        pytest.fail("a failed verdict must send the run back to the planner")
    feedback = [s for s in result.state["trajectory"] if s["kind"] == "feedback"]
    assert len(feedback) == visits["verify"] - (1 if verdict["pass"] else 0)
