"""Length constraints: counts of words, sentences, paragraphs and characters, and the first
word of the n-th paragraph. Text units are defined in `base`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

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


class WordCount(BaseConstraint):
    type: Literal["word_count"] = "word_count"
    relation: Relation
    value: int = Field(ge=0)

    def problem(self, text: str) -> str:
        return count_problem(len(words(text)), self.relation, self.value, "word")

    def describe(self) -> str:
        return f"Answer in {relation_text(self.relation, self.value, 'word')}."


class SentenceCount(BaseConstraint):
    type: Literal["sentence_count"] = "sentence_count"
    relation: Relation
    value: int = Field(ge=0)

    def problem(self, text: str) -> str:
        return count_problem(len(sentences(text)), self.relation, self.value, "sentence")

    def describe(self) -> str:
        return f"Answer in {relation_text(self.relation, self.value, 'sentence')}."


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


class CharacterCount(BaseConstraint):
    type: Literal["character_count"] = "character_count"
    relation: Relation
    value: int = Field(ge=0)

    def problem(self, text: str) -> str:
        return count_problem(len(text.strip()), self.relation, self.value, "character")

    def describe(self) -> str:
        return (f"Answer in {relation_text(self.relation, self.value, 'character')}, "
                "counting spaces and punctuation.")


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

    def describe(self) -> str:
        return (f"Write exactly {quantity(self.paragraphs, 'paragraph')} separated by blank "
                f"lines, and start paragraph {self.n} with the word {quoted(self.word)}.")
