"""The state every chorus graph shares, with LangGraph reducers for parallel writes."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

RESET = "__reset__"  # a run's input carries this to start its counts and trajectory afresh


def add_counts(left: dict[str, int] | None, right: dict[str, int] | None) -> dict[str, int]:
    if right and RESET in right:
        return {key: count for key, count in right.items() if key != RESET}
    merged = dict(left or {})
    for key, count in (right or {}).items():
        merged[key] = merged.get(key, 0) + count
    return merged


def extend_steps(left: list[dict[str, Any]] | None,
                 right: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if right and right[0].get("kind") == RESET:
        return list(right[1:])
    return (left or []) + (right or [])


class RunState(TypedDict, total=False):
    task: str
    trajectory: Annotated[list[dict[str, Any]], extend_steps]  # Step records, in order
    pending_calls: list[dict[str, Any]]  # the caller's latest calls, for the tools node
    decision: str  # the planner's latest "next"
    answer: str
    verdict: dict[str, Any]  # {"pass": bool, "feedback": str}
    visits: Annotated[dict[str, int], add_counts]  # per node, for max_visits


def fresh_input(task: str) -> dict[str, Any]:
    """The input that starts a run, on a new thread or after a finished one."""
    return {"task": task, "trajectory": [{"kind": RESET}], "visits": {RESET: 1},
            "pending_calls": [], "decision": "", "answer": "", "verdict": {}}
