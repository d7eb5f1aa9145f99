"""Answers on the default embedded model (Qwen2.5-Coder-0.5B): the requests of the README's
demo and chat are answered right, and calls carry only the arguments the request gives."""

from pathlib import Path

import pytest

from chorus.agents.calling import choose_calls, role_adapters
from chorus.cli.demo import DEMO_TOOLS
from chorus.graphs import GraphRunner, resolve_graph
from chorus.tools import Tool, ToolRegistry

pytestmark = pytest.mark.integration
DEMO = ToolRegistry([Tool.from_openai(spec) for spec in DEMO_TOOLS])


def test_the_demo_converts_euros_to_dollars(qwen):
    calls = choose_calls(qwen, DEMO, "Convert 250 euros to US dollars.",
                         adapters=role_adapters(qwen))
    assert calls == [{"name": "convert_currency",
                      "arguments": {"amount": 250, "source": "EUR", "target": "USD"}}]


def test_the_tool_use_graph_answers_12_times_12_and_stops(qwen, tmp_path: Path):
    result = GraphRunner(resolve_graph("tool_use"), qwen, store=tmp_path).run("What is 12 * 12?")
    assert "144" in result.answer
    # the graph ends once the summarizer has answered, far from the planner's max_visits (4)
    assert result.state["visits"]["answer"] == 1 and result.state["visits"]["plan"] <= 2


def test_the_tool_use_graph_answers_12_times_7(qwen, tmp_path: Path):
    result = GraphRunner(resolve_graph("tool_use"), qwen, store=tmp_path).run(
        "What is 12 times 7?")
    assert "84" in result.answer


def test_a_greeting_gets_a_greeting_not_words_about_a_call(qwen, tmp_path: Path):
    result = GraphRunner(resolve_graph("tool_use"), qwen, store=tmp_path).run("Hi there!")
    assert result.answer.strip()
    assert not any(word in result.answer.lower()
                   for word in ("calculator", "function", "tool", "task"))

@pytest.mark.parametrize(("request_text", "expected"), [
    ("What's the weather in Oslo?", {"city": "Oslo"}),
    ("Weather in Madrid in fahrenheit, please.", {"city": "Madrid", "unit": "fahrenheit"}),
])
def test_optional_arguments_appear_only_when_the_request_gives_them(qwen, request_text,
                                                                    expected):
    calls = choose_calls(qwen, DEMO, request_text, adapters=role_adapters(qwen))
    assert calls == [{"name": "get_weather", "arguments": expected}]


def test_the_same_tool_for_two_values_is_called_twice(qwen):
    calls = choose_calls(qwen, DEMO, "What's the weather in Oslo and in Lisbon?",
                         adapters=role_adapters(qwen))
    assert sorted(calls, key=str) == [{"name": "get_weather", "arguments": {"city": "Lisbon"}},
                                      {"name": "get_weather", "arguments": {"city": "Oslo"}}]


def test_two_asks_for_two_tools_get_both_calls(qwen):
    calls = choose_calls(qwen, DEMO, "What's the weather in Oslo? Then convert 250 euros to "
                         "US dollars.", adapters=role_adapters(qwen))
    assert sorted(calls, key=str) == [
        {"name": "convert_currency", "arguments": {"amount": 250, "source": "EUR",
                                                   "target": "USD"}},
        {"name": "get_weather", "arguments": {"city": "Oslo"}}]


@pytest.mark.parametrize("request_text", ["Hi there! How's it going?",
                                          "Thanks, that's all I needed."])
def test_chit_chat_gets_no_call(qwen, request_text):
    assert choose_calls(qwen, DEMO, request_text, adapters=role_adapters(qwen)) == []


def test_the_caller_writes_calls_in_qwens_own_format(qwen):
    from chorus.agents.roles import caller

    reply = qwen.complete(caller(DEMO).request("What's the weather in Oslo?", [], DEMO))
    assert reply.text.startswith("<tool_call>\n{") and reply.text.rstrip().endswith(
        "</tool_call>")
    [call] = reply.value  # as written: grounding (which drops unit="celsius") comes after
    assert (call["name"], call["arguments"]["city"]) == ("get_weather", "Oslo")


def test_an_added_call_follows_the_written_calls_on_llamacpp(qwen):
    from chorus.agents.roles import caller

    asked = caller(DEMO).request("What's the weather in Oslo and in Lisbon?", [], DEMO)
    oslo = {"name": "get_weather", "arguments": {"city": "Oslo"}}
    reply = qwen.complete(asked.model_copy(update={"output": asked.output.after([oslo])}))
    # the written call goes in with the prompt: the reply holds it as written, then one more
    assert reply.text.startswith('<tool_call>\n{"name": "get_weather", "arguments": '
                                 '{"city": "Oslo"}}\n</tool_call>\n<tool_call>\n{')
    assert reply.value[0] == oslo and len(reply.value) == 2
