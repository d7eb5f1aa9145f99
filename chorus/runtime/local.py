"""The local backend: transformers generation on the one in-memory model.

Calls decode together as they come (continuous batching, `continuous`): each row with its
own adapter, token budget, stop strings, grammar and sampling.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import torch

from chorus.errors import ChorusError, UnsupportedSchemaError, check_context
from chorus.runtime.adapters import AdapterRegistry
from chorus.runtime.chat_format import render_with_tokenizer, reply_output
from chorus.runtime.choosing import NextTokens
from chorus.runtime.continuous import DecodeLoop, Row, RunningBatch
from chorus.runtime.guidance import GrammarCache
from chorus.runtime.outputs import reply_prefix
from chorus.runtime.rows import RowTracker, refused
from chorus.runtime.types import GenerationRequest, GenerationResult, TextCallback


class LocalBackend:
    batches_continuously = True  # calls join a running batch: no coalescing window needed
    MAX_ROWS = 16  # rows decoding at once; more wait for a row to leave

    def __init__(self, model: torch.nn.Module, tokenizer, name: str, *,
                 gguf_sha256: str | None = None):
        model.eval()
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.name = name
        self.tokenizer = tokenizer
        self.lock = threading.RLock()  # one forward pass at a time; batching is the parallelism
        self.adapters = AdapterRegistry(model, self.lock, gguf_sha256=gguf_sha256)
        self.grammars = GrammarCache(lambda: llguidance_tokenizer(tokenizer))
        self.eos_ids = {tokenizer.eos_token_id, *_as_set(model.generation_config.eos_token_id)}
        self.context = getattr(model.config, "max_position_embeddings", None) or 2048
        self.batch = RunningBatch(self.adapters)
        self.decoding = DecodeLoop(self.batch, self.lock, self.MAX_ROWS)
        self._bitmask = np.zeros((len(tokenizer) + 31) // 32, dtype=np.int32)

    def generate_batch(self, requests: Sequence[GenerationRequest],
                       on_text: TextCallback | None = None) -> list[GenerationResult]:
        results: list[GenerationResult | None] = []
        rows = []
        for index, request in enumerate(requests):
            def forward(_row: int, piece: str, index=index) -> None:
                on_text(index, piece)

            try:
                rows.append(self._row(request, forward if on_text else None))
                results.append(None)
            except UnsupportedSchemaError as error:  # the row fails, its batch goes on
                results.append(refused(request, error))
        decoded = iter(self.decoding.run(rows) if rows else [])
        return [result or next(decoded) for result in results]

    def _row(self, request: GenerationRequest, on_text: TextCallback | None) -> Row:
        """A request made ready to join the batch; bad input fails here, in its caller."""
        request = request.model_copy(update={"output": reply_output(
            request.output, self.tokenizer.chat_template or "", self.grammars.is_special)})
        adapter = self.adapters.require(request.adapter)
        matcher = self.grammars.matcher(request.output) if request.output else None
        prompt = self._tokens(render_with_tokenizer(self.tokenizer, request.messages,
                                                    request.tools))
        check_context(len(prompt), request.max_new_tokens, self.context)
        closer = self.grammars.closer(request.output, matcher, self.eos_ids) if matcher else None
        tracker = RowTracker(
            [request], matchers=[matcher], eos_ids=self.eos_ids, on_text=on_text,
            decode=lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True),
            rewind_loops=True)
        # A reply's forced start goes in with the prompt, and its matcher follows it.
        prefix = self._tokens(reply_prefix(request.output))
        for token in prefix:
            tracker.advance(0, token)
        chooser = NextTokens(request, matcher, closer, bitmask=self._bitmask,
                             budget_left=lambda: tracker.budget_left(0),
                             nudger=self.grammars.nudger(request.output),
                             text=lambda: tracker.texts[0],
                             avoided=lambda: tracker.avoided(0),
                             limit_reached=lambda: tracker.limit_reached(0))
        return Row(request, prompt + prefix, len(prompt), adapter, tracker, chooser)

    def _tokens(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def llguidance_tokenizer(tokenizer):
    import llguidance.hf

    return llguidance.hf.from_tokenizer(tokenizer)


def trainable_backend(model) -> LocalBackend:
    """The local backend of `model`: training needs its weights, tokenizer and peft registry."""
    if not isinstance(model.backend, LocalBackend):
        raise ChorusError(f"Training needs the local transformers backend; {model.name} runs on "
                          f"{type(model.backend).__name__}. Load the model with load_model().")
    return model.backend


def _as_set(value) -> set[int]:
    if value is None:
        return set()
    return set(value) if isinstance(value, list | tuple) else {value}
