"""The runtime on the real embedded SmolLM2-135M-Instruct (converted once per session)."""

import json
from pathlib import Path
from typing import Literal

import jsonschema
import pytest
import torch
from pydantic import BaseModel, Field

import chorus
from chorus.runtime import sources
from chorus.runtime.embedded import EMBEDDED

pytestmark = pytest.mark.integration


class Weather(BaseModel):
    city: str = Field(max_length=30)
    temperature_c: int = Field(ge=-60, le=60)
    sunny: bool


class Ingredient(BaseModel):
    name: str = Field(max_length=20)
    grams: int = Field(ge=1, le=1000)


class Recipe(BaseModel):
    dish: str = Field(max_length=30)
    ingredients: list[Ingredient] = Field(min_length=1, max_length=3)


class Ticket(BaseModel):
    priority: Literal["low", "medium", "high"]
    summary: str = Field(max_length=60)
    assignee: str | None = Field(default=None, max_length=20)


class ToolCall(BaseModel):
    tool: Literal["calculator", "search", "calendar"]
    argument: str = Field(max_length=40)


def text(max_length: int = 30) -> dict:
    return {"type": "string", "maxLength": max_length}


def obj(required: list[str] | None = None, **properties) -> dict:
    schema = {"type": "object", "properties": properties}
    schema["required"] = list(properties) if required is None else required
    return schema


SCHEMAS = {
    "city_and_country": ("What is the capital of Italy? Reply with the city and the country.",
                         obj(city=text(), country=text())),
    "boolean": ("Is the sky blue on a clear day?", obj(answer={"type": "boolean"})),
    "enum": ("Classify the sentiment of: 'I love this phone, it is wonderful!'",
             obj(sentiment={"enum": ["positive", "negative", "neutral"]})),
    "integer_bounds": ("How many legs does a spider have?",
                       obj(legs={"type": "integer", "minimum": 0, "maximum": 100})),
    "number_bounds": ("What is a normal human body temperature in Celsius?",
                      obj(celsius={"type": "number", "minimum": 30, "maximum": 45})),
    "array_exact_length": ("List three fruits.", obj(fruits={
        "type": "array", "items": text(20), "minItems": 3, "maxItems": 3})),
    "array_of_enums": ("Name a few primary colours.", obj(colours={
        "type": "array", "items": {"enum": ["red", "yellow", "blue", "green"]},
        "minItems": 1, "maxItems": 4})),
    "nested_object": ("Describe a person named Alice who is 30 years old and lives in London.",
                      obj(name=text(), age={"type": "integer", "minimum": 0, "maximum": 130},
                          address=obj(["city"], city=text(), country=text()))),
    "array_of_objects": ("List two planets and their order from the sun.", obj(planets={
        "type": "array", "minItems": 2, "maxItems": 2,
        "items": obj(name=text(15), position={"type": "integer", "minimum": 1, "maximum": 8})})),
    "any_of": ("What is 7 times 6? If you do not know, say so.", obj(result={"anyOf": [
        {"type": "integer", "minimum": 0, "maximum": 1000}, text()]})),
    "nullable": ("Who was the first person to walk on the moon? Give the middle name if known.",
                 obj(name=text(), middle_name={"anyOf": [text(), {"type": "null"}]})),
    "const_and_enum": ("Book a table for two at 7pm.", obj(
        action={"const": "book_table"}, guests={"type": "integer", "minimum": 1, "maximum": 20},
        time={"enum": ["6pm", "7pm", "8pm"]})),
    "top_level_array": ("Give me the first three even numbers.", {
        "type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 100},
        "minItems": 3, "maxItems": 3}),
    "top_level_enum": ("Which is bigger, an elephant or a mouse?",
                       {"enum": ["elephant", "mouse"]}),
    "string_pattern": ("What is the ISO code of the United States dollar?",
                       obj(code={"type": "string", "pattern": "^[A-Z]{3}$"})),
    "optional_fields": ("Tell me about the book 'Moby Dick'.", obj(
        ["title"], title=text(40), author=text(),
        year={"type": "integer", "minimum": 1000, "maximum": 2100})),
    "pydantic_flat": ("It is 25 degrees and sunny in Madrid. Report the weather.", Weather),
    "pydantic_nested_list": ("Give me a simple pancake recipe with at most three ingredients.",
                             Recipe),
    "pydantic_optional_literal": ("The login page is down for all users. File a support "
                                  "ticket.", Ticket),
    "pydantic_tool_call": ("What is 123 multiplied by 45? Choose a tool to answer.", ToolCall),
}

PROMPT = "Tell me a short story about a brave little robot."


def next_token_logits(model: chorus.Model, adapter: str | None) -> torch.Tensor:
    inputs = model.backend.tokenizer([PROMPT], return_tensors="pt")
    options = {"adapter_names": [adapter or "__base__"]} if model.adapters.names() else {}
    with torch.no_grad():
        return model.adapters.module(**inputs, **options).logits[0, -1]


# the base model ----------------------------------------------------------------------------


def test_it_knows_the_capital_of_france(smol: chorus.Model):
    result = smol.generate("What is the capital of France?", max_new_tokens=12)
    assert "Paris" in result.text
    assert result.finish_reason in ("stop", "length")
    assert result.prompt_tokens > 0


def test_a_stop_string_cuts_a_real_answer(smol: chorus.Model):
    full = smol.generate("What is the capital of France?", max_new_tokens=12)
    assert "Paris" in full.text
    cut = smol.generate("What is the capital of France?", max_new_tokens=12, stop="Paris")
    assert cut.finish_reason == "stop_string"
    assert cut.text == full.text[: full.text.find("Paris")]


def test_the_conversion_is_cached_in_chorus_home(smol: chorus.Model, chorus_home: Path,
                                                 monkeypatch: pytest.MonkeyPatch):
    [converted] = [p for p in (chorus_home / "models").iterdir() if p.is_dir()]
    manifest = json.loads((converted / sources.MANIFEST).read_text())
    gguf = EMBEDDED["smollm2-135m"].gguf()
    assert manifest["source"] == str(gguf)
    assert manifest["source_sha256"] == sources.file_sha256(gguf)
    assert (converted / "config.json").is_file()

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("converted again although the cache is complete")

    monkeypatch.setattr(sources, "convert_gguf", no_second_conversion)
    source = sources.materialise(sources.resolve(None), show_progress=False)
    assert source.kind == "directory"
    assert Path(source.location) == converted


# constrained decoding ----------------------------------------------------------------------


@pytest.mark.parametrize("case", list(SCHEMAS))
def test_constrained_output_is_valid(smol: chorus.Model, case: str):
    prompt, output = SCHEMAS[case]
    result = smol.generate(prompt, output=output, max_new_tokens=120)
    assert result.error is None
    assert result.finish_reason == "stop"
    if isinstance(output, type):
        assert isinstance(result.value, output)
        value, schema = result.value.model_dump(mode="json"), output.model_json_schema()
        assert json.loads(result.text) == value
    else:
        value, schema = result.value, output
        assert json.loads(result.text) == value
    jsonschema.validate(value, schema)


def test_constrained_rows_of_a_batch_are_each_valid(smol: chorus.Model):
    cases = ["boolean", "enum", "integer_bounds", "top_level_enum"]
    results = smol.generate_batch([
        {"messages": SCHEMAS[case][0], "output": SCHEMAS[case][1], "max_new_tokens": 40}
        for case in cases])
    for case, result in zip(cases, results, strict=True):
        assert result.error is None
        jsonschema.validate(result.value, SCHEMAS[case][1])
        alone = smol.generate(SCHEMAS[case][0], output=SCHEMAS[case][1], max_new_tokens=40)
        assert result.value == alone.value


def test_a_lone_row_feeds_what_its_grammar_forces_in_one_forward(smol: chorus.Model):
    """Alone in the batch, a row feeds the tokens its grammar forces (keys, separators) in
    one forward; beside another row it feeds one token a step: the same text both ways."""
    request = {"messages": "Where is the Louvre?", "max_new_tokens": 40,
               "output": obj(city=text(20), country=text(20), museum=text(20))}
    batch = smol.backend.batch
    steps = batch.steps
    alone = smol.generate(**request)
    forwards = batch.steps - steps
    assert alone.error is None and set(alone.value) == {"city", "country", "museum"}
    assert forwards < alone.new_tokens - 3  # `{"city`, `","country`, ... cost no step each
    together, _ = smol.generate_batch([request, {"messages": "Hi!", "max_new_tokens": 40}])
    assert together.text == alone.text


def test_a_loop_under_a_grammar_with_closings_is_taken_back_and_closed(smol: chorus.Model):
    """As on llama.cpp (tests/test_llamacpp.py): SmolLM2 loops on "ok" lines; under "end
    with a P.S." its repeated line is taken back (masked out of the batch's cache) and the
    closing written in its place, also beside a row that goes on as it was."""
    from chorus.checks import check_all
    from chorus.checks.compiling import compile_constraints

    constraints = [{"type": "postscript", "marker": "P.S."}]
    looping = {"messages": "Write the line 'ok' ten times, one per line.",
               "output": compile_constraints(constraints).output,
               "stop_on_repeated_line": True, "max_new_tokens": 120}
    beside = {"messages": "Name three colours.", "max_new_tokens": 30}
    result, neighbour = smol.generate_batch([looping, beside])
    assert result.error is None
    assert all(outcome.passed for outcome in check_all(result.text, constraints))
    lines = [line.strip() for line in result.text.splitlines() if line.strip()]
    assert len(lines) == len(set(lines))
    assert neighbour.text == smol.generate_batch([beside])[0].text


# adapters ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smol_with_base_logits(smol: chorus.Model):
    """A second copy of SmolLM2 (read from the conversion cache) just for adapter tests,
    with its logits taken before any adapter existed."""
    model = chorus.load_model(dtype="float32", backend="transformers", show_progress=False)
    base = next_token_logits(model, None)
    base_text = model.generate(PROMPT, max_new_tokens=24).text
    return model, base, base_text


def test_random_adapters_change_the_logits_and_no_adapter_is_the_base(smol_with_base_logits):
    model, base, base_text = smol_with_base_logits
    model.adapters.create("robot_one", init="random", seed=1, rank=4, alpha=1)
    model.adapters.create("robot_two", init="random", seed=2, rank=4, alpha=1)
    try:
        one = next_token_logits(model, "robot_one")
        two = next_token_logits(model, "robot_two")
        assert not torch.allclose(one, base, atol=1e-3)
        assert not torch.allclose(two, base, atol=1e-3)
        assert not torch.allclose(one, two, atol=1e-3)
        assert torch.equal(next_token_logits(model, None), base)
        assert model.generate(PROMPT, max_new_tokens=24).text == base_text
    finally:
        model.adapters.remove("robot_one")
        model.adapters.remove("robot_two")


def test_a_mixed_adapter_batch_equals_one_request_at_a_time(smol_with_base_logits):
    model, _, base_text = smol_with_base_logits
    names = ["mix_one", "mix_two", "mix_three"]
    for seed, name in enumerate(names, start=1):
        model.adapters.create(name, init="random", seed=seed, rank=4, alpha=1)
    try:
        requests = [
            {"messages": "What is the capital of France?", "adapter": "mix_one"},
            {"messages": PROMPT, "adapter": None},
            {"messages": "Name three animals that live in the sea.", "adapter": "mix_two"},
            {"messages": "Hi!", "adapter": "mix_three"},
        ]
        requests = [dict(r, max_new_tokens=24) for r in requests]
        batch = model.generate_batch(requests)
        alone = [model.generate(**request) for request in requests]
        assert [r.text for r in batch] == [r.text for r in alone]
        assert [r.adapter for r in batch] == ["mix_one", None, "mix_two", "mix_three"]
        assert batch[1].text == base_text
        # The adapters matter: the first row is not what the base model answers.
        assert batch[0].text != model.generate(**dict(requests[0], adapter=None)).text
    finally:
        for name in names:
            model.adapters.remove(name)
