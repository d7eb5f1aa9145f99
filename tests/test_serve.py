"""`chorus serve` and the OpenAI backend (issue 16): a real server process spoken to over
HTTP, its answers compared with the same model run locally."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

import chorus
from chorus.checks.compiling import compile_constraints
from chorus.graphs import GraphRunner, resolve_graph
from chorus.runtime import Regex
from chorus.runtime.library import ensure_loaded
from chorus.runtime.openai_backend import OpenAIBackend, ServerError
from chorus.runtime.types import GenerationRequest

USER = {"type": "object", "required": ["name", "age"], "properties": {
    "name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}}}
WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "required": ["city"],
                          "properties": {"city": {"type": "string"}}}}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(**env) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "chorus.cli.main", "serve", "--model", "smollm2-135m",
         "--port", str(port)], env={**os.environ, **env}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            urllib.request.urlopen(url + "/health", timeout=1).close()
            return process, url
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise AssertionError("chorus serve did not start")


@pytest.fixture(scope="module")
def server():
    process, url = _start()
    yield url
    process.terminate()
    process.wait(timeout=30)


def _post(url: str, body, *, headers=None, raw: bytes | None = None):
    request = urllib.request.Request(
        url + "/v1/chat/completions", data=raw if raw is not None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_answers_through_the_server_equal_local_answers(server, smol_llama):
    remote = chorus.load_model(backend="openai", base_url=server)
    assert remote.name == smol_llama.name and remote.serves_adapters
    ensure_loaded(smol_llama, "summarizer")
    ensure_loaded(remote, "summarizer")
    cases = [dict(messages="Say hi in five words.", max_new_tokens=16),
             dict(messages="A user named Ada aged 36", output=USER, max_new_tokens=40),
             dict(messages="Is the sky blue?", output=["yes", "no"], max_new_tokens=4),
             dict(messages="Give a year.", output=Regex(r"(19|20)\d\d"), max_new_tokens=6),
             dict(messages="Say hi.", max_new_tokens=12, output=compile_constraints(
                 [{"type": "lowercase"}, {"type": "no_commas"}]).output),
             dict(messages="Summarize: the cat sat on the mat.", adapter="summarizer",
                  max_new_tokens=20),
             dict(messages="Weather in Oslo?", tools=[WEATHER], max_new_tokens=24),
             dict(messages="List three fruits, one a line.", max_new_tokens=40,
                  stop_on_repeated_line=True),
             # Cut short: the server answers "length" and the client fails the row alike.
             dict(messages="A user named Ada aged 36", output=USER, max_new_tokens=6)]
    for case in cases:
        [here] = smol_llama.generate_batch([GenerationRequest(**case)])
        [there] = remote.generate_batch([GenerationRequest(**case)])
        assert (there.text, there.value, there.error, there.prompt_tokens) == \
            (here.text, here.value, here.error, here.prompt_tokens), case
    assert there.error and "ran out of tokens" in there.error
    pieces: list[str] = []
    streamed = remote.generate("Count to five.", max_new_tokens=12, on_text=pieces.append)
    assert len(pieces) > 1 and "".join(pieces) == streamed.text
    assert streamed.text == smol_llama.generate("Count to five.", max_new_tokens=12).text


def test_tool_calls_come_back_in_the_openai_shape(server):
    status, body = _post(server, {"messages": [{"role": "user", "content": "Weather in Oslo?"}],
                                  "tools": [{"type": "function", "function": WEATHER}],
                                  "tool_choice": "required"})
    assert status == 200
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    calls = choice["message"]["tool_calls"]
    assert calls and calls[0]["type"] == "function" and calls[0]["id"].startswith("call_")
    assert calls[0]["function"]["name"] == "get_weather"
    assert "city" in json.loads(calls[0]["function"]["arguments"])
    assert body["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize("body, status, words", [
    (None, 400, "not valid JSON"),
    ([1, 2], 400, "JSON object"),
    ({"messages": []}, 400, "non-empty list"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, 400, "needs a role"),
    ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404, "does not exist"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, 400, "max_tokens"),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, 400, "temperature"),
    ({"messages": [{"role": "user", "content": "x"}], "n": 2}, 400, "n = 1"),
    ({"messages": [{"role": "user", "content": "x"}],
      "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 5}}}},
     400, "JSON Schema"),
    ({"messages": [{"role": "user", "content": "x"}], "guided_regex": "("}, 400, "regex"),
    ({"messages": [{"role": "user", "content": "x"}],
      "structured_outputs": {"grammar": "start: TEXT\nTEXT: /a+/ & /b+/\n"}}, 400, "grammar"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{"name": 5}]}, 400, "tool"),
    ({"messages": [{"role": "user", "content": "word " * 5000}]}, 400, "context"),
])
def test_malformed_requests_get_openai_style_errors(server, body, status, words):
    got, answer = _post(server, body, raw=b"{bad" if body is None else None)
    assert got == status
    assert words.lower() in answer["error"]["message"].lower()
    assert answer["error"]["type"]
    assert urllib.request.urlopen(server + "/health", timeout=5).status == 200  # still up


def test_a_graph_runs_unchanged_on_the_server(server, tmp_path):
    remote = chorus.load_model(backend="openai", base_url=server)
    result = GraphRunner(resolve_graph("tool_use"), remote, store=tmp_path).run(
        "What is 2 + 2?")
    assert result.answer and result.state["trajectory"][-1]["kind"] == "answer"


def test_an_api_key_is_required_when_set_and_never_shown():
    process, url = _start(CHORUS_API_KEY="s3cret-key")
    try:
        status, body = _post(url, {"messages": [{"role": "user", "content": "hi"}]})
        assert status == 401 and "API key" in body["error"]["message"]
        with pytest.raises(ServerError) as refused:
            OpenAIBackend(url, api_key="wrong-key", retries=0)
        assert "401" in str(refused.value) and "wrong-key" not in str(refused.value)
        model = chorus.Model(OpenAIBackend(url, api_key="s3cret-key"))
        assert model.generate("hi", max_new_tokens=2).new_tokens > 0
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_an_unreachable_server_is_a_clear_error_after_retries():
    started = time.perf_counter()
    with pytest.raises(ServerError, match="Cannot reach"):
        OpenAIBackend(f"http://127.0.0.1:{_free_port()}", retries=1)
    assert time.perf_counter() - started < 10


def test_a_graph_spec_can_name_its_server(server, tmp_path, capsys):
    from chorus.cli.main import main

    graph = {"name": "remote", "model": {"backend": "openai", "base_url": server},
             "agents": {"writer": {"role": "summarizer", "max_new_tokens": 8}},
             "nodes": {"write": {"agent": "writer"}},
             "edges": [{"from": "START", "to": "write"}, {"from": "write", "to": "END"}]}
    spec = tmp_path / "remote.yaml"
    spec.write_text(json.dumps(graph))  # JSON is YAML
    assert main(["run", str(spec), "--input", "Say hi.", "--store", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip()
    graph["model"]["base_url"] = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    spec.write_text(json.dumps(graph))
    assert main(["run", str(spec), "--input", "Say hi.", "--store", str(tmp_path)]) == 2
    assert "Cannot reach" in capsys.readouterr().err
