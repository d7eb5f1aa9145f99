"""Random texts a grammar accepts: a walk over bytes under llguidance's masks, so every text
it returns is one the grammar matches in full (what decoding could produce)."""

from __future__ import annotations

import random

import llguidance
import numpy as np

from chorus.runtime.guidance import byte_tokenizer, parser_limits

END = 256
# Letters, spaces and line breaks most of the time, so that texts reach words, lines and
# paragraphs; every other allowed byte (punctuation, UTF-8 of accented letters) sometimes.
_WEIGHTS = np.full(257, 0.3)
_WEIGHTS[ord("a"):ord("z") + 1] = 4.0
_WEIGHTS[ord("A"):ord("Z") + 1] = 1.0
_WEIGHTS[ord(" ")] = 6.0
_WEIGHTS[ord("\n")] = 8.0
_WEIGHTS[0x80:0x100] = 0.5


def walk(grammar: str, rng: random.Random, max_bytes: int = 400,
         stop: float = 0.15) -> str | None:
    """A text `grammar` accepts, or None if the walk did not reach one within `max_bytes`."""
    matcher = llguidance.LLMatcher(byte_tokenizer(), grammar, log_level=0,
                                   limits=parser_limits())
    mask = np.zeros(9, dtype=np.int32)
    out = bytearray()
    while len(out) < max_bytes:
        matcher.unsafe_compute_mask_ptr(mask.ctypes.data, mask.nbytes)
        if matcher.is_error():
            raise AssertionError(matcher.get_error())
        allowed = np.unpackbits(mask.view(np.uint8), bitorder="little")[:257].astype(bool)
        if allowed[END] and (rng.random() < stop or allowed[:END].sum() == 0):
            return out.decode()
        weights = _WEIGHTS * allowed
        weights[END] = 0
        if weights.sum() == 0:
            return None
        byte = rng.choices(range(257), weights=weights)[0]
        assert matcher.consume_token(byte)
        out.append(byte)
    return None
