"""How a request's tools reach the model: one rendering for serving, training and evaluation.

A model whose chat template takes `tools` (Qwen2.5's does) sees them in the format it was
trained on; any other model gets the same full JSON Schemas as a compact listing at the end
of its system message. Either way a tool shows its description, every parameter's
description, type, enum and default, and which parameters are required: the short
`name(arg: type)` form left those out, and most wrong calls were invented optional values.

Calls come back the same way: where the template asks for calls between `<tool_call>` tags
(Qwen2.5, Hermes), the caller's grammar writes them so, and they parse to the same list as
the JSON form other models write (before, Qwen2.5 was made to write a JSON list against
its own template's instructions; benchmarks/RESULTS.md has what each format scored).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from chorus.runtime.outputs import (
    COMPACT,
    SPACED,
    JsonSchema,
    OutputType,
    ToolCalls,
    tagged_call,
)

Message = dict[str, str]
ToolSpec = dict[str, Any]  # {"name", "description", "parameters"}: an OpenAI function spec


def takes_tools(template: str) -> bool:
    """Whether a jinja chat template renders a `tools` list of its own."""
    return "tools" in template


# The call syntax of Qwen2.5's and Hermes' templates (and of models trained on their data).
CALL_TAGS = ("<tool_call>", "</tool_call>")


def call_tags(template: str) -> tuple[str, str] | None:
    """The tags a template asks calls to be written between, or None (a JSON list then)."""
    return CALL_TAGS if all(tag in template for tag in CALL_TAGS) else None


def json_separators(template: str) -> tuple[str, str]:
    """How JSON replies are laid out under `template`: as json.dumps writes it where the
    template has a call syntax of its own (the model learned its calls, and so JSON, that
    way), else compact. Qwen2.5-Coder-0.5B's planner, made to write `{"next":"`, chose
    "answer" for 11 of 12 arithmetic requests; after `{"next": "`, "call" for 10 of 12."""
    return SPACED if call_tags(template) else COMPACT


def reply_output(output: OutputType | None, template: str,
                 is_special: Callable[[str], bool]) -> OutputType | None:
    """The output to decode for `output` under `template`: tool calls in the template's own
    syntax where it has one, JSON in the template's layout (`json_separators`); anything
    else as it is. `is_special(text)`: whether `text` is one special token of the model's
    vocabulary (a grammar names such tokens apart)."""
    if isinstance(output, JsonSchema):
        return output.laid_out(json_separators(template))
    tags = call_tags(template)
    if not isinstance(output, ToolCalls) or tags is None:
        return output
    return output.tagged(*tags, special=all(is_special(tag) for tag in tags))


def written_json(value: Any, template: str) -> str:
    """`value` as a JSON reply under `template` is written (`reply_output`), and so as an
    adapter of that model is trained to write it."""
    return json.dumps(value, ensure_ascii=False, separators=json_separators(template))


def written_calls(calls: Sequence[dict[str, Any]], template: str) -> str:
    """`calls` as a reply under `template` has them: the text the caller's grammar decodes
    (`reply_output`), and so the text its adapter is trained to write."""
    tags = call_tags(template)
    if tags is None:
        return json.dumps(list(calls), ensure_ascii=False, separators=COMPACT)
    return "".join(tagged_call(json.dumps(call, ensure_ascii=False), *tags) for call in calls)


# How calls are written where the template has no syntax of its own (ToolCalls' JSON form).
LISTED_CALLS = ('Calls are a JSON list, each {"name": ..., "arguments": {...}}: for "What is '
                'the weather in Oslo?" with a get_weather tool, [{"name":"get_weather",'
                '"arguments":{"city":"Oslo"}}]. [] calls nothing.')


def tool_listing(tools: Sequence[ToolSpec]) -> str:
    """One tool per line, as compact JSON."""
    return "\n".join(json.dumps(spec, ensure_ascii=False, separators=(",", ":"))
                     for spec in tools)


def chat_inputs(messages: list[Message], tools: Sequence[ToolSpec], template: str
                ) -> tuple[list[Message], list[dict[str, Any]] | None]:
    """(messages, tools argument) to render with `template`: the template's own tool format
    where it has one, else the listing appended to the system message."""
    if not tools:
        return messages, None
    if takes_tools(template):
        return messages, [{"type": "function", "function": dict(spec)} for spec in tools]
    listing = (f"Tools (JSON Schema of each tool's arguments):\n{tool_listing(tools)}\n\n"
               f"{LISTED_CALLS}")
    if messages and messages[0].get("role") == "system":
        first = {**messages[0], "content": f"{messages[0]['content']}\n\n{listing}"}
        return [first, *messages[1:]], None
    return [{"role": "system", "content": listing}, *messages], None


def render_with_tokenizer(tokenizer: Any, messages: list[Message],
                          tools: Sequence[ToolSpec] = (), *,
                          add_generation_prompt: bool = True) -> str:
    """The prompt text a transformers tokenizer's chat template makes (serving, training)."""
    messages, specs = chat_inputs(messages, tools, tokenizer.chat_template or "")
    return tokenizer.apply_chat_template(messages, tools=specs, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)
