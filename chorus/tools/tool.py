"""Tool: a name, a description, an argument schema, and (usually) a function to run.

Tools come from typed Python functions (`@tool`) or from OpenAI-style function specs. A tool
built from a spec without a function is "declared only": its calls are returned, not run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chorus.errors import ToolSpecError
from chorus.runtime.outputs import schema_problem
from chorus.tools.isolation import DEFAULT_MEMORY_MB
from chorus.tools.schema import arguments_schema, parse_docstring

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
DEFAULT_TIMEOUT_S = 30.0
# Far deeper than any real tool's arguments, far shallower than Python's recursion limit
# (every layer that walks a schema recurses).
MAX_SCHEMA_DEPTH = 40


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments object
    function: Callable[..., Any] | None = field(default=None, compare=False)
    timeout_s: float = DEFAULT_TIMEOUT_S
    needs_confirmation: bool = False  # ask the user before running (interactive sessions)
    # Run in a forked process that the timeout kills (chorus.tools.isolation). A tool that
    # must change this process's objects opts out; its timeout then only stops the waiting.
    isolated: bool = True
    memory_mb: int = DEFAULT_MEMORY_MB  # allocation allowed to an isolated call

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ToolSpecError(
                f"Invalid tool name {self.name!r}: use letters, digits, '_', '.' or '-' "
                "(at most 64), starting with a letter or '_'")
        if not isinstance(self.description, str):
            raise ToolSpecError(f"Tool {self.name}: the description must be text, not "
                                f"{type(self.description).__name__}")
        if not isinstance(self.parameters, dict):
            raise ToolSpecError(f"Tool {self.name}: parameters must be a JSON object")
        if _depth(self.parameters) > MAX_SCHEMA_DEPTH:
            raise ToolSpecError(f"Tool {self.name}: parameters nest deeper than "
                                f"{MAX_SCHEMA_DEPTH} levels")
        if self.parameters.get("type", "object") != "object":
            raise ToolSpecError(f"Tool {self.name}: parameters must be a JSON Schema of type "
                                f"object, not {self.parameters.get('type')!r}")
        problem = schema_problem(self.parameters) or _reference_problem(self.parameters) \
            or _required_problem(self.parameters)
        if problem:
            raise ToolSpecError(f"Tool {self.name}: parameters are not valid JSON Schema "
                                f"{problem}")
        if not 0 < self.timeout_s < math.inf:
            raise ToolSpecError(f"Tool {self.name}: timeout_s must be a positive number")
        if self.memory_mb <= 0:
            raise ToolSpecError(f"Tool {self.name}: memory_mb must be positive")

    @property
    def declared_only(self) -> bool:
        return self.function is None

    @classmethod
    def from_function(cls, function: Callable[..., Any], *, name: str | None = None,
                      description: str | None = None, **options: Any) -> Tool:
        """`options`: timeout_s, needs_confirmation, isolated, memory_mb."""
        summary, _ = parse_docstring(function)
        return cls(name=name or function.__name__, description=description or summary,
                   parameters=arguments_schema(function), function=function, **options)

    @classmethod
    def from_openai(cls, spec: dict[str, Any], function: Callable[..., Any] | None = None,
                    **options: Any) -> Tool:
        """From `{"name", "description", "parameters"}`, also accepted wrapped as
        `{"type": "function", "function": {...}}`."""
        if not isinstance(spec, dict):
            raise ToolSpecError(f"A tool spec must be a JSON object, got {type(spec).__name__}")
        if spec.get("type") == "function" and isinstance(spec.get("function"), dict):
            spec = spec["function"]
        if "name" not in spec:
            raise ToolSpecError(f"Tool spec without a 'name': {str(spec)[:120]}")
        parameters = spec.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            raise ToolSpecError(f"Tool {spec['name']}: 'parameters' must be a JSON object")
        return cls(name=spec["name"], description=spec.get("description", ""),
                   parameters=parameters, function=function, **options)

    def to_openai(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "parameters": self.parameters}


def _depth(value: Any) -> int:
    """Nesting depth of lists and objects, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_SCHEMA_DEPTH:
                children = item.values() if isinstance(item, dict) else item
                stack.extend((child, depth + 1) for child in children)
    return deepest


def schema_references(schema: Any) -> list[str]:
    """Every `$ref` string in a JSON Schema, in order."""
    if isinstance(schema, list):
        return [ref for item in schema for ref in schema_references(item)]
    if not isinstance(schema, dict):
        return []
    own = [schema["$ref"]] if isinstance(schema.get("$ref"), str) else []
    return own + [ref for value in schema.values() for ref in schema_references(value)]


def _reference_problem(schema: dict[str, Any]) -> str | None:
    """Why a `$ref` cannot be followed inside this schema: only local ones ("#/...") can,
    as tools are shown to models whole, and each must point at something."""
    for reference in schema_references(schema):
        if not reference.startswith("#"):
            return f"at $ref {reference!r}: only references inside the schema (#/...) work"
        target: Any = schema
        for part in filter(None, reference[1:].split("/")):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                return f"at $ref {reference!r}: nothing there"
    return None


def _required_problem(schema: dict[str, Any]) -> str | None:
    """A required argument that the schema gives no way to write (no such property, and
    arguments are closed objects) makes every call impossible."""
    required = schema.get("required", [])
    properties = schema.get("properties", {})
    missing = [name for name in required if name not in properties]
    if missing and not schema.get("additionalProperties"):
        return f"at required: {', '.join(map(repr, missing))} not among the properties"
    return None


def tool(function: Callable[..., Any] | None = None, **options: Any):
    """Turn a typed function into a Tool: `@tool` or `@tool(timeout_s=5, name="x")`,
    `@tool(isolated=False)` for a tool that must run in this process.
    The docstring's summary describes the tool, its `Args:` section the arguments."""
    if function is None:
        return lambda wrapped: Tool.from_function(wrapped, **options)
    return Tool.from_function(function, **options)
