"""Live events of a graph run and tools that must be confirmed first (tiny model)."""

from __future__ import annotations

from pathlib import Path

import yaml

from chorus.chat.session import ChatSession
from chorus.chat.transcript import Transcripts
from chorus.graphs import GraphRunner, load_spec
from chorus.tools import Tool

CALLED: list[str] = []


def delete_notes(name: str) -> str:
    """Delete a notes file.

    Args:
        name: The file name.
    """
    CALLED.append(name)
    return f"deleted {name}"


def _careful(tmp_path: Path) -> Path:
    path = tmp_path / "careful.yaml"
    path.write_text(yaml.safe_dump({
        "name": "careful",
        "agents": {"caller": {"role": "caller", "max_calls": 1},
                   "summarizer": {"role": "summarizer", "max_new_tokens": 8}},
        "nodes": {"call": {"agent": "caller"}, "run_tools": {"run": "tools"},
                  "answer": {"agent": "summarizer"}},
        "edges": [{"from": "START", "to": "call"}, {"from": "call", "to": "run_tools"},
                  {"from": "run_tools", "to": "answer"}, {"from": "answer", "to": "END"}]}))
    return path


def _tool() -> Tool:
    # Names from a list: the tiny model's free text would be a made-up value, not called.
    spec = {"name": "delete_notes", "description": "Delete a notes file.",
            "parameters": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "enum": ["notes.txt", "todo.txt"]}}}}
    # It records calls in this process (CALLED), so it runs here, not in a forked child.
    return Tool.from_openai(spec, delete_notes, needs_confirmation=True, isolated=False)


def test_events_follow_the_run_and_tokens_rebuild_each_reply(tiny, tmp_path):
    runner = GraphRunner(load_spec(_careful(tmp_path)), tiny, tools=[_tool()],
                         store=tmp_path / "runs")
    events = []
    result = runner.run("Delete notes", events=events.append, confirm=lambda _: True)
    kinds = [(e.kind, e.node) for e in events if e.kind != "token"]
    assert kinds == [("agent_start", "call"), ("agent_done", "call"),
                     ("tool_call", "run_tools"), ("tool_result", "run_tools"),
                     ("agent_start", "answer"), ("agent_done", "answer")]
    streamed = "".join(e.data["text"] for e in events if e.kind == "token" and
                       e.node == "answer")
    assert streamed == result.answer
    start = events[0]
    assert start.data == {"role": "caller", "adapter": None, "answers": False}


def test_without_confirmation_a_tool_that_needs_it_is_not_run(tiny, tmp_path):
    CALLED.clear()
    runner = GraphRunner(load_spec(_careful(tmp_path)), tiny, tools=[_tool()],
                         store=tmp_path / "runs")
    asked = []
    result = runner.run("Delete notes", confirm=lambda request: asked.append(request) or False)
    assert CALLED == []
    assert asked and asked[0]["confirm"] == "delete_notes"
    observations = [s["content"] for s in result.state["trajectory"]
                    if s["kind"] == "observation"]
    assert observations == ["delete_notes: The user declined to run this call."]
    runner.run("Delete notes")  # nobody to ask: declined as well
    assert CALLED == []
    runner.run("Delete notes", confirm=lambda _: True)
    assert len(CALLED) == 1


def test_a_chat_turn_stopped_midway_is_left_out_of_the_next_task(tiny, tmp_path):
    transcripts = Transcripts(tmp_path / "chat.sqlite")
    session = ChatSession(load_spec(_careful(tmp_path)), tiny, transcripts, tools=[_tool()],
                          store=tmp_path / "runs")

    def stop(event):
        if event.kind == "agent_start":
            raise KeyboardInterrupt

    try:
        session.ask("first question", events=stop)
    except KeyboardInterrupt:
        pass
    session.ask("second question", confirm=lambda _: False)
    assert [(m.role, m.status) for m in session.history()] == [
        ("user", "stopped"), ("user", "done"), ("assistant", "done")]
    assert session._task("third") == ("user: second question\nassistant: "
                                      f"{session.history()[-1].content}\nuser: third")
    assert "**You:** _(stopped)_\n\nfirst question" in session.markdown()
