"""Constrained decoding with llguidance: compiled grammars cached by key, masks per batch row.

Measured here (benchmarks/RESULTS.md): llguidance compiles a schema in about a millisecond
once its tokenizer is built, where outlines' own back-ends take 0.5-1.6 s per new schema and
its torch mask kernel goes through torch.compile (seconds to tens of seconds on first use).
So masks are applied with plain tensor ops here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import torch
from transformers import LogitsProcessor

from chorus.errors import UnsupportedSchemaError
from chorus.runtime.outputs import OutputType


class GrammarCache:
    """Compiles each output type once; later uses start from a copy of the pristine matcher."""

    def __init__(self, tokenizer, capacity: int = 512):
        self._hf_tokenizer = tokenizer
        self._llg_tokenizer = None
        self._matchers: OrderedDict[str, object] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    @property
    def llg_tokenizer(self):
        if self._llg_tokenizer is None:  # ~0.4 s, paid once and only if outputs are constrained
            import llguidance.hf

            self._llg_tokenizer = llguidance.hf.from_tokenizer(self._hf_tokenizer)
        return self._llg_tokenizer

    def matcher(self, output: OutputType):
        """A fresh matcher for one generation of `output`."""
        import llguidance

        with self._lock:
            pristine = self._matchers.get(output.key)
            if pristine is None:
                grammar = output.grammar()
                is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(
                    grammar, self.llg_tokenizer)
                if is_error:
                    raise UnsupportedSchemaError(
                        f"Constrained decoding cannot enforce this {type(output).__name__}: "
                        f"{'; '.join(messages)}"
                    )
                pristine = llguidance.LLMatcher(self.llg_tokenizer, grammar)
                if pristine.is_error():
                    raise UnsupportedSchemaError(
                        f"Constrained decoding cannot enforce this {type(output).__name__}: "
                        f"{pristine.get_error()}"
                    )
                self._matchers[output.key] = pristine
                if len(self._matchers) > self._capacity:
                    self._matchers.popitem(last=False)
            else:
                self._matchers.move_to_end(output.key)
            return pristine.deep_copy()

    def __contains__(self, output: OutputType) -> bool:
        return output.key in self._matchers


class MaskRows(LogitsProcessor):
    """Masks each constrained row's logits to the tokens its grammar allows next.

    Rows without a matcher, and finished rows, are left alone. Sampled tokens are fed to the
    matchers by RowTracker, which sees every token as soon as it is chosen.
    """

    def __init__(self, matchers: list, finished: list[bool], vocab_size: int):
        self.matchers = matchers
        self.finished = finished
        self._words = (vocab_size + 31) // 32
        self._bitmask = np.zeros(self._words, dtype=np.int32)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor):
        for row, matcher in enumerate(self.matchers):
            if matcher is None or self.finished[row]:
                continue
            matcher.unsafe_compute_mask_ptr(self._bitmask.ctypes.data, self._bitmask.nbytes)
            allowed = np.unpackbits(self._bitmask.view(np.uint8), bitorder="little")
            blocked = torch.from_numpy(allowed[: scores.shape[-1]] == 0)
            scores[row, : blocked.shape[0]].masked_fill_(blocked, float("-inf"))
            scores[row, blocked.shape[0]:] = float("-inf")
        return scores
