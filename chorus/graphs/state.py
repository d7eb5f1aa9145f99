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


def latest(_left: Any, right: Any) -> Any:
    """Parallel branches may write the same field in one step; the last branch wins (every
    branch's own value is also kept in `outputs`)."""
    return right


def merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    if right and RESET in right:
        return {key: value for key, value in right.items() if key != RESET}
    return {**(left or {}), **(right or {})}


class RunState(TypedDict, total=False):
    task: str
    trajectory: Annotated[list[dict[str, Any]], extend_steps]  # Step records, in order
    pending_calls: Annotated[list[dict[str, Any]], latest]  # the caller's latest calls
    decision: Annotated[str, latest]  # the planner's latest "next"
    answer: Annotated[str, latest]
    verdict: Annotated[dict[str, Any], latest]  # {"pass": bool, "feedback": str}
    outputs: Annotated[dict[str, Any], merge]  # each agent node's latest output, by node
    visits: Annotated[dict[str, int], add_counts]  # per node, for max_visits
    dvr: Annotated[dict[str, Any], latest]  # the DVR graph's constraints and best attempt


def fresh_input(task: str) -> dict[str, Any]:
    """The input that starts a run, on a new thread or after a finished one."""
    return {"task": task, "trajectory": [{"kind": RESET}], "visits": {RESET: 1},
            "pending_calls": [], "decision": "", "answer": "", "verdict": {},
            "outputs": {RESET: 1}, "dvr": {}}
