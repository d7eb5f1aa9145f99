"""Tools: schemas from signatures and specs, validated and sandboxed execution, built-ins."""

import json
import sqlite3
import time
from typing import Literal

import pytest

from chorus.errors import ToolSpecError, UnknownToolError
from chorus.tools import (
    Tool,
    ToolRegistry,
    calculator,
    current_datetime,
    execute,
    file_reader_tool,
    sqlite_query_tool,
    tool,
)
from chorus.tools.execution import TRUNCATION_MARKER


@tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius",
                days: int = 1) -> str:
    """Get the weather forecast.

    Args:
        city: The city name,
            as written by the user.
        unit: Temperature unit.
        days: How many days ahead.
    """
    return f"{city}: 20 degrees {unit} for {days} day(s)"


def test_tool_from_function_builds_schema_from_hints_and_docstring():
    assert get_weather.name == "get_weather"
    assert get_weather.description == "Get the weather forecast."
    schema = get_weather.parameters
    assert schema["required"] == ["city"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["city"] == {
        "type": "string", "description": "The city name, as written by the user."}
    assert schema["properties"]["unit"]["enum"] == ["celsius", "fahrenheit"]
    assert schema["properties"]["days"]["type"] == "integer"


def test_tool_decorator_with_options():
    @tool(timeout_s=2, name="shout", needs_confirmation=True)
    def loud(text: str) -> str:
        """Upper-case text."""
        return text.upper()

    assert (loud.name, loud.timeout_s, loud.needs_confirmation) == ("shout", 2, True)
    assert execute(loud, {"text": "hi"}).content == "HI"


def test_untyped_or_variadic_functions_are_refused_with_the_argument_named():
    def untyped(city):
        return city

    def variadic(*names: str):
        return names

    with pytest.raises(ToolSpecError, match="'city' needs a type hint"):
        Tool.from_function(untyped)
    with pytest.raises(ToolSpecError, match=r"\*names"):
        Tool.from_function(variadic)


def test_tool_from_openai_spec_plain_and_wrapped_and_declared_only():
    spec = {"name": "send_email", "description": "Send an email.",
            "parameters": {"type": "object", "properties": {"to": {"type": "string"}},
                           "required": ["to"]}}
    for form in (spec, {"type": "function", "function": spec}):
        made = Tool.from_openai(form)
        assert made.name == "send_email" and made.declared_only
        assert made.to_openai() == spec
    observation = execute(Tool.from_openai(spec), {"to": "a@b.c"})
    assert observation.status == "not_executed"


@pytest.mark.parametrize("spec, message", [
    ({"description": "no name"}, "without a 'name'"),
    ({"name": "bad name!"}, "Invalid tool name"),
    ({"name": "t", "parameters": {"type": "string"}}, "type object"),
    ({"name": "t", "parameters": {"type": "object", "properties": {"a": {"type": "nope"}}}},
     "not valid JSON Schema at properties/a/type"),
])
def test_bad_openai_specs_raise_tool_spec_errors(spec, message):
    with pytest.raises(ToolSpecError, match=message):
        Tool.from_openai(spec)


def test_execution_validates_arguments_before_running():
    calls = []

    @tool
    def record(n: int) -> int:
        """Record n."""
        calls.append(n)
        return n

    observation = execute(record, {"n": "three"})
    assert observation.status == "invalid_arguments"
    assert "n: 'three' is not of type 'integer'" in observation.content
    assert execute(record, {"n": 3, "extra": 1}).status == "invalid_arguments"
    assert execute(record, "not a dict").status == "invalid_arguments"
    assert calls == []


def test_exceptions_and_timeouts_become_observations():
    @tool
    def broken(x: int) -> int:
        """Always fails."""
        raise RuntimeError(f"boom {x}")

    @tool(timeout_s=0.2)
    def slow(x: int) -> int:
        """Sleeps."""
        time.sleep(5)
        return x

    failed = execute(broken, {"x": 1})
    assert (failed.status, failed.content) == ("error", "RuntimeError: boom 1")
    started = time.perf_counter()
    timed_out = execute(slow, {"x": 1})
    assert timed_out.status == "timeout" and "0.2 s" in timed_out.content
    assert time.perf_counter() - started < 4  # the run did not wait for the tool


def test_long_results_are_truncated_with_a_marker():
    @tool
    def big(n: int) -> str:
        """Return n characters."""
        return "x" * n

    observation = execute(big, {"n": 5000}, limit=100)
    assert observation.content == "x" * 100 + TRUNCATION_MARKER.format(omitted=4900)


@pytest.mark.parametrize("expression, value", [
    ("2*(3+4)", 14), ("2**10", 1024), ("2^10", 1024), ("9^2 - 4", 77),
    ("sqrt(16) + abs(-2)", 6.0), ("7 // 2 + 7 % 2", 4),
    ("-3 + +1", -2), ("round(pi, 2)", 3.14), ("max(1, 5, 3)", 5),
])
def test_calculator_evaluates_arithmetic(expression, value):
    assert json.loads(execute(calculator, {"expression": expression}).content) == value


@pytest.mark.parametrize("expression", [
    "__import__('os').system('true')", "open('/etc/passwd')", "[1, 2]", "9**9**9",
    "x + 1", "", "1 +",
])
def test_calculator_refuses_anything_but_arithmetic(expression):
    observation = execute(calculator, {"expression": expression})
    assert observation.status == "error"


def test_current_datetime_knows_time_zones():
    assert execute(current_datetime, {"timezone": "Europe/Paris"}).content[:4].isdigit()
    assert "unknown time zone" in execute(current_datetime, {"timezone": "Mars/Base"}).content


def test_sqlite_tool_reads_and_cannot_write(tmp_path):
    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE items (name TEXT, price REAL)")
        connection.executemany("INSERT INTO items VALUES (?, ?)", [("pen", 1.5), ("ink", 7)])
    query = sqlite_query_tool(database)
    rows = json.loads(execute(query, {"query": "SELECT name FROM items ORDER BY price"}).content)
    assert rows == [{"name": "pen"}, {"name": "ink"}]
    refused = execute(query, {"query": "DELETE FROM items"})
    assert refused.status == "error" and "read-only" in refused.content
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 2


def test_file_reader_is_confined_to_its_root(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "notes.txt").write_text("hello")
    (tmp_path / "secret.txt").write_text("no")
    (tmp_path / "root" / "link.txt").symlink_to(tmp_path / "secret.txt")
    reader = file_reader_tool(tmp_path / "root")
    assert execute(reader, {"path": "notes.txt"}).content == "hello"
    for escape in ("../secret.txt", "/etc/passwd", "link.txt"):
        observation = execute(reader, {"path": escape})
        assert observation.status == "error" and "outside" in observation.content


def test_registry_lookup_suggests_close_names_and_rejects_duplicates():
    registry = ToolRegistry([calculator, get_weather])
    assert registry.get("calculator") is calculator
    with pytest.raises(UnknownToolError, match="Did you mean 'get_weather'"):
        registry.get("get_wether")
    with pytest.raises(ToolSpecError, match="Two tools are named 'calculator'"):
        registry.add(calculator)


def test_calls_are_a_union_with_one_branch_per_tool_and_bounded_values():
    schema = ToolRegistry([calculator, get_weather]).calls(min_calls=0, max_calls=2).listing.schema
    assert (schema["minItems"], schema["maxItems"]) == (0, 2)
    branches = schema["items"]["anyOf"]
    assert [b["properties"]["name"]["const"] for b in branches] == ["calculator", "get_weather"]
    weather_args = branches[1]["properties"]["arguments"]
    assert weather_args["properties"]["city"]["maxLength"] == 120
    assert "maxLength" not in weather_args["properties"]["unit"]  # an enum is bounded already
    assert "maxLength" not in get_weather.parameters["properties"]["city"]  # tool unchanged
    days = weather_args["properties"]["days"]  # a number ends: "2000000..." cannot go on
    assert (days["minimum"], days["maximum"]) == (-(10**15), 10**15)


def test_tools_file_errors_name_the_file_and_the_problem(tmp_path):
    broken = tmp_path / "tools.json"
    broken.write_text('[{"name": "a",}]')
    with pytest.raises(ToolSpecError, match=r"tools.json: tools file is not valid JSON at line 1"):
        ToolRegistry.from_openai_file(broken)
    broken.write_text(json.dumps([{"name": "a", "parameters": {"type": "object",
                                                               "required": "x"}}]))
    with pytest.raises(ToolSpecError, match=r"tools.json: tool #0: .*not valid JSON Schema"):
        ToolRegistry.from_openai_file(broken)
    with pytest.raises(ToolSpecError, match="Cannot read tools file"):
        ToolRegistry.from_openai_file(tmp_path / "missing.json")
