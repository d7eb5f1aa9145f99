"""Running a tool call safely: validated arguments, a timeout, failures as observations.

Whatever happens inside a tool, the run goes on: the agents see an Observation saying what
went wrong and can try again or give up.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel

from chorus.tools.tool import Tool

MAX_OBSERVATION_CHARS = 2000
TRUNCATION_MARKER = "... [truncated {omitted} characters]"


class Observation(BaseModel):
    """What a tool call produced, as the agents will read it."""

    tool: str
    arguments: dict[str, Any]
    status: Literal["ok", "invalid_arguments", "error", "timeout", "not_executed"]
    content: str
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def render(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def truncate(text: str, limit: int = MAX_OBSERVATION_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + TRUNCATION_MARKER.format(omitted=len(text) - limit)


def argument_errors(tool: Tool, arguments: Any) -> list[str]:
    if not isinstance(arguments, dict):
        return [f"arguments must be a JSON object, got {type(arguments).__name__}"]
    validator = jsonschema.validators.validator_for(tool.parameters)(tool.parameters)
    return [f"{'/'.join(map(str, e.path)) or '(arguments)'}: {e.message}"
            for e in sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))]


def execute(tool: Tool, arguments: Any, *, limit: int = MAX_OBSERVATION_CHARS) -> Observation:
    """Validate, run with the tool's timeout, and describe the outcome."""
    args = arguments if isinstance(arguments, dict) else {}
    errors = argument_errors(tool, arguments)
    if errors:
        return Observation(tool=tool.name, arguments=args, status="invalid_arguments",
                           content="Invalid arguments: " + "; ".join(errors))
    if tool.declared_only:
        return Observation(tool=tool.name, arguments=args, status="not_executed",
                           content="Declared-only tool: the call is returned to the caller.")
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = tool.function(**args)
        except Exception as error:  # a tool's failure is an observation, not a crash
            outcome["error"] = f"{type(error).__name__}: {error}"

    started = time.perf_counter()
    # A daemon thread: a tool that never returns cannot hold the run (or the process) hostage.
    worker = threading.Thread(target=work, name=f"tool:{tool.name}", daemon=True)
    worker.start()
    worker.join(tool.timeout_s)
    seconds = time.perf_counter() - started
    if worker.is_alive():
        return Observation(tool=tool.name, arguments=args, status="timeout", seconds=seconds,
                           content=f"Timed out after {tool.timeout_s:g} s.")
    if "error" in outcome:
        return Observation(tool=tool.name, arguments=args, status="error", seconds=seconds,
                           content=truncate(outcome["error"], limit))
    return Observation(tool=tool.name, arguments=args, status="ok", seconds=seconds,
                       content=truncate(render(outcome.get("value")), limit))
