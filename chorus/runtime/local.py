"""The local backend: transformers generation on the one in-memory model.

Requests that can share a forward pass (same sampling settings) run as one left-padded batch,
each row with its own adapter, token budget, stop strings and grammar.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from itertools import groupby

import torch
from transformers import LogitsProcessorList, StoppingCriteriaList

from chorus.errors import ChorusError, OutputTruncatedError
from chorus.runtime.adapters import AdapterRegistry
from chorus.runtime.guidance import GrammarCache, MaskRows
from chorus.runtime.rows import RowTracker
from chorus.runtime.types import GenerationRequest, GenerationResult, TextCallback


def _sampling_key(request: GenerationRequest) -> tuple:
    # Requests that can share one generate() call; sortable even when some seeds are None.
    return (request.temperature, request.top_p, request.seed is not None, request.seed or 0)


class LocalBackend:
    def __init__(self, model: torch.nn.Module, tokenizer, name: str):
        model.eval()
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.name = name
        self.tokenizer = tokenizer
        self.lock = threading.RLock()  # one forward pass at a time; batching is the parallelism
        self.adapters = AdapterRegistry(model, self.lock)
        self.grammars = GrammarCache(tokenizer)
        self.eos_ids = {tokenizer.eos_token_id, *_as_set(model.generation_config.eos_token_id)}

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
        first = requests[0]
        adapter_rows = [self.adapters.require(r.adapter) for r in requests]
        matchers = [self.grammars.matcher(r.output) if r.output else None for r in requests]
        prompts = [self.tokenizer.apply_chat_template(r.messages, add_generation_prompt=True,
                                                      tokenize=False) for r in requests]
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True,
                                add_special_tokens=False)
        tracker = RowTracker(budgets=[r.max_new_tokens for r in requests],
                             stops=[r.stop for r in requests], matchers=matchers,
                             eos_ids=self.eos_ids, tokenizer=self.tokenizer, on_text=on_text,
                             stop_on_repeat=[r.stop_on_repeated_line for r in requests])
        options = dict(
            max_new_tokens=max(r.max_new_tokens for r in requests),
            stopping_criteria=StoppingCriteriaList([tracker]),
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self.eos_ids),
        )
        if any(matchers):
            options["logits_processor"] = LogitsProcessorList(
                [MaskRows(matchers, tracker.finished, len(self.tokenizer))])
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

        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        return [self._result(row, request, tracker, prompt_tokens[row], latency)
                for row, request in enumerate(requests)]

    def _result(self, row: int, request: GenerationRequest, tracker: RowTracker,
                prompt_tokens: int, latency: float) -> GenerationResult:
        text = tracker.texts[row]
        result = GenerationResult(
            text=text, finish_reason=tracker.reasons[row], prompt_tokens=prompt_tokens,
            new_tokens=len(tracker.token_ids[row]), latency_s=latency, adapter=request.adapter)
        if request.output is None:
            return result
        matcher = tracker.matchers[row]
        try:
            if not matcher.is_accepting():
                raise OutputTruncatedError(
                    f"Constrained output ran out of tokens (max_new_tokens="
                    f"{request.max_new_tokens}) before it was complete; raise max_new_tokens. "
                    f"Partial output: {text[:200]!r}", text)
            result.value = request.output.parse(text)
        except ChorusError as error:
            result.fail(error)  # re-raised by Model.generate; a batch keeps its other rows
        return result


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
