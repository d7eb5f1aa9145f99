"""Errors a user can cause and fix. The CLI prints them without a traceback."""


class ChorusError(Exception):
    """Base of every error whose message tells the user what went wrong and how to fix it."""


class ModelNotFoundError(ChorusError):
    """The model reference names nothing that can be loaded here."""


class ModelLoadError(ChorusError):
    """The model was found but could not be read (corrupt or unsupported file)."""


class UnsupportedSchemaError(ChorusError):
    """An output constraint is invalid or uses a feature constrained decoding cannot enforce."""


class OutputTruncatedError(ChorusError):
    """Constrained output hit its token budget before it was complete."""

    def __init__(self, message: str, partial_text: str):
        super().__init__(message)
        self.partial_text = partial_text


class ContextLengthError(ChorusError):
    """A prompt and its token budget do not fit in the model's context."""


def check_context(prompt_tokens: int, max_new_tokens: int, context: int) -> None:
    """Refuse, before any work, a request that cannot fit in `context` tokens."""
    if prompt_tokens + max_new_tokens > context:
        raise ContextLengthError(
            f"The prompt has {prompt_tokens} tokens and asks for up to {max_new_tokens} more, "
            f"over the model's context of {context} tokens: shorten the messages or lower "
            "max_new_tokens")


class InvalidOutputError(ChorusError):
    """Generated output did not validate against its constraint."""


class AdapterNotFoundError(ChorusError):
    """A call named an adapter that is not registered."""


class AdapterError(ChorusError):
    """An adapter could not be created, loaded or saved."""


class ToolSpecError(ChorusError):
    """A tool definition (function signature or OpenAI-style spec) is not usable."""


class UnknownToolError(ChorusError):
    """A call or a spec named a tool that is not registered."""


class GraphSpecError(ChorusError):
    """A graph spec (YAML or Python) is malformed or refers to something that does not exist."""


class ConstraintSpecError(ChorusError):
    """A DVR constraint has an unknown type or invalid parameters."""


class RepositoryError(ChorusError):
    """The refinement repository file cannot be opened, read or written."""
