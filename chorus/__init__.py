"""chorus: small language models that cooperate on one shared base model.

`Model` and `load_model` are imported on first use: importing chorus (or running a command
that never touches a model) does not pay for torch and transformers.
"""

from typing import TYPE_CHECKING, Any

from chorus.errors import ChorusError

if TYPE_CHECKING:
    from chorus.runtime import Model, load_model

__all__ = ["ChorusError", "Model", "load_model"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("Model", "load_model"):
        import chorus.runtime

        return getattr(chorus.runtime, name)
    raise AttributeError(f"module 'chorus' has no attribute {name!r}")
