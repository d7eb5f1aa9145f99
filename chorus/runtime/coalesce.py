"""Calls made at the same moment from different threads run as one batched forward.

Parallel branches of a graph each call the model on their own thread. Run one by one they
would queue on the backend's lock; here the first caller becomes the *leader*: it waits a
few milliseconds for the others to arrive, then runs every waiting request as one batch
(each row with its own adapter, constraint and budget) and hands each caller its result.
Callers that arrive while a batch runs form the next one. The window costs a few
milliseconds on a call of a second or more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from chorus.runtime.backend import Backend
from chorus.runtime.types import GenerationRequest, GenerationResult


@dataclass
class _Ticket:
    request: GenerationRequest
    on_text: Callable[[str], None] | None
    result: GenerationResult | None = None
    error: BaseException | None = None
    done: bool = False


class Coalescer:
    def __init__(self, backend: Backend, window_s: float = 0.02, max_batch: int = 16):
        self.backend = backend
        self.window_s = window_s
        self.max_batch = max_batch
        self.batches = 0  # batched forwards run so far (for tests and benchmarks)
        self._queue: list[_Ticket] = []
        self._leading = False
        self._changed = threading.Condition()

    def submit(self, request: GenerationRequest,
               on_text: Callable[[str], None] | None = None) -> GenerationResult:
        ticket = _Ticket(request, on_text)
        with self._changed:
            self._queue.append(ticket)
            while not ticket.done and self._leading:
                self._changed.wait()
            if not ticket.done:
                self._leading = True
        if not ticket.done:
            self._lead(ticket)
        if ticket.error is not None:
            raise ticket.error
        return ticket.result

    def _lead(self, own: _Ticket) -> None:
        """Run batches until this caller's own request is done, then let a waiter lead."""
        try:
            while not own.done:
                time.sleep(self.window_s)  # let the other branches of this step arrive
                with self._changed:
                    batch = self._queue[:self.max_batch]
                    del self._queue[:len(batch)]
                self._run(batch)
        finally:
            with self._changed:
                if not own.done and own in self._queue:  # interrupted before its batch
                    self._queue.remove(own)
                self._leading = False
                self._changed.notify_all()

    def _run(self, batch: list[_Ticket]) -> None:
        def on_text(row: int, piece: str) -> None:
            if batch[row].on_text is not None:
                batch[row].on_text(piece)

        try:
            results = self.backend.generate_batch([t.request for t in batch], on_text=on_text)
            for ticket, result in zip(batch, results, strict=True):
                ticket.result = result
        except BaseException as error:  # every caller of the batch sees the failure
            for ticket in batch:
                ticket.error = error
        with self._changed:
            self.batches += 1
            for ticket in batch:
                ticket.done = True
            self._changed.notify_all()
