"""Nudges: a small bias on the logits toward words a response still needs.

Asked to use "rain" 3 times, or 2 words in capitals, a small model mostly writes about the
rain without the word, and no grammar can place a keyword for it: a grammar that requires
the word only forbids ending without it, and the model writes on to its budget. A nudge
instead raises the tokens that start the word by `Nudger.BIAS` while the text holds it fewer
times than needed, so the model writes it where it already half wanted to ("A raindrop
falls" becomes "The rain falls"), and never where it is far from its mind. A word the
text may hold no more than N times is barred once it holds them (where one token is the
whole word): a forbidden word from the start, or the model, set on it, writes it and the
grammar glues it to what follows ("deliciousChocolate"); a keyword wanted exactly twice
after the second, which no grammar does cheaply (the complement of three matches beside an
answer's counters took masks of seconds and ran the lexer out of fuel). Words in
capitals are nudged otherwise: the model's likeliest next word, where it is a content word,
is written in capitals ("handle with care" -> "handle with CARE"), because a bias toward
the vocabulary's capital tokens favours fragments and acronyms (" ITE", " CF"). Once a word
is written the nudge rests for its `spacing` in characters, so that the copies do not come
back to back ("rain, rain, rain").
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cached_property

import numpy as np

# Words of 4 letters or more that carry no emphasis: never written in capitals by a nudge.
_PLAIN = frozenset("""that with this from have they will your which their there been were what
when them than then into some these would could should about also each other more most such
only very just over does where those both here many much being after before because
while""".split())


@dataclass(frozen=True)
class Nudge:
    """`times` matches of `pattern` (a regex source) wanted in the text; what is favoured
    until then: the first token of each of `words` after a space or where no word goes on,
    and with `capitals`, the model's likeliest word in capitals. After a match, the nudge
    rests for `spacing` characters. With `most`, no more matches are wanted than that:
    once the text holds them, the tokens that are one of `words` whole are barred. A word
    written in pieces (" fl" + "our") passes a bar: where the grammar holds the count, that
    is still refused; elsewhere the checkers report it."""

    pattern: str
    times: int
    words: tuple[str, ...] = ()
    capitals: bool = False
    spacing: int = 40
    most: int | None = None

    def with_words(self, convert: Callable[[str], str]) -> Nudge:
        """This nudge toward its words as `convert` writes them (in capitals, in lowercase)."""
        return replace(self, words=tuple(convert(word) for word in self.words))

    def to_state(self) -> dict:
        return {**asdict(self), "words": list(self.words)}

    @classmethod
    def from_state(cls, state: dict) -> Nudge:
        return cls(**{**state, "words": tuple(state.get("words", ()))})


class NudgeTokens:
    """What nudges favour on one vocabulary (an llguidance tokenizer, built on first use):
    the tokens that start each word, the tokens that go on a word, and the capital twin of
    each content word's token."""

    def __init__(self, tokenizer: Callable[[], object]):
        self._tokenizer = tokenizer
        self._ids: dict[tuple[str, ...], WordStarts] = {}
        self._texts: list[str] | None = None
        self._going_on: np.ndarray | None = None
        self._twins: Twins | None = None
        self._lock = threading.Lock()

    def starts(self, words: tuple[str, ...]) -> WordStarts:
        """Where each of `words` starts in this vocabulary (`WordStarts`)."""
        with self._lock:
            if words not in self._ids:
                tokenizer = self._tokenizer()
                capitalized = [word[:1].upper() + word[1:] for word in words]
                spaced = [f" {word}" for word in dict.fromkeys([*words, *capitalized])]
                forms = [*spaced, *dict.fromkeys([*capitalized, *words])]
                pieces = {form: tokenizer.tokenize_str(form) for form in forms}

                def first(chosen: list[str], whole: bool = False) -> np.ndarray:
                    return np.array(sorted({tokens[0] for form in chosen
                                            if (tokens := pieces[form])
                                            and (len(tokens) == 1 or not whole)}),
                                    dtype=np.int64)

                self._ids[words] = WordStarts(first(spaced), first(capitalized),
                                              first(forms, whole=True))
            return self._ids[words]

    def going_on(self) -> np.ndarray:
        """The tokens that go on the word before them ("y" after "rain"): a word character
        or a joiner first."""
        with self._lock:
            if self._going_on is None:
                self._going_on = np.array([token for token, text in enumerate(self._vocabulary())
                                           if _GOES_ON.match(text)], dtype=np.int64)
            return self._going_on

    def twins(self) -> Twins:
        """The capital twins of this vocabulary (~1 s on 152k tokens, once)."""
        with self._lock:
            if self._twins is None:
                tokenizer = self._tokenizer()
                self._twins = Twins({}, {})
                for token, text in enumerate(self._vocabulary()):
                    word = _CONTENT_WORD.fullmatch(text) and text[1:] not in _PLAIN
                    if not (word or _LETTERS.fullmatch(text)):
                        continue
                    upper = tokenizer.tokenize_str(text.upper())
                    if len(upper) == 1:
                        (self._twins.words if word else self._twins.rest)[token] = upper[0]
            return self._twins

    def _vocabulary(self) -> list[str]:
        """Every token's text, decoded once (under the lock)."""
        if self._texts is None:
            tokenizer = self._tokenizer()
            self._texts = [tokenizer.decode_bytes([token]).decode("utf-8", errors="replace")
                           for token in range(tokenizer.vocab_size)]
        return self._texts


@dataclass(frozen=True)
class WordStarts:
    """The first tokens of words: `spaced` after a space, as they are and capitalized;
    `bare` capitalized with no space before them, for a line's start (elsewhere they go on
    the word before: "TRACK" + "DOG"); `whole` the tokens that are a word whole, with or
    without a space, as it is or capitalized: what a bar takes away. Not the first piece of
    a longer word (" Sim" of "Simmer" starts "Simple" too), though a whole word also starts
    longer ones (" cat" and "apult")."""

    spaced: np.ndarray
    bare: np.ndarray
    whole: np.ndarray

    @cached_property
    def opening(self) -> np.ndarray:
        """`spaced` and `bare`: where no word goes on before (once, not at every token)."""
        return np.concatenate([self.spaced, self.bare])


@dataclass(frozen=True)
class Twins:
    """Tokens in capitals of the same text: `words` for " word" (a content word of 4 letters
    or more after a space), `rest` for the lowercase letters that go on a word ("ology")."""

    words: dict[int, int]
    rest: dict[int, int]


_CONTENT_WORD = re.compile(r" [a-z]{4,}")
_LETTERS = re.compile(r"[a-z]+")
_GOES_ON = re.compile(r"[\w'’-]")
_ENDS_IN_CAPITALS = re.compile(r"(?<![\w'’-])[A-Z]{2,}$")


class Nudger:
    """One row's nudges: `bias` returns its logits with the favoured tokens raised for each
    nudge the text does not meet yet."""

    # Logits of a 0.5B model's likeliest tokens lie a few apart where its prose could go
    # several ways, and 10 or more apart where one word is all but certain (mid-word, a
    # name). Measured on 24 instructions' first answers (benchmarks/RESULTS.md): the
    # nudged constraints met 16 of 27 at 3, 19 at 5.
    BIAS = 5.0
    BAR = 1e4  # taken off a barred word's first tokens: still written where nothing else can be

    def __init__(self, nudges: Sequence[Nudge], tokens: NudgeTokens):
        self._nudges = [(nudge, re.compile(nudge.pattern), tokens.starts(nudge.words),
                         tokens.twins() if nudge.capitals else None) for nudge in nudges]
        self._going_on = tokens.going_on() if any(n.words for n in nudges) else None

    def bias(self, logits: np.ndarray, text: str) -> np.ndarray:
        raised = np.array(logits, dtype=np.float32)  # not the backend's own buffer
        changed = False
        word_goes_on = bool(text) and _GOES_ON.match(text[-1]) is not None
        for nudge, pattern, words, twins in self._nudges:
            starts = words.spaced if word_goes_on else words.opening
            matches = list(pattern.finditer(text))
            wanted = len(matches) < nudge.times and not (
                matches and matches[-1].end() > len(text) - nudge.spacing)
            if wanted and len(starts):
                raised[starts[starts < len(raised)]] += self.BIAS
                changed = True
            if nudge.most is not None and len(matches) >= nudge.most and len(words.whole):
                raised[words.whole[words.whole < len(raised)]] -= self.BAR
                changed = True
            if nudge.words and matches and matches[-1].end() == len(text) \
                    and len(matches) <= nudge.times:
                # The word was just written whole: it ends here ("rain", not "rainy").
                going_on = self._going_on
                raised[going_on[going_on < len(raised)]] -= self.BIAS
                changed = True
            if twins is not None:
                changed |= self._in_capitals(raised, text, twins, wanted)
        return raised if changed else logits

    def _in_capitals(self, logits: np.ndarray, text: str, twins: Twins, wanted: bool) -> bool:
        """Make the likeliest token's capital twin likelier still: a word's rest where the
        text ends in a word in capitals (else "TECHNOlogy", as a word may be cut in
        tokens), a content word where one is wanted. Whether it did."""
        likeliest = int(np.argmax(logits))
        if _ENDS_IN_CAPITALS.search(text):
            twin = twins.rest.get(likeliest)
        else:
            twin = twins.words.get(likeliest) if wanted else None
        if twin is None or twin >= len(logits):
            return False
        logits[twin] = logits[likeliest] + self.BIAS
        return True
