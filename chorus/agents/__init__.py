"""Agents: a role prompt, an adapter and an output contract, run on the shared model."""

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

__all__ = ["Agent", "AgentOptions", "AgentReply", "DivideVerifyRefine", "Division",
           "DvrOutcome", "PlannerDecision", "Role", "Step", "Verdict", "answer_step",
           "call_step", "caller", "divide", "get_role", "observation_step", "planner",
           "register_role", "render_trajectory", "role_names", "summarizer", "thought_step",
           "verifier"]
