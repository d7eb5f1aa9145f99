"""Divide: turn an instruction into typed constraints, by rules, by the model, or both.

"rules" reads common phrasings deterministically; "model" asks the divider agent for a list
constrained to the union of the checker types; "hybrid" keeps the rules' constraints and adds
the model's constraints of types the rules did not find. benchmarks/dvr.py measures all three.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from chorus.agents.agent import Agent
from chorus.checks import CONSTRAINT_TYPES, constraints_schema, parse_constraint
from chorus.checks.phrasing import read_constraints
from chorus.checks.registry import signature
from chorus.errors import ChorusError, ConstraintSpecError
from chorus.runtime import Model

log = logging.getLogger(__name__)

Strategy = Literal["rules", "model", "hybrid"]
STRATEGIES: tuple[str, ...] = ("rules", "model", "hybrid")
MAX_CONSTRAINTS = 6


@dataclass(frozen=True)
class Division:
    instruction: str
    constraints: list[Any]  # constraint models of chorus.checks


def describe_types() -> str:
    return "\n".join(f"- {signature(name)}" for name in CONSTRAINT_TYPES)


def divider(adapter: str | None = None) -> Agent:
    return Agent.from_template("divider", adapter=adapter,
                               output=constraints_schema(max_items=MAX_CONSTRAINTS),
                               max_new_tokens=60 * MAX_CONSTRAINTS,
                               fields={"types": describe_types()})


def divide(instruction: str, model: Model | None = None, strategy: Strategy = "rules",
           adapter: str | None = None) -> Division:
    if strategy not in STRATEGIES:
        raise ChorusError(f"Unknown divide strategy '{strategy}'; use one of {STRATEGIES}")
    ruled = _parsed(read_constraints(instruction)) if strategy != "model" else []
    if strategy == "rules":
        return Division(instruction, ruled[:MAX_CONSTRAINTS])
    if model is None:
        raise ChorusError(f"Divide strategy '{strategy}' needs a model")
    return Division(instruction, merge(ruled, _from_model(model, instruction, adapter)))


def merge(ruled: list[Any], modelled: list[Any]) -> list[Any]:
    """The rules' constraints, then the model's of types the rules did not find."""
    seen = {constraint.type for constraint in ruled}
    return (ruled + [c for c in modelled if c.type not in seen])[:MAX_CONSTRAINTS]


def _from_model(model: Model, instruction: str, adapter: str | None) -> list[Any]:
    try:
        reply = divider(adapter).run(model, instruction)
    except ChorusError as error:  # a truncated list: divide by rules alone, do not fail
        log.warning("divider gave no usable constraints: %s", error)
        return []
    return _parsed(reply.value["constraints"])


def _parsed(items: list[dict[str, Any]]) -> list[Any]:
    constraints = []
    for item in items:
        try:
            constraint = parse_constraint(item)
        except ConstraintSpecError as error:  # e.g. a count the model set out of range
            log.info("dropped constraint %s: %s", item, error)
            continue
        if constraint not in constraints:
            constraints.append(constraint)
    return constraints
