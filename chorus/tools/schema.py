"""JSON Schema for a Python function's arguments, from its type hints and docstring."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, get_type_hints

from pydantic import ConfigDict, TypeAdapter, create_model
from pydantic.errors import PydanticSchemaGenerationError

from chorus.errors import ToolSpecError

_ARGUMENT = re.compile(r"^(\s+)\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_ARGUMENT_SECTIONS = {"Args", "Arguments", "Parameters"}


def parse_docstring(function: Callable) -> tuple[str, dict[str, str]]:
    """Summary (text before the first section) and per-argument descriptions of a
    Google-style docstring. Lines indented deeper than an argument continue it."""
    summary: list[str] = []
    arguments: dict[str, str] = {}
    section: str | None = None
    argument_indent: int | None = None
    current: str | None = None
    for line in (inspect.getdoc(function) or "").splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            section, current = line.strip()[:-1], None
            continue
        if section is None:
            summary.append(line.strip())
        elif section in _ARGUMENT_SECTIONS and line.strip():
            match = _ARGUMENT.match(line)
            indent = len(line) - len(line.lstrip())
            if match and argument_indent in (None, indent):
                argument_indent = indent
                current = match.group(2)
                arguments[current] = match.group(3).strip()
            elif current is not None:
                arguments[current] = f"{arguments[current]} {line.strip()}".strip()
    return " ".join(part for part in summary if part), arguments


def arguments_schema(function: Callable) -> dict[str, Any]:
    """The JSON Schema of `function`'s keyword arguments: types from hints, defaults make
    arguments optional, descriptions from the docstring, no undeclared fields."""
    _, descriptions = parse_docstring(function)
    try:
        hints = get_type_hints(function)
    except Exception as error:
        raise ToolSpecError(
            f"Cannot read the type hints of {function.__name__}: {error}") from error
    fields: dict[str, Any] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ToolSpecError(
                f"Tool {function.__name__}: *{name} arguments cannot be described to a model; "
                "declare each argument explicitly")
        if name not in hints:
            raise ToolSpecError(
                f"Tool {function.__name__}: argument '{name}' needs a type hint (e.g. {name}: str)")
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[name] = (hints[name], default)
    try:
        model = create_model(f"{function.__name__}_arguments",
                             __config__=ConfigDict(extra="forbid"), **fields)
        schema = TypeAdapter(model).json_schema()
    except (PydanticSchemaGenerationError, TypeError) as error:
        raise ToolSpecError(
            f"Tool {function.__name__}: unsupported argument type: {error}") from error
    schema.pop("title", None)
    for name, prop in schema.get("properties", {}).items():
        prop.pop("title", None)
        if name in descriptions:
            prop["description"] = descriptions[name]
    return schema
