"""Run by tests/test_graphs_tiny.py in a child process that the test kills mid-run.

Usage: python resume_graph.py MODEL_DIR STORE THREAD LOG
The `record` tool appends a line to LOG when it starts; while HANG_ON_CALL equals the number
of lines, it sleeps so that the parent can kill the process in the middle of that call.
"""

import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Literal

from chorus import load_model
from chorus.agents import get_role, register_role
from chorus.graphs import GraphRunner, GraphSpec
from chorus.tools import tool

model_dir, store, thread, log = sys.argv[1:5]


@tool
def record(note: Literal["a", "b"]) -> str:
    """Record a note.

    Args:
        note: The note.
    """
    with open(log, "a") as handle:
        handle.write(f"{note}\n")
    calls = len(Path(log).read_text().splitlines())
    if os.environ.get("HANG_ON_CALL") == str(calls):
        time.sleep(600)
    return f"recorded {note} as call {calls}"


def _next_note(_calls, _request, _tools, steps=()):
    """The calls this test needs, whatever the tiny model wrote: note "a", then "b" (a
    caller does not make a call again that the run has made)."""
    made = sum(step.kind == "call" for step in steps)
    return [{"name": "record", "arguments": {"note": "ab"[made]}}]


register_role(replace(get_role("caller"), name="recorder", settle=_next_note))
spec = GraphSpec.model_validate({
    "name": "two_steps",
    "agents": {"caller": {"role": "recorder", "max_calls": 1}},
    "nodes": {"call1": {"agent": "caller"}, "tools1": {"run": "tools"},
              "call2": {"agent": "caller"}, "tools2": {"run": "tools"}},
    "edges": [{"from": "START", "to": "call1"}, {"from": "call1", "to": "tools1"},
              {"from": "tools1", "to": "call2"}, {"from": "call2", "to": "tools2"},
              {"from": "tools2", "to": "END"}],
})
runner = GraphRunner(spec, load_model(model_dir, dtype="float32", show_progress=False),
                     tools=[record], store=store)
result = runner.run("Record two notes.", thread_id=thread)
print("RESUMED" if result.resumed else "FRESH")
for step in result.state["trajectory"]:
    print(step["kind"], step["content"])
