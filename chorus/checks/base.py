"""What every constraint shares: the check result, the base model, text splitting, feedback.

Text units, used by every checker so that counts agree with each other:

- a word is a match of `\\b\\w+(?:['’-]\\w+)*\\b` (unicode-aware: "naïve", "don't" and
  "well-known" are one word each; a run of CJK characters is one word; emoji are not words);
- a paragraph is a block separated from the next by one or more blank lines, or by a line of
  only `***`; blocks without any non-space character are not paragraphs;
- a sentence ends at a run of `.`, `!`, `?` or `…` followed by whitespace or the end of the
  text, at any `。`, `！` or `？`, and at the end of a paragraph. A markdown header or list
  item line (`#`, `*`, `-`, `+`, `1.`, `1)`, `>`) is a unit of its own, so a bullet without a
  full stop still ends its sentence, and its marker ("1.") is not read as a sentence. A piece
  counts as a sentence when it contains a word character. Abbreviations such as "e.g. "
  therefore end a sentence: the rule is simple and predictable rather than linguistic.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from chorus.checks.patterns import Alphabet
    from chorus.runtime.nudging import Nudge

Relation = Literal["at_most", "at_least", "exactly"]

WORD = re.compile(r"\b\w+(?:['’-]\w+)*\b")
_SENTENCE_END = re.compile(r"[.!?…]+(?=\s|$)|[。！？]+")
_MARKDOWN_LINE = re.compile(r"^[ \t]*(?:#{1,6}[ \t]+|[*+-][ \t]+|\d+[.)][ \t]+|>[ \t]?)")


class CheckResult(BaseModel):
    """The verdict of one constraint on one text; `feedback` is "" when it passed."""

    model_config = ConfigDict(frozen=True)

    type: str
    passed: bool
    feedback: str = ""


class BaseConstraint(BaseModel):
    """A constraint: frozen, no unknown fields, a `type` discriminator set by each subclass.

    Subclasses implement `problem` (what is wrong, "" when nothing) and `describe`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str

    def check(self, text: str) -> CheckResult:
        feedback = self.problem(text)
        return CheckResult(type=self.type, passed=not feedback, feedback=feedback)

    def problem(self, text: str) -> str:
        """Precise, actionable feedback on why `text` fails, or "" when it passes."""
        raise NotImplementedError

    def describe(self) -> str:
        """One imperative sentence a model can follow."""
        raise NotImplementedError

    def needs_content(self) -> bool:
        """Whether its grammar can only be met by the model writing something particular
        later on (a keyword, a closing line, N bullets), rather than by refusing what breaks
        it. A small model that never writes it cannot stop: it loops until its token budget
        runs out (seen with Qwen 0.5B: "[amount] [amount] ..."), so such grammars are used
        for decoding only with `closings` that lead the model into it, or where asked
        (`compile_constraints(needs_content=...)`)."""
        return False

    def closings(self) -> list[str]:
        """Texts that lead a model into what its grammar needs, written where the model would
        end too early (`chorus.runtime.guidance.Closer`): the opening of a postscript, a
        bullet, a paragraph; [] where no text does (a keyword has no place of its own)."""
        return []

    def endings(self) -> list[str]:
        """Texts that end a response: where its grammar is complete and the text ends with
        one, the reply stops there (`chorus.runtime.guidance.Closer`). An ending phrase
        the grammar allows again later is otherwise written past ("...Good luck! Here is
        more"), and the model must then write it once more, which it mostly loops into."""
        return []

    def closings_stay_open(self) -> bool:
        """Whether its grammar still accepts its closings once it is met (at least N
        highlights: one more is always allowed). The closer writes the first closing the
        grammar accepts, so these come after the others: else the model is led into a
        fourth highlight where a P.S. is due."""
        return False

    def word_limit(self) -> int | None:
        """The most words a response that meets it may hold; None where it sets no bound.
        A grammar with closings brings them before the words run out (`Lark.word_limit`)."""
        return None

    def word_floor(self) -> int | None:
        """The fewest words a response that meets it holds; None where it sets no floor.
        A response's token budget makes room for them (`DivideVerifyRefine.budget`)."""
        return None

    def sentence_limit(self) -> int | None:
        """The most sentences a response that meets it may hold; None where it sets no
        bound (`Lark.sentence_limit`, as `word_limit`)."""
        return None

    def nudges(self) -> list[Nudge]:
        """Words it needs written, for the decoder to favour until the text holds them, or
        to bar once it holds enough (`chorus.runtime.nudging`): a keyword, words in
        capitals, a forbidden word; [] where it has none."""
        return []

    def as_written(self, nudge: Nudge) -> Nudge:
        """`nudge` toward its words as text that meets this constraint writes them: in
        capitals where every letter must be one (a nudge toward " food" is masked there),
        in lowercase where none may be."""
        return nudge

    def grammars(self, alphabet: Alphabet) -> list[str]:
        """Lark token expressions over the whole response (see `patterns`), most preferred
        first; each matches only responses that pass `check`. [] when the constraint is left
        to verify-and-refine."""
        return []


# Text units -------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    return WORD.findall(text)


def paragraphs(text: str) -> list[str]:
    """Non-empty paragraphs, stripped."""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip() in ("", "***"):
            blocks.append([])
        else:
            blocks[-1].append(line)
    return ["\n".join(block).strip() for block in blocks if block]


def sentences(text: str) -> list[str]:
    """Sentences by the rule in this module's docstring, stripped."""
    units: list[str] = []
    for paragraph in paragraphs(text):
        prose: list[str] = []
        for line in paragraph.splitlines():
            marker = _MARKDOWN_LINE.match(line)
            if marker is None:
                prose.append(line)
                continue
            # A header or list item closes the prose before it and stands alone.
            units.append(" ".join(prose))
            prose = []
            units.append(line[marker.end():])
        units.append(" ".join(prose))
    pieces = (piece.strip() for unit in units for piece in _SENTENCE_END.split(unit))
    return [piece for piece in pieces if re.search(r"\w", piece)]


def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """Case-insensitive match of `phrase` as whole words: "don" matches neither "don't" nor
    "London"; whitespace inside the phrase matches any whitespace."""
    body = r"\s+".join(re.escape(part) for part in phrase.split())
    return re.compile(rf"(?<!\w)(?<!\w['’-]){body}(?!\w|['’-]\w)", re.IGNORECASE)


def normalize(text: str) -> str:
    """Whitespace collapsed and case folded, for comparisons that ignore both."""
    return " ".join(text.split()).casefold()


# Counting and phrasing ----------------------------------------------------------------------


def compares(actual: int, relation: Relation, value: int) -> bool:
    if relation == "at_most":
        return actual <= value
    if relation == "at_least":
        return actual >= value
    return actual == value


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`noun` for 1, else its plural: `nouns` where adding 's' is wrong."""
    return noun if count == 1 else nouns or noun + "s"


def quantity(count: int, noun: str, nouns: str | None = None) -> str:
    """'1 word', '3 words'."""
    return f"{count} {plural(count, noun, nouns)}"


def relation_text(relation: Relation, value: int, noun: str, nouns: str | None = None) -> str:
    """'at most 50 words', 'exactly 1 sentence'."""
    return f"{relation.replace('_', ' ')} {quantity(value, noun, nouns)}"


def count_problem(actual: int, relation: Relation, value: int, noun: str,
                  nouns: str | None = None, *, head: str | None = None, add: str = "add",
                  cut: str = "cut", note: str = "") -> str:
    """'' when `actual` satisfies the relation, else feedback such as
    '412 words; the limit is 300 - cut at least 112 words.'

    `head` replaces the leading count ("The letter 'e' appears 3 times"); `add` and `cut` are
    the verbs that fix a shortfall and an excess; `note`, if any, ends the feedback in brackets.
    """
    if compares(actual, relation, value):
        return ""
    head = head or quantity(actual, noun, nouns)
    gap = abs(actual - value)
    bound = "at least " if relation != "exactly" else ""
    if actual > value:
        if value == 0:
            need = "none are allowed"
        elif relation == "at_most":
            need = f"the limit is {value}"
        else:
            need = f"exactly {value} {'is' if value == 1 else 'are'} required"
        fix = f"{cut} {bound}{quantity(gap, noun, nouns)}"
    else:
        need = f"{relation.replace('_', ' ')} {value} {'is' if value == 1 else 'are'} required"
        more = "more " if actual else ""
        fix = f"{add} {bound}{gap} {more}{plural(gap, noun, nouns)}"
    return f"{head}; {need} - {fix}{f' ({note})' if note else ''}."


def quoted(text: str) -> str:
    """`text` in single quotes, for feedback and descriptions."""
    return f"'{text}'"


def listing(items: list[str], conjunction: str = "and") -> str:
    """"'a'", "'a' and 'b'", "'a', 'b' and 'c'"."""
    marked = [quoted(item) for item in items]
    if len(marked) < 2:
        return "".join(marked)
    return f"{', '.join(marked[:-1])} {conjunction} {marked[-1]}"


def times(count: int) -> str:
    return {0: "0 times", 1: "once"}.get(count, f"{count} times")


def excerpt(text: str, limit: int = 40) -> str:
    """`text` on one line, shortened to `limit` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1].rstrip() + "…"
