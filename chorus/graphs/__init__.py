"""Graph specs (YAML or Python), their compiler to LangGraph, and the runner."""

from importlib import resources
from pathlib import Path

from chorus.graphs.runner import GraphRunner, RunResult
from chorus.graphs.spec import GraphSpec, load_spec, parse_spec


def builtin_graph(name: str) -> Path:
    """Path of a built-in graph spec: tool_use, verified or dvr."""
    return Path(str(resources.files("chorus.graphs").joinpath("builtin", f"{name}.yaml")))


def resolve_graph(name_or_path: str) -> GraphSpec:
    """A built-in graph by name, or a YAML file by path."""
    path = Path(name_or_path)
    if not path.exists() and builtin_graph(name_or_path).is_file():
        path = builtin_graph(name_or_path)
    return load_spec(path)


__all__ = ["GraphRunner", "GraphSpec", "RunResult", "builtin_graph", "load_spec", "parse_spec",
           "resolve_graph"]
