"""Refinement repository, run traces and checkpoints in SQLite."""

from chorus.memory.traces import TraceStore

__all__ = ["TraceStore"]
