"""How a role's output is scored against a gold target (evaluation, benchmarks).

The scores are per example, between 0 and 1; each role names the ones it reports.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

_WORD = re.compile(r"[\w.%-]+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def unique_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A small model may repeat a call word for word; each distinct call is kept once."""
    kept: list[dict[str, Any]] = []
    for call in calls:
        if call not in kept:
            kept.append(call)
    return kept


def canonical(calls: list[dict]) -> list[str]:
    """Calls as sorted JSON strings: order of calls ignored, 20 == 20.0."""
    def normal(value):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, dict):
            return {key: normal(item) for key, item in value.items()}
        if isinstance(value, list):
            return [normal(item) for item in value]
        return value

    return sorted(json.dumps({"name": c.get("name"), "arguments": normal(c.get("arguments"))},
                             sort_keys=True) for c in calls)


def same_calls(predicted: list[dict], gold: list[dict]) -> float:
    return float(canonical(unique_calls(predicted)) == canonical(gold))


def same_names(predicted: list[dict], gold: list[dict]) -> float:
    names = Counter(c.get("name") for c in unique_calls(predicted))
    return float(names == Counter(c["name"] for c in gold))


def _words(text: str) -> list[str]:
    return [w.strip(".").lower() for w in _WORD.findall(text) if w.strip(".")]


def word_f1(predicted: str, gold: str) -> float:
    mine, theirs = Counter(_words(predicted)), Counter(_words(gold))
    common = sum((mine & theirs).values())
    if not common:
        return 0.0
    precision, recall = common / sum(mine.values()), common / sum(theirs.values())
    return 2 * precision * recall / (precision + recall)


def numbers_kept(predicted: str, gold: str) -> float:
    """1 if every number of the gold answer is in the prediction (the facts a summary must
    carry over from the tool results); answers without numbers count if non-empty."""
    needed = set(_NUMBER.findall(gold))
    if not needed:
        return float(bool(predicted.strip()))
    return float(needed <= set(_NUMBER.findall(predicted)))


def same_text(predicted: str, gold: str) -> float:
    """Exact match after trimming: the score of a role chorus knows nothing more about."""
    return float(predicted.strip() == gold.strip())
