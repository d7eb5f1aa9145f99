"""Length constraints: counts of words, sentences, paragraphs and characters, and the first
word of the n-th paragraph. Text units are defined in `base`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from chorus.checks import patterns
from chorus.checks.base import (
    BaseConstraint,
    Relation,
    count_problem,
    excerpt,
    paragraphs,
    quantity,
    quoted,
    relation_text,
    sentences,
    words,
)

_BLANK_LINE = "paragraphs are separated by a blank line"
# Non-word characters before the first word and after the last one: a few, so that a
# response at its word limit cannot go on in punctuation and blank lines. Likewise a word is
# at most a few pieces of at most 24 characters: at its limit Qwen 0.5B otherwise ran one
# "word" on and on ("leafs'_and_its_outer_leafs_which_are...").
_EDGE = 12
_PIECE = 24


def _word_pattern(alphabet: patterns.Alphabet) -> tuple[str, str]:
    """A word as `base.WORD` reads it (bounded, see _PIECE), and what separates two words:
    one non-word character that is not ' ’ - (those join "don't"), or several."""
    word, nonword = alphabet.word, alphabet.nonword
    joiners = patterns.literal(patterns.JOINERS)
    single = alphabet.word_end
    piece = f"{word}{{1,{_PIECE}}}"
    return f"{piece}(?:[{joiners}]{piece}){{0,3}}", f"(?:{single}|{nonword}{{2,}})"


def _counted_units(unit: str, separator: str, edge: str, relation: str, value: int) -> str:
    """`edge`, then units separated by `separator` as many as the relation says, `edge`."""
    if relation == "at_most":
        body = f"(?:{unit}(?:{separator}{unit}){{0,{value - 1}}})?" if value else ""
    elif relation == "at_least":
        body = f"{unit}(?:{separator}{unit}){{{value - 1},}}" if value else None
    else:
        body = f"{unit}(?:{separator}{unit}){{{value - 1}}}" if value else ""
    if body is None:  # at least zero: anything
        return ""
    return f"{edge}{body}{edge}"


def _paragraph_parts(alphabet: patterns.Alphabet) -> tuple[str, str, str]:
    """A paragraph line, a separator line (blank or `***`) and the gap between paragraphs.
    A paragraph line has a non-space character and does not start with `***` (stricter
    than "is not `***`", and regular without a complement)."""
    space, line = alphabet.line_space, alphabet.line_char
    first = alphabet.where("nonspace nonstar", lambda c: not c.isspace() and c != "*")
    not_star = alphabet.where("line nonstar", lambda c: c not in "*\n")
    paragraph_line = (f"{space}*(?:{first}{line}*|\\*{{1,2}}(?:{not_star}{line}*)?)")
    separator_line = f"{space}*(?:\\*\\*\\*{space}*)?"
    return paragraph_line, separator_line, f"\\n(?:{separator_line}\\n)+"


def _paragraphs(alphabet: patterns.Alphabet, relation: str, value: int,
                nth: tuple[int, str] | None = None) -> str:
    paragraph_line, separator_line, gap = _paragraph_parts(alphabet)
    paragraph = f"{paragraph_line}(?:\\n{paragraph_line})*"
    if value == 0 and relation != "at_least":
        return f"{separator_line}(?:\\n{separator_line})*"
    edges = (f"(?:{separator_line}\\n)*", f"(?:\\n{separator_line})*")
    if nth is not None:  # exactly `value` paragraphs, paragraph n opening with a word
        n, first = nth
        units = [first if index == n else paragraph for index in range(1, value + 1)]
        return edges[0] + gap.join(units) + edges[1]
    return f"{edges[0]}{_counted_units(paragraph, gap, '', relation, value)}{edges[1]}"


def _sentences(alphabet: patterns.Alphabet, relation: str, value: int) -> str:
    """Responses of `value` sentences (by the relation) as `base.sentences` counts them, in
    plain prose: every line opens with a letter (after spaces and up to two of ( " ' < * ¿
    ...), so no line is a markdown header, list item or rule; a sentence ends at a run of
    . ! ? … followed by whitespace, or at a blank line; inside one, a stop is followed
    directly by a digit or a closing mark only, or by a capital in initials (3.5, "Yes.",
    P.S.). A subset of what the checker counts alike, regular, and the shape of an answer
    asked for in sentences."""
    stops = ".!?…。！？"  # the CJK marks end a sentence wherever they stand: never written
    space, any_space = alphabet.line_space, alphabet.space
    end = "[.!?\\x{2026}]+"
    inner = alphabet.where("sentence inner", lambda c: c not in stops and c != "\n")
    # After a stop inside a sentence: a digit (3.5) or a closing mark ("Yes." *Go.*); not
    # a letter, which let the model glue sentences on where the count was reached
    # ("network.ich").
    glued = alphabet.where("after a stop inside a sentence",
                           lambda c: c.isdigit() or c in "\"'”’)]»*_")
    letter = alphabet.where("letter", str.isalpha)
    upper = alphabet.where("upper", str.isupper)
    # Openers never make a markdown marker, which needs a space after it ("* ", "# ").
    opener = alphabet.where("sentence opener", lambda c: c in "(\"'“‘¿¡«[<*_")
    start = f"{opener}{{0,2}}(?:{upper}\\.)*{letter}"  # "P.S. ...", "U.S. ..."
    initials = f"{upper}(?:\\.{upper})+"
    body = f"{start}(?:{inner}|{end}{glued}|{initials}|\\n{space}*{start})*"
    # A sentence ended by its stop is followed by any whitespace; one without a stop ends
    # its paragraph (a blank line after it).
    item = f"(?:{body}{end}{any_space}+|{body}{space}*\\n(?:{space}*\\n)+{space}*)"
    last = f"{body}(?:{end})?"
    edge = f"{any_space}*"
    if not value:
        return edge
    counted = {"at_most": f"(?:(?:{item}){{0,{value - 1}}}{last})?",
               "at_least": f"(?:{item}){{{value - 1},}}{last}",
               "exactly": f"(?:{item}){{{value - 1}}}{last}"}[relation]
    return f"{edge}{counted}{edge}"


class WordCount(BaseConstraint):
    type: Literal["word_count"] = "word_count"
    relation: Relation
    value: int = Field(ge=0)

    def problem(self, text: str) -> str:
        return count_problem(len(words(text)), self.relation, self.value, "word")

    def describe(self) -> str:
        return f"Answer in {relation_text(self.relation, self.value, 'word')}."

    def word_limit(self) -> int | None:
        return None if self.relation == "at_least" else self.value

    def word_floor(self) -> int | None:
        return None if self.relation == "at_most" else self.value

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        word, separator = _word_pattern(alphabet)
        if self.relation == "at_least" and not self.value:
            return [patterns.token(alphabet.text())]
        edge = f"{alphabet.nonword}{{0,{_EDGE}}}"
        return [patterns.token(_counted_units(word, separator, edge, self.relation,
                                              self.value))]


class SentenceCount(BaseConstraint):
    type: Literal["sentence_count"] = "sentence_count"
    relation: Relation
    value: int = Field(ge=0)

    def problem(self, text: str) -> str:
        return count_problem(len(sentences(text)), self.relation, self.value, "sentence")

    def describe(self) -> str:
        return f"Answer in {relation_text(self.relation, self.value, 'sentence')}."

    # No `needs_content`: a model held back from ending before the count writes on, and
    # whatever it writes next is the next sentence; no text need lead it there.

    def sentence_limit(self) -> int | None:
        return None if self.relation == "at_least" else self.value

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        if self.relation == "at_least" and not self.value:
            return [patterns.token(alphabet.text())]
        return [patterns.token(_sentences(alphabet, self.relation, self.value))]


class ParagraphCount(BaseConstraint):
    type: Literal["paragraph_count"] = "paragraph_count"
    relation: Relation
    value: int = Field(ge=0)

    def problem(self, text: str) -> str:
        return count_problem(len(paragraphs(text)), self.relation, self.value, "paragraph",
                             note=_BLANK_LINE)

    def describe(self) -> str:
        return (f"Write {relation_text(self.relation, self.value, 'paragraph')}, "
                "separated from each other by a blank line.")

    def needs_content(self) -> bool:
        return self.relation != "at_most" and self.value > 1

    def closings(self) -> list[str]:
        return ["\n\n"] if self.needs_content() else []

    def closings_stay_open(self) -> bool:
        return self.relation == "at_least"

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        if self.relation == "at_least" and not self.value:
            return [patterns.token(alphabet.text())]
        return [patterns.token(_paragraphs(alphabet, self.relation, self.value))]


class CharacterCount(BaseConstraint):
    type: Literal["character_count"] = "character_count"
    relation: Relation
    value: int = Field(ge=0)

    def problem(self, text: str) -> str:
        return count_problem(len(text.strip()), self.relation, self.value, "character")

    def describe(self) -> str:
        return (f"Answer in {relation_text(self.relation, self.value, 'character')}, "
                "counting spaces and punctuation.")

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        # The stripped response: a first and a last non-space character, anything between.
        space, solid, anything = alphabet.space, alphabet.nonspace, alphabet.any
        value = self.value
        if self.relation == "at_least" and not value:
            return [patterns.token(alphabet.text())]
        if self.relation == "at_most":
            middle = f"(?:{solid}(?:{anything}{{0,{value - 2}}}{solid})?)?" if value >= 2 else (
                f"{solid}?" if value else "")
        elif self.relation == "at_least":
            middle = f"{solid}(?:{anything}{{{max(value - 2, 0)},}}{solid})" + (
                "?" if value == 1 else "")
        else:
            middle = {0: "", 1: solid}.get(value, f"{solid}{anything}{{{value - 2}}}{solid}")
        return [patterns.token(f"{space}*{middle}{space}*")]


class NthParagraphFirstWord(BaseConstraint):
    type: Literal["nth_paragraph_first_word"] = "nth_paragraph_first_word"
    paragraphs: int = Field(ge=1)
    n: int = Field(ge=1)
    word: str

    @field_validator("word")
    @classmethod
    def _one_word(cls, word: str) -> str:
        found = words(word)
        if len(found) != 1:
            raise ValueError("must be a single word")
        return found[0]

    @model_validator(mode="after")
    def _n_within(self) -> NthParagraphFirstWord:
        if self.n > self.paragraphs:
            raise ValueError(f"n ({self.n}) must be at most paragraphs ({self.paragraphs})")
        return self

    def problem(self, text: str) -> str:
        found = paragraphs(text)
        note = _BLANK_LINE
        if len(found) < self.n:
            note += f"; paragraph {self.n} must start with {quoted(self.word)}"
        problems = [count_problem(len(found), "exactly", self.paragraphs, "paragraph",
                                  note=note)]
        if len(found) >= self.n:
            first = words(found[self.n - 1])
            if not first or first[0].casefold() != self.word.casefold():
                start = quoted(first[0]) if first else "no word"
                problems.append(
                    f"Paragraph {self.n} starts with {start}; it must start with the word "
                    f"{quoted(self.word)} - begin it with {quoted(self.word)} "
                    f"(it now reads {quoted(excerpt(found[self.n - 1]))}).")
        return " ".join(problem for problem in problems if problem)

    def needs_content(self) -> bool:
        return True

    def closings(self) -> list[str]:
        # A blank line leads into the next paragraph, and at paragraph n the grammar lets
        # the model write only the word: both parts of the constraint are led into.
        return ["\n\n"] if self.paragraphs > 1 else []

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        # Paragraph n's first line: non-word characters (no '*', which could make it a
        # `***` separator), the word in any case, then nothing that continues the word.
        lead = alphabet.where("line nonword nonstar",
                              lambda c: not patterns.is_word(c) and c not in "*\n")
        after = alphabet.where("line nonword nonjoiner",
                               lambda c: not patterns.is_word(c) and c not in "\n'’-")
        paragraph_line, _, _ = _paragraph_parts(alphabet)
        first = (f"{alphabet.line_space}*{lead}*{alphabet.folded(self.word)}"
                 f"(?:{after}{alphabet.line_char}*)?(?:\\n{paragraph_line})*")
        return [patterns.token(_paragraphs(alphabet, "exactly", self.paragraphs,
                                           (self.n, first)))]

    def describe(self) -> str:
        return (f"Write exactly {quantity(self.paragraphs, 'paragraph')} separated by blank "
                f"lines, and start paragraph {self.n} with the word {quoted(self.word)}.")
