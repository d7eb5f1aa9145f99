"""The OpenAI chat-completions protocol over a chorus `Model`: a request body in, a response
body (or its stream of chunks) out. No HTTP here (chorus.server.http), so every rule about
what a request may say is in one place and testable without a socket.

Supported: `messages` (text content, or lists of text parts), `model` (the base model's name
or an adapter's), `max_tokens`/`max_completion_tokens`, `temperature`, `top_p`, `seed`,
`stop`, `stream`, `response_format` (`json_schema`, `json_object`, `text`), vLLM's
`structured_outputs` (`choice`, `regex`, `json`) and older `guided_choice` / `guided_regex`,
and `tools` with `tool_choice` (`none`, `auto`,
`required`, or one named function), answered with constrained `tool_calls`.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chorus.errors import ChorusError
from chorus.runtime import Lark, Model, Regex
from chorus.runtime.library import available, ensure_loaded
from chorus.runtime.types import GenerationRequest, GenerationResult
from chorus.tools import Tool, ToolRegistry

MAX_TOKENS = 4096  # per request; the context guard refuses what does not fit anyway
DEFAULT_MAX_TOKENS = 256
ROLES = ("system", "user", "assistant", "tool")


class RequestError(Exception):
    """A request the server refuses: an OpenAI-style error with its HTTP status."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None,
                 kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.param, self.kind, self.code = status, param, kind, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param,
                          "code": self.code}}


@dataclass(frozen=True)
class ChatCall:
    """A parsed request: what to generate, and how to answer."""

    request: GenerationRequest
    model_name: str  # as the client named it, echoed back
    stream: bool
    tool_choice: str  # "none" for plain replies, "auto", "required" or "named"


def model_names(model: Model) -> list[str]:
    """What `model` may be in a request: the base model's name, then adapters that fit it
    (the base also answers to "default" and to the name it was loaded by)."""
    names = [model.name]
    if model.serves_adapters:
        names += [item.name for item in available()
                  if item.manifest is None or model.adapters.fits(item.manifest)]
    return names


def parse_chat(body: Any, model: Model, aliases: tuple[str, ...] = ()) -> ChatCall:
    """`aliases`: other names of the base model (such as the short name it was loaded by)."""
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object")
    name = _field(body, "model", str, default=model.name)
    base = name in (model.name, "default", *aliases)
    adapter = None if base else _adapter(model, name)
    if body.get("n", 1) != 1:
        raise RequestError("Only n = 1 is supported", param="n")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    max_tokens = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) \
            or not 1 <= max_tokens <= MAX_TOKENS:
        raise RequestError(f"max_tokens must be a whole number from 1 to {MAX_TOKENS}",
                           param="max_tokens")
    temperature = _number(body, "temperature", 0.0, 0.0, 2.0)
    top_p = _number(body, "top_p", 1.0, 0.0, 1.0)
    if top_p == 0:
        raise RequestError("top_p must be above 0", param="top_p")
    seed = _field(body, "seed", int, default=None)
    if seed is not None and not 0 <= seed < 2**32:
        raise RequestError("seed must be from 0 to 2**32 - 1", param="seed")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) \
            or len(stop) > 4:
        raise RequestError("stop must be a non-empty string or a list of up to 4",
                           param="stop")
    messages = _messages(body.get("messages"))
    try:
        tools, output, tool_choice = _tools_and_output(body)
    except ChorusError as error:  # a bad regex
        raise RequestError(str(error)) from error
    try:
        request = GenerationRequest(
            messages=messages, tools=tools, output=output, adapter=adapter,
            max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed,
            stop=tuple(stop))
    except ChorusError as error:
        raise RequestError(str(error), param="response_format") from error
    return ChatCall(request=request, model_name=name, stream=bool(body.get("stream")),
                    tool_choice=tool_choice)


def answer(call: ChatCall, model: Model,
           on_text: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the call on `model`; the response body (`chat.completion`)."""
    started = time.perf_counter()
    result = _generate(model, call.request, None if call.tool_choice != "none" else on_text)
    message: dict[str, Any] = {"role": "assistant", "content": result.text}
    finish = "length" if result.finish_reason == "length" else "stop"
    if call.tool_choice != "none" and result.error is None:  # else: cut short, "length"
        calls = []
        for item in result.value or []:  # the same call twice in one turn is never wanted
            if item not in calls:
                calls.append(item)
        if calls:
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                 "function": {"name": item["name"],
                              "arguments": json.dumps(item["arguments"], ensure_ascii=False)}}
                for item in calls]}
            finish = "tool_calls"
        elif call.tool_choice == "auto":  # no tool fits: a plain reply, tools still shown
            plain = call.request.model_copy(update={"output": None})
            result = _add_usage(result, _generate(model, plain, on_text))
            message["content"] = result.text
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
            "created": int(time.time()), "model": call.model_name,
            "choices": [{"index": 0, "message": message, "finish_reason": finish,
                         "logprobs": None}],
            "usage": {"prompt_tokens": result.prompt_tokens,
                      "completion_tokens": result.new_tokens,
                      "total_tokens": result.prompt_tokens + result.new_tokens},
            "x_chorus": {"latency_s": round(time.perf_counter() - started, 4),
                         "adapter": call.request.adapter}}


def chunk(response_id: str, model_name: str, delta: dict[str, Any],
          finish: str | None = None) -> dict[str, Any]:
    """One `chat.completion.chunk` of a streamed answer."""
    return {"id": response_id, "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model_name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


# -- parts ----------------------------------------------------------------------------------

def _generate(model: Model, request: GenerationRequest,
              on_text: Callable[[str], None] | None) -> GenerationResult:
    """The result; a constrained output that ran out of tokens is answered as OpenAI servers
    do, with its partial text and finish_reason "length" (the client judges it)."""
    try:
        result = model.complete(request, on_text=on_text, raise_errors=False)
    except ChorusError as error:  # a prompt over the context
        raise RequestError(str(error), status=400, kind="invalid_request_error") from error
    if result.error is not None and result.finish_reason != "length":
        raise RequestError(f"The output failed its constraint: {result.error}", status=500,
                           kind="server_error")
    return result


def _add_usage(first: GenerationResult, second: GenerationResult) -> GenerationResult:
    return second.model_copy(update={"prompt_tokens": first.prompt_tokens + second.prompt_tokens,
                                     "new_tokens": first.new_tokens + second.new_tokens})


def _adapter(model: Model, name: str) -> str:
    if not model.serves_adapters or name not in model_names(model):
        raise RequestError(f"The model '{name}' does not exist here; served: "
                           f"{', '.join(model_names(model))}", status=404, param="model",
                           code="model_not_found")
    return ensure_loaded(model, name)


def _field(body: dict, key: str, kind: type, *, default: Any) -> Any:
    value = body.get(key, default)
    if value is not default and (not isinstance(value, kind) or isinstance(value, bool)):
        raise RequestError(f"{key} must be a {kind.__name__}", param=key)
    return value


def _number(body: dict, key: str, default: float, low: float, high: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool) \
            or not math.isfinite(value) or not low <= value <= high:
        raise RequestError(f"{key} must be a number from {low:g} to {high:g}", param=key)
    return float(value)


def _messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list", param="messages")
    parsed = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise RequestError(f"{where} needs a role: one of {', '.join(ROLES)}", param=where)
        content = message.get("content") or ""
        if isinstance(content, list):  # text parts; other kinds cannot be read by this model
            if not all(isinstance(part, dict) and part.get("type") == "text"
                       and isinstance(part.get("text"), str) for part in content):
                raise RequestError(f"{where}: only text content parts are supported",
                                   param=where)
            content = "".join(part["text"] for part in content)
        if not isinstance(content, str):
            raise RequestError(f"{where}.content must be text", param=where)
        # Lone surrogates ("\\ud800" in the JSON) cannot be tokenized: shown as "?".
        parsed.append({"role": message["role"],
                       "content": content.encode("utf-8", "replace").decode("utf-8")})
    return parsed


def _tools_and_output(body: dict) -> tuple[list[dict], Any, str]:
    """(tool specs shown, output constraint, tool choice) from `tools`, `tool_choice`,
    `response_format`, `guided_choice` and `guided_regex`."""
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise RequestError("tools must be a list", param="tools")
    try:
        registry = ToolRegistry(Tool.from_openai(spec) for spec in tools)
    except ChorusError as error:
        raise RequestError(str(error), param="tools") from error
    specs = [item.to_openai() for item in registry]
    choice = body.get("tool_choice", "auto" if tools else "none")
    max_calls = 1 if body.get("parallel_tool_calls") is False else 3
    if tools and choice != "none":
        if choice == "auto":
            return specs, registry.calls(0, max_calls), "auto"
        if choice == "required":
            return specs, registry.calls(1, max_calls), "required"
        name = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
        if name not in registry:
            raise RequestError("tool_choice must be none, auto, required or "
                               '{"type": "function", "function": {"name": ...}} naming '
                               "one of the tools", param="tool_choice")
        return specs, ToolRegistry([registry.get(name)]).calls(1, 1), "named"
    if choice not in ("none", "auto"):
        raise RequestError("tool_choice needs tools", param="tool_choice")
    return specs, _output(body), "none"


def _output(body: dict) -> Any:
    structured = body.get("structured_outputs") or {}  # vLLM >= 0.12's form
    if not isinstance(structured, dict):
        return _refuse("structured_outputs must be an object", "structured_outputs")
    choice = structured.get("choice", body.get("guided_choice"))
    if choice is not None:
        return list(choice) if isinstance(choice, list) \
            else _refuse("a choice must be a list of strings", "guided_choice")
    pattern = structured.get("regex", body.get("guided_regex"))
    if pattern is not None:
        return Regex(pattern) if isinstance(pattern, str) \
            else _refuse("a regex must be a string", "guided_regex")
    grammar = structured.get("grammar", body.get("guided_grammar"))
    if grammar is not None:
        return Lark(grammar) if isinstance(grammar, str) \
            else _refuse("a grammar must be a string", "guided_grammar")
    if structured.get("json") is not None:
        return structured["json"] if isinstance(structured["json"], dict) \
            else _refuse("structured_outputs.json must be a JSON Schema", "structured_outputs")
    shape = body.get("response_format") or {"type": "text"}
    kind = shape.get("type") if isinstance(shape, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        schema = (shape.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            _refuse("response_format.json_schema.schema must be a JSON Schema object",
                    "response_format")
        return schema
    return _refuse("response_format.type must be text, json_object or json_schema",
                   "response_format")


def _refuse(message: str, param: str) -> Any:
    raise RequestError(message, param=param)
