"""Graph specs in YAML and their compiler to LangGraph (planned)."""
