"""The graph spec: agents, tools, nodes and edges, as written in YAML or built in Python.

Validation happens in two passes: pydantic checks shapes and types, then `check_references`
checks that every name points at something and that every cycle has a limit. Both report
the field path, and for YAML files the file and line.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from chorus.agents.roles import Role, get_role, role_names
from chorus.checks import parse_constraint
from chorus.errors import ChorusError, ConstraintSpecError, GraphSpecError
from chorus.graphs.yaml_lines import Location, line_of, load_yaml

START, END = "START", "END"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AgentSpec(_Strict):
    role: str = Field(description="a built-in role (planner, caller, summarizer, verifier, "
                                  "divider, writer, refiner), one registered from Python, or "
                                  "one of the spec's `roles`")
    adapter: str | None = Field(
        "auto", description="LoRA adapter: a name (CHORUS_HOME/adapters or shipped) or "
                            "folder; 'auto' (default): the role's shipped adapter when it "
                            "was trained for this base model; null: the plain base")
    max_new_tokens: int | None = Field(None, ge=1)
    max_calls: int | None = Field(None, ge=1, le=8, description="caller: calls per step")
    strategy: Literal["rules", "model", "hybrid"] | None = Field(
        None, description="divider: read constraints by rules (default), the model, or both")
    examples: int | None = Field(None, ge=0, le=8,
                                 description="refiner: past refinements retrieved as examples")
    constraints: list[dict[str, Any]] | None = Field(
        None, description="summarizer: format constraints on the answer, as `chorus dvr "
                          "--json` lists them ({type, ...}); those a grammar expresses are "
                          "met by construction")

    @field_validator("constraints")
    @classmethod
    def _known_constraints(cls, constraints: list[dict[str, Any]] | None):
        try:
            for constraint in constraints or ():
                parse_constraint(constraint)
        except ConstraintSpecError as error:
            raise ValueError(str(error)) from error
        return constraints

    @model_validator(mode="after")
    def _constraints_on_answers(self) -> AgentSpec:
        if self.constraints and self.role != "summarizer":
            raise ValueError(f"`constraints` shape a summarizer's answer; role '{self.role}' "
                             "writes no answer (for DVR graphs the divider reads them from "
                             "the task)")
        return self


class ToolSpec(_Strict):
    """A tool from an OpenAI-style function spec; `function` optionally names its code."""

    openai: dict[str, Any] = Field(description="{name, description, parameters}")
    function: str | None = Field(None, description="import path module:attribute")
    timeout_s: float | None = Field(None, gt=0)
    needs_confirmation: bool = False


class NodeSpec(_Strict):
    agent: str | None = Field(None, description="an agent of `agents`")
    run: Literal["tools", "checks"] | None = Field(
        None, description="'tools': run the pending calls; 'checks': verify the answer "
                          "against the divided constraints (DVR)")
    max_visits: int | None = Field(None, ge=1, le=10_000,
                                   description="limit that bounds a cycle")
    on_limit: str | None = Field(None, description="node to go to instead, once exhausted")

    @model_validator(mode="after")
    def _one_kind(self) -> NodeSpec:
        if (self.agent is None) == (self.run is None):
            raise ValueError("a node has exactly one of `agent` or `run`")
        if self.max_visits is not None and self.on_limit is None:
            raise ValueError("`max_visits` needs `on_limit`: where to go once it is reached")
        return self


class RouteSpec(_Strict):
    field: str = Field(description="state field to read: decision, verdict")
    cases: dict[str, str] = Field(description="value -> node")
    default: str | None = None


class EdgeSpec(_Strict):
    source: str | list[str] = Field(alias="from")
    to: str | list[str] | None = None
    route: RouteSpec | None = None

    @model_validator(mode="after")
    def _one_target(self) -> EdgeSpec:
        if (self.to is None) == (self.route is None):
            raise ValueError("an edge has exactly one of `to` or `route`")
        if isinstance(self.source, list) and not isinstance(self.to, str):
            raise ValueError("a join (a list in `from`) goes `to` exactly one node")
        return self

    @property
    def sources(self) -> list[str]:
        return [self.source] if isinstance(self.source, str) else list(self.source)

    def targets(self) -> list[str]:
        if self.route is not None:
            targets = list(self.route.cases.values())
            return targets + ([self.route.default] if self.route.default else [])
        return [self.to] if isinstance(self.to, str) else list(self.to)


class RoleSpec(_Strict):
    """A role written in the spec: its prompt, and what its reply must be and sets."""

    prompt: str = Field(description="system prompt; $tools becomes the tool list. The task "
                                    "and the steps so far come as the user message")
    output: dict[str, Any] | list[str] | None = Field(
        None, description="JSON Schema, or a list of choices, the reply must satisfy; "
                          "omitted: free text")
    writes: Literal["answer", "decision"] | None = Field(
        None, description="state field the reply sets: 'answer' (the graph's reply) or "
                          "'decision' (for routes)")
    description: str = ""
    max_new_tokens: int = Field(256, ge=1)


class ModelSpec(_Strict):
    """Which model a graph runs on, when the command line does not say (its --model,
    --backend and --base-url win)."""

    name: str | None = Field(None, description="embedded model, path, hub id, or the "
                                                "server's model name")
    backend: Literal["auto", "transformers", "llamacpp", "openai"] | None = None
    base_url: str | None = Field(None, description="an OpenAI-compatible server, e.g. "
                                                    "http://localhost:8000/v1")


class GraphSpec(_Strict):
    name: str
    # The spec file's folder: modules there are importable as tools. Not part of the YAML.
    _base_dir: Path | None = PrivateAttr(None)

    @property
    def base_dir(self) -> Path | None:
        return self._base_dir
    description: str = ""
    agents: dict[str, AgentSpec]
    tools: list[str | ToolSpec] = Field(
        default_factory=list, description="import paths of Tool objects, or OpenAI specs")
    nodes: dict[str, NodeSpec]
    edges: list[EdgeSpec]
    max_steps: int = Field(40, ge=1, le=10_000, description="hard bound on graph steps per run")
    model: ModelSpec | None = None
    roles: dict[str, RoleSpec] = Field(
        default_factory=dict, description="roles of this graph's own, by name")

    @model_validator(mode="after")
    def _references_hold(self, info: ValidationInfo) -> GraphSpec:
        """However a spec is built, its names must point at something (parse_spec checks
        this itself, to report file lines)."""
        if not (info.context or {}).get("lines_reported_by_caller"):
            problems = check_references(self)
            if problems:
                raise GraphSpecError("Invalid graph spec:\n  " + "\n  ".join(
                    f"{'.'.join(map(str, location))}: {message}"
                    for location, message in problems))
        return self

    def role(self, name: str) -> Role:
        """Role `name`: one of the spec's own, else the registry's."""
        if name in self.roles:
            written = self.roles[name]
            return Role.custom(name, written.prompt, output=written.output,
                               writes=written.writes, description=written.description,
                               max_new_tokens=written.max_new_tokens)
        return get_role(name)


def import_object(path: str, search_dir: Path | None = None) -> Any:
    """`module:attribute`. Modules beside the spec file (`search_dir`) are importable too,
    so a graph and its tools can live in one folder."""
    module_name, _, attribute = path.partition(":")
    if not attribute:
        raise ValueError(f"'{path}' is not an import path of the form module:attribute")
    if search_dir is not None and str(search_dir) not in sys.path:
        sys.path.append(str(search_dir))
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import module '{module_name}': {error}") from error
    try:
        return getattr(module, attribute)
    except AttributeError as error:
        raise ValueError(f"module '{module_name}' has no attribute '{attribute}'") from error


def check_references(spec: GraphSpec) -> list[tuple[Location, str]]:
    """Every problem a well-typed spec can still have, as (field path, message)."""
    problems: list[tuple[Location, str]] = []
    known = set(spec.nodes)
    for name in spec.roles:
        if name in role_names():
            problems.append((("roles", name), f"'{name}' is already a registered role; "
                             "give yours another name"))
            continue
        try:
            spec.role(name).agent()
        except ChorusError as error:
            problems.append((("roles", name), str(error)))
    for name, agent in spec.agents.items():
        if agent.role not in spec.roles and agent.role not in role_names():
            problems.append((("agents", name, "role"), f"unknown role '{agent.role}' (known: "
                             f"{', '.join([*role_names(), *spec.roles])})"))
    for name, node in spec.nodes.items():
        if node.agent is not None and node.agent not in spec.agents:
            problems.append((("nodes", name, "agent"), f"unknown agent '{node.agent}' "
                             f"(agents: {', '.join(spec.agents)})"))
        if node.on_limit is not None and node.on_limit not in known | {END}:
            problems.append((("nodes", name, "on_limit"), f"unknown node '{node.on_limit}'"))
    for index, edge in enumerate(spec.edges):
        for source in edge.sources:
            if source not in known | {START}:
                problems.append((("edges", index, "from"), f"unknown node '{source}'"))
        for target in edge.targets():
            if target not in known | {END}:
                problems.append((("edges", index, "route" if edge.route else "to"),
                                 f"unknown node '{target}'"))
    if not any(START in edge.sources for edge in spec.edges):
        problems.append((("edges",), "no edge leaves START"))
    problems += _unbounded_cycles(spec)
    return problems


def _unbounded_cycles(spec: GraphSpec) -> list[tuple[Location, str]]:
    """A cycle must pass through a node with `max_visits`, or a run could loop forever."""
    successors: dict[str, set[str]] = {name: set() for name in spec.nodes}
    for edge in spec.edges:
        for source in edge.sources:
            successors.setdefault(source, set()).update(edge.targets())
    bounded = {name for name, node in spec.nodes.items() if node.max_visits}
    for name in spec.nodes:
        if name not in bounded and _returns_to(name, successors, bounded):
            return [(("nodes", name), f"node '{name}' is on a cycle without a limit: give a "
                     "node of the cycle `max_visits` and `on_limit`")]
    return []


def _returns_to(start: str, successors: dict[str, set[str]], bounded: set[str]) -> bool:
    """Is there a path from `start` back to itself through unbounded nodes only?"""
    stack, seen = [start], set()
    while stack:
        for following in successors.get(stack.pop(), ()):
            if following == start:
                return True
            if following not in seen and following not in bounded:
                seen.add(following)
                stack.append(following)
    return False


def parse_spec(data: Any, source: str = "<graph>",
               lines: dict[Location, int] | None = None,
               base_dir: Path | None = None) -> GraphSpec:
    lines = lines or {}

    def where(location: Location) -> str:
        line = line_of(lines, location)
        return f"{source}:{line}" if line else source

    try:
        spec = GraphSpec.model_validate(data, context={"lines_reported_by_caller": True})
        spec._base_dir = base_dir
    except ValidationError as error:
        messages = []
        for problem in error.errors():
            location = tuple(problem["loc"])
            field = ".".join(str(part) for part in location) or "(top level)"
            messages.append(f"{where(location)}: {field}: {problem['msg']}")
        raise GraphSpecError("Invalid graph spec:\n  " + "\n  ".join(messages)) from error
    problems = check_references(spec)
    for index, entry in enumerate(spec.tools):
        path = entry if isinstance(entry, str) else entry.function
        if path is None:
            continue
        try:
            import_object(path, spec.base_dir)
        except ValueError as error:
            field = ("tools", index) if isinstance(entry, str) else ("tools", index, "function")
            problems.append((field, str(error)))
    if problems:
        lines_out = [f"{where(loc)}: {'.'.join(map(str, loc))}: {msg}" for loc, msg in problems]
        raise GraphSpecError("Invalid graph spec:\n  " + "\n  ".join(lines_out))
    return spec


def load_spec(path: str | Path) -> GraphSpec:
    path = Path(path)
    data, lines = load_yaml(path)
    return parse_spec(data, str(path), lines, base_dir=path.resolve().parent)


def export_json_schema(path: str | Path) -> None:
    """The spec's JSON Schema, for editors (schemas/graph.schema.json)."""
    schema = GraphSpec.model_json_schema(by_alias=True)
    Path(path).write_text(json.dumps(schema, indent=2) + "\n")
