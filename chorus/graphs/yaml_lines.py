"""Read YAML and remember the line of every key, so errors can name file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from chorus.errors import GraphSpecError

Location = tuple[str | int, ...]


def load_yaml(path: Path) -> tuple[Any, dict[Location, int]]:
    """The parsed document and a map from each key's path to its 1-based line."""
    try:
        text = path.read_text()
    except OSError as error:
        raise GraphSpecError(f"Cannot read graph spec {path}: {error}") from error
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise GraphSpecError(f"{where}: malformed YAML: {problem}") from error
    lines: dict[Location, int] = {}
    if node is not None:
        _collect(node, (), lines)
    return data, lines


def _collect(node: yaml.Node, location: Location, lines: dict[Location, int]) -> None:
    lines.setdefault(location, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*location, key.value)
            lines[child] = key.start_mark.line + 1
            _collect(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect(item, (*location, index), lines)


def line_of(lines: dict[Location, int], location: Location) -> int | None:
    """The line of `location`, or of its nearest ancestor that has one."""
    for end in range(len(location), -1, -1):
        if location[:end] in lines:
            return lines[location[:end]]
    return None
