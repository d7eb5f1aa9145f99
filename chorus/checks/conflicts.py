"""Pairs of constraints that no response can satisfy together.

DVR must not spend refinement rounds on them: fixing one side breaks the other. Each rule
below looks at one ordered pair and returns a reason or None; `find_conflicts` tries both
orders of every pair. Only contradictions are reported, never mere tensions. A response that
must be JSON counts as excluding a title, a postscript, bullets, sections and a second
response: a title could hide inside a JSON string, but no reader would take that as both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from itertools import combinations
from typing import Any

from chorus.checks.base import (
    BaseConstraint,
    Relation,
    normalize,
    phrase_pattern,
    quoted,
    relation_text,
)
from chorus.checks.case import CapitalWordFrequency, Lowercase, Uppercase
from chorus.checks.formatting import (
    COMMAS,
    BulletCount,
    EndsWith,
    JsonFormat,
    NoCommas,
    NumberedSections,
    Postscript,
    Quotation,
    RepeatRequest,
    StartsWith,
    Title,
    TwoResponses,
)
from chorus.checks.keywords import (
    ForbiddenWords,
    IncludeKeywords,
    KeywordFrequency,
    LetterFrequency,
)
from chorus.checks.language import LANGUAGES, ResponseLanguage
from chorus.checks.length import (
    CharacterCount,
    NthParagraphFirstWord,
    ParagraphCount,
    SentenceCount,
    WordCount,
)
from chorus.checks.registry import parse_constraint

Range = tuple[tuple[str, ...], float, float, str]  # (what is counted, low, high, wording)
Rule = Callable[[BaseConstraint, BaseConstraint], str | None]


def _bounds(relation: Relation, value: int) -> tuple[float, float]:
    return {"at_most": (0, value), "at_least": (value, math.inf),
            "exactly": (value, value)}[relation]


def _range(c: BaseConstraint) -> Range | None:
    """The range a count must fall in, keyed by what is counted; None for other types."""
    units = {WordCount: "word", SentenceCount: "sentence", ParagraphCount: "paragraph",
             CharacterCount: "character"}
    if isinstance(c, tuple(units)):
        unit = units[type(c)]
        return ((unit,), *_bounds(c.relation, c.value), relation_text(c.relation, c.value, unit))
    if isinstance(c, NthParagraphFirstWord):
        return (("paragraph",), c.paragraphs, c.paragraphs,
                relation_text("exactly", c.paragraphs, "paragraph"))
    if isinstance(c, KeywordFrequency):
        return (("keyword", normalize(c.keyword)), *_bounds(c.relation, c.value),
                f"{quoted(c.keyword)} {relation_text(c.relation, c.value, 'time')}")
    if isinstance(c, LetterFrequency):
        return (("letter", c.letter.lower()), *_bounds(c.relation, c.value),
                f"the letter {quoted(c.letter)} {relation_text(c.relation, c.value, 'time')}")
    if isinstance(c, CapitalWordFrequency):
        return (("capitals",), *_bounds(c.relation, c.value),
                relation_text(c.relation, c.value, "word in capitals", "words in capitals"))
    if isinstance(c, BulletCount):
        return (("bullets",), c.value, c.value, relation_text("exactly", c.value, "bullet point"))
    if isinstance(c, NumberedSections):
        return (("sections", c.marker.casefold()), c.value, c.value,
                relation_text("exactly", c.value, f"{c.marker} section"))
    return None


def _ranges(a: BaseConstraint, b: BaseConstraint) -> str | None:
    first, second = _range(a), _range(b)
    if first is None or second is None or first[0] != second[0]:
        return None
    if max(first[1], second[1]) <= min(first[2], second[2]):
        return None
    return f"{first[3]} and {second[3]} cannot both hold"


def _required(c: BaseConstraint) -> list[str]:
    """Text that must appear in any response satisfying `c`."""
    if isinstance(c, IncludeKeywords):
        return list(c.keywords)
    if isinstance(c, KeywordFrequency) and _bounds(c.relation, c.value)[0] >= 1:
        return [c.keyword]
    if isinstance(c, NthParagraphFirstWord):
        return [c.word]
    if isinstance(c, StartsWith | EndsWith):
        return [c.phrase]
    if isinstance(c, RepeatRequest):
        return [c.request]
    return []


def _required_but_excluded(a: BaseConstraint, b: BaseConstraint) -> str | None:
    """`b` needs some text that `a` excludes: a forbidden word, a letter or a comma."""
    required = _required(b)
    if isinstance(a, ForbiddenWords):
        banned = list(a.words)
    elif isinstance(a, KeywordFrequency) and _bounds(a.relation, a.value)[1] == 0:
        banned = [a.keyword]
    else:
        banned = []
    for text in required:
        for word in banned:
            if phrase_pattern(word).search(text):
                return f"{quoted(text)} must appear but {quoted(word)} is forbidden"
        if (isinstance(a, LetterFrequency) and _bounds(a.relation, a.value)[1] == 0
                and a.letter.lower() in text.lower()):
            return f"{quoted(text)} must appear but the letter {quoted(a.letter)} may not"
        if isinstance(a, NoCommas) and any(comma in text for comma in COMMAS):
            return f"{quoted(text)} must appear but contains a comma, and commas are forbidden"
    return None


def _case(a: BaseConstraint, b: BaseConstraint) -> str | None:
    if isinstance(a, Lowercase) and isinstance(b, Uppercase):
        return "a response cannot be all lowercase and all capitals at once"
    if (isinstance(a, Lowercase) and isinstance(b, CapitalWordFrequency)
            and _bounds(b.relation, b.value)[0] >= 1):
        return (f"an all-lowercase response has no words in capitals, but "
                f"{relation_text(b.relation, b.value, 'word in capitals', 'words in capitals')}"
                " are required")
    return None


def _json(a: BaseConstraint, b: BaseConstraint) -> str | None:
    if not isinstance(a, JsonFormat):
        return None
    if isinstance(b, Title):
        return "a response that is only JSON cannot also carry a <<title>>"
    if isinstance(b, Postscript):
        return f"a response that is only JSON cannot end with a {quoted(b.marker)} line"
    if isinstance(b, TwoResponses):
        return f"a response that is only JSON cannot hold two responses split by {b.separator}"
    if isinstance(b, BulletCount) and b.value > 0:
        return "a response that is only JSON cannot contain markdown bullet points"
    if isinstance(b, NumberedSections) and b.value > 0:
        return f"a response that is only JSON cannot contain {quoted(b.marker + ' 1')} lines"
    return None


def _openings(a: BaseConstraint, b: BaseConstraint) -> str | None:
    """Two different required openings (or endings) unless one extends the other."""
    if isinstance(a, StartsWith) and isinstance(b, StartsWith | RepeatRequest):
        first = a.phrase
        second = b.phrase if isinstance(b, StartsWith) else b.request
        x, y = normalize(first), normalize(second)
        if not (x.startswith(y) or y.startswith(x)):
            return f"the response cannot start with both {quoted(first)} and {quoted(second)}"
    if isinstance(a, EndsWith) and isinstance(b, EndsWith):
        x, y = normalize(a.phrase), normalize(b.phrase)
        if not (x.endswith(y) or y.endswith(x)):
            return f"the response cannot end with both {quoted(a.phrase)} and {quoted(b.phrase)}"
    return None


def _quotation(a: BaseConstraint, b: BaseConstraint) -> str | None:
    if not isinstance(a, Quotation):
        return None
    if isinstance(b, StartsWith | RepeatRequest):
        opening = b.phrase if isinstance(b, StartsWith) else b.request
        if not opening.startswith('"'):
            return (f"a response wrapped in double quotes starts with '\"', not with "
                    f"{quoted(opening)}")
    if isinstance(b, EndsWith) and not b.phrase.endswith('"'):
        return f"a response wrapped in double quotes ends with '\"', not with {quoted(b.phrase)}"
    return None


def _languages(a: BaseConstraint, b: BaseConstraint) -> str | None:
    if (isinstance(a, ResponseLanguage) and isinstance(b, ResponseLanguage)
            and a.language != b.language):
        return (f"the whole response cannot be in both {LANGUAGES[a.language]} and "
                f"{LANGUAGES[b.language]}")
    return None


_RULES: tuple[Rule, ...] = (_ranges, _required_but_excluded, _case, _json, _openings,
                            _quotation, _languages)


def conflicting_pairs(constraints: Iterable[BaseConstraint | Mapping[str, Any]]
                      ) -> list[tuple[int, int, str]]:
    """(i, j, reason) for each pair of constraints that can never hold together."""
    parsed = [parse_constraint(constraint) for constraint in constraints]
    pairs = []
    for (i, a), (j, b) in combinations(enumerate(parsed), 2):
        for rule in _RULES:
            reason = rule(a, b) or rule(b, a)
            if reason:
                pairs.append((i, j, f"{a.type} conflicts with {b.type}: {reason}."))
                break
    return pairs


def find_conflicts(constraints: Iterable[BaseConstraint | Mapping[str, Any]]) -> list[str]:
    """A human-readable reason for each pair of constraints that can never hold together."""
    return [reason for _, _, reason in conflicting_pairs(constraints)]
