"""Tools the agents call: typed functions or OpenAI specs, validated and run safely."""

from chorus.tools.execution import Observation, execute
from chorus.tools.registry import ToolRegistry
from chorus.tools.tool import Tool, tool

_BUILT_IN = ("calculator", "current_datetime", "file_reader_tool", "sqlite_query_tool")


def __getattr__(name: str):
    # The built-in tools are built on first use: their schemas cost every `chorus call`
    # 15 ms of import, and a tools file needs none of them.
    if name in _BUILT_IN:
        from chorus.tools import builtin

        return getattr(builtin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Observation", "Tool", "ToolRegistry", *_BUILT_IN, "execute", "tool"]
