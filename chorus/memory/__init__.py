"""Refinement repository, run traces, the tool-call journal: SQLite files."""

from chorus.memory.journal import ToolJournal
from chorus.memory.refinements import Refinement, RefinementRepository
from chorus.memory.traces import TraceStore

__all__ = ["Refinement", "RefinementRepository", "ToolJournal", "TraceStore"]
