"""Tools the agents call: typed functions or OpenAI specs, validated and run safely."""

from chorus.tools.builtin import calculator, current_datetime, file_reader_tool, sqlite_query_tool
from chorus.tools.execution import Observation, execute
from chorus.tools.registry import ToolRegistry
from chorus.tools.tool import Tool, tool

__all__ = ["Observation", "Tool", "ToolRegistry", "calculator", "current_datetime", "execute",
           "file_reader_tool", "sqlite_query_tool", "tool"]
