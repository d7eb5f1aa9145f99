"""Tool retrieval for large catalogues: BM25 over tool names, descriptions and parameters."""

import json
from pathlib import Path

from chorus.tools import Tool, ToolRegistry
from chorus.tools.registry import MAX_SHOWN_TOOLS
from chorus.tools.retrieval import ToolIndex

SUITE = Path(__file__).parent.parent / "benchmarks" / "data" / "suite_tools.json"


def _tool(name: str, description: str, **parameters: str) -> Tool:
    return Tool.from_openai({"name": name, "description": description, "parameters": {
        "type": "object", "properties": {key: {"type": "string", "description": text}
                                         for key, text in parameters.items()}}})


def test_a_small_catalogue_is_shown_whole_with_the_best_ranked_tool_first():
    tools = ToolRegistry([_tool("a", "x"), _tool("b", "y"), _tool("c", "z")])
    assert tools.relevant("anything", limit=3) is tools  # no word matches: as it is
    assert tools.relevant("the x", limit=3) is tools  # the best one is first already
    assert tools.relevant("the z", limit=3).names() == ["c", "a", "b"]


def test_the_tools_a_request_is_about_come_first():
    tools = ToolRegistry.from_openai_file(SUITE)
    assert len(tools) > MAX_SHOWN_TOOLS
    shown = tools.relevant("Are there ferries from Dover to Calais this evening?", limit=3)
    assert len(shown) == 3 and "get_ferry_departures" in shown
    # parameter descriptions count too: only a parameter mentions the word "invoice"
    index = ToolIndex(ToolRegistry([_tool("send_document", "Send a document.",
                                          kind="invoice or receipt"),
                                    _tool("play_music", "Play a song.")]))
    assert [t.name for t in index.rank("please send the invoice", 1)] == ["send_document"]


def test_requests_without_a_matching_word_still_get_tools_to_choose_from():
    tools = ToolRegistry.from_openai_file(SUITE)
    shown = tools.relevant("12 * 12", limit=4)
    assert len(shown) == 4
    assert tools.relevant("the a of", limit=4).names() == tools.names()[:4]


def test_adding_a_tool_refreshes_the_index():
    tools = ToolRegistry([_tool(f"tool_{n}", f"does thing {n}") for n in range(10)])
    tools.relevant("thing 3", limit=2)
    tools.add(_tool("get_moon_phase", "Phase of the moon on a date."))
    assert "get_moon_phase" in tools.relevant("moon phase tonight", limit=2)


def test_every_suite_request_keeps_its_tools_within_the_shown_ones():
    """What benchmarks/tool_retrieval.py measures, as a floor: on the suite's 48 tools the
    first eight hold every tool a request needs."""
    tools = ToolRegistry.from_openai_file(SUITE)
    lines = (SUITE.parent / "suite_cases.jsonl").read_text().splitlines()
    for case in map(json.loads, lines):
        shown = tools.relevant(case["request"])
        assert all(call["name"] in shown for call in case["calls"]), case["request"]
