"""How tools reach the model: one rendering for serving, training and evaluation."""

import json
from pathlib import Path

import pytest

from chorus.agents import roles
from chorus.runtime.chat_format import chat_inputs, tool_listing
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
