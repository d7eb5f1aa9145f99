"""`Model`: what agents hold. Chat messages in, text or validated values out, on any backend."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from chorus.errors import ChorusError
from chorus.runtime.backend import AdapterHost, Backend
from chorus.runtime.coalesce import Coalescer
from chorus.runtime.types import GenerationRequest, GenerationResult, Message


class Model:
    def __init__(self, backend: Backend, *, batch_window_s: float = 0.02):
        """`batch_window_s`: how long a call waits for calls from other threads (parallel
        graph branches) to join its batch; 0 runs every call alone. A backend that batches
        continuously (calls join its running batch between tokens) needs no window."""
        self.backend = backend
        self.coalescer = None
        if batch_window_s > 0 and not getattr(backend, "batches_continuously", False):
            self.coalescer = Coalescer(backend, batch_window_s)

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def serves_adapters(self) -> bool:
        return self.backend.adapters is not None

    @property
    def adapters(self) -> AdapterHost:
        """The backend's adapters; a clear error where the backend applies none."""
        if self.backend.adapters is None:
            raise ChorusError(f"The {type(self.backend).__name__} backend of {self.name} applies "
                              "no chorus adapters; run the agents without one (adapter: null)")
        return self.backend.adapters

    def generate(self, messages: str | list[Message], *, output: Any = None,
                 adapter: str | None = None, max_new_tokens: int = 256,
                 temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
                 stop: str | Sequence[str] = (), stop_on_repeated_line: bool = False,
                 on_text: Callable[[str], None] | None = None) -> GenerationResult:
        """One generation. With `output` (JSON Schema dict, pydantic model, list of choices,
        Literal or Regex) the text is constrained and `result.value` holds the parsed value;
        a constrained output that cannot be completed raises a ChorusError."""
        request = GenerationRequest(
            messages=messages, output=output, adapter=adapter, max_new_tokens=max_new_tokens,
            temperature=temperature, top_p=top_p, seed=seed, stop=stop,
            stop_on_repeated_line=stop_on_repeated_line)
        return self.complete(request, on_text=on_text)

    def complete(self, request: GenerationRequest,
                 on_text: Callable[[str], None] | None = None, *,
                 raise_errors: bool = True) -> GenerationResult:
        """Run one prepared request (batched with calls other threads make at the same
        moment); a failed constrained output raises its ChorusError, or with
        `raise_errors=False` comes back with `error` set."""
        if self.coalescer is not None:
            result = self.coalescer.submit(request, on_text)
        else:
            callback = (lambda _row, piece: on_text(piece)) if on_text else None
            [result] = self.backend.generate_batch([request], on_text=callback)
        if raise_errors:
            result.raise_for_error()
        return result

    def generate_batch(self, requests: Sequence[GenerationRequest | dict],
                       on_text: Callable[[int, str], None] | None = None
                       ) -> list[GenerationResult]:
        """Several requests in one pass where they can share it (each with its own adapter,
        constraint and budget). Failed constrained rows carry `error`; nothing is raised."""
        parsed = [r if isinstance(r, GenerationRequest) else GenerationRequest(**r)
                  for r in requests]
        return self.backend.generate_batch(parsed, on_text=on_text)

    def generate_chunked(self, requests: Sequence[GenerationRequest], batch_size: int = 8,
                         on_batch: Callable[[int], None] | None = None
                         ) -> list[GenerationResult]:
        """Many requests, `batch_size` rows per pass (memory stays bounded); `on_batch`
        gets the number done after each pass. Failed rows carry `error`."""
        results: list[GenerationResult] = []
        for start in range(0, len(requests), batch_size):
            results += self.generate_batch(requests[start:start + batch_size])
            if on_batch:
                on_batch(len(results))
        return results

    def stream(self, messages: str | list[Message], **options: Any) -> TextStream:
        """Iterate over text pieces as they are generated; `.result` once finished."""
        return TextStream(lambda on_text: self.generate(messages, on_text=on_text, **options))


class TextStream:
    """Runs a generation in a thread and yields its text pieces."""

    _DONE = object()

    def __init__(self, run: Callable[[Callable[[str], None]], GenerationResult]):
        self._pieces: queue.Queue = queue.Queue()
        self.result: GenerationResult | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, args=(run,), daemon=True)
        self._thread.start()

    def _work(self, run) -> None:
        try:
            self.result = run(self._pieces.put)
        except BaseException as error:  # handed to the consuming thread
            self._error = error
        finally:
            self._pieces.put(self._DONE)

    def __iter__(self) -> Iterator[str]:
        while (piece := self._pieces.get()) is not self._DONE:
            yield piece
        self._thread.join()
        if self._error is not None:
            raise self._error
