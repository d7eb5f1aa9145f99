"""Agents: a role prompt, an adapter and an output contract on the shared model (planned)."""
