"""Graph specs: valid ones load, bad ones fail with file, line and field in the message."""

import json
import textwrap
from pathlib import Path

import pytest

from chorus.errors import GraphSpecError
from chorus.graphs import builtin_graph, load_spec, resolve_graph
from chorus.graphs.spec import GraphSpec, export_json_schema

VALID = """\
name: demo
agents:
  planner: {role: planner}
  caller: {role: caller, adapter: caller}
  summarizer: {role: summarizer}
tools:
  - chorus.tools.builtin:calculator
nodes:
  plan: {agent: planner, max_visits: 3, on_limit: answer}
  call: {agent: caller}
  run_tools: {run: tools}
  answer: {agent: summarizer}
edges:
  - {from: START, to: plan}
  - from: plan
    route: {field: decision, cases: {call: call, answer: answer, give_up: answer}}
  - {from: call, to: run_tools}
  - {from: run_tools, to: plan}
  - {from: answer, to: END}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "graph.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_valid_spec_loads(tmp_path):
    spec = load_spec(write(tmp_path, VALID))
    assert spec.nodes["plan"].max_visits == 3
    assert spec.agents["caller"].adapter == "caller"
    assert spec.edges[1].route.cases["call"] == "call"


@pytest.mark.parametrize("name", ["tool_use", "verified"])
def test_builtin_graphs_are_valid(name):
    assert builtin_graph(name).is_file()
    assert resolve_graph(name).name == name


def test_examples_are_valid():
    examples = sorted(Path(__file__).parent.parent.glob("examples/*.yaml"))
    assert examples, "examples/ should hold YAML graphs"
    for path in examples:
        load_spec(path)


@pytest.mark.parametrize("change, expected", [
    # (text to replace, replacement) -> message fragment, with the line of the offending key
    (("  call: {agent: caller}\n", "  call: {agent: calller}\n"),
     r"graph.yaml:10: nodes.call.agent: unknown agent 'calller'"),
    (("  - {from: call, to: run_tools}\n", "  - {from: call, to: run_tool}\n"),
     r"graph.yaml:17: edges.2.to: unknown node 'run_tool'"),
    (("  - chorus.tools.builtin:calculator\n", "  - chorus.tools.nope:calculator\n"),
     r"graph.yaml:7: tools.0: cannot import module 'chorus.tools.nope'"),
    (("  plan: {agent: planner, max_visits: 3, on_limit: answer}\n",
      "  plan: {agent: planner}\n"),
     r"nodes.plan: node 'plan' is on a cycle without a limit"),
    (("  summarizer: {role: summarizer}\n", "  summarizer: {role: poet}\n"),
     r"graph.yaml:5: agents.summarizer.role: unknown role 'poet' \(known: planner"),
    (("  answer: {agent: summarizer}\n", "  answer: {agent: summarizer, colour: red}\n"),
     r"graph.yaml:12: nodes.answer.colour: Extra inputs are not permitted"),
])
def test_bad_specs_name_file_line_and_field(tmp_path, change, expected):
    old, new = change
    assert old in VALID
    with pytest.raises(GraphSpecError, match=expected):
        load_spec(write(tmp_path, VALID.replace(old, new)))


def test_malformed_yaml_names_the_line(tmp_path):
    with pytest.raises(GraphSpecError, match=r"graph.yaml:4: malformed YAML"):
        load_spec(write(tmp_path, "name: x\nagents:\n  a: [unclosed\nnodes: {}\n"))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(GraphSpecError, match="Cannot read graph spec"):
        load_spec(tmp_path / "absent.yaml")


def test_node_needs_exactly_one_kind_and_limits_need_a_fallback():
    base = {"name": "x", "agents": {"p": {"role": "planner"}}, "edges": [
        {"from": "START", "to": "a"}, {"from": "a", "to": "END"}]}
    with pytest.raises(ValueError, match="exactly one of `agent` or `run`"):
        GraphSpec.model_validate({**base, "nodes": {"a": {"agent": "p", "run": "tools"}}})
    with pytest.raises(ValueError, match="`max_visits` needs `on_limit`"):
        GraphSpec.model_validate({**base, "nodes": {"a": {"agent": "p", "max_visits": 2}}})


def test_committed_json_schema_matches_the_spec_model(tmp_path):
    committed = Path(__file__).parent.parent / "schemas" / "graph.schema.json"
    export_json_schema(tmp_path / "fresh.json")
    assert json.loads(committed.read_text()) == json.loads((tmp_path / "fresh.json").read_text())


def test_a_join_goes_to_exactly_one_node():
    base = {"name": "x", "agents": {"p": {"role": "summarizer"}},
            "nodes": {"a": {"agent": "p"}, "b": {"agent": "p"}}}
    with pytest.raises(ValueError, match="a join"):
        GraphSpec.model_validate({**base, "edges": [
            {"from": "START", "to": ["a", "b"]}, {"from": ["a", "b"], "to": ["END", "a"]}]})
