"""Keyword constraints: words that must appear, must not appear, or appear a number of times,
and how often a letter is used. Keywords match case-insensitively as whole words (a keyword
may be a phrase); letters are counted case-insensitively wherever they occur."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from chorus.checks import patterns
from chorus.checks.base import (
    BaseConstraint,
    Relation,
    count_problem,
    listing,
    phrase_pattern,
    quoted,
    relation_text,
    times,
)
from chorus.runtime.nudging import Nudge

Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def occurrences(keyword: str, text: str) -> int:
    return len(phrase_pattern(keyword).findall(text))


def keyword_nudge(keyword: str, times: int, most: int | None = None) -> Nudge:
    """Favour `keyword` until the text holds it `times` times, counted as `occurrences`;
    bar it once the text holds it `most` times."""
    return Nudge(pattern=f"(?i){phrase_pattern(keyword).pattern}", times=times,
                 words=(keyword,), most=most)


class IncludeKeywords(BaseConstraint):
    type: Literal["include_keywords"] = "include_keywords"
    keywords: list[Keyword] = Field(min_length=1, max_length=5)

    def problem(self, text: str) -> str:
        missing = [keyword for keyword in self.keywords if not occurrences(keyword, text)]
        if not missing:
            return ""
        if len(missing) == 1:
            return f"Missing keyword {quoted(missing[0])} - use it at least once."
        return f"Missing keywords {listing(missing)} - use each at least once."

    def describe(self) -> str:
        noun = "keyword" if len(self.keywords) == 1 else "keywords"
        return f"Include the {noun} {listing(self.keywords)} in the response."

    def needs_content(self) -> bool:
        return True

    def nudges(self) -> list[Nudge]:
        return [keyword_nudge(keyword, 1) for keyword in self.keywords]

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        return [" & ".join(patterns.token(patterns.occurrences(alphabet, keyword, 1, strict=True))
                           for keyword in self.keywords)]


class ForbiddenWords(BaseConstraint):
    type: Literal["forbidden_words"] = "forbidden_words"
    words: list[Keyword] = Field(min_length=1, max_length=5)

    def problem(self, text: str) -> str:
        found = [(word, occurrences(word, text)) for word in self.words]
        return " ".join(f"The word {quoted(word)} appears {times(count)} but is forbidden - "
                        "remove it." for word, count in found if count)

    def describe(self) -> str:
        noun = "word" if len(self.words) == 1 else "words"
        return f"Do not use the {noun} {listing(self.words, 'or')} anywhere in the response."

    def nudges(self) -> list[Nudge]:
        return [keyword_nudge(word, 0, most=0) for word in self.words]

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        # One complement per word: an alternation under one complement compiles 40x slower.
        return [" & ".join(patterns.complement(patterns.occurrences(alphabet, word, 1,
                                                                     strict=False))
                           for word in self.words)]


class KeywordFrequency(BaseConstraint):
    type: Literal["keyword_frequency"] = "keyword_frequency"
    keyword: Keyword
    relation: Relation
    value: int = Field(ge=0)

    def problem(self, text: str) -> str:
        count = occurrences(self.keyword, text)
        return count_problem(count, self.relation, self.value, "occurrence",
                             head=f"The word {quoted(self.keyword)} appears {times(count)}",
                             cut="remove")

    def describe(self) -> str:
        return (f"Use the word {quoted(self.keyword)} "
                f"{relation_text(self.relation, self.value, 'time')}.")

    def needs_content(self) -> bool:
        return self.relation != "at_most" and self.value > 0

    def nudges(self) -> list[Nudge]:
        # Favoured up to its count where it needs content; barred past it where there is
        # a most (the grammar may hold the bound, but a model set on the word writes it and
        # is led to glue it to what follows, as with forbidden words).
        wanted = self.value if self.needs_content() else 0
        most = None if self.relation == "at_least" else self.value
        return [keyword_nudge(self.keyword, wanted, most)] if wanted or most is not None else []

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        parts = []
        if self.relation != "at_most" and self.value:
            parts.append(patterns.token(patterns.occurrences(alphabet, self.keyword, self.value,
                                                             strict=True)))
        if self.relation != "at_least":
            parts.append(patterns.complement(patterns.occurrences(
                alphabet, self.keyword, self.value + 1, strict=False)))
        return [" & ".join(parts) or patterns.token(alphabet.text())]


class LetterFrequency(BaseConstraint):
    type: Literal["letter_frequency"] = "letter_frequency"
    letter: str = Field(min_length=1, max_length=1)
    relation: Relation
    value: int = Field(ge=0)

    @field_validator("letter")
    @classmethod
    def _is_letter(cls, letter: str) -> str:
        if not letter.isalpha():
            raise ValueError("must be a letter (not a digit, space or sign)")
        return letter

    def problem(self, text: str) -> str:
        count = text.lower().count(self.letter.lower())
        return count_problem(count, self.relation, self.value, "occurrence",
                             head=f"The letter {quoted(self.letter)} appears {times(count)}",
                             cut="remove")

    def needs_content(self) -> bool:
        return self.relation != "at_most" and self.value > 0

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        # The checker counts in text.lower(): a character counts as often as its lowercase
        # form holds the letter ("İ" lowers to "i" and a dot). Twice or more is never written.
        letter = self.letter.lower()
        hits = alphabet.where(f"lowers to one {letter!r}", lambda c: c.lower().count(letter) == 1)
        rest = alphabet.where(f"lowers to no {letter!r}", lambda c: letter not in c.lower())
        return [patterns.token(patterns.counted(f"{rest}*{hits}", self.relation, self.value)
                               + f"{rest}*")]

    def describe(self) -> str:
        return (f"Use the letter {quoted(self.letter)} "
                f"{relation_text(self.relation, self.value, 'time')} (upper or lower case).")
