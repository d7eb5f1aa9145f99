"""Agents: a role prompt, an adapter and an output contract, run on the shared model.

Names are imported on first use: `chorus call` needs the roles, not the DVR loop and its
repository.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chorus.agents.agent import Agent, AgentReply
    from chorus.agents.dividing import Division, divide
    from chorus.agents.dvr import DivideVerifyRefine, DvrOutcome
    from chorus.agents.roles import (
        AgentOptions,
        PlannerDecision,
        Role,
        Verdict,
        caller,
        get_role,
        planner,
        register_role,
        role_names,
        summarizer,
        verifier,
    )
    from chorus.agents.trajectory import (
        Step,
        answer_step,
        call_step,
        observation_step,
        render_trajectory,
        thought_step,
    )

_WHERE = {
    "Agent": "agent", "AgentReply": "agent", "Division": "dividing", "divide": "dividing",
    "DivideVerifyRefine": "dvr", "DvrOutcome": "dvr", "AgentOptions": "roles",
    "PlannerDecision": "roles", "Role": "roles", "Verdict": "roles", "caller": "roles",
    "get_role": "roles", "planner": "roles", "register_role": "roles", "role_names": "roles",
    "summarizer": "roles", "verifier": "roles", "Step": "trajectory",
    "answer_step": "trajectory", "call_step": "trajectory", "observation_step": "trajectory",
    "render_trajectory": "trajectory", "thought_step": "trajectory",
}

__all__ = ["Agent", "AgentOptions", "AgentReply", "DivideVerifyRefine", "Division",
           "DvrOutcome", "PlannerDecision", "Role", "Step", "Verdict", "answer_step",
           "call_step", "caller", "divide", "get_role", "observation_step", "planner",
           "register_role", "render_trajectory", "role_names", "summarizer", "thought_step",
           "verifier"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'chorus.agents' has no attribute {name!r}")
    return getattr(import_module(f"chorus.agents.{_WHERE[name]}"), name)
