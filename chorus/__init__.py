"""chorus: small language models that cooperate on one shared base model."""

from chorus.errors import ChorusError
from chorus.runtime import Model, load_model

__all__ = ["ChorusError", "Model", "load_model"]
__version__ = "0.1.0"
