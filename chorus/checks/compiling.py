"""Constraints compiled into one decoding grammar, so that a response meets them by
construction; the rest are left to verify-and-refine.

Each constraint offers grammars (`BaseConstraint.grammars`, most preferred first). They are
intersected one constraint at a time, in order; an option that would leave no possible text
(a conflict with those already in), or that llguidance cannot handle within its budget, is
passed over for the next, and a constraint with no option that fits is left to refinement,
with the reason. Constraints in a conflict (`find_conflicts`) are never compiled: refinement
reports them. The grammar is never trusted blindly: the checkers still verify every response.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from chorus.checks.base import BaseConstraint
from chorus.checks.conflicts import conflicting_pairs
from chorus.checks.patterns import Alphabet, token
from chorus.checks.registry import parse_constraint
from chorus.runtime.guidance import grammar_problem
from chorus.runtime.nudging import Nudge
from chorus.runtime.outputs import Lark

log = logging.getLogger(__name__)

NOT_EXPRESSIBLE = "no grammar expresses it"
NEEDS_CONTENT = "its grammar needs the model to write particular content"


@dataclass(frozen=True)
class CompiledConstraints:
    """The grammar (None when no constraint compiled), which constraints it enforces, and
    why each other one is left to refinement."""

    grammar: str | None
    compiled: tuple[int, ...] = ()
    left: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0  # time spent compiling and checking
    closings: tuple[str, ...] = ()  # what leads the model into what the grammar needs
    endings: tuple[str, ...] = ()  # texts the reply stops at once they complete the grammar
    fallback: str | None = None  # the grammar of the refusals alone, where that differs
    word_limit: int | None = None  # the most words the grammar allows, where it bounds them
    sentence_limit: int | None = None  # likewise sentences
    # words the constraints need, favoured in decoding until written (`BaseConstraint.nudges`)
    nudges: tuple[Nudge, ...] = ()

    @property
    def output(self) -> Lark | None:
        if not self.grammar:
            return None
        return Lark(self.grammar, self.closings, self.fallback, self.word_limit,
                    self.sentence_limit, self.nudges, self.endings)

    def to_state(self) -> dict[str, Any]:
        """What decoding needs again, JSON-able (a run's checkpointed state keeps it)."""
        return {"grammar": self.grammar, "compiled": list(self.compiled),
                "closings": list(self.closings), "endings": list(self.endings),
                "fallback": self.fallback,
                "word_limit": self.word_limit, "sentence_limit": self.sentence_limit,
                "nudges": [nudge.to_state() for nudge in self.nudges]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CompiledConstraints:
        return cls(grammar=state.get("grammar"), compiled=tuple(state.get("compiled", ())),
                   closings=tuple(state.get("closings", ())),
                   endings=tuple(state.get("endings", ())), fallback=state.get("fallback"),
                   word_limit=state.get("word_limit"),
                   sentence_limit=state.get("sentence_limit"),
                   nudges=tuple(Nudge.from_state(n) for n in state.get("nudges", ())))


def grammar_of(expressions: Sequence[str], alphabet: Alphabet) -> str:
    """The lark grammar of responses over `alphabet` matching all `expressions` (the
    alphabet goes in explicitly: a complement alone would admit any bytes at all)."""
    parts = [token(alphabet.text()), *(f"({e})" for e in expressions)]
    return "start: TEXT\nTEXT: " + " & ".join(parts) + "\n"


def compile_constraints(constraints: Sequence[BaseConstraint | dict[str, Any]], *,
                        needs_content: bool = False,
                        required: Collection[int] = ()) -> CompiledConstraints:
    """The constraints that refuse text (no commas, at most N words), and those a model
    meets by writing something particular that a closing leads it into (a postscript, N
    bullets: `BaseConstraint.closings`), compiled into one grammar; with `needs_content`,
    also those with no closing (a keyword), and in any case those `required` (indices: a
    refinement that asks for a keyword holds the model to it). Where the grammar holds any
    of the latter, the refusals' grammar alone is its `fallback`. The words the constraints
    need come as `nudges`; where they need some and nothing compiles, the grammar is any
    text over the alphabet, for the nudges to ride on."""
    started = time.perf_counter()
    parsed = [parse_constraint(constraint) for constraint in constraints]
    in_conflict = {k for i, j, _ in conflicting_pairs(parsed) for k in (i, j)}
    languages = tuple(sorted({c.language for c in parsed if c.type == "response_language"}))
    alphabet = Alphabet.for_languages(languages)
    chosen = _compile(parsed, lambda index, constraint: needs_content or index in required
                      or not constraint.needs_content() or bool(constraint.closings()),
                      in_conflict, alphabet)
    nudges = tuple(nudge for index, constraint in enumerate(parsed)
                   if index not in in_conflict for nudge in constraint.nudges())
    for index in chosen.compiled:
        nudges = tuple(parsed[index].as_written(nudge) for nudge in nudges)
    if chosen.grammar is None and nudges:
        chosen = replace(chosen, grammar=grammar_of([], alphabet))
    for index, reason in chosen.left.items():
        if reason != NEEDS_CONTENT:
            log.info("constraint %s left to refinement: %s", parsed[index].type, reason)
    # Closings the grammar refuses once their constraint is met first (see
    # `BaseConstraint.closings_stay_open`); in the constraints' order otherwise.
    ordered = sorted(chosen.compiled, key=lambda index: parsed[index].closings_stay_open())
    closings = tuple(text for index in ordered for text in parsed[index].closings())
    endings = tuple(text for index in chosen.compiled for text in parsed[index].endings())
    fallback = None
    if any(parsed[index].needs_content() for index in chosen.compiled):
        fallback = _compile(parsed, lambda _, constraint: not constraint.needs_content(),
                            in_conflict, alphabet).grammar

    def least(limit: str) -> int | None:  # the tightest bound of the compiled constraints
        return min((value for index in chosen.compiled
                    if (value := getattr(parsed[index], limit)()) is not None), default=None)

    return replace(chosen, closings=closings, endings=endings, fallback=fallback,
                   word_limit=least("word_limit"), sentence_limit=least("sentence_limit"),
                   nudges=nudges, seconds=time.perf_counter() - started)


def _compile(parsed: list[BaseConstraint], wanted: Callable[[int, BaseConstraint], bool],
             in_conflict: set[int], alphabet: Alphabet) -> CompiledConstraints:
    """The grammar of the `wanted` constraints that compile together, in order, over
    `alphabet`; those `in_conflict` are left out."""
    chosen: list[str] = []
    compiled: list[int] = []
    left: dict[int, str] = {}
    for index, constraint in enumerate(parsed):
        if index in in_conflict:
            left[index] = "in conflict with another constraint"
            continue
        if not wanted(index, constraint):
            left[index] = NEEDS_CONTENT
            continue
        options = constraint.grammars(alphabet)
        if not options:
            left[index] = NOT_EXPRESSIBLE
            continue
        problem = ""
        for option in options:
            problem = grammar_problem(grammar_of([*chosen, option], alphabet)) or ""
            if not problem:
                chosen.append(option)
                compiled.append(index)
                break
        else:
            left[index] = f"its grammar cannot join the others ({problem})"
    return CompiledConstraints(grammar=grammar_of(chosen, alphabet) if chosen else None,
                               compiled=tuple(compiled), left=left)
