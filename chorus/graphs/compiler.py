"""Compile a GraphSpec into a LangGraph StateGraph whose nodes run chorus agents and tools.

Tool calls fan out with `Send`, one task per call: LangGraph checkpoints each finished task's
writes, and the tool journal (chorus.memory.journal) covers the moments before that write,
so a run resumed after a crash runs no tool call twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.config import get_config
from langgraph.graph import END as LG_END
from langgraph.graph import START as LG_START
from langgraph.graph import StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send, interrupt

from chorus.agents import Agent, AgentOptions, Step, observation_step
from chorus.errors import ChorusError, GraphSpecError
from chorus.graphs.context import GraphContext, RunScope, emit, trace_step
from chorus.graphs.dvr_nodes import dvr_node
from chorus.graphs.spec import END, START, GraphSpec, NodeSpec, ToolSpec, import_object
from chorus.graphs.state import RunState
from chorus.runtime import library
from chorus.tools import Tool, ToolRegistry, execute
from chorus.tools.execution import Observation


def build_tools(spec: GraphSpec, extra: list[Tool] = ()) -> ToolRegistry:
    registry = ToolRegistry(extra)
    for entry in spec.tools:
        if isinstance(entry, str):
            found = import_object(entry, spec.base_dir)
            if not isinstance(found, Tool):
                found = Tool.from_function(found)
            registry.add(found)
        else:
            registry.add(_tool_from_spec(entry, spec.base_dir))
    return registry


def _tool_from_spec(entry: ToolSpec, base_dir) -> Tool:
    function = import_object(entry.function, base_dir) if entry.function else None
    options: dict[str, Any] = {"needs_confirmation": entry.needs_confirmation}
    if entry.timeout_s:
        options["timeout_s"] = entry.timeout_s
    return Tool.from_openai(entry.openai, function, **options)


def build_agent(spec: GraphSpec, name: str, tools: ToolRegistry) -> Agent:
    """Agent `name` of the spec, as its role builds it with the spec's options."""
    agent = spec.agents[name]
    options = AgentOptions(adapter=agent.adapter, tools=tools, max_calls=agent.max_calls,
                           max_new_tokens=agent.max_new_tokens,
                           constraints=tuple(agent.constraints or ()))
    try:
        return spec.role(agent.role).agent(options)
    except ChorusError as error:
        raise GraphSpecError(f"Agent '{name}' ({agent.role}): {error}") from error


def with_adapters(spec: GraphSpec, model) -> GraphSpec:
    """The spec with each agent's adapter resolved on this model ('auto' -> the role's
    adapter or the plain base), loading the named ones once, before any node runs."""
    agents = {name: agent.model_copy(update={"adapter": library.resolve(model, agent.role,
                                                                         agent.adapter)})
              for name, agent in spec.agents.items()}
    resolved = spec.model_copy(update={"agents": agents})
    resolved._base_dir = spec.base_dir
    return resolved


def compile_graph(spec: GraphSpec, context: GraphContext, checkpointer=None):
    """The LangGraph graph of `spec`; run it with `context=RunScope(...)` for traces and
    live events."""
    spec = with_adapters(spec, context.model)
    graph = StateGraph(RunState, context_schema=RunScope)
    for name, node in spec.nodes.items():
        graph.add_node(name, _node_function(spec, name, node, context))
    for edge in spec.edges:
        sources = [LG_START if s == START else s for s in edge.sources]
        if len(sources) > 1:  # a join: wait for every source
            graph.add_edge(sources, _lg(edge.to))
            continue
        graph.add_conditional_edges(sources[0], _router(spec, edge))
    return graph.compile(checkpointer=checkpointer)


def _lg(target: str) -> str:
    return LG_END if target == END else target


def _router(spec: GraphSpec, edge) -> Callable[[RunState], Any]:
    """Where to go after a node: a fixed target, several (fan-out) or a route on a state
    field; exhausted nodes are replaced by their `on_limit`; tools nodes get one Send per
    pending call."""

    def resolve(target: str, state: RunState) -> list[Any]:
        seen = set()
        while target != END and (node := spec.nodes[target]).max_visits is not None \
                and state.get("visits", {}).get(target, 0) >= node.max_visits:
            if target in seen:
                break
            seen.add(target)
            target = node.on_limit
        if target == END:
            return [LG_END]
        if spec.nodes[target].run == "tools":
            calls = state.get("pending_calls") or [None]
            return [Send(target, {"call": call, "task": state.get("task", "")})
                    for call in calls]
        return [target]

    def route(state: RunState) -> list[Any]:
        if edge.route is None:
            targets = [edge.to] if isinstance(edge.to, str) else edge.to
        else:
            value = _field(state, edge.route.field)
            target = edge.route.cases.get(value, edge.route.default)
            if target is None:
                raise GraphSpecError(
                    f"Route on '{edge.route.field}' got {value!r}, which has no case and "
                    "there is no default")
            targets = [target]
        return [step for target in targets for step in resolve(target, state)]

    return route


def _field(state: RunState, path: str) -> str:
    value: Any = state
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return str(value).lower() if isinstance(value, bool) else str(value)


def _node_function(spec: GraphSpec, name: str, node: NodeSpec, context: GraphContext):
    if node.run == "tools":
        return _tools_node(name, context)
    role = None if node.run == "checks" else spec.role(spec.agents[node.agent].role)
    if role is None or role.build is None:  # checks and the DVR roles run steps of their own
        return dvr_node(spec, name, node, context)
    agent = build_agent(spec, node.agent, context.tools)

    def run_agent(state: RunState, runtime: Runtime[RunScope]) -> dict[str, Any]:
        steps = [Step.model_validate(step) for step in state.get("trajectory", [])]
        emit(runtime, "agent_start", name, role=role.name, adapter=agent.adapter,
             answers=role.answers)
        # Of a large catalogue the agents see the tools most relevant to the task; a caller
        # is then built over those, so its grammar offers only the tools it was shown.
        shown = context.tools.relevant(state["task"])
        current = agent if shown is context.tools or not role.needs_tools \
            else build_agent(spec, node.agent, shown)
        reply = current.run(context.model, state["task"], steps, shown,
                            on_text=lambda text: emit(runtime, "token", name, text=text))
        value = role.settle(reply.value, state["task"], context.tools, steps)
        output = value.model_dump(by_alias=True) if hasattr(value, "model_dump") else value
        emit(runtime, "agent_done", name, role=role.name, output=output,
             generation=reply.generation, answers=role.answers,
             headline=role.headline(output))
        trace_step(context, runtime, name, "agent", output, agent=agent.name,
                   adapter=agent.adapter, generation=reply.generation,
                   constraint=type(agent.output).__name__ if agent.output else None)
        return {"visits": {name: 1}, "outputs": {name: output}, **role.update(value)}

    return run_agent


def _confirmed(tool: str, arguments: dict[str, Any]) -> bool:
    """Pause the run (a LangGraph interrupt, checkpointed) until the user answers; the run
    resumes with True or False. The node re-runs from its start on resume, so nothing
    before this point may have side effects."""
    answer = interrupt({"confirm": tool, "arguments": arguments})
    return answer is True


# LangGraph's id of a task, the same when a run resumes it: the journal's key. Its name is
# internal to LangGraph (tests/test_graphs_tiny.py fails if it ever stops being set).
TASK_ID_KEY = "__pregel_task_id"
INTERRUPTED = ("This call was interrupted when the process stopped, before it finished; it "
               "may or may not have taken effect. Check before calling it again.")


def _execute_once(context: GraphContext, tool, arguments: dict[str, Any]) -> Observation:
    """Run a call at most once per graph task, through the journal (chorus.memory.journal):
    a resumed run replays a finished call's observation and reports an unfinished one."""
    configurable = get_config().get("configurable", {})
    thread, task = configurable.get("thread_id"), configurable.get(TASK_ID_KEY)
    if context.journal is None or thread is None or task is None:
        return execute(tool, arguments)
    started, recorded = context.journal.recorded(thread, task)
    if recorded is not None:
        return Observation.model_validate(recorded)
    if started:
        return Observation(tool=tool.name, arguments=arguments, status="interrupted",
                           content=INTERRUPTED)
    context.journal.start(thread, task, tool.name, arguments)
    observation = execute(tool, arguments)
    context.journal.finish(thread, task, observation.model_dump())
    return observation


def _tools_node(name: str, context: GraphContext):
    def run_call(payload: dict[str, Any], runtime: Runtime[RunScope]) -> dict[str, Any]:
        call = payload.get("call")
        if call is None:
            step = Step(kind="observation", content="No tool call was made.")
        else:
            tool = context.tools.get(call["name"])
            arguments = call.get("arguments", {})
            if tool.needs_confirmation and not _confirmed(tool.name, arguments):
                observation = Observation(tool=tool.name, arguments=arguments,
                                          status="not_executed",
                                          content="The user declined to run this call.")
            else:
                emit(runtime, "tool_call", name, tool=tool.name, arguments=arguments)
                observation = _execute_once(context, tool, arguments)
            emit(runtime, "tool_result", name, tool=tool.name, status=observation.status,
                 content=observation.content)
            step = observation_step(call["name"], observation.content)
            trace_step(context, runtime, name, "tool", observation.model_dump())
        return {"trajectory": [step.model_dump()], "visits": {name: 1}}

    return run_call
