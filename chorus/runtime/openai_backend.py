"""A Backend that runs generations on an OpenAI-compatible server: vLLM, SGLang, llama.cpp's
llama-server, or another chorus (`chorus serve`).

The server holds the base model and its LoRA adapters; an agent's adapter is the request's
`model`. Output constraints go as the servers' structured-output fields (`response_format`
json_schema for schemas; for choices and regexes vLLM's `structured_outputs` and older
`guided_*` fields and SGLang's `regex`), and every output is validated here exactly as a
local one is: a server that ignores the constraint cannot slip an invalid value through.
Requests of one batch (parallel graph branches) are sent concurrently, so the server can
batch them.

The API key comes from the environment (CHORUS_API_KEY, else OPENAI_API_KEY) or the
constructor; it is never printed, traced or put in an error message.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from os import PathLike
from typing import Any

from chorus.errors import AdapterNotFoundError, ChorusError, ModelLoadError
from chorus.runtime.manifest import AdapterManifest
from chorus.runtime.outputs import Choice, JsonSchema, Lark, Regex, ToolCalls
from chorus.runtime.rows import (
    SENTENCE_STOPS,
    looping_start,
    repeated_line_start,
    repeated_sentence_start,
    truncated,
)
from chorus.runtime.types import AdapterInfo, GenerationRequest, GenerationResult, TextCallback

RETRY_STATUSES = {429, 500, 502, 503, 504}


class ServerError(ChorusError):
    """The server refused a request or could not be reached."""


class OpenAIBackend:
    def __init__(self, base_url: str, *, model: str | None = None, api_key: str | None = None,
                 timeout_s: float = 120.0, retries: int = 3, allow_adapter_loading: bool = False):
        """`base_url`: the server's OpenAI root, e.g. http://localhost:8000/v1. `model`: the
        base model's name on the server (default: the first it lists)."""
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self._api_key = api_key or os.environ.get("CHORUS_API_KEY") \
            or os.environ.get("OPENAI_API_KEY")
        self.timeout_s, self.retries = timeout_s, retries
        listed = self.served_models()
        if not listed:
            raise ModelLoadError(f"The server at {self.base_url} lists no models")
        if model is not None and model not in listed:
            raise ModelLoadError(f"The server at {self.base_url} does not serve '{model}'; it "
                                 f"serves: {', '.join(listed)}")
        self.name = model or listed[0]
        self.adapters = ServerAdapters(self, allow_loading=allow_adapter_loading)

    def served_models(self) -> list[str]:
        return [item["id"] for item in self._call("GET", "/models").get("data", [])]

    def generate_batch(self, requests: Sequence[GenerationRequest],
                       on_text: TextCallback | None = None) -> list[GenerationResult]:
        if len(requests) == 1:
            return [self._generate(0, requests[0], on_text)]
        with ThreadPoolExecutor(max_workers=min(len(requests), 16)) as pool:
            return list(pool.map(lambda item: self._generate(item[0], item[1], on_text),
                                 enumerate(requests)))

    # -- one request ------------------------------------------------------------------------

    def body(self, request: GenerationRequest, stream: bool) -> dict[str, Any]:
        """The chat-completions body for `request`."""
        body: dict[str, Any] = {
            "model": request.adapter or self.name, "messages": request.messages,
            "max_tokens": request.max_new_tokens, "temperature": request.temperature,
            "top_p": request.top_p, "stream": stream}
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = list(request.stop)
        if request.tools:  # shown to the model; the answer's shape is `output`'s
            body["tools"] = [{"type": "function", "function": spec} for spec in request.tools]
            body["tool_choice"] = "none"
        output = request.output
        if isinstance(output, ToolCalls):  # the server's chat template shows the tools
            output = output.listing
        if isinstance(output, JsonSchema):
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "output", "schema": output.schema, "strict": True}}
        elif isinstance(output, Choice | Regex):
            # Each server reads its own field and ignores the others': vLLM >= 0.12
            # `structured_outputs`, older vLLM `guided_*`, SGLang `regex`.
            pattern = output.pattern
            if isinstance(output, Choice):
                body["structured_outputs"] = {"choice": list(output.options)}
                body["guided_choice"] = list(output.options)
            else:
                body["structured_outputs"] = {"regex": pattern}
                body["guided_regex"] = pattern
            body["regex"] = pattern
        elif isinstance(output, Lark):  # vLLM's guidance backend and chorus serve read lark
            body["structured_outputs"] = {"grammar": output.source}
            body["guided_grammar"] = output.source
        return body

    def _generate(self, row: int, request: GenerationRequest,
                  on_text: TextCallback | None) -> GenerationResult:
        started = time.perf_counter()
        if on_text is None:
            response = self._call("POST", "/chat/completions", self.body(request, False))
            choice = response["choices"][0]
            text, reason = choice["message"].get("content") or "", choice.get("finish_reason")
            usage = response.get("usage") or {}
        else:
            text, reason, usage = "", None, {}
            for event in self._events(self.body(request, True)):
                if event.get("usage"):
                    usage = event["usage"]
                for choice in event.get("choices", []):
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece:
                        text += piece
                        on_text(row, piece)
                    reason = choice.get("finish_reason") or reason
        finish = "length" if reason == "length" else "stop"
        if request.stop_on_repeated_line:  # no server has this stop: the text is cut here
            text, repeated = _cut_at_repeated_line(text)
            finish = "repetition" if repeated else finish
        result = GenerationResult(
            text=text, finish_reason=finish,
            prompt_tokens=usage.get("prompt_tokens", 0),
            new_tokens=usage.get("completion_tokens", 0),
            latency_s=time.perf_counter() - started, adapter=request.adapter)
        if request.output is not None:
            # Cut short by the budget, the text still counts where it is complete (a grammar
            # such as "lowercase" accepts any prefix), as the local backends judge it.
            try:
                result.value = request.output.parse(text)
            except ChorusError as error:
                result.fail(truncated(request, text) if reason == "length" else error)
        return result

    # -- HTTP -------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None) -> urllib.request.Request:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        data = None if body is None else json.dumps(body).encode()
        return urllib.request.Request(self.base_url + path, data=data, headers=headers,
                                      method=method)

    def _open(self, method: str, path: str, body: Any = None):
        """The open response, after retrying connection failures, 429 and 5xx with
        exponential backoff and jitter."""
        for attempt in range(self.retries + 1):
            try:
                return urllib.request.urlopen(self._request(method, path, body),
                                              timeout=self.timeout_s)
            except urllib.error.HTTPError as error:
                if error.code not in RETRY_STATUSES or attempt == self.retries:
                    raise ServerError(f"{self.base_url}{path}: HTTP {error.code}: "
                                      f"{_message(error)}") from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
                if attempt == self.retries:
                    reason = getattr(error, "reason", error)
                    raise ServerError(f"Cannot reach {self.base_url}: {reason}") from None
            time.sleep(min(8.0, 0.5 * 2**attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        with self._open(method, path, body) as response:
            try:
                return json.loads(response.read())
            except ValueError:
                raise ServerError(f"{self.base_url}{path}: the answer is not JSON") from None

    def _events(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Server-sent events of a streamed completion, as dicts, until [DONE]."""
        with self._open("POST", "/chat/completions", body) as response:
            for raw in response:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                event = json.loads(data)
                if "error" in event:
                    raise ServerError(f"{self.base_url}: {event['error'].get('message')}")
                yield event


class ServerAdapters:
    """The adapters the server serves, as an AdapterHost: a name is an adapter if the server
    lists it. `load` registers a folder through vLLM's runtime-loading endpoint when allowed
    (`allow_adapter_loading`; the server also needs VLLM_ALLOW_RUNTIME_LORA_UPDATING)."""

    def __init__(self, backend: OpenAIBackend, *, allow_loading: bool):
        self.backend, self.allow_loading = backend, allow_loading

    def fits(self, manifest: AdapterManifest) -> bool:
        return manifest.name in self.backend.served_models()

    def __contains__(self, name: object) -> bool:
        return name in self.backend.served_models()

    def load(self, directory: str | PathLike[str], name: str | None = None) -> AdapterInfo:
        name = name or os.path.basename(os.fspath(directory).rstrip("/"))
        if name not in self:
            if not self.allow_loading:
                raise AdapterNotFoundError(
                    f"The server at {self.backend.base_url} does not serve the adapter "
                    f"'{name}'; start it with the adapter (vLLM: --lora-modules "
                    f"{name}=PATH), or allow runtime loading")
            self.backend._call("POST", "/load_lora_adapter",
                               {"lora_name": name, "lora_path": os.fspath(directory)})
        return AdapterInfo(name=name, rank=0, target_modules=(), parameters=0,
                           source=os.fspath(directory))

    def list(self) -> list[AdapterInfo]:
        return [AdapterInfo(name=name, rank=0, target_modules=(), parameters=0, source=None)
                for name in self.backend.served_models() if name != self.backend.name]


def _message(error: urllib.error.HTTPError) -> str:
    try:
        return json.loads(error.read())["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return error.reason or "no details"


def _cut_at_repeated_line(text: str) -> tuple[str, bool]:
    """The text before the first repetition (as the local backends stop: they check after
    every token, here after every character), and whether there was one. A repeated line
    can only appear where a line ends, a repeated sentence where a sentence ends, so those
    checks run there alone."""
    for end in range(1, len(text) + 1):
        seen = text[:end]
        cut = repeated_line_start(seen) if seen.endswith("\n") else None
        if cut is None and seen.endswith(SENTENCE_STOPS):
            cut = repeated_sentence_start(seen)
        if cut is None:
            cut = looping_start(seen)
        if cut is not None:
            return text[:cut].rstrip(), True
    return text, False
