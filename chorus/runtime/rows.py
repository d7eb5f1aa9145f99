"""Per-row bookkeeping of a batched generation: budgets, stop strings and streamed text.

`generate` calls a stopping criterion once per step with every row's tokens, which is the one
place that sees each row grow; this class uses it to stop rows independently and to stream
each row's new text to a callback.
"""

from __future__ import annotations

import torch
from transformers import StoppingCriteria

from chorus.runtime.types import FinishReason, TextCallback


def repeated_line_start(text: str) -> int | None:
    """Where the last complete line starts, if it repeats an earlier non-empty line."""
    end = text.rfind("\n")
    if end < 0:
        return None
    lines = text[:end].split("\n")
    last = lines[-1].strip()
    if not last or last not in (line.strip() for line in lines[:-1]):
        return None
    return end - len(lines[-1])


class RowTracker(StoppingCriteria):
    def __init__(self, *, budgets: list[int], stops: list[tuple[str, ...]],
                 matchers: list, eos_ids: set[int], tokenizer, on_text: TextCallback | None,
                 stop_on_repeat: list[bool] | None = None):
        rows = len(budgets)
        self.budgets = budgets
        self.stops = stops
        self.matchers = matchers
        self.eos_ids = eos_ids
        self.tokenizer = tokenizer
        self.on_text = on_text
        self.stop_on_repeat = stop_on_repeat or [False] * rows
        self.finished = [False] * rows
        self.reasons: list[FinishReason] = ["length"] * rows
        self.token_ids: list[list[int]] = [[] for _ in range(rows)]
        self.texts = [""] * rows
        self._emitted = [0] * rows

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        for row in range(len(self.budgets)):
            if not self.finished[row]:
                self._advance(row, int(input_ids[row, -1]))
        return torch.tensor(self.finished, dtype=torch.bool, device=input_ids.device)

    def _advance(self, row: int, token: int) -> None:
        if token in self.eos_ids:
            self._finish(row, "stop")
            return
        self.token_ids[row].append(token)
        matcher = self.matchers[row]
        if matcher is not None:
            matcher.consume_token(token)
        text = self.tokenizer.decode(self.token_ids[row], skip_special_tokens=True)
        self.texts[row] = text
        for stop in self.stops[row]:
            cut = text.find(stop)
            if cut >= 0:
                self.texts[row] = text[:cut]
                self._finish(row, "stop_string")
                return
        if self.stop_on_repeat[row]:
            cut = repeated_line_start(text)
            if cut is not None:
                self.texts[row] = text[:cut].rstrip()
                self._finish(row, "repetition")
                return
        if len(self.token_ids[row]) >= self.budgets[row]:
            self._finish(row, "length")
            return
        if matcher is not None and matcher.is_stopped():
            self._finish(row, "stop")
            return
        self._stream(row, final=False)

    def _finish(self, row: int, reason: FinishReason) -> None:
        self.finished[row] = True
        self.reasons[row] = reason
        self._stream(row, final=True)

    def _stream(self, row: int, *, final: bool) -> None:
        if self.on_text is None:
            return
        text = self.texts[row]
        end = len(text)
        if not final:
            # Hold back what could be the start of a stop string or a split character.
            hold = max((len(s) - 1 for s in self.stops[row]), default=0)
            end = max(self._emitted[row], end - hold)
            if self.stop_on_repeat[row]:  # a line is shown once it is known not to repeat
                end = max(self._emitted[row], min(end, text.rfind("\n")))
            while end > self._emitted[row] and text[end - 1] == "\ufffd":
                end -= 1
        if end > self._emitted[row]:
            self.on_text(row, text[self._emitted[row]:end])
            self._emitted[row] = end
