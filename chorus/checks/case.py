"""Letter-case constraints: all lowercase, all capitals, and how many words are in capitals.

"Lowercase" needs at least one lowercase letter and no capital; "uppercase" the reverse.
Scripts without case (CJK, Arabic, ...) therefore satisfy neither, which keeps the two
constraints contradictory, as a reader would expect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import Field

from chorus.checks import patterns
from chorus.checks.base import (
    BaseConstraint,
    Relation,
    count_problem,
    listing,
    quantity,
    relation_text,
    words,
)
from chorus.runtime.nudging import Nudge

_EXAMPLES = 3  # offending words quoted in feedback


def _words_with(text: str, predicate: Callable[[str], bool]) -> list[str]:
    """Distinct words containing a letter for which `predicate` holds, in order."""
    return list(dict.fromkeys(w for w in words(text) if any(predicate(c) for c in w)))


def _where(examples: list[str]) -> str:
    return f" (in {listing(examples[:_EXAMPLES])})" if examples else ""


def capital_words(text: str) -> list[str]:
    """Words written entirely in capitals, with at least two letters ("NASA", not "I")."""
    found = []
    for word in words(text):
        letters = [c for c in word if c.isalpha()]
        if len(letters) >= 2 and all(c.isupper() for c in letters):
            found.append(word)
    return found


class Lowercase(BaseConstraint):
    type: Literal["lowercase"] = "lowercase"

    def problem(self, text: str) -> str:
        capitals = sum(c.isupper() for c in text)
        if capitals:
            return (f"{quantity(capitals, 'capital letter')} found"
                    f"{_where(_words_with(text, str.isupper))} - rewrite everything in lowercase.")
        if not any(c.islower() for c in text):
            return "The response has no lowercase letters - write it in lowercase letters."
        return ""

    def describe(self) -> str:
        return "Write the entire response in lowercase letters, with no capital letters at all."

    def as_written(self, nudge: Nudge) -> Nudge:
        return nudge.with_words(str.lower)

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        rest = alphabet.where("not upper", lambda c: not c.isupper())
        lower = alphabet.where("lower", str.islower)
        return [patterns.token(f"{rest}*{lower}{rest}*")]


class Uppercase(BaseConstraint):
    type: Literal["uppercase"] = "uppercase"

    def problem(self, text: str) -> str:
        small = sum(c.islower() for c in text)
        if small:
            return (f"{quantity(small, 'lowercase letter')} found"
                    f"{_where(_words_with(text, str.islower))} - rewrite everything in capital "
                    "letters.")
        if not any(c.isupper() for c in text):
            return "The response has no capital letters - write it in capital letters."
        return ""

    def describe(self) -> str:
        return "Write the entire response in capital letters, with no lowercase letters at all."

    def as_written(self, nudge: Nudge) -> Nudge:
        return nudge.with_words(str.upper)

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        rest = alphabet.where("not lower", lambda c: not c.islower())
        upper = alphabet.where("upper", str.isupper)
        return [patterns.token(f"{rest}*{upper}{rest}*")]


class CapitalWordFrequency(BaseConstraint):
    type: Literal["capital_word_frequency"] = "capital_word_frequency"
    relation: Relation
    value: int = Field(ge=0)

    def problem(self, text: str) -> str:
        found = capital_words(text)
        examples = list(dict.fromkeys(found))[:_EXAMPLES]
        note = f"such as {listing(examples)}" if len(found) > self.value else ""
        return count_problem(len(found), self.relation, self.value, "word in capitals",
                             "words in capitals", add="write", cut="lowercase", note=note)

    def describe(self) -> str:
        counted = relation_text(self.relation, self.value, "word")
        return f"Use {counted} written entirely in capital letters, like IMPORTANT."

    def needs_content(self) -> bool:
        return self.relation != "at_most" and self.value > 0

    def nudges(self) -> list[Nudge]:
        # Counted as runs of two capitals or more standing alone, as `capital_words` mostly
        # counts them (the checker has the last word); a word or two between them, for a
        # short answer holds few words.
        if not self.needs_content():
            return []
        return [Nudge(pattern=r"(?<![\w'’-])[A-Z]{2,}(?![\w'’-])", times=self.value,
                      capitals=True, spacing=12)]

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        # The lower bound only: N runs of two capitals or more that stand alone as words
        # (neighbours neither word characters nor ' ’ -), each surely one `capital_words`
        # counts. A bound from above would have to see every word it counts ("COVID-19",
        # "A_B"): left to refinement.
        if self.relation != "at_least" or not self.value:
            return []
        capitals = alphabet.where("upper", str.isupper)
        return [patterns.token(patterns.whole_words(alphabet, f"{capitals}{{2,}}", self.value,
                                                    strict=True))]
