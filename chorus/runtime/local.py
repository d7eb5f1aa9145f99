"""The local backend: transformers generation on the one in-memory model.

Requests that can share a forward pass (same sampling settings) run as one left-padded batch,
each row with its own adapter, token budget, stop strings and grammar.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from itertools import groupby

import numpy as np
import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from chorus.errors import ChorusError, check_context
from chorus.runtime.adapters import AdapterRegistry
from chorus.runtime.chat_format import render_with_tokenizer, reply_output
from chorus.runtime.guidance import GrammarCache, allowed_tokens
from chorus.runtime.outputs import reply_prefix
from chorus.runtime.rows import RowTracker
from chorus.runtime.types import GenerationRequest, GenerationResult, TextCallback


def _sampling_key(request: GenerationRequest) -> tuple:
    # Requests that can share one generate() call; sortable even when some seeds are None.
    return (request.temperature, request.top_p, request.seed is not None, request.seed or 0)


class LocalBackend:
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

    def generate_batch(self, requests: Sequence[GenerationRequest],
                       on_text: TextCallback | None = None) -> list[GenerationResult]:
        results: dict[int, GenerationResult] = {}
        indexed = sorted(enumerate(requests), key=lambda item: _sampling_key(item[1]))
        for _, group in groupby(indexed, key=lambda item: _sampling_key(item[1])):
            group = list(group)
            positions = [index for index, _ in group]

            def forward(row: int, piece: str, positions=positions) -> None:
                on_text(positions[row], piece)

            batch = self._run([request for _, request in group], forward if on_text else None)
            results.update(zip(positions, batch, strict=True))
        return [results[index] for index in range(len(requests))]

    def _run(self, requests: list[GenerationRequest],
             on_text: TextCallback | None) -> list[GenerationResult]:
        requests = [request.model_copy(update={"output": reply_output(
            request.output, self.tokenizer.chat_template or "", self.grammars.is_special)})
            for request in requests]
        first = requests[0]
        adapter_rows = [self.adapters.require(r.adapter) for r in requests]
        matchers = [self.grammars.matcher(r.output) if r.output else None for r in requests]
        prompts = [self._tokens(render_with_tokenizer(self.tokenizer, r.messages, r.tools))
                   for r in requests]
        lengths = [len(prompt) for prompt in prompts]
        for request, length in zip(requests, lengths, strict=True):
            check_context(length, request.max_new_tokens, self.context)
        tracker = RowTracker(
            requests, matchers=matchers, eos_ids=self.eos_ids, on_text=on_text,
            decode=lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True))
        # A reply's forced start goes in with the prompt, and its matcher follows it.
        for row, request in enumerate(requests):
            prefix = self._tokens(reply_prefix(request.output))
            for token in prefix:
                tracker.advance(row, token)
            prompts[row] += prefix
        inputs = self.tokenizer.pad({"input_ids": prompts}, return_tensors="pt")
        options = dict(
            max_new_tokens=max(r.max_new_tokens for r in requests),
            stopping_criteria=StoppingCriteriaList([_StopRows(tracker)]),
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self.eos_ids),
        )
        if any(matchers):
            closers = [self.grammars.closer(r.output, m, self.eos_ids) if m else None
                       for r, m in zip(requests, matchers, strict=True)]
            options["logits_processor"] = LogitsProcessorList(
                [_MaskRows(matchers, closers, tracker, len(self.tokenizer))])
        if first.temperature > 0:
            options.update(do_sample=True, temperature=first.temperature, top_p=first.top_p)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        started = time.perf_counter()
        with self.lock, self.adapters.applied(adapter_rows) as (module, adapter_options), \
                torch.inference_mode(), torch.random.fork_rng(devices=[]):
            if first.seed is not None:
                torch.manual_seed(first.seed)
            module.generate(**inputs, **options, **adapter_options)
        latency = time.perf_counter() - started

        return [tracker.result(row, lengths[row], latency)
                for row in range(len(requests))]

    def _tokens(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


class _StopRows(StoppingCriteria):
    """`generate` calls this once per step with every row's tokens: the one place that
    sees each row grow, so each new token goes to the tracker there."""

    def __init__(self, tracker: RowTracker):
        self.tracker = tracker

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        for row, finished in enumerate(self.tracker.finished):
            if not finished:
                self.tracker.advance(row, int(input_ids[row, -1]))
        return torch.tensor(self.tracker.finished, dtype=torch.bool, device=input_ids.device)


class _MaskRows(LogitsProcessor):
    """Masks each constrained row's logits to the tokens its grammar allows next.

    Rows without a matcher, and finished rows, are left alone. Sampled tokens are fed to the
    matchers by RowTracker, which sees every token as soon as it is chosen. A row whose
    model would end too early is led through a closing (guidance.Closer) one token a step.
    """

    def __init__(self, matchers: list, closers: list, tracker: RowTracker, vocab_size: int):
        self.matchers = matchers
        self.closers = closers
        self.tracker = tracker
        self.finished = tracker.finished
        self._closing: list[list[int]] = [[] for _ in matchers]  # tokens still to write
        self._bitmask = np.zeros((vocab_size + 31) // 32, dtype=np.int32)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor):
        for row, matcher in enumerate(self.matchers):
            if matcher is None or self.finished[row]:
                continue
            closer = self.closers[row]
            if not self._closing[row] and closer is not None:
                left = self.tracker.budgets[row] - len(self.tracker.token_ids[row])
                self._closing[row] = closer.instead_of(int(scores[row].argmax()), left)
            if self._closing[row]:
                token = self._closing[row].pop(0)
                kept = scores[row, token].clone()
                scores[row] = float("-inf")
                scores[row, token] = kept if torch.isfinite(kept) else 0.0
                continue
            allowed = allowed_tokens(matcher, scores.shape[-1], self._bitmask)
            blocked = torch.from_numpy(~allowed)
            scores[row, : blocked.shape[0]].masked_fill_(blocked, float("-inf"))
            scores[row, blocked.shape[0]:] = float("-inf")
        return scores


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
