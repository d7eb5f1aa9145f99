"""How tools reach the model: one rendering for serving, training and evaluation."""

import json
from pathlib import Path

import pytest

from chorus.agents import roles
from chorus.errors import InvalidOutputError
from chorus.runtime.chat_format import (
    CALL_TAGS,
    chat_inputs,
    reply_output,
    tool_listing,
    written_calls,
    written_json,
)
from chorus.runtime.guidance import accepts
from chorus.runtime.outputs import JsonSchema, TaggedCalls
from chorus.tools import Tool, ToolRegistry
from chorus.training.dataset import encode, read_examples
from chorus.training.evaluation import read_tools, role_request

DATA = Path(__file__).parent.parent / "data" / "roles"
WEATHER = {"name": "get_weather", "description": "Current weather in a city.",
           "parameters": {"type": "object", "required": ["city"], "properties": {
               "city": {"type": "string", "description": "City name, e.g. Paris."},
               "unit": {"type": "string", "enum": ["celsius", "fahrenheit"],
                        "default": "celsius", "description": "Temperature unit."}}}}
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def test_a_template_with_tools_gets_them_in_its_own_format():
    messages, tools = chat_inputs(MESSAGES, [WEATHER], "{% if tools %}{{ tools }}{% endif %}")
    assert messages == MESSAGES
    assert tools == [{"type": "function", "function": WEATHER}]


def test_a_template_without_tools_gets_the_full_schemas_in_the_system_message():
    messages, tools = chat_inputs(MESSAGES, [WEATHER], "{{ messages }}")
    assert tools is None and messages[1:] == MESSAGES[1:]
    system = messages[0]["content"]
    assert system.startswith("Be brief.") and tool_listing([WEATHER]) in system
    assert json.loads(tool_listing([WEATHER])) == WEATHER


def test_no_tools_changes_nothing():
    assert chat_inputs(MESSAGES, [], "{% if tools %}{% endif %}") == (MESSAGES, None)


def _shown(prompt: str) -> None:
    for piece in ("get_weather", "Current weather in a city.", "City name, e.g. Paris.",
                  "fahrenheit", '"default"', '"required"'):
        assert piece in prompt, piece


@pytest.mark.parametrize("fixture", ["smol_llama", "qwen"])
def test_descriptions_enums_and_defaults_reach_the_prompt(fixture, request):
    """SmolLM2's template has no tool format (the listing), Qwen2.5's has one."""
    model = request.getfixturevalue(fixture)
    agent = roles.caller(ToolRegistry([Tool.from_openai(WEATHER)]))
    sent = agent.request("Weather in Oslo?", [], ToolRegistry([Tool.from_openai(WEATHER)]))
    backend = model.backend
    prompt = backend.llm.detokenize(backend.prompt_tokens(sent.messages, sent.tools),
                                    special=True).decode()
    _shown(prompt)
    if fixture == "qwen":
        assert "<tools>" in prompt  # the model's own tool format


def test_training_evaluation_and_serving_prompts_are_the_same_tokens(smol, smol_llama):
    """A stored caller example: the tokens the trainer learns from, the request the
    evaluation sends, and the tokens llama.cpp serves are one rendering."""
    [example] = read_examples(DATA, ["caller"], split="eval")[:1]
    assert example["tool_specs"]
    trained = encode(smol.backend.tokenizer, example["messages"], example["target"],
                     example["tool_specs"])
    evaluated = role_request("caller", example, read_tools(DATA), None)
    assert list(evaluated.tools) == example["tool_specs"]
    served = smol_llama.backend.prompt_tokens(evaluated.messages, evaluated.tools)
    assert trained.ids[:trained.target_start] == served


# --- how calls come back ---------------------------------------------------------------

CALLS = ToolRegistry([Tool.from_openai(WEATHER)]).calls(min_calls=1, max_calls=2)
OSLO = {"name": "get_weather", "arguments": {"city": "Oslo"}}
ROME = {"name": "get_weather", "arguments": {"city": "Rome", "unit": "celsius"}}


def test_a_template_that_asks_for_tool_call_tags_gets_its_calls_in_them():
    qwen_like = "{% for tool in tools %}{{ tool }}{% endfor %} <tool_call> </tool_call>"
    tagged = reply_output(CALLS, qwen_like, is_special=lambda text: True)
    assert isinstance(tagged, TaggedCalls) and tagged.special
    # other outputs, and templates without tags, keep the output as it is
    assert reply_output(CALLS, "{{ tools }}", is_special=lambda text: True) is CALLS
    other = JsonSchema({"type": "object"})
    assert reply_output(other, qwen_like, is_special=lambda text: True) == \
        JsonSchema({"type": "object"}, separators=(", ", ": "))


DECISION = JsonSchema.from_model(roles.PlannerDecision)
SPACED_JSON = '{"next": "call", "thought": "Add them."}'
COMPACT_JSON = '{"next":"call","thought":"Add them."}'


@pytest.mark.parametrize(("template", "written", "other"), [
    ("{{ tools }} <tool_call> </tool_call>", SPACED_JSON, COMPACT_JSON),
    ("{{ messages }}", COMPACT_JSON, SPACED_JSON),
])
def test_json_replies_are_laid_out_as_the_template_writes_calls(template, written, other):
    """A model with a call syntax of its own learned JSON as json.dumps writes it; one without
    gets compact JSON. Decoding and training write the same text either way."""
    output = reply_output(DECISION, template, is_special=lambda text: False)
    assert written_json({"next": "call", "thought": "Add them."}, template) == written
    assert accepts(output.grammar(), written) and output.parse(written).next == "call"
    assert not accepts(output.grammar(), other)  # one layout, no whitespace of its own


def test_tagged_calls_parse_to_the_same_list_as_the_json_form():
    tagged = CALLS.tagged(*CALL_TAGS, special=False)
    text = (f'<tool_call>\n{json.dumps(OSLO)}\n</tool_call>\n'
            f'<tool_call>\n{json.dumps(ROME)}\n</tool_call>\n')
    assert tagged.parse(text) == [OSLO, ROME] == CALLS.parse(json.dumps([OSLO, ROME]))
    # the grammar (its tags as plain text here: the byte vocabulary has no special tokens)
    # accepts what the template's example looks like, and not a bare JSON call
    assert accepts(tagged.grammar(), text)
    assert not accepts(tagged.grammar(), json.dumps(OSLO))
    assert not accepts(tagged.grammar(), text * 2)  # three or four calls: over max_calls


@pytest.mark.parametrize(("text", "problem"), [
    ("", "0 calls"),
    ('{"name": "get_weather", "arguments": {"city": "Oslo"}}', "text outside"),
    ('Sure! <tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n'
     '</tool_call>', "text outside"),
    ('<tool_call>\n{"name": "get_weather", "arguments": {}}\n</tool_call>', "its schema"),
])
def test_tagged_calls_are_checked_like_any_output(text, problem):
    with pytest.raises(InvalidOutputError, match=problem):
        CALLS.tagged(*CALL_TAGS, special=True).parse(text)


def test_special_tags_are_named_as_tokens_in_the_grammar():
    assert '<tool_call> "\\n" %json' in CALLS.tagged(*CALL_TAGS, special=True).grammar()
    assert '"<tool_call>" "\\n" %json' in CALLS.tagged(*CALL_TAGS, special=False).grammar()


@pytest.mark.parametrize("template", ["{{ tools }} <tool_call> </tool_call>", "{{ messages }}"])
def test_calls_are_trained_in_the_format_they_are_decoded_in(template):
    output = reply_output(CALLS, template, is_special=lambda text: False)
    text = written_calls([OSLO, ROME], template)
    assert accepts(output.grammar(), text)
    assert output.parse(text) == [OSLO, ROME]


def test_without_a_required_call_the_alternative_is_an_answer_in_words():
    optional = ToolRegistry([Tool.from_openai(WEATHER)]).calls(min_calls=0).tagged(
        *CALL_TAGS, special=False)
    assert accepts(optional.grammar(), "It is sunny, I think.")
    assert optional.parse("It is sunny, I think.") == []
    # not an empty reply, and not a call in another syntax
    for text in ("", json.dumps(OSLO), f"```json\n{json.dumps(OSLO)}\n```"):
        assert not accepts(optional.grammar(), text)


def test_an_added_call_follows_the_written_calls_on_transformers(tiny):
    """A template with call tags (the tiny model's, with the tags added): the written calls
    go in with the prompt, and the reply holds them as written, then one call more."""
    tokenizer = tiny.backend.tokenizer
    tokenizer.chat_template += "{# calls go between <tool_call> and </tool_call> #}"
    tools = ToolRegistry([Tool.from_openai(WEATHER)])
    oslo = {"name": "get_weather", "arguments": {"city": "Oslo"}}
    asked = roles.caller(tools).request("Weather in Oslo and Rome?", [], tools)
    reply = tiny.complete(asked.model_copy(update={"output": asked.output.after([oslo])}))
    assert reply.text.startswith(written_calls([oslo], tokenizer.chat_template) + "<tool_call>")
    assert reply.value[0] == oslo and len(reply.value) == 2
