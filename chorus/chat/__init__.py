"""Interactive terminal sessions: `chorus chat`."""
