"""The one shared base model: loading, generation, streaming, adapters, constrained decoding."""

from chorus.runtime.adapters import AdapterInfo, AdapterRegistry
from chorus.runtime.backend import Backend
from chorus.runtime.constraints import Choice, Constraint, JsonSchema, Regex, as_constraint
from chorus.runtime.loading import choose_dtype, load_model
from chorus.runtime.model import Model, TextStream
from chorus.runtime.types import GenerationRequest, GenerationResult

__all__ = [
    "AdapterInfo", "AdapterRegistry", "Backend", "Choice", "Constraint", "GenerationRequest",
    "GenerationResult", "JsonSchema", "Model", "Regex", "TextStream", "as_constraint",
    "choose_dtype", "load_model",
]
