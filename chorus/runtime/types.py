"""What goes into a generation and what comes out, shared by every backend."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from chorus.errors import ChorusError
from chorus.runtime.outputs import OutputType, as_output

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}
TextCallback = Callable[[int, str], None]  # (row index, new text)
FinishReason = Literal["stop", "length", "stop_string", "repetition"]


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    rank: int
    target_modules: tuple[str, ...]
    parameters: int
    source: str | None  # directory it was loaded from, None if created in memory

    @property
    def size_bytes(self) -> int:
        return self.parameters * 4


class GenerationRequest(BaseModel):
    """One call: messages, how to decode, which adapter, and an optional output constraint."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    messages: list[Message]
    # OpenAI function specs shown to the model (chorus.runtime.chat_format renders them).
    tools: tuple[dict[str, Any], ...] = ()
    output: OutputType | None = None
    adapter: str | None = None  # None: the plain base model
    max_new_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)  # 0: greedy
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # Small models fall into loops ("x = 1\nx = 1\n..."): end the reply where a line
    # repeats one it already wrote.
    stop_on_repeated_line: bool = False

    @field_validator("messages", mode="before")
    @classmethod
    def _text_is_one_user_message(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [{"role": "user", "content": value}]
        return value

    @field_validator("tools", mode="before")
    @classmethod
    def _tools_as_tuple(cls, value: Any) -> Any:
        return tuple(value or ())

    @field_validator("output", mode="before")
    @classmethod
    def _coerce_output(cls, value: Any) -> Any:
        return None if value is None else as_output(value)

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop_string(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else tuple(value)


class GenerationResult(BaseModel):
    """Text out, with its cost. `value` is the parsed output of a constrained call."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    text: str
    value: Any = None
    finish_reason: FinishReason
    prompt_tokens: int
    new_tokens: int
    latency_s: float
    adapter: str | None = None
    error: str | None = None  # set when a constrained row of a batch failed
    _failure: ChorusError | None = PrivateAttr(default=None)

    def fail(self, error: ChorusError) -> None:
        self._failure = error
        self.error = str(error)

    def raise_for_error(self) -> None:
        if self._failure is not None:
            raise self._failure

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.latency_s if self.latency_s > 0 else 0.0
