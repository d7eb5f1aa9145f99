"""Read YAML and remember the line of every key, so errors can name file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from chorus.errors import GraphSpecError
from chorus.files import read_text

Location = tuple[str | int, ...]
# Aliases let a few lines stand for billions of nodes ("billion laughs"); a graph spec is a
# few hundred. Counted on the composed nodes, each alias once, before anything expands it.
MAX_EXPANDED_NODES = 100_000


def load_yaml(path: Path) -> tuple[Any, dict[Location, int]]:
    """The parsed document and a map from each key's path to its 1-based line."""
    text = read_text(path, "graph spec", GraphSpecError)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None and _expanded_size(node, {}, path) > MAX_EXPANDED_NODES:
            raise GraphSpecError(f"{path}: the spec expands to more than "
                                 f"{MAX_EXPANDED_NODES:,} values through YAML aliases")
        data = yaml.safe_load(text)
    except RecursionError as error:
        raise GraphSpecError(f"{path}: the YAML is nested too deeply") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise GraphSpecError(f"{where}: malformed YAML: {problem}") from error
    lines: dict[Location, int] = {}
    if node is not None:
        _collect(node, (), lines)
    return data, lines


def _expanded_size(node: yaml.Node, sizes: dict[int, int | None], path: Path) -> int:
    """How many values `node` stands for once every alias is expanded (memoised by node:
    an alias is the very node it refers to)."""
    if id(node) in sizes and sizes[id(node)] is None:
        raise GraphSpecError(f"{path}:{node.start_mark.line + 1}: a YAML alias refers to "
                             "the value that contains it")
    if id(node) not in sizes:
        sizes[id(node)] = None  # being counted
        children = [part for pair in node.value for part in pair] \
            if isinstance(node, yaml.MappingNode) else \
            node.value if isinstance(node, yaml.SequenceNode) else []
        sizes[id(node)] = 1 + sum(_expanded_size(child, sizes, path) for child in children)
    return sizes[id(node)]


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
