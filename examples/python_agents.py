"""A graph defined in Python: tools are plain typed functions, the spec a pydantic object.

    python examples/python_agents.py "How many days are there in 3 weeks?"
"""

import sys

from chorus import load_model
from chorus.graphs import GraphRunner, GraphSpec
from chorus.tools import tool


@tool
def days_in(weeks: int) -> int:
    """Number of days in a number of weeks.

    Args:
        weeks: How many weeks.
    """
    return weeks * 7


spec = GraphSpec.model_validate({
    "name": "python_agents",
    "agents": {"caller": {"role": "caller", "max_calls": 1},
               "summarizer": {"role": "summarizer", "max_new_tokens": 60}},
    "nodes": {"call": {"agent": "caller"}, "run_tools": {"run": "tools"},
              "answer": {"agent": "summarizer"}},
    "edges": [{"from": "START", "to": "call"}, {"from": "call", "to": "run_tools"},
              {"from": "run_tools", "to": "answer"}, {"from": "answer", "to": "END"}],
})

if __name__ == "__main__":
    task = sys.argv[1] if len(sys.argv) > 1 else "How many days are there in 3 weeks?"
    runner = GraphRunner(spec, load_model(), tools=[days_in])
    result = runner.run(task, on_update=lambda node, update: print(f"[{node}]", update))
    print(result.answer)
