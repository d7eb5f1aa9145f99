"""Tools the agents call, and the constraint checkers of divide-verify-refine (planned)."""
