"""A set of tools by name, and the constrained output schema of a caller over them."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

from chorus.errors import ToolSpecError, UnknownToolError
from chorus.files import read_json
from chorus.runtime.outputs import ToolCalls, bound_values
from chorus.tools.tool import Tool, schema_references

MAX_ARGUMENT_STRING = 120  # characters; at most about as many tokens
# Tools shown to an agent at once: full schemas take about 190 prompt tokens per tool, and
# BM25 retrieval keeps the needed tools within the first 8 (benchmarks/RESULTS.md).
MAX_SHOWN_TOOLS = 8
MAX_TOOLS = 10_000  # in one tools file


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool] = ()):
        self._tools: dict[str, Tool] = {}
        self._index = None  # a ToolIndex, built on first use, dropped when a tool is added
        for item in tools:
            self.add(item)

    def add(self, item: Tool) -> Tool:
        if item.name in self._tools:
            raise ToolSpecError(f"Two tools are named '{item.name}'; tool names must be unique")
        self._tools[item.name] = item
        self._index = None
        return item

    def get(self, name: str) -> Tool:
        if name not in self._tools:
            close = difflib.get_close_matches(name, self._tools, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise UnknownToolError(
                f"No tool named '{name}' (known: {', '.join(self._tools) or 'none'}).{hint}")
        return self._tools[name]

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def names(self) -> list[str]:
        return list(self._tools)

    def relevant(self, request: str, limit: int = MAX_SHOWN_TOOLS) -> ToolRegistry:
        """The tools to show the agents for `request`, the one BM25 ranks best first
        (chorus.tools.retrieval): of a catalogue over `limit` tools, the `limit` best, in
        rank order; of a smaller one, all of them, the best first and the others in their
        own order (so one set of tools gives at most as many prompts as it has tools, and
        their states stay cached). Small models favour the tools listed first: each of
        Qwen2.5-Coder-0.5B's wrong choices among unrelated tools was a tool listed before
        the right one (benchmarks/RESULTS.md)."""
        index = self._tool_index()
        if len(self) > limit:
            return index.shown(request, limit)
        best = index.rank(request, 1)
        if not best or best[0].name == self.names()[0]:
            return self
        return ToolRegistry([*best, *(item for item in self if item.name != best[0].name)])

    def mentioned_in(self, request: str, besides: Collection[str] = ()) -> set[str]:
        """The tools `request` speaks of: it has a (stemmed) word of their name or
        description, as retrieval matches them (a parameter's word is not enough: "Max"
        and `max_results`). With `besides`, only by a word that is not in those tools'
        names ("Send invoice INV-7781" speaks of `void_invoice` too, but not besides
        `send_invoice`)."""
        index = self._tool_index()

        def spoken(text: str, columns: tuple[str, ...]) -> set[str]:
            return {item.name for item in index.rank(text, len(self), columns=columns)}

        if besides:
            others = set(besides)
            request = " ".join(word for word in index.words(request)
                               if not spoken(word, ("name",)) & others)
        return spoken(request, ("name", "description"))

    def _tool_index(self):
        from chorus.tools.retrieval import ToolIndex

        if self._index is None:
            self._index = ToolIndex(self)
        return self._index

    def call_schema(self, max_string_length: int = MAX_ARGUMENT_STRING) -> dict[str, Any]:
        """One tool call: a union with a branch per tool, so the arguments always match the
        chosen tool's own schema (free strings and numbers bounded, so a call always fits
        its budget).

        A tool's schema is written with itself as the root: its `$ref`s ("#/$defs/A", "#")
        would point elsewhere once nested in the union, so a schema that has any is moved
        under this schema's `$defs` and its references rebased there."""
        if not self._tools:
            raise ToolSpecError("A caller needs at least one tool")
        branches, definitions = [], {}
        for number, item in enumerate(self._tools.values()):
            arguments = bound_values(item.parameters, max_string_length)
            if any(ref.startswith("#") for ref in schema_references(arguments)):
                key = f"tool{number}"
                definitions[key] = _rebased(arguments, f"#/$defs/{key}")
                arguments = {"$ref": f"#/$defs/{key}"}
            branches.append({"type": "object", "required": ["name", "arguments"],
                             "properties": {"name": {"const": item.name},
                                            "arguments": arguments}})
        return {"anyOf": branches, **({"$defs": definitions} if definitions else {})}

    def calls(self, min_calls: int = 0, max_calls: int = 3) -> ToolCalls:
        """The output of a caller over these tools: several calls when the task needs
        several; with `min_calls=0` none says that no tool fits."""
        return ToolCalls(self.call_schema(), min_calls, max_calls)

    @classmethod
    def from_openai_file(cls, path: str | Path) -> ToolRegistry:
        """Read a JSON list of OpenAI-style function specs (declared-only tools)."""
        path = Path(path)
        specs = read_json(path, "tools file", ToolSpecError)
        if not isinstance(specs, list):
            raise ToolSpecError(f"{path}: expected a JSON list of function specs")
        if len(specs) > MAX_TOOLS:
            raise ToolSpecError(f"{path}: {len(specs):,} tools, over the limit of "
                                f"{MAX_TOOLS:,}: every schema is checked before a run "
                                "starts (about a millisecond each); split the catalogue")
        registry = cls()
        for index, spec in enumerate(specs):
            try:
                registry.add(Tool.from_openai(spec))
            except ToolSpecError as error:
                raise ToolSpecError(f"{path}: tool #{index}: {error}") from error
        return registry


def _rebased(schema: Any, root: str) -> Any:
    """`schema` with every local reference "#..." made relative to `root` ("#/$defs/t")."""
    if isinstance(schema, list):
        return [_rebased(item, root) for item in schema]
    if not isinstance(schema, dict):
        return schema
    rebased = {key: _rebased(value, root) for key, value in schema.items()}
    reference = schema.get("$ref")
    if isinstance(reference, str) and reference.startswith("#"):
        rebased["$ref"] = root + reference[1:]
    return rebased
