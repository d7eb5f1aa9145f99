"""Named role adapters in graphs, coalesced parallel calls, and `chorus adapters`."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

import chorus
from chorus.errors import AdapterError, AdapterNotFoundError
from chorus.graphs import GraphRunner
from chorus.graphs.compiler import with_adapters
from chorus.graphs.spec import load_spec
from chorus.runtime import GenerationRequest, library
from chorus.runtime.manifest import AdapterManifest, BaseModelRecord, write_manifest
from tests.test_graphs_tiny import _chorus


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty CHORUS_HOME, so the user's adapters are only the ones a test makes."""
    monkeypatch.setenv("CHORUS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _saved(model: chorus.Model, name: str, folder: Path, *, fingerprint: str | None = None,
           role: str = "planner") -> Path:
    model.adapters.create(name, init="random", seed=3)
    model.adapters.save(name, folder)
    model.adapters.remove(name)
    write_manifest(folder, AdapterManifest(name=name, role=role, base_model=BaseModelRecord(
        name=model.name, fingerprint=fingerprint or model.adapters.base_fingerprint)))
    return folder


def _spec(tmp_path: Path, agents: dict) -> chorus.graphs.GraphSpec:
    path = tmp_path / "graph.yaml"
    path.write_text(yaml.safe_dump({
        "name": "roles", "agents": agents,
        "nodes": {name: {"agent": name} for name in agents},
        "edges": [{"from": "START", "to": list(agents)},
                  {"from": list(agents), "to": "END"}]}))
    return load_spec(path)


def test_auto_picks_the_role_adapter_made_for_this_base(tiny, home, tmp_path):
    _saved(tiny, "planner", home / "adapters" / "planner")
    _saved(tiny, "summarizer", home / "adapters" / "summarizer", fingerprint="feedfacefeedface",
           role="summarizer")
    spec = _spec(tmp_path, {"planner": {"role": "planner"},
                            "summarizer": {"role": "summarizer"},
                            "verifier": {"role": "verifier", "adapter": None}})
    resolved = with_adapters(spec, tiny)
    assert resolved.agents["planner"].adapter == "planner"
    assert "planner" in tiny.adapters
    assert resolved.agents["summarizer"].adapter is None  # made for another base: skipped
    assert resolved.agents["verifier"].adapter is None  # null: the plain base, asked for


def test_a_named_adapter_for_another_base_is_an_error(tiny, home, tmp_path):
    _saved(tiny, "judge", home / "adapters" / "judge", fingerprint="feedfacefeedface")
    spec = _spec(tmp_path, {"verifier": {"role": "verifier", "adapter": "judge"}})
    with pytest.raises(AdapterError, match="trained for base model"):
        with_adapters(spec, tiny)


def test_an_unknown_adapter_name_lists_the_known_ones(tiny, home, tmp_path):
    _saved(tiny, "planner", home / "adapters" / "planner")
    spec = _spec(tmp_path, {"verifier": {"role": "verifier", "adapter": "judge"}})
    with pytest.raises(AdapterNotFoundError, match="No adapter 'judge'.*planner"):
        with_adapters(spec, tiny)


def test_user_adapters_take_precedence_over_shipped_ones(tiny, home):
    _saved(tiny, "caller", home / "adapters" / "caller", role="caller")
    found = {item.name: item for item in library.available()}
    assert found["caller"].origin == "user"
    assert library.locate("caller") == home / "adapters" / "caller"


def test_the_shipped_role_adapters_carry_manifests():
    shipped = [item for item in library.available() if item.origin == "shipped"]
    assert {item.name for item in shipped} >= {"planner-v1", "caller-v1", "summarizer", "verifier"}
    for item in shipped:
        assert item.manifest is not None, item.name
        assert item.manifest.training.data_version
        assert item.manifest.command.startswith("chorus adapters train")


@contextmanager
def _held_until(model: chorus.Model, rows: int):
    """Hold the decode loop (the backend's lock) until `rows` rows are handed in, so that
    calls from several threads are known to meet in the running batch."""
    with model.backend.lock:
        yield
        deadline = time.monotonic() + 60
        while model.backend.decoding.in_flight < rows:
            assert time.monotonic() < deadline, "the calls never reached the backend"
            time.sleep(0.01)


def _in_threads(work, count: int) -> list[threading.Thread]:
    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads


def test_concurrent_calls_decode_in_one_batch_equal_to_each_alone(tiny):
    tiny.adapters.create("one", init="random", seed=1)
    tiny.adapters.create("two", init="random", seed=2)
    requests = [GenerationRequest(messages=[{"role": "user", "content": text}],
                                  adapter=adapter, max_new_tokens=12, **sampling)
                for text, adapter, sampling in (
                    ("hello", "one", {}), ("a longer question here", "two", {}),
                    ("plain", None, {}), ("sampled", "one", {"temperature": 0.9, "seed": 3}))]
    alone = [tiny.backend.generate_batch([request])[0] for request in requests]
    assert all(result.new_tokens > 1 for result in alone)  # rows that outlive one step
    texts = [None] * len(requests)

    def work(index):
        texts[index] = tiny.complete(requests[index]).text

    with _held_until(tiny, len(requests)):
        threads = _in_threads(work, len(requests))
    for thread in threads:
        thread.join()
    assert texts == [result.text for result in alone]
    assert tiny.backend.batch.widest == len(requests)  # every row in one forward at once


def test_a_bad_call_fails_alone_beside_a_good_one(tiny):
    outcomes = {}

    def work(index):
        adapter = ["missing", None][index]
        try:
            outcomes[adapter] = tiny.generate("hi", adapter=adapter, max_new_tokens=2).text
        except Exception as error:  # noqa: BLE001 (recorded for the assertion)
            outcomes[adapter] = type(error).__name__

    threads = _in_threads(work, 2)
    for thread in threads:
        thread.join()
    assert outcomes["missing"] == "AdapterNotFoundError"
    assert isinstance(outcomes[None], str) and outcomes[None] != "AdapterNotFoundError"


def test_a_failing_text_callback_ends_its_row_alone(tiny):
    requests = [GenerationRequest(messages=text, max_new_tokens=8) for text in ("one", "two")]
    alone = tiny.backend.generate_batch([requests[1]])[0].text
    outcomes = [None, None]

    def work(index):
        def refuse(piece):
            raise RuntimeError("the reader went away")

        try:
            outcomes[index] = tiny.complete(requests[index],
                                            on_text=refuse if index == 0 else None).text
        except RuntimeError as error:
            outcomes[index] = str(error)

    with _held_until(tiny, 2):
        threads = _in_threads(work, 2)
    for thread in threads:
        thread.join()
    assert outcomes == ["the reader went away", alone]


def test_a_prompt_that_begins_as_an_earlier_one_is_computed_from_where_they_part(tiny):
    tiny.adapters.create("one", init="random", seed=1)
    first = GenerationRequest(messages="Describe the sea in a few words.", adapter="one",
                              max_new_tokens=8)
    second = GenerationRequest(messages="Describe the sea in a few lines.", adapter="one",
                               max_new_tokens=8)
    tiny.complete(first)
    store = tiny.backend.batch.prefixes
    reused = store.reused
    warm = tiny.complete(second).text
    assert store.reused - reused > 10  # the chat template and "Describe the sea in a few"
    store.clear()
    assert tiny.complete(second).text == warm


def test_a_stored_prompt_state_never_serves_another_adapter_or_changed_weights(tiny):
    tiny.adapters.create("one", init="random", seed=1)
    tiny.adapters.create("two", init="random", seed=2)
    request = GenerationRequest(messages="Describe the sea.", adapter="one", max_new_tokens=8)
    tiny.complete(request)
    as_two = request.model_copy(update={"adapter": "two"})
    reused = tiny.backend.batch.prefixes.reused
    two = tiny.complete(as_two).text
    assert tiny.backend.batch.prefixes.reused == reused  # "one"'s state was not taken
    tiny.adapters.remove("one")
    tiny.adapters.create("one", init="random", seed=2)  # now the weights of "two"
    assert tiny.complete(request).text == two
    assert tiny.backend.batch.prefixes.reused == reused


def test_no_prompt_states_are_kept_with_a_prompt_cache_of_0_mb(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("CHORUS_PROMPT_CACHE_MB", "0")
    model = chorus.load_model(tiny_model_dir, dtype="float32", show_progress=False)
    request = GenerationRequest(messages="Describe the sea.", max_new_tokens=4)
    first, second = model.complete(request).text, model.complete(request).text
    assert first == second and model.backend.batch.prefixes.reused == 0


def test_parallel_graph_branches_share_one_batched_forward(tiny, tmp_path):
    tiny.adapters.create("styled", init="random", seed=5)
    spec = _spec(tmp_path, {"left": {"role": "summarizer", "adapter": "styled",
                                     "max_new_tokens": 8},
                            "right": {"role": "summarizer", "adapter": None,
                                      "max_new_tokens": 8}})
    runner = GraphRunner(spec, tiny, store=tmp_path / "runs")
    results = []
    with _held_until(tiny, 2):
        [thread] = _in_threads(lambda _: results.append(runner.run("Say something.")), 1)
    thread.join()
    assert tiny.backend.batch.widest == 2
    outputs = results[0].state["outputs"]
    left = chorus.graphs.compiler.build_agent(runner.spec, "left", runner.context.tools)
    right = chorus.graphs.compiler.build_agent(runner.spec, "right", runner.context.tools)
    assert outputs["left"] == left.run(tiny, "Say something.").value
    assert outputs["right"] == right.run(tiny, "Say something.").value


def test_cli_data_train_list_show_and_eval(tiny_model_dir, tmp_path):
    home = {"CHORUS_HOME": str(tmp_path / "home")}
    data = tmp_path / "data"
    made = _chorus("adapters", "data", "--out", str(data), **home)
    assert made.returncode == 0, made.stderr
    assert "held-out tools" in made.stdout
    manifest = json.loads((data / "manifest.json").read_text())
    assert not set(manifest["train_tools"]) & set(manifest["eval_tools"])

    trained = _chorus("adapters", "train", "--role", "caller", "--data", str(data), "--steps",
                      "2", "--batch-size", "2", "--model", str(tiny_model_dir), **home)
    assert trained.returncode == 0, trained.stderr
    assert "caller: loss" in trained.stdout
    saved = tmp_path / "home" / "adapters" / "caller"
    assert json.loads((saved / "chorus.json").read_text())["command"].startswith(
        "chorus adapters train --role caller")

    listing = _chorus("adapters", "list", **home)
    assert listing.returncode == 0 and "user" in listing.stdout and "shipped" in listing.stdout
    shown = _chorus("adapters", "show", "caller", **home)
    assert shown.returncode == 0 and "LoRA rank 8" in shown.stdout
    assert manifest["version"] in shown.stdout

    scored = _chorus("adapters", "eval", "caller", "--limit", "2", "--model",
                     str(tiny_model_dir), **home)
    assert scored.returncode == 0, scored.stderr
    assert "plain base" in scored.stdout and "arguments" in scored.stdout


def test_cli_errors_are_one_line(tmp_path):
    home = {"CHORUS_HOME": str(tmp_path / "home")}
    missing = _chorus("adapters", "show", "nothing-here", **home)
    assert missing.returncode == 2 and "No adapter 'nothing-here'" in missing.stderr
    no_data = _chorus("adapters", "train", "--role", "caller", "--data", str(tmp_path),
                      **home)
    assert no_data.returncode == 2 and "chorus adapters data" in no_data.stderr
    assert "Traceback" not in missing.stderr + no_data.stderr
