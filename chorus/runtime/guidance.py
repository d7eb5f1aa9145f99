"""Constrained decoding with llguidance: compiled grammars cached by key, masks as arrays.

Measured here (benchmarks/RESULTS.md): llguidance compiles a schema in about a millisecond
once its tokenizer is built, where outlines' own back-ends take 0.5-1.6 s per new schema and
its torch mask kernel goes through torch.compile (seconds to tens of seconds on first use).
So masks are computed into numpy arrays here, and each backend applies them to its logits.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from chorus.errors import UnsupportedSchemaError
from chorus.runtime.nudging import Nudger, NudgeTokens
from chorus.runtime.outputs import OutputType

# Fuel for llguidance's lexer, spent building regex derivatives (50k units a millisecond).
# `grammar_problem` gives a grammar LEXER_FUEL to start: the default, 1M, runs out on
# intersections of counted constraints ("at most 80 words" and no commas and a P.S.), and a
# grammar that needs more is passed over. On the constraints benchmark's 180 instructions,
# 5M left 35 constraints out that way, 50M 4 (the check of the slowest then took 1-3 s).
# A matcher that follows a whole text gets RUNNING_FUEL, both to start and for each mask:
# an intersection of counters meets new states at every word (measured: up to 1M units a
# token), and a token checked without a mask (the greedy token, `accepts`) draws on what
# the last mask left, so with the defaults a matcher ran dry mid-answer ("too many
# expressions constructed") and a text its grammar allows was refused. Fuel only caps
# work; it is spent on new states alone.
LEXER_FUEL = 50_000_000
RUNNING_FUEL = 500_000_000


def parser_limits(fuel: int = RUNNING_FUEL):
    import llguidance

    return llguidance.LLParserLimits(initial_lexer_fuel=fuel, step_lexer_fuel=fuel)


class GrammarCache:
    """Compiles each output type once; later uses start from a copy of the pristine matcher."""

    def __init__(self, make_tokenizer: Callable[[], object], capacity: int = 512):
        """`make_tokenizer` builds the llguidance tokenizer of the model's vocabulary; it is
        called once, and only if an output is constrained."""
        self._make_tokenizer = make_tokenizer
        self._llg_tokenizer = None
        self._matchers: OrderedDict[str, object] = OrderedDict()
        # Outputs found unenforceable, and why: the lexer's precomputation can take 26 s to
        # give up on a large vocabulary, and a failed row is retried under the same output.
        self._refused: OrderedDict[str, str] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()
        self._nudge_tokens = NudgeTokens(lambda: self.llg_tokenizer)

    @property
    def llg_tokenizer(self):
        if self._llg_tokenizer is None:  # 0.4-1 s, paid once and only if outputs are constrained
            self._llg_tokenizer = self._make_tokenizer()
        return self._llg_tokenizer

    def matcher(self, output: OutputType):
        """A fresh matcher for one generation of `output`."""
        with self._lock:
            pristine = self._matchers.get(output.key)
            if pristine is None:
                reason = self._refused.get(output.key)
                if reason is None:
                    pristine, reason = self._build(output.grammar())
                if pristine is None:
                    self._remember(self._refused, output.key, reason)
                    raise UnsupportedSchemaError(
                        f"Constrained decoding cannot enforce this {type(output).__name__}: "
                        f"{reason}")
                self._remember(self._matchers, output.key, pristine)
            else:
                self._matchers.move_to_end(output.key)
            return pristine.deep_copy()

    def _build(self, grammar: str) -> tuple[object | None, str]:
        """The pristine matcher of `grammar`, or None and why llguidance refuses it."""
        import llguidance

        is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(
            grammar, self.llg_tokenizer, limits=parser_limits())
        if is_error:
            return None, "; ".join(messages)
        # log_level 0: a matcher that fails mid-way says so through is_error(), which the
        # backends report on the row; llguidance's own print would reach users.
        pristine = llguidance.LLMatcher(self.llg_tokenizer, grammar, log_level=0,
                                        limits=parser_limits())
        if pristine.is_error():
            return None, pristine.get_error()
        return pristine, ""

    def _remember(self, cache: OrderedDict, key: str, value: object) -> None:
        cache[key] = value
        cache.move_to_end(key)
        if len(cache) > self._capacity:
            cache.popitem(last=False)

    def is_special(self, text: str) -> bool:
        """Whether `text` is one special token of the vocabulary (a grammar names it apart:
        its bytes alone do not produce it)."""
        tokens = self.llg_tokenizer.tokenize_str(text, parse_special=True)
        return len(tokens) == 1 and self.llg_tokenizer.is_special_token(tokens[0])

    def closer(self, output: OutputType, matcher, eos_ids: set[int]) -> Closer | None:
        """The `Closer` of one generation of `output` (None where it has no closings, endings
        or limit of words or sentences)."""
        closings = getattr(output, "closings", ())
        if not (closings or getattr(output, "endings", ()) or getattr(output, "word_limit", None)
                or getattr(output, "sentence_limit", None)):
            return None
        tokenize = self.llg_tokenizer.tokenize_str
        return Closer(matcher, [(text, tokenize(text)) for text in closings], eos_ids,
                      endings=getattr(output, "endings", ()))

    def nudger(self, output: OutputType) -> Nudger | None:
        """The `Nudger` of one generation of `output` (None where it has no nudges)."""
        nudges = getattr(output, "nudges", ())
        return Nudger(nudges, self._nudge_tokens) if nudges else None

    def __contains__(self, output: OutputType) -> bool:
        return output.key in self._matchers


class Closer:
    """Leads a model that would end before its grammar is complete into what the grammar
    still needs. A grammar such as "a postscript at the end" only forbids ending without
    one, and a small model that never starts one on its own then writes on until its budget
    runs out. So where the model's likeliest token ends the reply, or where the budget is
    down to `RESERVE` tokens, while the grammar does not allow an end yet, the first of
    `closings` ((text, tokens) pairs) the grammar accepts whole is written instead: the
    opening of a postscript, a bullet, a paragraph, a closing phrase; the model goes on
    from there. Where the model started to loop and its loop was taken back (`RowTracker`),
    a closing is written at once (`close_next`).

    The reply also stops where it holds all the words or sentences its grammar allows, the
    grammar is complete, and the model's likeliest token goes on where the grammar refuses
    it: masked, the model bent its next sentence into whatever the grammar still took
    ("tasks._only in emergencies_...") until its budget ran out.

    `endings` (an "ends with" phrase) stop the reply where the text ends with one, after
    something else, and the grammar is complete. Their closings come after the others
    unless they complete the grammar, and not where the text ends with the phrase already:
    an ending written while something else is still due (a placeholder, a P.S.) must be
    written again after it, and writing it twice in a row is a loop.

    Among the closings the grammar accepts, the one written least often so far comes
    first: one that the grammar still accepts once its constraint is met (at least N
    paragraphs) was otherwise written again and again while another's (a highlight) was
    due, until the budget ran out."""

    RESERVE = 32  # tokens left for what a closing leads into, where the model writes on
    GAP = 8  # tokens the model writes after a closing before the budget brings another

    def __init__(self, matcher, closings: Sequence[tuple[str, list[int]]], eos_ids: set[int],
                 endings: Sequence[str] = ()):
        self.matcher = matcher
        self.endings = tuple(endings)
        # each closing with the ending it writes, if it writes one
        self.closings = [(text.strip() if text.strip() in self.endings else None, tokens)
                         for text, tokens in closings if tokens]
        self._written = [0] * len(self.closings)  # how often each closing was written
        self.eos_ids = eos_ids
        self._since_closing = self.GAP
        self._due = False

    def close_next(self) -> None:
        """Write a closing at the next token, whatever the model would write."""
        self._due = True

    def instead_of(self, likeliest: int, left: int, text: str = "",
                   limit_reached: bool = False) -> list[int]:
        """The tokens to write instead of `likeliest`, with `left` tokens of budget, `text`
        written so far and the grammar's words or sentences all written or not; [] where
        it may stand."""
        self._since_closing += 1
        ended = text.rstrip() if self.endings else ""
        if self.matcher.is_accepting() and (
                self._at_ending(ended) or limit_reached and likeliest not in self.eos_ids
                and not self.matcher.validate_tokens([likeliest])):
            return [min(self.eos_ids)]
        running_out = left <= self.RESERVE and self._since_closing > self.GAP
        due, self._due = self._due, False
        if not (likeliest in self.eos_ids or running_out or due) \
                or self.matcher.is_accepting():
            return []
        usable = sorted((number for number, (ending, tokens) in enumerate(self.closings)
                         if not (ending and ended.endswith(ending))
                         and self.matcher.validate_tokens(tokens) == len(tokens)),
                        key=self._written.__getitem__)
        leading = [number for number in usable if not self.closings[number][0]]
        endings = [number for number in usable if self.closings[number][0]]
        completing = [number for number in endings if self._completes(self.closings[number][1])]
        number = next(iter(completing or leading or endings), None)
        if number is None:
            return []
        self._since_closing = 0
        self._written[number] += 1
        return self.closings[number][1]

    def _at_ending(self, ended: str) -> bool:
        """Whether `ended` (the text, without trailing space) ends with an ending that
        follows something else: a reply that opens with its closing phrase ("LET'S GO!")
        goes on to the answer it announces."""
        return any(ended.endswith(ending) and ended[:-len(ending)].strip()
                   for ending in self.endings)

    def _completes(self, tokens: list[int]) -> bool:
        """Whether the grammar is complete once `tokens` are written."""
        if not self.matcher.consume_tokens(tokens):
            return False
        complete = self.matcher.is_accepting()
        self.matcher.rollback(len(tokens))
        return complete


def allowed_tokens(matcher, vocab_size: int, bitmask: np.ndarray) -> np.ndarray:
    """Which of the first `vocab_size` tokens the grammar allows next (bool array);
    `bitmask` is scratch space of (vocab_size + 31) // 32 int32 words."""
    matcher.unsafe_compute_mask_ptr(bitmask.ctypes.data, bitmask.nbytes)
    return np.unpackbits(bitmask.view(np.uint8), bitorder="little")[:vocab_size].astype(bool)


class _Bytes:
    """A vocabulary of the 256 bytes and an end token: matching text against a grammar needs
    no model (`grammar_problem`, `accepts`)."""

    eos_token_id = 256
    bos_token_id = None
    tokens = [bytes([value]) for value in range(256)] + [b"\xff<eos>"]
    special_token_ids = [256]

    def __call__(self, text: str | bytes) -> list[int]:
        return list(text.encode() if isinstance(text, str) else text)


@functools.cache
def byte_tokenizer():
    import llguidance

    return llguidance.LLTokenizer(llguidance.TokenizerWrapper(_Bytes()))


@functools.lru_cache(maxsize=256)
def grammar_problem(grammar: str) -> str | None:
    """Why no text can be generated under `grammar` (invalid, empty, or too complex for the
    lexer's budget), or None. The first mask is where llguidance finds out. Cached: the
    compiler checks the grammar it returns, and each `Lark` of it checks it again."""
    import llguidance

    limits = parser_limits(LEXER_FUEL)
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(
        grammar, byte_tokenizer(), limits=limits)
    if is_error:
        return _first_line(messages[0])
    matcher = llguidance.LLMatcher(byte_tokenizer(), grammar, log_level=0, limits=limits)
    bitmask = np.zeros(9, dtype=np.int32)
    matcher.unsafe_compute_mask_ptr(bitmask.ctypes.data, bitmask.nbytes)
    return matcher_error(matcher) or None


def accepts(grammar: str, text: str) -> bool:
    """Whether `grammar` matches all of `text`."""
    with _BYTE_MATCHERS_LOCK:
        matcher = _byte_matcher(grammar).deep_copy()
    return matcher.consume_tokens(list(text.encode())) and matcher.is_accepting()


_BYTE_MATCHERS_LOCK = threading.Lock()


@functools.lru_cache(maxsize=64)
def _byte_matcher(grammar: str):
    """A pristine matcher per grammar: building one is most of the cost of `accepts`."""
    import llguidance

    return llguidance.LLMatcher(byte_tokenizer(), grammar, log_level=0, limits=parser_limits())


def matcher_error(matcher) -> str:
    """The first line of a failed matcher's error ("" while it has none)."""
    return _first_line(matcher.get_error()) if matcher.is_error() else ""


def _first_line(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    # llguidance's name for a first mask that allows nothing: the language is empty.
    return "no text can satisfy it" if first == "NoExtensionBias" else first
