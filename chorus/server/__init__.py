"""An OpenAI-compatible HTTP server over chorus' local model (`chorus serve`)."""
