"""Roles as one registry: built-in and user roles in graphs, evaluation and training; specs
that validate however they are built; run-scoped events; the demo's real path (tiny model)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from chorus.agents import AgentOptions, Role, get_role, register_role, role_names
from chorus.agents.calling import choose_calls, role_adapters
from chorus.agents.trajectory import call_step, observation_step
from chorus.cli.demo import run_demo
from chorus.errors import ChorusError, GraphSpecError
from chorus.graphs import GraphRunner, GraphSpec, load_spec, parse_spec
from chorus.runtime import Model, library
from chorus.tools import ToolRegistry, calculator
from chorus.training.evaluation import score
from chorus.training.trainer import TrainingPlan, train

ECHO = {"name": "echo", "agents": {"writer": {"role": "summarizer", "max_new_tokens": 6}},
        "nodes": {"answer": {"agent": "writer"}},
        "edges": [{"from": "START", "to": "answer"}, {"from": "answer", "to": "END"}]}


class WithoutAdapters:
    """The tiny model's own generation behind a backend that applies no adapters, as a
    server backend may."""

    def __init__(self, model: Model):
        self.name = model.name
        self.adapters = None
        self.generate_batch = model.backend.generate_batch


def test_the_built_in_roles_are_registered_with_what_they_need():
    assert role_names() == ["planner", "caller", "summarizer", "verifier", "divider",
                            "writer", "refiner"]
    assert role_names(trainable=True) == ["planner", "caller", "summarizer", "verifier"]
    with pytest.raises(ChorusError, match="caller needs at least one tool"):
        get_role("caller").agent()
    with pytest.raises(ChorusError, match="Unknown role 'critic'.*planner"):
        get_role("critic")


def test_a_role_update_writes_state_and_trajectory():
    decision = get_role("planner").build(AgentOptions()).output.parse(
        '{"next":"call","thought":"Use it."}')
    assert get_role("planner").update(decision) == {
        "decision": "call", "trajectory": [{"kind": "thought", "content": "Use it.",
                                            "data": None}]}
    calls = [{"name": "a", "arguments": {}}, {"name": "a", "arguments": {}}]
    update = get_role("caller").update(calls)
    assert update["pending_calls"] == [{"name": "a", "arguments": {}}]  # once
    assert [step["content"] for step in update["trajectory"]] == ["a({})"]


def test_a_summarizer_with_no_result_to_read_answers_the_task_itself():
    """Shown only the planner's thoughts ("To call the calculator..."), the summarizer wrote
    about calls never made; with no tool result it gets instructions of its own and the
    task alone, in the graph and in its training data alike (both go through `request`)."""
    from chorus.agents.roles import summarizer
    from chorus.agents.trajectory import thought_step

    for agent in (summarizer(), summarizer(constraints=[{"type": "lowercase"}])):
        thought = [thought_step("To call the calculator with 10 + 5.")]
        alone = agent.request("Hi there!", thought).messages
        assert "No tool was used" in alone[0]["content"]
        assert "calculator" not in alone[1]["content"]
        read = agent.request("What is 2 + 3?",
                             thought + [observation_step("calculator", "5")]).messages
        assert "No tool was used" not in read[0]["content"]
        assert "Result: calculator: 5" in read[1]["content"]
        assert ("lowercase" in alone[0]["content"]) == ("lowercase" in read[0]["content"])

def test_a_call_already_made_in_the_run_is_not_made_again():
    """A planner may say "call" again once the result is in; the caller's repeat is dropped
    and its decision sends the run on to the answer (the built-in graphs route on it)."""
    tools = ToolRegistry([calculator])
    caller = get_role("caller")
    made = [call_step("calculator", {"expression": "12 * 7"}),
            observation_step("calculator", "84")]
    again = [{"name": "calculator", "arguments": {"expression": "12 * 7"}}]
    other = [{"name": "calculator", "arguments": {"expression": "12 * 8"}}]
    request = "What is 12 times 7, and 12 times 8?"
    assert caller.settle(again, request, tools, []) == again
    assert caller.settle(again, request, tools, made) == []
    assert caller.settle(again + other, request, tools, made) == other
    assert caller.update([])["decision"] == "answer"
    assert caller.update(other)["decision"] == "call"


def test_a_caller_takes_values_from_results_and_makes_no_call_up():
    tools = ToolRegistry([calculator])
    caller = get_role("caller")
    made_up = [{"name": "calculator", "arguments": {"expression": "2*(3+4)"}}]
    assert caller.settle(made_up, "Hi there!", tools, []) == []
    # a value a tool gave is the conversation's, as the request's values are
    steps = [call_step("calculator", {"expression": "17 * 3"}),
             observation_step("calculator", "51")]
    follow_up = [{"name": "calculator", "arguments": {"expression": "51 * 2"}}]
    request = "What is 17 times 3, doubled?"
    assert caller.settle(follow_up, request, tools, []) == []
    assert caller.settle(follow_up, request, tools, steps) == follow_up


def test_a_role_registered_from_python_runs_in_a_graph_and_is_scored(tiny, tmp_path):
    role = register_role(Role.custom("shouter", "Answer in capitals.", writes="answer",
                                     max_new_tokens=5), replace_existing=True)
    spec = GraphSpec.model_validate({**ECHO, "agents": {"writer": {"role": "shouter"}}})
    result = GraphRunner(spec, tiny, store=tmp_path).run("hello")
    assert result.answer == result.state["outputs"]["answer"]
    assert result.state["trajectory"][-1] == {"kind": "answer", "content": result.answer,
                                              "data": None}
    assert role.score("HELLO", "HELLO") == (1.0,) and role.metrics == ("exact",)


def test_a_role_written_in_yaml_decides_a_route(tiny, tmp_path):
    data = {
        "name": "routed",
        "roles": {"triage": {"prompt": "Is this urgent? Tools: $tools",
                             "output": ["urgent", "later"], "writes": "decision"}},
        "agents": {"triage": {"role": "triage"},
                   "writer": {"role": "summarizer", "max_new_tokens": 4}},
        "nodes": {"triage": {"agent": "triage"}, "answer": {"agent": "writer"}},
        "edges": [{"from": "START", "to": "triage"},
                  {"from": "triage", "route": {"field": "decision",
                                               "cases": {"urgent": "answer", "later": "END"}}},
                  {"from": "answer", "to": "END"}]}
    path = tmp_path / "routed.yaml"
    path.write_text(yaml.safe_dump(data))
    result = GraphRunner(load_spec(path), tiny, store=tmp_path / "runs").run("The roof leaks")
    assert result.state["decision"] in ("urgent", "later")
    assert result.state["outputs"]["triage"] == result.state["decision"]
    assert bool(result.answer) == (result.state["decision"] == "urgent")


def test_spec_roles_are_checked_with_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({
        **ECHO, "roles": {"planner": {"prompt": "x"},
                          "odd": {"prompt": "x", "output": {"type": "nope"}}},
        "agents": {"writer": {"role": "nobody"}}}, sort_keys=False))
    with pytest.raises(GraphSpecError) as error:
        load_spec(path)
    message = str(error.value)
    assert "roles.planner: 'planner' is already a registered role" in message
    assert "agents.writer.role: unknown role 'nobody'" in message
    assert "roles.odd: Not a valid JSON Schema" in message
    assert f"{path}:" in message


def test_a_spec_built_in_python_is_validated_like_a_yaml_one():
    broken = {**ECHO, "nodes": {"answer": {"agent": "ghost"}}}
    with pytest.raises(GraphSpecError, match="unknown agent 'ghost'"):
        GraphSpec(**broken)
    with pytest.raises(GraphSpecError, match="unknown agent 'ghost'"):
        parse_spec(broken)


def test_two_runs_at_once_on_one_runner_keep_their_own_events(tiny, tmp_path):
    runner = GraphRunner(GraphSpec.model_validate(ECHO), tiny, store=tmp_path)
    seen: dict[str, list] = {"a": [], "b": []}
    results = {}

    def run(key: str, task: str) -> None:
        results[key] = runner.run(task, thread_id=key, events=seen[key].append)

    threads = [threading.Thread(target=run, args=item)
               for item in (("a", "Say one thing"), ("b", "Say another thing entirely"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for key in ("a", "b"):
        kinds = [event.kind for event in seen[key] if event.kind != "token"]
        assert kinds == ["agent_start", "agent_done"]
        streamed = "".join(e.data["text"] for e in seen[key] if e.kind == "token")
        assert streamed == results[key].answer


def test_on_a_backend_without_adapters_auto_means_the_plain_base(tiny, tmp_path):
    plain = Model(WithoutAdapters(tiny), batch_window_s=0)
    assert role_adapters(plain) == {"planner": None, "caller": None}
    runner = GraphRunner(GraphSpec.model_validate(ECHO), plain, store=tmp_path)
    assert runner.spec.agents["writer"].adapter is None
    assert runner.run("hi").answer is not None
    with pytest.raises(ChorusError, match="applies no chorus adapters"):
        library.ensure_loaded(plain, "planner")
    plan = TrainingPlan(name="x", roles=["planner"], data=str(tmp_path), output=str(tmp_path))
    with pytest.raises(ChorusError, match="Training needs the local transformers backend"):
        train(plain, plan)


def test_choose_calls_returns_valid_calls_of_the_given_tools(tiny):
    tools = ToolRegistry([calculator])
    for strategy in ("direct", "planned"):
        calls = choose_calls(tiny, tools, "What is 2 + 2?", strategy=strategy)
        assert all(call["name"] == "calculator" and set(call["arguments"]) == {"expression"}
                   for call in calls)


def test_evaluation_scores_through_the_role(tiny):
    from chorus.runtime import GenerationResult

    result = GenerationResult(text="", value=[{"name": "a", "arguments": {"x": 2.0}}],
                              finish_reason="stop", prompt_tokens=1, new_tokens=1,
                              latency_s=0.1)
    assert score("caller", result, '[{"name":"a","arguments":{"x":2}}]') == (1.0, 1.0)
    result.fail(ChorusError("budget"))
    assert score("caller", result, "[]") == (0.0, 0.0)


def test_the_demo_runs_the_real_agents_and_graph(tiny, tmp_path, capsys):
    console = Console(file=open(Path(tmp_path) / "shown.txt", "w"), width=100)  # noqa: SIM115
    assert run_demo(tiny, console, store=tmp_path / "runs") == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(record) == {"answer", "tool_calls", "graph_answer"}
    names = {"get_weather", "convert_currency", "search_web"}
    assert all(call["name"] in names for call in record["tool_calls"])
