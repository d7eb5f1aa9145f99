"""How a request's tools reach the model: one rendering for serving, training and evaluation.

A model whose chat template takes `tools` (Qwen2.5's does) sees them in the format it was
trained on; any other model gets the same full JSON Schemas as a compact listing at the end
of its system message. Either way a tool shows its description, every parameter's
description, type, enum and default, and which parameters are required: the short
`name(arg: type)` form left those out, and most wrong calls were invented optional values.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

Message = dict[str, str]
ToolSpec = dict[str, Any]  # {"name", "description", "parameters"}: an OpenAI function spec


def takes_tools(template: str) -> bool:
    """Whether a jinja chat template renders a `tools` list of its own."""
    return "tools" in template


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
    listing = f"Tools (JSON Schema of each tool's arguments):\n{tool_listing(tools)}"
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
