"""Refinement repository, run traces and checkpoints in SQLite (planned)."""
