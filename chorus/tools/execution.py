"""Running a tool call safely: validated arguments, limits, failures as observations.

Whatever happens inside a tool, the run goes on: the agents see an Observation saying what
went wrong and can try again or give up. Tools run in a forked process by default
(chorus.tools.isolation): a hard timeout that kills, a memory cap, and a result rendered and
cut to size inside those limits.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel

from chorus.tools import isolation
from chorus.tools.tool import Tool

MAX_OBSERVATION_CHARS = 2000
TRUNCATION_MARKER = "... [truncated {omitted} characters]"


class Observation(BaseModel):
    """What a tool call produced, as the agents will read it."""

    tool: str
    arguments: dict[str, Any]
    status: Literal["ok", "invalid_arguments", "error", "timeout", "not_executed",
                    "interrupted"]
    content: str
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def render(value: Any) -> str:
    """The text an agent reads for a tool's return value; never raises (an int too long for
    `str`, an object whose repr fails: each is described instead)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except Exception:  # noqa: BLE001 - too long, circular, or a failing __str__
        pass
    if isinstance(value, int):
        return f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ is the tool's problem, not the run's
        return f"<a {type(value).__name__} that cannot be shown>"


def truncate(text: str, limit: int = MAX_OBSERVATION_CHARS) -> str:
    """At most `limit` characters (and a marker saying how many were cut), as valid UTF-8:
    lone surrogates (a JSON "\\ud800", bytes decoded with surrogateescape) become "?", as
    they could be neither stored, traced nor tokenized."""
    if len(text) > limit:
        text = text[:limit] + TRUNCATION_MARKER.format(omitted=len(text) - limit)
    return text.encode("utf-8", "replace").decode("utf-8")


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
                           content=truncate("Invalid arguments: " + "; ".join(errors), limit))
    if tool.declared_only:
        return Observation(tool=tool.name, arguments=args, status="not_executed",
                           content="Declared-only tool: the call is returned to the caller.")
    started = time.perf_counter()
    if tool.isolated and isolation.available():
        outcome = isolation.run_isolated(lambda: _call(tool, args, limit),
                                         timeout_s=tool.timeout_s, memory_mb=tool.memory_mb)
    else:
        outcome = _call_in_thread(tool, args, limit)
    # A result is cut (and made valid UTF-8) where it is made; an error may still be long.
    content = outcome.content if outcome.status == "ok" else truncate(outcome.content, limit)
    return Observation(tool=tool.name, arguments=args, status=outcome.status, content=content,
                       seconds=time.perf_counter() - started)


def _call(tool: Tool, args: dict[str, Any], limit: int) -> str:
    """The tool's result as the text an agent reads, cut to `limit` where it is made."""
    return truncate(render(tool.function(**args)), limit)


def _call_in_thread(tool: Tool, args: dict[str, Any], limit: int) -> isolation.Outcome:
    """For tools that opted out of isolation: a daemon thread, so a tool that never returns
    cannot hold the run hostage (though it may keep a core busy until it ends)."""
    outcome: list[isolation.Outcome] = []

    def work() -> None:
        try:
            outcome.append(isolation.Outcome("ok", _call(tool, args, limit)))
        except Exception as error:  # a tool's failure is an observation, not a crash
            outcome.append(isolation.Outcome("error", isolation.describe(error)))

    worker = threading.Thread(target=work, name=f"tool:{tool.name}", daemon=True)
    worker.start()
    worker.join(tool.timeout_s)
    return outcome[0] if outcome else isolation.timed_out(tool.timeout_s)
