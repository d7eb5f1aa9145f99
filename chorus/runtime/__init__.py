"""The one shared base model: loading, generation, streaming, adapters, constrained decoding.

Names are imported on first use, so that code which only needs the light parts (output
types, requests, manifests) never imports torch.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chorus.runtime.adapters import AdapterRegistry
    from chorus.runtime.backend import AdapterHost, Backend
    from chorus.runtime.loading import choose_dtype, load_model
    from chorus.runtime.model import Model, TextStream
    from chorus.runtime.outputs import Choice, JsonSchema, Lark, OutputType, Regex, as_output
    from chorus.runtime.types import AdapterInfo, GenerationRequest, GenerationResult

_WHERE = {
    "AdapterRegistry": "adapters", "AdapterHost": "backend", "Backend": "backend",
    "choose_dtype": "loading", "load_model": "loading", "Model": "model",
    "TextStream": "model", "Choice": "outputs", "JsonSchema": "outputs",
    "Lark": "outputs", "OutputType": "outputs", "Regex": "outputs", "as_output": "outputs",
    "AdapterInfo": "types", "GenerationRequest": "types", "GenerationResult": "types",
}

__all__ = [
    "AdapterHost", "AdapterInfo", "AdapterRegistry", "Backend", "Choice", "GenerationRequest",
    "GenerationResult", "JsonSchema", "Lark", "Model", "OutputType", "Regex", "TextStream",
    "as_output", "choose_dtype", "load_model",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'chorus.runtime' has no attribute {name!r}")
    return getattr(import_module(f"chorus.runtime.{_WHERE[name]}"), name)
