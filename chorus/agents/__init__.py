"""Agents: a role prompt, an adapter and an output contract, run on the shared model."""

from chorus.agents.agent import Agent, AgentReply
from chorus.agents.dividing import Division, divide
from chorus.agents.dvr import DivideVerifyRefine, DvrOutcome
from chorus.agents.roles import PlannerDecision, Verdict, caller, planner, summarizer, verifier
from chorus.agents.trajectory import Step, call_step, render_trajectory

__all__ = ["Agent", "AgentReply", "DivideVerifyRefine", "Division", "DvrOutcome",
           "PlannerDecision", "Step", "Verdict", "call_step", "caller",
           "divide", "planner", "render_trajectory", "summarizer", "verifier"]
