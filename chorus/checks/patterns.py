"""Regular expressions over a whole response, in llguidance's dialect, that agree with the
checkers by construction.

A compiled constraint is a lark token expression: `/regex/` pieces combined with `&`
(intersection) and `~` (complement), each regex matching the *whole* response. Its classes are
not written by hand: `Alphabet` computes them from the same Python predicates the checkers use
(`re`'s `\\w`, `str.isupper`, `str.isspace`, ...) over a finite set of characters, and every
compiled response is restricted to that set. So "a word character" means exactly what it
means to `chorus.checks.base.words`, and a character on which two regex engines might disagree
(combining marks, rare scripts, control characters) is simply never generated.

The alphabet is Latin script plus common punctuation, tab and newline; a response-language
constraint adds its script.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

JOINERS = "'’-"  # inside a word: "don't", "well-known" (see base.WORD)

# Latin letters and punctuation; not the C1 controls, the soft hyphen or the line and paragraph
# separators that str.splitlines() would read as line breaks.
_LATIN = [(0x09, 0x0A), (0x20, 0x7E), (0xA0, 0xAC), (0xAE, 0x24F), (0x2010, 0x2027),
          (0x2030, 0x203A), (0x20AC, 0x20AC)]
# The extra characters a response in each language needs (letters and its punctuation).
SCRIPTS: dict[str, list[tuple[int, int]]] = {
    "ru": [(0x400, 0x4FF)],
    "el": [(0x370, 0x3FF)],
    "ar": [(0x600, 0x6FF)],
    "hi": [(0x900, 0x97F)],
    "ko": [(0x1100, 0x11FF), (0x3000, 0x303F), (0x3130, 0x318F), (0xAC00, 0xD7A3)],
    "ja": [(0x3000, 0x303F), (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xFF01, 0xFF5E)],
    "zh": [(0x3000, 0x303F), (0x4E00, 0x9FFF), (0xFF01, 0xFF5E)],
}
_WORD = re.compile(r"\w")


def _escape(code: int) -> str:
    char = chr(code)
    return char if char.isascii() and char.isalnum() else f"\\x{{{code:X}}}"


def literal(text: str) -> str:
    """`text` exactly, escaped for llguidance."""
    return "".join(_escape(ord(char)) for char in text)


class Alphabet:
    """The characters a compiled response may use, and classes of them by predicate."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()):
        spans = sorted(set(_LATIN) | set(ranges))
        self.chars = sorted(chr(code) for low, high in spans for code in range(low, high + 1))
        self._classes: dict[str, str] = {}

    @classmethod
    @functools.cache
    def for_languages(cls, languages: tuple[str, ...] = ()) -> Alphabet:
        return cls([span for language in languages for span in SCRIPTS.get(language, [])])

    def where(self, key: str, predicate: Callable[[str], bool]) -> str:
        """A regex class of the alphabet's characters for which `predicate` holds; `key`
        names the predicate for the cache (a class over a large script takes milliseconds)."""
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = _class_of([c for c in self.chars if predicate(c)])
        return found

    # The classes every constraint builds on, from the checkers' own definitions.
    @property
    def any(self) -> str:
        return self.where("any", lambda c: True)

    @property
    def word(self) -> str:
        return self.where("word", is_word)

    @property
    def nonword(self) -> str:
        return self.where("nonword", lambda c: not is_word(c))

    @property
    def word_end(self) -> str:
        """A non-word character that cannot join two words (' ’ - can: "don't")."""
        return self.where("word end", lambda c: not is_word(c) and c not in JOINERS)

    @property
    def space(self) -> str:
        return self.where("space", str.isspace)

    @property
    def nonspace(self) -> str:
        return self.where("nonspace", lambda c: not c.isspace())

    @property
    def line_char(self) -> str:
        """Anything but a line break."""
        return self.where("line", lambda c: c != "\n")

    @property
    def line_space(self) -> str:
        """Whitespace inside a line."""
        return self.where("line space", lambda c: c.isspace() and c != "\n")

    def but(self, excluded: str) -> str:
        """Any character except those in `excluded`."""
        return self.where(f"but {excluded!r}", lambda c: c not in excluded)

    def text(self) -> str:
        """Any response over the alphabet."""
        return f"{self.any}*"

    def ignorecase(self, char: str) -> str:
        """The characters `re.IGNORECASE` matches to `char`."""
        pattern = re.compile(re.escape(char), re.IGNORECASE)
        return self.where(f"ignorecase {char!r}", lambda c: pattern.fullmatch(c) is not None)

    def phrase(self, text: str) -> str:
        """`text` as `base.phrase_pattern` matches it, or more: characters in any case,
        whitespace runs as any whitespace."""
        return self._spaced(text, self.ignorecase)

    def folded(self, text: str) -> str:
        """`text` as `base.normalize` compares it: characters with the same case folding,
        whitespace runs as any whitespace."""
        def same_fold(char: str) -> str:
            fold = char.casefold()
            return self.where(f"fold {char!r}", lambda c: c.casefold() == fold)

        return self._spaced(text, same_fold)

    def _spaced(self, text: str, char_class: Callable[[str], str]) -> str:
        parts = []
        for piece in re.split(r"(\s+)", text.strip()):
            if piece.isspace():
                parts.append(self.space + "+")
            else:
                parts.extend(char_class(char) for char in piece)
        return "".join(parts)


def is_word(char: str) -> bool:
    return _WORD.match(char) is not None


def _class_of(chars: list[str]) -> str:
    if not chars:
        return "[^\\x{0}-\\x{10FFFF}]"  # matches nothing
    spans: list[list[int]] = []
    for code in map(ord, chars):
        if spans and code == spans[-1][1] + 1:
            spans[-1][1] = code
        else:
            spans.append([code, code])
    parts = [_escape(low) if low == high else f"{_escape(low)}-{_escape(high)}"
             for low, high in spans]
    return f"[{''.join(parts)}]"


def token(regex: str) -> str:
    """A regex as a lark token expression; `/` is the only character lark needs escaped."""
    return "/" + regex.replace("/", "\\/") + "/"


def complement(regex: str) -> str:
    return "~" + token(regex)


def contains(alphabet: Alphabet, regex: str) -> str:
    """Responses with a match of `regex` somewhere."""
    anything = alphabet.text()
    return f"{anything}(?:{regex}){anything}"


def occurrences(alphabet: Alphabet, phrase: str, count: int, *, strict: bool) -> str:
    """Responses with at least `count` (>= 1) matches of `phrase` as a whole word.

    `strict`: only matches `base.phrase_pattern` also finds (the neighbours are neither word
    characters nor ' ’ -), so the response surely has `count`. Not strict: any non-word
    neighbour, a superset of its matches, so a response without `count` of these surely has
    fewer than `count`.
    """
    return whole_words(alphabet, alphabet.phrase(phrase), count, strict=strict)


def whole_words(alphabet: Alphabet, found: str, count: int, *, strict: bool) -> str:
    """Responses with at least `count` (>= 1) pieces matching `found` with neighbours as
    `occurrences` says."""
    anything = alphabet.text()
    edge = alphabet.word_end if strict else alphabet.nonword
    between = f"(?:{edge}(?:{anything}{edge})?{found})"
    return f"(?:{anything}{edge})?{found}{between}{{{count - 1}}}(?:{edge}{anything})?"


def counted(item: str, relation: str, value: int) -> str:
    """`item` repeated as the relation says ("at_most", "at_least", "exactly")."""
    if relation == "at_most":
        return f"(?:{item}){{0,{value}}}"
    if relation == "at_least":
        return f"(?:{item}){{{value},}}"
    return f"(?:{item}){{{value}}}"


def tally(other: str, marked: str, value: int) -> str:
    """Responses, read line by line, with exactly `value` `marked` lines and every other line
    an `other` line (each a pattern of one line without its break)."""
    if value == 0:
        return f"{other}(?:\\n{other})*"
    return (f"(?:{other}\\n)*(?:{marked}\\n(?:{other}\\n)*){{{value - 1}}}{marked}"
            f"(?:\\n{other})*")
