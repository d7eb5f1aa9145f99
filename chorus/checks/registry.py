"""The catalogue of constraint types: the discriminated union, lookup by name, parsing with
errors that say how to fix the input, and checking a response against a list."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, get_args

from pydantic import Field, ValidationError

from chorus.checks.base import BaseConstraint, CheckResult
from chorus.checks.case import CapitalWordFrequency, Lowercase, Uppercase
from chorus.checks.formatting import (
    BulletCount,
    ConstrainedResponse,
    EndsWith,
    HighlightedSections,
    JsonFormat,
    NoCommas,
    NumberedSections,
    Placeholders,
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
from chorus.checks.language import ResponseLanguage
from chorus.checks.length import (
    CharacterCount,
    NthParagraphFirstWord,
    ParagraphCount,
    SentenceCount,
    WordCount,
)
from chorus.errors import ConstraintSpecError

# In the order of the specification's table.
Constraint = Annotated[
    WordCount | SentenceCount | ParagraphCount | CharacterCount | IncludeKeywords
    | ForbiddenWords | KeywordFrequency | LetterFrequency | Lowercase | Uppercase
    | CapitalWordFrequency | BulletCount | NumberedSections | HighlightedSections | Placeholders
    | Title | StartsWith | EndsWith | Quotation | NoCommas | JsonFormat | Postscript
    | TwoResponses | RepeatRequest | ResponseLanguage | ConstrainedResponse
    | NthParagraphFirstWord,
    Field(discriminator="type")]

CONSTRAINT_TYPES: dict[str, type[BaseConstraint]] = {
    cls.model_fields["type"].default: cls for cls in get_args(get_args(Constraint)[0])}


def signature(name: str) -> str:
    """'word_count(relation, value)'; optional fields come last, with their default."""
    fields = [(field, info) for field, info in CONSTRAINT_TYPES[name].model_fields.items()
              if field != "type"]
    params = [field for field, info in fields if info.is_required()]
    params += [f"{field}={info.default!r}" for field, info in fields if not info.is_required()]
    return f"{name}({', '.join(params)})"


def _field_error(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "missing":
        return f"field '{where}' is required"
    if kind == "extra_forbidden":
        return f"field '{where}' is not allowed"
    message = error["msg"].removeprefix("Value error, ")
    if not where:
        return message
    return f"field '{where}': {message} (got {error['input']!r})"


def parse_constraint(data: Mapping[str, Any]) -> BaseConstraint:
    """The constraint model described by `data` ({"type": ..., params...}).

    Raises ConstraintSpecError naming the type and field at fault, and the fix.
    """
    if isinstance(data, BaseConstraint):
        return data
    known = ", ".join(CONSTRAINT_TYPES)
    if not isinstance(data, Mapping):
        raise ConstraintSpecError(
            f"A constraint must be an object with a 'type' field, got {type(data).__name__} "
            f"{data!r}; use one of the types: {known}")
    name = data.get("type")
    if name is None:
        raise ConstraintSpecError(
            f"Constraint {dict(data)!r} has no 'type' field; add one of: {known}")
    if not isinstance(name, str) or name not in CONSTRAINT_TYPES:
        close = difflib.get_close_matches(str(name), CONSTRAINT_TYPES, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConstraintSpecError(
            f"Unknown constraint type {name!r}; {hint}known types: {known}")
    try:
        return CONSTRAINT_TYPES[name].model_validate(dict(data))
    except ValidationError as error:
        problems = "; ".join(_field_error(item) for item in error.errors())
        raise ConstraintSpecError(
            f"Invalid '{name}' constraint: {problems}. Write it as {signature(name)}"
        ) from error


def check_all(text: str, constraints: Iterable[BaseConstraint | Mapping[str, Any]]
              ) -> list[CheckResult]:
    """One result per constraint, in order; dicts are parsed first."""
    return [parse_constraint(constraint).check(text) for constraint in constraints]
