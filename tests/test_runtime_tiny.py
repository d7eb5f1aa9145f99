"""The runtime on a tiny random Llama: generation, streaming, constraints, adapters, batching.

The model is random, so it says nothing sensible; but every constrained output must still be
valid (the grammar enforces it), and everything deterministic must be reproducible.
"""

import json
import re
from pathlib import Path
from typing import Literal

import jsonschema
import pytest
import torch
from pydantic import BaseModel, Field

import chorus
from chorus.errors import (
    AdapterError,
    AdapterNotFoundError,
    OutputTruncatedError,
    UnsupportedSchemaError,
)
from chorus.runtime import GenerationRequest, GenerationResult, JsonSchema, Regex, as_output

PROMPT = "Tell me a story about a cat."

PROFILE = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 8},
        "mood": {"enum": ["happy", "sad", "calm"]},
        "inner": {
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 99},
                           "ok": {"type": "boolean"}},
            "required": ["n", "ok"],
        },
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 5},
                 "minItems": 1, "maxItems": 3},
    },
    "required": ["name", "mood", "inner", "tags"],
}


class Reading(BaseModel):
    sensor: Literal["temp", "wind"]
    value: int = Field(ge=-50, le=50)
    label: str = Field(max_length=6)


def logits(model: chorus.Model, text: str = "Hello there", adapter: str | None = None):
    """Next-token logits of the raw module, for one adapter or (adapter=None) the base."""
    inputs = model.backend.tokenizer([text], return_tensors="pt")
    options = {} if adapter is None else {"adapter_names": [adapter]}
    with torch.no_grad():
        return model.adapters.module(**inputs, **options).logits


def a_stop_string_inside(text: str) -> str:
    """A word of `text` whose first occurrence is not at its very start."""
    for word in re.findall(r"[A-Za-z]{3,}", text):
        if text.find(word) > 0:
            return word
    raise AssertionError(f"no usable stop string in {text!r}")


# plain generation --------------------------------------------------------------------------


def test_generation_result_accounts_for_its_tokens(tiny: chorus.Model):
    result = tiny.generate(PROMPT, max_new_tokens=7)
    assert isinstance(result, GenerationResult)
    tokenizer = tiny.backend.tokenizer
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}],
                                           add_generation_prompt=True, tokenize=False)
    expected_prompt_tokens = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert result.prompt_tokens == expected_prompt_tokens > 0
    assert result.new_tokens == 7  # a random model does not stop by itself
    assert result.finish_reason == "length"
    assert result.latency_s > 0
    assert result.tokens_per_s > 0
    assert result.text
    assert result.value is None
    assert result.error is None
    assert result.adapter is None


def test_new_tokens_never_exceed_the_budget(tiny: chorus.Model):
    for budget in (1, 3, 10):
        result = tiny.generate(PROMPT, max_new_tokens=budget)
        assert 0 < result.new_tokens <= budget


def test_messages_or_a_string_give_the_same_prompt(tiny: chorus.Model):
    as_text = tiny.generate(PROMPT, max_new_tokens=6)
    as_messages = tiny.generate([{"role": "user", "content": PROMPT}], max_new_tokens=6)
    assert as_text.text == as_messages.text
    # SmolLM2's template adds a default system prompt; an explicit one replaces it.
    system = "You are a pirate who answers every question with a long sea shanty."
    with_system = tiny.generate([{"role": "system", "content": system},
                                 {"role": "user", "content": PROMPT}], max_new_tokens=6)
    assert with_system.text != as_text.text


def test_greedy_is_deterministic(tiny: chorus.Model):
    first = tiny.generate(PROMPT, max_new_tokens=12)
    second = tiny.generate(PROMPT, max_new_tokens=12)
    assert first.text == second.text
    other = tiny.generate("What is two plus two?", max_new_tokens=12)
    assert other.text != first.text  # the prompt matters, even to a random model


def test_seeded_sampling_is_reproducible(tiny: chorus.Model):
    first = tiny.generate(PROMPT, max_new_tokens=10, temperature=1.0, seed=3)
    second = tiny.generate(PROMPT, max_new_tokens=10, temperature=1.0, seed=3)
    assert first.text == second.text
    others = {tiny.generate(PROMPT, max_new_tokens=10, temperature=1.0, seed=seed).text
              for seed in (4, 5, 6, 7)}
    assert len(others | {first.text}) > 1


def test_seeded_sampling_leaves_the_global_rng_alone(tiny: chorus.Model):
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    tiny.generate(PROMPT, max_new_tokens=4, temperature=1.0, seed=9)
    assert torch.equal(torch.rand(4), expected)


def test_a_stop_string_cuts_the_output_before_it(tiny: chorus.Model):
    full = tiny.generate(PROMPT, max_new_tokens=20)
    stop = a_stop_string_inside(full.text)
    cut = tiny.generate(PROMPT, max_new_tokens=20, stop=stop)
    assert cut.finish_reason == "stop_string"
    assert cut.text == full.text[: full.text.find(stop)]
    assert stop not in cut.text
    assert cut.new_tokens < full.new_tokens


def test_the_earliest_of_several_stop_strings_wins(tiny: chorus.Model):
    full = tiny.generate(PROMPT, max_new_tokens=20)
    stop = a_stop_string_inside(full.text)
    cut = tiny.generate(PROMPT, max_new_tokens=20, stop=["never-in-the-output", stop])
    assert cut.finish_reason == "stop_string"
    assert cut.text == full.text[: full.text.find(stop)]


def test_a_stop_string_never_seen_changes_nothing(tiny: chorus.Model):
    full = tiny.generate(PROMPT, max_new_tokens=12)
    same = tiny.generate(PROMPT, max_new_tokens=12, stop="never-in-the-output")
    assert same.text == full.text
    assert same.finish_reason == "length"


# streaming ---------------------------------------------------------------------------------


def test_on_text_pieces_join_to_the_result(tiny: chorus.Model):
    pieces: list[str] = []
    result = tiny.generate(PROMPT, max_new_tokens=16, on_text=pieces.append)
    assert len(pieces) > 1
    assert all(pieces)
    assert "".join(pieces) == result.text


def test_on_text_never_streams_a_stop_string(tiny: chorus.Model):
    full = tiny.generate(PROMPT, max_new_tokens=20)
    stop = a_stop_string_inside(full.text)
    pieces: list[str] = []
    result = tiny.generate(PROMPT, max_new_tokens=20, stop=stop, on_text=pieces.append)
    assert "".join(pieces) == result.text
    assert stop not in "".join(pieces)


def test_on_text_streams_constrained_output(tiny: chorus.Model):
    pieces: list[str] = []
    result = tiny.generate(PROMPT, output=PROFILE, max_new_tokens=200, on_text=pieces.append)
    assert "".join(pieces) == result.text
    assert json.loads("".join(pieces)) == result.value


def test_stream_iterates_pieces_then_holds_the_result(tiny: chorus.Model):
    stream = tiny.stream(PROMPT, max_new_tokens=16)
    pieces = list(stream)
    assert len(pieces) > 1
    assert stream.result is not None
    assert "".join(pieces) == stream.result.text
    assert stream.result.text == tiny.generate(PROMPT, max_new_tokens=16).text


def test_stream_raises_the_generation_error_when_iterated(tiny: chorus.Model):
    stream = tiny.stream(PROMPT, adapter="missing", max_new_tokens=4)
    with pytest.raises(AdapterNotFoundError):
        list(stream)
    assert stream.result is None


# constrained decoding ----------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["Describe yourself as JSON.", "x", "Give me a profile."])
def test_json_schema_output_is_valid_greedy(tiny: chorus.Model, prompt: str):
    result = tiny.generate(prompt, output=PROFILE, max_new_tokens=200)
    jsonschema.validate(result.value, PROFILE)
    assert json.loads(result.text) == result.value
    assert result.finish_reason == "stop"
    assert result.error is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_json_schema_output_is_valid_when_sampling(tiny: chorus.Model, seed: int):
    result = tiny.generate(PROMPT, output=PROFILE, max_new_tokens=200, temperature=1.0,
                           seed=seed)
    jsonschema.validate(result.value, PROFILE)
    # Compact JSON: no whitespace between tokens of the structure.
    assert result.text == json.dumps(result.value, separators=(",", ":"), ensure_ascii=False)


def test_json_schema_output_has_no_invented_fields(tiny: chorus.Model):
    schema = {"type": "object", "properties": {"a": {"type": "boolean"}}}
    for seed in (1, 2, 3):
        value = tiny.generate(PROMPT, output=schema, max_new_tokens=40, temperature=1.0,
                              seed=seed).value
        assert set(value) <= {"a"}


def test_pydantic_output_is_a_model_instance(tiny: chorus.Model):
    result = tiny.generate(PROMPT, output=Reading, max_new_tokens=100)
    assert isinstance(result.value, Reading)
    assert -50 <= result.value.value <= 50
    assert len(result.value.label) <= 6


def test_choice_output_is_one_of_the_options(tiny: chorus.Model):
    options = ["yes", "yes sir", "no way", "c#-1"]  # a prefix, a space, regex characters
    for seed in range(1, 7):
        result = tiny.generate(PROMPT, output=options, max_new_tokens=10, temperature=1.0,
                               seed=seed)
        assert result.value in options
        assert result.text == result.value
    assert tiny.generate(PROMPT, output=options, max_new_tokens=10).value in options


def test_literal_output_is_one_of_the_options(tiny: chorus.Model):
    result = tiny.generate(PROMPT, output=Literal["red", "green", "blue"], max_new_tokens=5)
    assert result.value in ("red", "green", "blue")


@pytest.mark.parametrize("seed", [None, 1, 2])
def test_regex_output_matches(tiny: chorus.Model, seed: int | None):
    pattern = r"[0-9]{3}-[a-z]{2}"
    result = tiny.generate(PROMPT, output=Regex(pattern), max_new_tokens=20,
                           temperature=0.0 if seed is None else 1.0, seed=seed)
    assert re.fullmatch(pattern, result.text)
    assert result.value == result.text


def test_a_too_small_budget_raises_output_truncated(tiny: chorus.Model):
    with pytest.raises(OutputTruncatedError, match="max_new_tokens=3") as caught:
        tiny.generate(PROMPT, output=PROFILE, max_new_tokens=3)
    partial = caught.value.partial_text
    assert partial.startswith("{")
    full = tiny.generate(PROMPT, output=PROFILE, max_new_tokens=200)
    assert full.text.startswith(partial)  # greedy: the same start, just cut


def test_a_truncated_row_of_a_batch_carries_its_error(tiny: chorus.Model):
    results = tiny.generate_batch([
        {"messages": PROMPT, "output": PROFILE, "max_new_tokens": 200},
        {"messages": PROMPT, "output": PROFILE, "max_new_tokens": 3},
        {"messages": "Hello", "max_new_tokens": 5},
    ])
    good, truncated, plain = results
    assert good.error is None
    jsonschema.validate(good.value, PROFILE)
    assert truncated.error is not None
    assert "max_new_tokens=3" in truncated.error
    assert truncated.value is None
    assert truncated.finish_reason == "length"
    with pytest.raises(OutputTruncatedError):
        truncated.raise_for_error()
    good.raise_for_error()
    assert plain.error is None
    assert plain.new_tokens == 5


@pytest.mark.parametrize("schema, reason", [
    ({"$ref": "#/definitions/missing"}, "missing"),
    ({"type": "string", "pattern": "(?=a)b"}, "look"),
    ({"type": "string", "format": "no-such-format"}, "no-such-format"),
])
def test_a_schema_llguidance_cannot_enforce_is_unsupported(tiny: chorus.Model, schema: dict,
                                                            reason: str):
    JsonSchema(schema)  # passes the JSON Schema meta-check ...
    with pytest.raises(UnsupportedSchemaError, match=reason):  # ... but not the grammar's
        tiny.generate(PROMPT, output=schema, max_new_tokens=5)
    assert as_output(schema) not in tiny.backend.grammars


def test_a_row_whose_grammar_cannot_be_enforced_fails_alone_in_its_batch(tiny: chorus.Model):
    """DVR compiles grammars against bytes; one the model's vocabulary cannot carry (the
    lexer's fuel on 151k tokens) must fail its row, not the batch of 36 answers."""
    bad = {"type": "string", "pattern": "(?=a)b"}
    results = tiny.generate_batch([
        GenerationRequest(messages=PROMPT, max_new_tokens=4),
        GenerationRequest(messages=PROMPT, max_new_tokens=4, output=bad),
        GenerationRequest(messages=PROMPT, max_new_tokens=4)])
    assert results[0].error is None and results[2].error is None
    assert results[0].new_tokens == results[2].new_tokens == 4
    assert "look" in results[1].error and results[1].text == ""
    with pytest.raises(UnsupportedSchemaError):
        results[1].raise_for_error()


def test_an_invalid_schema_is_rejected_before_generation(tiny: chorus.Model):
    with pytest.raises(UnsupportedSchemaError, match="type"):
        tiny.generate(PROMPT, output={"type": "nope"}, max_new_tokens=5)


def test_compiled_grammars_are_cached(tiny: chorus.Model):
    schema = {"type": "object", "properties": {"x": {"type": "integer", "maximum": 9}},
              "required": ["x"]}
    reordered = {"required": ["x"], "type": "object",
                 "properties": {"x": {"maximum": 9, "type": "integer"}}}
    assert as_output(schema) not in tiny.backend.grammars
    first = tiny.generate(PROMPT, output=schema, max_new_tokens=20)
    assert as_output(schema) in tiny.backend.grammars
    assert as_output(reordered) in tiny.backend.grammars
    assert Regex("[a-z]") not in tiny.backend.grammars
    # The cached grammar starts every generation afresh.
    assert tiny.generate(PROMPT, output=schema, max_new_tokens=20).text == first.text


# adapters ----------------------------------------------------------------------------------


def test_random_adapters_differ_from_each_other_and_from_the_base(tiny: chorus.Model):
    base = logits(tiny)
    tiny.adapters.create("first", init="random", seed=1)
    tiny.adapters.create("second", init="random", seed=2)
    first, second = logits(tiny, adapter="first"), logits(tiny, adapter="second")
    assert not torch.allclose(first, base, atol=1e-3)
    assert not torch.allclose(second, base, atol=1e-3)
    assert not torch.allclose(first, second, atol=1e-3)
    assert torch.equal(logits(tiny, adapter="__base__"), base)  # no adapter: the base model
    texts = {tiny.generate(PROMPT, adapter=name, max_new_tokens=10).text
             for name in (None, "first", "second")}
    assert len(texts) == 3


def test_the_same_seed_gives_the_same_random_adapter(tiny: chorus.Model):
    tiny.adapters.create("one", init="random", seed=7)
    tiny.adapters.create("two", init="random", seed=7)
    assert torch.equal(logits(tiny, adapter="one"), logits(tiny, adapter="two"))


def test_a_zeros_adapter_is_a_no_op(tiny: chorus.Model):
    base_logits = logits(tiny)
    base_text = tiny.generate(PROMPT, max_new_tokens=12).text
    tiny.adapters.create("fresh")  # init="zeros"
    assert torch.equal(logits(tiny, adapter="fresh"), base_logits)
    result = tiny.generate(PROMPT, adapter="fresh", max_new_tokens=12)
    assert result.text == base_text
    assert result.adapter == "fresh"
    assert tiny.generate(PROMPT, max_new_tokens=12).text == base_text


def test_adapter_info(tiny: chorus.Model):
    info = tiny.adapters.create("small", rank=4, target_modules=("q_proj", "v_proj"))
    # 2 layers x (q: 4x64 + 64x4, v: 4x64 + 32x4); v projects to 2 kv heads x 16.
    assert info.parameters == 2 * ((4 * 64 + 64 * 4) + (4 * 64 + 32 * 4))
    assert info.size_bytes == 4 * info.parameters
    assert info.rank == 4
    assert info.target_modules == ("q_proj", "v_proj")
    assert info.source is None
    assert tiny.adapters.names() == ["small"]
    assert "small" in tiny.adapters
    assert "other" not in tiny.adapters
    assert tiny.adapters.list() == [info]


def test_a_missing_adapter_names_the_registered_ones(tiny: chorus.Model):
    with pytest.raises(AdapterNotFoundError, match=r"registered: none yet"):
        tiny.generate(PROMPT, adapter="missing", max_new_tokens=2)
    tiny.adapters.create("first")
    tiny.adapters.create("second")
    with pytest.raises(AdapterNotFoundError, match=r"'missing'.*registered: first, second"):
        tiny.generate(PROMPT, adapter="missing", max_new_tokens=2)
    with pytest.raises(AdapterNotFoundError):
        tiny.generate_batch([{"messages": PROMPT, "adapter": "first", "max_new_tokens": 2},
                             {"messages": PROMPT, "adapter": "missing", "max_new_tokens": 2}])


def test_save_then_load_into_a_fresh_model_is_identical(tiny: chorus.Model, tiny_model_dir: Path,
                                                        tmp_path: Path):
    tiny.adapters.create("tuned", init="random", seed=11)
    expected_logits = logits(tiny, adapter="tuned")
    expected_text = tiny.generate(PROMPT, adapter="tuned", max_new_tokens=12).text
    saved = tiny.adapters.save("tuned", tmp_path / "tuned-adapter")
    assert saved == tmp_path / "tuned-adapter"
    assert (saved / "adapter_config.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["tuned-adapter"]  # no staging left

    fresh = chorus.load_model(tiny_model_dir, dtype="float32", show_progress=False)
    info = fresh.adapters.load(saved)
    assert info.name == "tuned-adapter"  # the directory's name by default
    assert info.source == str(saved)
    assert info.parameters == tiny.adapters.info("tuned").parameters
    assert torch.equal(logits(fresh, adapter="tuned-adapter"), expected_logits)
    assert fresh.generate(PROMPT, adapter="tuned-adapter", max_new_tokens=12).text \
        == expected_text
    # The base of the fresh model is untouched by loading.
    assert fresh.generate(PROMPT, max_new_tokens=12).text \
        == tiny.generate(PROMPT, max_new_tokens=12).text


def test_load_under_another_name_and_next_to_others(tiny: chorus.Model, tmp_path: Path):
    tiny.adapters.create("src", init="random", seed=5)
    saved = tiny.adapters.save("src", tmp_path / "saved")
    info = tiny.adapters.load(saved, name="copy")
    assert info.name == "copy"
    assert tiny.adapters.names() == ["src", "copy"]
    assert torch.equal(logits(tiny, adapter="copy"), logits(tiny, adapter="src"))


def test_save_overwrites_an_existing_directory(tiny: chorus.Model, tmp_path: Path):
    target = tmp_path / "adapter"
    tiny.adapters.create("first", init="random", seed=1)
    tiny.adapters.create("second", init="random", seed=2)
    tiny.adapters.save("first", target)
    tiny.adapters.save("second", target)
    tiny.adapters.load(target, name="reloaded")
    assert torch.equal(logits(tiny, adapter="reloaded"), logits(tiny, adapter="second"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


def test_loading_a_directory_that_is_not_an_adapter(tiny: chorus.Model, tiny_model_dir: Path,
                                                    tmp_path: Path):
    with pytest.raises(AdapterError, match="adapter_config.json"):
        tiny.adapters.load(tmp_path)
    with pytest.raises(AdapterError, match="not an adapter directory"):
        tiny.adapters.load(tiny_model_dir)  # a model, not an adapter
    assert tiny.adapters.names() == []


def test_loading_an_adapter_with_mismatched_shapes(tiny: chorus.Model, tmp_path: Path):
    tiny.adapters.create("src", init="random", seed=5)
    saved = tiny.adapters.save("src", tmp_path / "bad")
    config = json.loads((saved / "adapter_config.json").read_text())
    config["r"] = 4  # the weights are rank 8
    (saved / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(AdapterError, match="Was it trained for this base model"):
        tiny.adapters.load(saved)
    assert tiny.adapters.names() == ["src"]
    assert tiny.generate(PROMPT, adapter="src", max_new_tokens=3).new_tokens == 3


def test_a_failed_load_leaves_the_name_free(tiny: chorus.Model, tmp_path: Path):
    tiny.adapters.create("src", init="random", seed=5)
    saved = tiny.adapters.save("src", tmp_path / "bad")
    config = json.loads((saved / "adapter_config.json").read_text())
    config["r"] = 4
    (saved / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(AdapterError):
        tiny.adapters.load(saved)
    tiny.adapters.create("bad")  # AdapterError from peft: "Adapter with name 'bad' exists"


@pytest.mark.parametrize("name", ["", "__base__", "has space", "dot.ted", "1starts-digit",
                                  "slash/name"])
def test_invalid_adapter_names(tiny: chorus.Model, name: str):
    with pytest.raises(AdapterError, match="Invalid adapter name"):
        tiny.adapters.create(name)
    assert tiny.adapters.names() == []


def test_adapter_creation_errors(tiny: chorus.Model):
    tiny.adapters.create("taken")
    with pytest.raises(AdapterError, match="already exists"):
        tiny.adapters.create("taken")
    with pytest.raises(AdapterError, match="init must be"):
        tiny.adapters.create("other", init="gaussian")
    with pytest.raises(AdapterError, match="nope_proj"):
        tiny.adapters.create("other", target_modules=("nope_proj",))
    with pytest.raises(AdapterError, match="other"):
        tiny.adapters.create("other", rank=0)
    assert tiny.adapters.names() == ["taken"]
    with pytest.raises(AdapterNotFoundError):
        tiny.adapters.save("missing", "/nonexistent/dir")


def test_remove_an_adapter(tiny: chorus.Model):
    tiny.adapters.create("keep", init="random", seed=1)
    tiny.adapters.create("drop", init="random", seed=2)
    expected = tiny.generate(PROMPT, adapter="keep", max_new_tokens=8).text
    tiny.adapters.remove("keep")  # the first one, which peft considers active
    tiny.adapters.create("keep", init="random", seed=1)  # the name is free again
    assert tiny.generate(PROMPT, adapter="keep", max_new_tokens=8).text == expected
    tiny.adapters.remove("drop")
    assert tiny.adapters.names() == ["keep"]
    with pytest.raises(AdapterNotFoundError):
        tiny.generate(PROMPT, adapter="drop", max_new_tokens=2)
    with pytest.raises(AdapterNotFoundError):
        tiny.adapters.remove("drop")
    assert tiny.generate(PROMPT, max_new_tokens=4).new_tokens == 4


def test_removing_the_last_adapter_restores_the_base(tiny: chorus.Model):
    base = tiny.generate(PROMPT, max_new_tokens=6).text
    tiny.adapters.create("only", init="random", seed=1)
    tiny.adapters.remove("only")
    assert tiny.adapters.names() == []
    assert tiny.generate(PROMPT, max_new_tokens=6).text == base


# batching ----------------------------------------------------------------------------------


def test_a_mixed_adapter_batch_equals_the_requests_one_at_a_time(tiny: chorus.Model):
    tiny.adapters.create("left", init="random", seed=1)
    tiny.adapters.create("right", init="random", seed=2)
    requests = [
        GenerationRequest(messages="Tell me a story about a cat.", adapter="left",
                          max_new_tokens=12),
        GenerationRequest(messages="Hi", adapter=None, max_new_tokens=12),
        GenerationRequest(messages="What is the weather like today in Paris?",
                          adapter="right", max_new_tokens=12),
    ]
    batch = tiny.generate_batch(requests)
    alone = [tiny.generate(r.messages, adapter=r.adapter, max_new_tokens=r.max_new_tokens)
             for r in requests]
    assert [r.text for r in batch] == [r.text for r in alone]
    assert [r.adapter for r in batch] == ["left", None, "right"]
    assert [r.prompt_tokens for r in batch] == [r.prompt_tokens for r in alone]
    assert len({r.text for r in batch}) == 3


def test_a_batch_keeps_each_rows_budget_stop_and_constraint(tiny: chorus.Model):
    full = tiny.generate(PROMPT, max_new_tokens=20).text
    stop = a_stop_string_inside(full)
    results = tiny.generate_batch([
        {"messages": PROMPT, "max_new_tokens": 20, "stop": stop},
        {"messages": PROMPT, "max_new_tokens": 4},
        {"messages": PROMPT, "max_new_tokens": 40, "output": ["alpha", "beta"]},
        {"messages": PROMPT, "max_new_tokens": 20},
    ])
    assert results[0].text == full[: full.find(stop)]
    assert results[0].finish_reason == "stop_string"
    assert results[1].new_tokens == 4
    assert results[1].finish_reason == "length"
    assert results[2].value in ("alpha", "beta")
    assert results[2].finish_reason == "stop"
    assert results[3].text == full


def test_a_batch_with_different_sampling_keeps_request_order(tiny: chorus.Model):
    prompts = ["Hi", "Hi there, friend.", "Tell me a long story about a cat and a dog.",
               "Name three colours, please, quickly, and explain why you like each of them."]
    settings = [{"temperature": 0.0}, {"temperature": 1.0, "seed": 5},
                {"temperature": 0.0}, {"temperature": 0.7, "top_p": 0.9, "seed": 5}]
    requests = [{"messages": prompt, "max_new_tokens": 8, **setting}
                for prompt, setting in zip(prompts, settings, strict=True)]
    streamed: dict[int, list[str]] = {}

    def collect(row: int, piece: str) -> None:
        streamed.setdefault(row, []).append(piece)

    batch = tiny.generate_batch(requests, on_text=collect)
    alone = [tiny.generate(**request) for request in requests]
    assert [r.text for r in batch] == [r.text for r in alone]
    assert [r.prompt_tokens for r in batch] == [r.prompt_tokens for r in alone]
    assert len({r.prompt_tokens for r in batch}) == 4  # so the order check means something
    assert {row: "".join(pieces) for row, pieces in streamed.items()} \
        == {row: r.text for row, r in enumerate(batch)}


def test_a_batch_mixing_seeded_and_unseeded_requests(tiny: chorus.Model):
    results = tiny.generate_batch([{"messages": "Hi", "max_new_tokens": 3},
                                   {"messages": "Hi", "max_new_tokens": 3, "seed": 1}])
    assert [r.new_tokens for r in results] == [3, 3]


def test_an_empty_batch_returns_nothing(tiny: chorus.Model):
    assert tiny.generate_batch([]) == []


# loading -----------------------------------------------------------------------------------


@pytest.mark.parametrize("setting, dtype", [("bf16", torch.bfloat16), ("float32", torch.float32)])
def test_load_model_follows_chorus_dtype(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                         setting: str, dtype: torch.dtype):
    monkeypatch.setenv("CHORUS_DTYPE", setting)
    model = chorus.load_model(tiny_model_dir, show_progress=False)
    assert model.adapters.module.dtype == dtype
    assert model.name == tiny_model_dir.name
    assert model.generate(PROMPT, max_new_tokens=3).new_tokens == 3
