"""Refinement repository, run traces and checkpoints in SQLite."""

from chorus.memory.refinements import Refinement, RefinementRepository
from chorus.memory.traces import TraceStore

__all__ = ["Refinement", "RefinementRepository", "TraceStore"]
