"""Progress display for the one-time GGUF conversion (rich, on stderr)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)


class ConversionProgress:
    """One bar per phase; a phase with a known size advances item by item."""

    def __init__(self, progress: Progress | None, name: str):
        self._progress = progress
        self._name = name
        self._task = None
        self._total = 1

    def phase(self, description: str, total: int | None = None) -> None:
        if self._progress is None:
            return
        if self._task is not None:  # a phase ends complete, whatever it counted
            self._progress.update(self._task, total=self._total, completed=self._total)
        self._total = total or 1
        self._task = self._progress.add_task(f"{self._name}: {description}", total=total)

    def track(self, items: Iterable, total: int) -> Iterator:
        if self._progress is not None and self._task is not None:
            self._total = total
            self._progress.update(self._task, total=total)
        for item in items:
            yield item
            if self._progress is not None:
                self._progress.advance(self._task)

    def done(self) -> None:
        self.phase("done; later loads use the cached copy", total=1)
        self._progress.update(self._task, completed=1)


@contextmanager
def conversion_progress(name: str, *, enabled: bool = True) -> Iterator[ConversionProgress]:
    if not enabled:
        yield ConversionProgress(None, name)
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        tracker = ConversionProgress(progress, f"converting {name}")
        yield tracker
        tracker.done()
