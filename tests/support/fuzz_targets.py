"""Fuzz targets for issue 14: each takes hypothesis-drawn input and must end in a result or a
clear error (ChorusError, or argparse's usage exit); anything else is a traceback.

Shared by tests/test_fuzz.py (a few examples each, in CI) and benchmarks/fuzz.py (10,000
each, timed, counted). Every target runs the real code: real files, real SQLite stores,
tools in their real forked processes, the real CLI entry point.
"""

from __future__ import annotations

import io
import json
import sqlite3
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any, Literal

from hypothesis import strategies as st
from rich.console import Console

from chorus.checks import CONSTRAINT_TYPES, parse_constraint
from chorus.cli.main import main
from chorus.display import clip, shown, trace_tree
from chorus.errors import ChorusError
from chorus.graphs.spec import load_spec, parse_spec
from chorus.memory import RefinementRepository, TraceStore
from chorus.tools import (
    Tool,
    ToolRegistry,
    calculator,
    execute,
    file_reader_tool,
    sqlite_query_tool,
    tool,
)

# -- strategies ---------------------------------------------------------------------------------

HOSTILE_TEXT = st.sampled_from([
    "[/bold]", "[link=https://x.example]x[/link]", "\x1b[31m", "\x1b]8;;http://x\x1b\\", "\x00",
    "\ud800", "{", "}", "'", '"', "\\", "*a", "&a", "\n", "<<", ">>", "%", "$ref", "#", "..",
    "/etc/passwd", "💥", "\u202e", "NaN", "1e400", "-0", "9" * 50, "x" * 5000])
TEXT = st.one_of(st.text(max_size=40), HOSTILE_TEXT,
                 st.lists(HOSTILE_TEXT, max_size=4).map("".join))
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT)
JSON = st.recursive(SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=20)

SPEC_KEYS = ["name", "description", "agents", "nodes", "edges", "tools", "roles", "max_steps",
             "role", "adapter", "max_new_tokens", "max_calls", "agent", "run", "max_visits",
             "on_limit", "from", "to", "route", "field", "values", "default", "function",
             "prompt", "output", "START", "END", "tools", "checks", "planner", "caller",
             "summarizer", "verifier", "writer"]
SPEC_WORD = st.one_of(st.sampled_from(SPEC_KEYS), TEXT)
SPEC_VALUE = st.recursive(
    st.one_of(SCALAR, st.sampled_from(SPEC_KEYS)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(SPEC_WORD, inner, max_size=5)), max_leaves=30)
YAML_PIECES = st.sampled_from([
    "name: x\n", "agents:\n", "  p: {role: planner}\n", "nodes:\n", "  a: {agent: p}\n",
    "edges:\n", "  - {from: START, to: a}\n", "  - {from: a, to: END}\n", "&x ", "*x ", "<<: *x\n",
    "[", "]", "{", "}", ": ", "- ", "\t", "!!python/object:os.system\n", "%YAML 1.1\n", "---\n",
    "max_visits: 1000000000\n", "max_steps: 0\n", "\xff", "'", "\"", "#", "? ", "|\n", ">\n"])
YAML_TEXT = st.lists(st.one_of(YAML_PIECES, TEXT), max_size=25).map("".join)

SCHEMA_KEYS = ["type", "properties", "required", "enum", "const", "items", "anyOf", "oneOf",
               "allOf", "$ref", "$defs", "default", "description", "minimum", "maximum",
               "maxLength", "minLength", "pattern", "format", "additionalProperties",
               "minItems", "maxItems", "not", "if", "then", "else"]
SCHEMA_TYPES = st.sampled_from(["object", "string", "integer", "number", "boolean", "array",
                                "null"])
SCHEMA = st.recursive(
    st.one_of(st.booleans(), st.fixed_dictionaries({"type": SCHEMA_TYPES}),
              st.just({"$ref": "#"}), st.just({"$ref": "#/$defs/A"})),
    lambda inner: st.one_of(
        st.fixed_dictionaries({"type": st.just("object"),
                               "properties": st.dictionaries(TEXT, inner, max_size=4)},
                              optional={"required": st.lists(TEXT, max_size=3),
                                        "$defs": st.dictionaries(st.just("A"), inner)}),
        st.fixed_dictionaries({"type": st.just("array"), "items": inner}),
        st.fixed_dictionaries({"anyOf": st.lists(inner, min_size=1, max_size=3)}),
        st.dictionaries(st.sampled_from(SCHEMA_KEYS), st.one_of(inner, JSON), max_size=4)),
    max_leaves=20)
TOOL_SPEC = st.one_of(
    st.fixed_dictionaries({"name": st.one_of(st.from_regex(r"[a-z_]{1,10}", fullmatch=True),
                                             TEXT, st.integers())},
                          optional={"description": st.one_of(TEXT, JSON),
                                    "parameters": st.one_of(SCHEMA, JSON),
                                    "type": st.just("function")}),
    JSON)

ESCAPE_FILE = Path(tempfile.gettempdir()) / "chorus-fuzz-escape.db"  # must never appear
ARITHMETIC = st.lists(st.sampled_from(
    ["1", "9", "10", "**", "*", "(", ")", "+", "-", "/", "//", "%", "sqrt(", "log(", "e", "pi",
     "1e308", "9**9", "10**5000", "0", ".", ",", "abs(", "round(", "min(", "__import__"]),
    max_size=12).map("".join)
SQL = st.lists(st.sampled_from(
    ["SELECT", "*", "FROM", "items", "WHERE", "1", "zeroblob(100000000)", "randomblob(2000000)",
     f"VACUUM INTO '{ESCAPE_FILE}'", f"ATTACH '{ESCAPE_FILE}' AS y", ";", "PRAGMA",
     "user_version=1", "table_info(items)", "DELETE", "DROP TABLE items", "'", "(", ")",
     "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 100000) "
     "SELECT count(*) FROM c", "load_extension('x')"]), max_size=8).map(" ".join)
PATHS = st.lists(st.sampled_from(["..", "", "a.txt", "etc", "passwd", "~", "\x00", "files", ".",
                                  "/proc/self/environ"]), max_size=6).map("/".join)
ARGUMENTS = st.one_of(
    JSON, st.fixed_dictionaries({"expression": st.one_of(ARITHMETIC, TEXT)}),
    st.fixed_dictionaries({"query": st.one_of(SQL, TEXT)}),
    st.fixed_dictionaries({"path": st.one_of(PATHS, TEXT)}),
    st.fixed_dictionaries({"city": TEXT}, optional={"unit": st.sampled_from(["c", "f", "k"]),
                                                    "days": st.one_of(st.integers(), JSON)}))

CONSTRAINT = st.one_of(
    st.builds(lambda kind, extra: {"type": kind, **extra},
              st.sampled_from(sorted(CONSTRAINT_TYPES)),
              st.dictionaries(st.sampled_from(
                  ["n", "relation", "words", "word", "phrase", "marker", "language", "count",
                   "letter", "keyword", "section", "first_word", "separator", "options",
                   "minimum", "maximum", "text", "index"]), JSON, max_size=3)),
    JSON)

RECORD_FIELDS = {"constraint_type": TEXT, "params": JSON, "before": TEXT, "after": TEXT,
                 "feedback": TEXT, "instruction": TEXT, "model": TEXT, "adapter": TEXT,
                 "created_at": JSON, "uses": JSON, "last_used_at": JSON, "id": JSON}
IMPORT_LINE = st.one_of(
    st.fixed_dictionaries({}, optional=RECORD_FIELDS).map(json.dumps),
    st.fixed_dictionaries({"constraint_type": TEXT, "params": st.dictionaries(TEXT, JSON),
                           "before": TEXT, "after": TEXT}).map(json.dumps),
    JSON.map(lambda value: json.dumps(value)), TEXT)

TOOL_OUTPUT = st.one_of(
    JSON, TEXT.map(lambda text: text * 1000), st.binary(max_size=100),
    st.integers(min_value=10**4000, max_value=10**6000),
    st.just(float("nan")), st.just(object()), st.just({1, 2}),
    st.lists(st.just("[/bold]\x1b[2J"), max_size=2000))

MESSAGE = st.fixed_dictionaries(
    {"role": st.one_of(st.sampled_from(["system", "user", "assistant", "tool"]), TEXT)},
    optional={"content": st.one_of(TEXT, JSON, st.lists(st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "image_url"]), "text": TEXT}), max_size=2))})
REQUEST_BODY = st.one_of(JSON, st.fixed_dictionaries(
    {"messages": st.one_of(st.lists(MESSAGE, min_size=1, max_size=3), JSON)},
    optional={"model": st.one_of(st.sampled_from(["default", "summarizer", "nope"]), TEXT),
              "max_tokens": st.one_of(st.integers(-5, 5000), JSON),
              "temperature": st.one_of(st.floats(), JSON), "top_p": st.one_of(st.floats(), JSON),
              "seed": st.one_of(st.integers(), JSON), "stop": st.one_of(TEXT, JSON),
              "stream": st.booleans(), "n": st.one_of(st.integers(0, 3), JSON),
              "response_format": st.one_of(
                  JSON, st.fixed_dictionaries({"type": st.sampled_from(
                      ["text", "json_object", "json_schema", "xml"])},
                      optional={"json_schema": st.fixed_dictionaries(
                          {}, optional={"name": TEXT, "schema": st.one_of(SCHEMA, JSON)})})),
              "guided_choice": st.one_of(st.lists(TEXT, max_size=3), JSON),
              "guided_regex": st.one_of(st.sampled_from(["[a-z]+", "(", "\\d{2}", ".*"]),
                                        JSON),
              "tools": st.one_of(st.lists(st.fixed_dictionaries(
                  {"type": st.just("function"), "function": TOOL_SPEC}), max_size=2), JSON),
              "tool_choice": st.one_of(st.sampled_from(["none", "auto", "required"]), JSON),
              "parallel_tool_calls": st.booleans()}))

CLI_WORDS = ["demo", "generate", "run", "call", "trace", "show", "list", "dvr", "chat",
             "memory", "search", "export", "import", "prune", "adapters", "train", "eval", "data",
             "--model", "--backend", "--dtype", "--input", "--thread", "--store", "--tools",
             "--messages", "--schema", "--choice", "--regex", "--adapter", "--max-new-tokens",
             "--temperature", "--seed", "--stop", "--json", "--limit", "--max", "--evict",
             "--repository", "--type", "-k", "--role", "--data", "--steps", "--batch-size",
             "--rank", "--max-tools", "--strategy", "--graph", "--no-repository", "tool_use",
             "dvr", "verified", "0", "-1", "nan", "inf", "1e400", "99999999999999999999999",
             "", " ", "{file}", "{binary}", "{tools}", "{missing}", "{folder}", "--help"]
CLI_ARGS = st.lists(st.one_of(st.sampled_from(CLI_WORDS), TEXT), min_size=1, max_size=7)


# -- targets ------------------------------------------------------------------------------------

class Workspace:
    """The files and stores the targets use, made once per fuzzing session."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="chorus-fuzz-"))
        database = self.root / "shop.db"
        with sqlite3.connect(database) as connection:
            connection.execute("CREATE TABLE items (name TEXT, price REAL)")
            connection.execute("INSERT INTO items VALUES ('pen', 1.5)")
        (self.root / "files").mkdir()
        (self.root / "files" / "a.txt").write_text("hello")

        @tool(timeout_s=2)
        def weather(city: str, unit: Literal["c", "f"] = "c", days: int = 1) -> str:
            """Weather.

            Args:
                city: The city.
                unit: The unit.
                days: Days ahead.
            """
            return f"{city} {unit} {days}"

        self.tools = [calculator, sqlite_query_tool(database, timeout_s=2),
                      file_reader_tool(self.root / "files"), weather]
        self.files = {"file": self.root / "files" / "a.txt", "binary": self.root / "binary",
                      "tools": self.root / "tools.json", "missing": self.root / "missing",
                      "folder": self.root / "files"}
        self.files["binary"].write_bytes(b"\xff\xfe\x00\x01")
        self.files["tools"].write_text('[{"name": "f", "parameters": {"type": "object"}}]')
        self.counter = 0
        self._server_url: str | None = None

    def server(self) -> str:
        """`chorus serve`'s HTTP server over the embedded SmolLM2, in a thread of this process."""
        if self._server_url is None:
            import threading

            from chorus import load_model
            from chorus.server.http import ChorusServer

            server = ChorusServer(("127.0.0.1", 0), load_model("smollm2-135m"))
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._server_url = f"http://127.0.0.1:{server.server_address[1]}"
        return self._server_url

    def fresh(self, suffix: str) -> Path:
        self.counter += 1
        return self.root / f"{self.counter}{suffix}"


def graph_yaml(space: Workspace, text: str) -> None:
    path = space.fresh(".yaml")
    path.write_bytes(text.encode("utf-8", "surrogatepass"))  # lone surrogates: bad UTF-8
    try:
        load_spec(path)
    except ChorusError:
        pass


def graph_structure(space: Workspace, data: Any) -> None:
    try:
        parse_spec(data)
    except ChorusError:
        pass


def tool_spec(space: Workspace, spec: Any) -> None:
    import llguidance

    try:
        registry = ToolRegistry([Tool.from_openai(spec)])
        schema = registry.calls(min_calls=1)
        llguidance.LLMatcher.validate_grammar_with_warnings(schema.grammar())
    except ChorusError:
        pass


def tool_arguments(space: Workspace, choice: int, arguments: Any) -> None:
    by_argument = {"expression": 0, "query": 1, "path": 2, "city": 3}
    if isinstance(arguments, dict):  # mostly the tool whose arguments these are shaped as
        choice = next((by_argument[key] for key in arguments if key in by_argument), choice)
    observation = execute(space.tools[choice % len(space.tools)], arguments)
    assert observation.status in ("ok", "error", "invalid_arguments", "timeout")
    assert len(observation.content) <= 2100
    assert not ESCAPE_FILE.exists(), "a tool wrote outside its root"


def tool_output(space: Workspace, value: Any) -> None:
    """A tool returns anything at all; the observation is then traced and shown."""
    returns = Tool.from_function(lambda: value, name="anything", description="Anything.")
    observation = execute(returns, {})
    assert observation.status in ("ok", "error")
    traces = TraceStore(space.root / "traces.sqlite")
    run = traces.start_run(thread_id="fuzz", graph="g", task=observation.content)
    traces.add_step(run, node="tools", kind="tool", output=observation.model_dump())
    traces.finish_run(run, answer=observation.content, status="done")
    console = Console(file=io.StringIO(), width=100, force_terminal=True)
    console.print(trace_tree(traces, run))
    console.print(f"[bold]tools[/] {shown(clip(observation.content))}")
    assert "\x1b[2J" not in console.file.getvalue()  # the content drove no terminal


def constraint_spec(space: Workspace, data: Any, text: str) -> None:
    try:
        constraint = parse_constraint(data)
    except ChorusError:
        return
    result = constraint.check(text)
    assert isinstance(result.passed, bool) and isinstance(result.feedback, str)
    constraint.describe()


def repository_import(space: Workspace, lines: list[str]) -> None:
    """Nothing already stored is ever lost: an import adds, or fails and changes nothing."""
    path = space.fresh(".db")
    source = space.fresh(".jsonl")
    source.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
    with RefinementRepository(path, max_records=20) as repository:
        for number in range(3):
            repository.add(constraint_type="lowercase", params={}, feedback="f",
                           before=f"Before {number}", after=f"after {number}")
        before = {record.id: record for record in repository.list(limit=100)}
        try:
            repository.import_(source)
        except ChorusError:
            assert len(repository) == 3
        after = {record.id: record for record in repository.list(limit=100)}
        assert all(after.get(key) == record for key, record in before.items()), "lost"
        for record in after.values():  # and every record reads back and shows
            json.dumps(record.model_dump(), allow_nan=False)


def cli_arguments(space: Workspace, words: list[str]) -> None:
    argv = [word.format(**space.files) if word.startswith("{") and word.endswith("}")
            and word[1:-1] in space.files else word for word in words]
    argv += ["--store", str(space.root / "store")] if argv[0] in ("run", "trace") else []
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse: a usage error (2) or --help (0)
            assert exit_.code in (0, 2), exit_.code
            return
    assert code in (0, 2, 130), code


def server_request(space: Workspace, body: Any, raw: bool) -> None:
    """Any body, sent over HTTP: an answer or a 4xx with an OpenAI-style error, never a 5xx,
    and the server still answers afterwards. Valid requests are held to 3 new tokens."""
    import urllib.error
    import urllib.request

    if isinstance(body, dict) and isinstance(body.get("max_tokens"), int):
        body["max_tokens"] = min(body["max_tokens"], 3)
    elif isinstance(body, dict):
        body.setdefault("max_tokens", 3)
    data = json.dumps(body).encode() if not raw else str(body).encode("utf-8", "replace")
    request = urllib.request.Request(space.server() + "/v1/chat/completions", data=data,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    assert status in (200, 400, 401, 404, 411, 413), (status, text[:300])
    if status != 200:
        assert json.loads(text)["error"]["message"]
    elif not (isinstance(body, dict) and body.get("stream")):
        assert json.loads(text)["choices"]
    else:
        assert text.rstrip().endswith("data: [DONE]")


TARGETS = {
    "graph_yaml": (graph_yaml, (YAML_TEXT,)),
    "graph_structure": (graph_structure, (SPEC_VALUE,)),
    "tool_spec": (tool_spec, (TOOL_SPEC,)),
    "tool_arguments": (tool_arguments, (st.integers(0, 3), ARGUMENTS)),
    "tool_output": (tool_output, (TOOL_OUTPUT,)),
    "constraint_spec": (constraint_spec, (CONSTRAINT, TEXT)),
    "repository_import": (repository_import, (st.lists(IMPORT_LINE, max_size=8),)),
    "cli_arguments": (cli_arguments, (CLI_ARGS,)),
    "server_request": (server_request, (REQUEST_BODY, st.booleans())),
}
