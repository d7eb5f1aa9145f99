"""Constrained decoding with llguidance: compiled grammars cached by key, masks as arrays.

Measured here (benchmarks/RESULTS.md): llguidance compiles a schema in about a millisecond
once its tokenizer is built, where outlines' own back-ends take 0.5-1.6 s per new schema and
its torch mask kernel goes through torch.compile (seconds to tens of seconds on first use).
So masks are computed into numpy arrays here, and each backend applies them to its logits.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from chorus.errors import UnsupportedSchemaError
from chorus.runtime.outputs import OutputType


class GrammarCache:
    """Compiles each output type once; later uses start from a copy of the pristine matcher."""

    def __init__(self, make_tokenizer: Callable[[], object], capacity: int = 512):
        """`make_tokenizer` builds the llguidance tokenizer of the model's vocabulary; it is
        called once, and only if an output is constrained."""
        self._make_tokenizer = make_tokenizer
        self._llg_tokenizer = None
        self._matchers: OrderedDict[str, object] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    @property
    def llg_tokenizer(self):
        if self._llg_tokenizer is None:  # 0.4-1 s, paid once and only if outputs are constrained
            self._llg_tokenizer = self._make_tokenizer()
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


def allowed_tokens(matcher, vocab_size: int, bitmask: np.ndarray) -> np.ndarray:
    """Which of the first `vocab_size` tokens the grammar allows next (bool array);
    `bitmask` is scratch space of (vocab_size + 31) // 32 int32 words."""
    matcher.unsafe_compute_mask_ptr(bitmask.ctypes.data, bitmask.nbytes)
    return np.unpackbits(bitmask.view(np.uint8), bitorder="little")[:vocab_size].astype(bool)
