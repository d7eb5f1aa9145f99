"""Agent = instructions (a template) + an optional adapter + an output contract.

An agent does not own a model: it is run on the shared one, and each run names the agent's
adapter, so any number of agents share one set of base weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from string import Template
from typing import Any

from chorus.agents.prompting import load_template, render
from chorus.agents.trajectory import Step, render_trajectory
from chorus.runtime import GenerationRequest, GenerationResult, Model
from chorus.runtime.chat_format import tool_listing
from chorus.runtime.outputs import OutputType, as_output
from chorus.tools.registry import ToolRegistry


@dataclass(frozen=True)
class AgentReply:
    agent: str
    value: Any  # parsed value for a constrained agent, else the text
    generation: GenerationResult


@dataclass(frozen=True)
class Agent:
    name: str
    instructions: Template | str
    adapter: str | None = None
    output: OutputType | None = None  # None: free text
    max_new_tokens: int = 256
    fields: dict[str, str] = field(default_factory=dict)  # template fields fixed at creation
    stop_on_repeated_line: bool = False  # for free text: cut a small model's loops
    # Shown the tools (full JSON Schemas, through the model's chat template where it has a
    # tool format): the planner and the caller are; the summarizer reads results instead.
    sees_tools: bool = False
    # Instructions for a trajectory with no tool result or feedback to read, which is then
    # not shown: a summarizer shown only the planner's thoughts ("To call the calculator...")
    # wrote about calls never made ("Hi there!" -> "The calculator function is called...").
    instructions_alone: Template | str | None = None

    def __post_init__(self) -> None:
        if self.output is not None:
            object.__setattr__(self, "output", as_output(self.output))

    @classmethod
    def from_template(cls, name: str, template: str | None = None, **options: Any) -> Agent:
        """An agent whose instructions are chorus/agents/prompts/<template or name>.md."""
        return cls(name=name, instructions=load_template(template or name), **options)

    def request(self, task: str, trajectory: list[Step] = (),
                tools: ToolRegistry | None = None, **fields: str) -> GenerationRequest:
        """The generation request of this agent. A template may also place the tool listing
        itself with `$tools` (custom roles); built-in roles leave that to the chat template."""
        specs = [item.to_openai() for item in tools] if tools is not None else []
        listing = tool_listing(specs) if specs else "(none)"
        instructions = self.instructions
        if self.instructions_alone is not None and not any(
                step.kind in ("observation", "feedback") for step in trajectory):
            instructions, trajectory = self.instructions_alone, []
        system = render(instructions, **{"tools": listing, **self.fields, **fields})
        user = render(load_template("user"), task=task,
                      trajectory=render_trajectory(list(trajectory)))
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        return GenerationRequest(
            messages=messages, tools=specs if self.sees_tools else (), output=self.output,
            adapter=self.adapter, max_new_tokens=self.max_new_tokens,
            stop_on_repeated_line=self.stop_on_repeated_line)

    def run(self, model: Model, task: str, trajectory: list[Step] = (),
            tools: ToolRegistry | None = None, on_text: Callable[[str], None] | None = None,
            **fields: str) -> AgentReply:
        """`on_text` receives the reply's text pieces as they are generated."""
        generation = model.complete(self.request(task, trajectory, tools, **fields),
                                    on_text=on_text)
        value = generation.value if self.output is not None else generation.text
        return AgentReply(agent=self.name, value=value, generation=generation)
