"""The nodes of Divide–Verify–Refine graphs: divider, writer, `run: checks` and refiner.

They run the steps of `chorus.agents.dvr.DivideVerifyRefine` (the refiner node is one of its
refinement rounds, for one instruction), one per graph node, with
the run's progress (constraints, best attempt, counters) kept in the checkpointed `dvr` field.
The checks node's verdict passes once every constraint that can pass does: constraints in a
conflict are reported in its feedback, not refined forever.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from chorus.agents import Step, answer_step, thought_step
from chorus.agents.dividing import Division, divide
from chorus.agents.dvr import DivideVerifyRefine, DvrOutcome, answer_request
from chorus.checks import parse_constraint
from chorus.checks.compiling import CompiledConstraints
from chorus.errors import GraphSpecError
from chorus.graphs.context import GraphContext, RunScope, trace_step
from chorus.graphs.spec import AgentSpec, GraphSpec, NodeSpec
from chorus.graphs.state import RunState


def dvr_node(spec: GraphSpec, name: str, node: NodeSpec, context: GraphContext):
    if node.run == "checks":
        # The checks node stores the refiner's successes, so it records the refiner's adapter.
        refiner = next((a for a in spec.agents.values() if a.role == "refiner"), None)
        return _checks(name, context, refiner)
    agent = spec.agents[node.agent]
    if agent.role not in _ROLE_NODES:
        raise GraphSpecError(f"Agent '{node.agent}': role '{agent.role}' builds no agent and "
                             "has no graph node of its own")
    return _ROLE_NODES[agent.role](name, agent, context)


def _loop(context: GraphContext, agent: AgentSpec | None = None) -> DivideVerifyRefine:
    """Made per call: a repository that failed is dropped for that step, not for good."""
    options: dict[str, Any] = {"adapter": agent.adapter if agent else None}
    if agent is not None and agent.examples is not None:
        options["examples"] = agent.examples
    if agent is not None and agent.max_new_tokens:
        options["max_new_tokens"] = agent.max_new_tokens
    return DivideVerifyRefine(context.model, context.refinements, **options)


def _divider(name: str, agent: AgentSpec, context: GraphContext):
    def run(state: RunState, runtime: Runtime[RunScope]) -> dict[str, Any]:
        division = divide(state["task"], context.model, strategy=agent.strategy or "rules",
                          adapter=agent.adapter)
        constraints = [c.model_dump() for c in division.constraints]
        trace_step(context, runtime, name, "agent", constraints, agent=name,
                   adapter=agent.adapter)
        listed = "; ".join(c.describe() for c in division.constraints) or "none found"
        compiled = _loop(context, agent).compile(division.constraints)
        return {"visits": {name: 1}, "outputs": {name: constraints},
                "dvr": {"constraints": constraints, **compiled.to_state()},
                "trajectory": [thought_step(f"Constraints: {listed}").model_dump()]}

    return run


def _writer(name: str, agent: AgentSpec, context: GraphContext):
    def run(state: RunState, runtime: Runtime[RunScope]) -> dict[str, Any]:
        progress = state.get("dvr") or {}
        compiled = CompiledConstraints.from_state(progress)
        loop = _loop(context, agent)  # its budget holds the agent's max_new_tokens
        request = answer_request(state["task"], loop.budget(_constraints(progress)),
                                 compiled.output)
        if agent.adapter:
            request = request.model_copy(update={"adapter": agent.adapter})
        [generation] = loop.generate([request], "answer", None)
        return _answered(name, agent, context, runtime, generation)

    return run


def _refiner(name: str, agent: AgentSpec, context: GraphContext):
    def run(state: RunState, runtime: Runtime[RunScope]) -> dict[str, Any]:
        outcome = DvrOutcome.from_state(state["dvr"])
        if not outcome.failing():  # a custom route got here with nothing left to fix
            return {"visits": {name: 1}, "answer": outcome.response}
        [generation] = _loop(context, agent).refine_round([outcome])
        update = _answered(name, agent, context, runtime, generation)
        update["dvr"] = outcome.to_state()  # checked, and kept if it is the best so far
        return update

    return run


def _constraints(progress: dict[str, Any]) -> list[Any]:
    """The divided constraints a run's DVR progress holds, parsed."""
    return [parse_constraint(c) for c in progress.get("constraints", [])]


def _answered(name: str, agent: AgentSpec, context: GraphContext, runtime,
              generation) -> dict[str, Any]:
    text = generation.text.strip()
    trace_step(context, runtime, name, "agent", text, agent=name, adapter=agent.adapter,
               generation=generation)
    return {"visits": {name: 1}, "outputs": {name: text}, "answer": text,
            "trajectory": [answer_step(text).model_dump()]}


def _checks(name: str, context: GraphContext, refiner: AgentSpec | None):
    def run(state: RunState, runtime: Runtime[RunScope]) -> dict[str, Any]:
        loop = _loop(context, refiner)
        progress = state.get("dvr") or {}
        if "response" in progress:
            outcome = DvrOutcome.from_state(progress)
            if state.get("answer", "") != outcome.latest:  # a custom graph's own rewrite
                loop.observe(outcome, state.get("answer", ""))
        else:  # the first answer
            outcome = loop.start(Division(state["task"], _constraints(progress)),
                                 state.get("answer", ""),
                                 CompiledConstraints.from_state(progress))
        failing = outcome.failing()
        feedback = " ".join(outcome.best.results[i].feedback for i in failing)
        if outcome.conflicts:
            feedback = " ".join([feedback, "Conflicting constraints:",
                                 *outcome.conflicts]).strip()
        verdict = {"pass": not failing, "feedback": feedback}
        trace_step(context, runtime, name, "checks", {**verdict, "passed": [
            r.passed for r in outcome.best.results]})
        steps = [Step(kind="feedback", content=feedback).model_dump()] if feedback else []
        return {"visits": {name: 1}, "verdict": verdict, "answer": outcome.response,
                "dvr": outcome.to_state(), "trajectory": steps}

    return run


_ROLE_NODES = {"divider": _divider, "writer": _writer, "refiner": _refiner}
