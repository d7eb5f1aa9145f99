"""Constraints for Divide-Verify-Refine: typed, checkable requirements on a response.

Each constraint is a frozen pydantic model with a `type` discriminator, `check(text)` (a
`CheckResult` with actionable feedback) and `describe()` (an instruction a model can follow).
The types, their parameters and the text units they count are specified in `base` and in each
module: `length`, `keywords`, `case`, `formatting`, `language`.
"""

from chorus.checks.base import CheckResult, Relation
from chorus.checks.conflicts import find_conflicts
from chorus.checks.language import LANGUAGES, detect_language
from chorus.checks.registry import (
    CONSTRAINT_TYPES,
    Constraint,
    check_all,
    parse_constraint,
)
from chorus.checks.schema import constraints_schema

__all__ = ["CONSTRAINT_TYPES", "LANGUAGES", "CheckResult", "Constraint", "Relation", "check_all",
           "constraints_schema", "detect_language", "find_conflicts", "parse_constraint"]
