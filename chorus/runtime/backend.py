"""The one protocol a generation backend implements, and how it serves adapters.

Agents and graphs talk to `Model`, which talks to a Backend. The local transformers backend
keeps LoRA adapters in memory (`adapters` is its registry); a backend that serves none of its
own says so with `adapters = None`, and graphs then run every agent on the plain base model
unless an agent names an adapter explicitly. A client for an OpenAI-compatible multi-LoRA
server implements the same method, mapping `adapter` to the server's LoRA name and `output`
to its JSON-schema mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from typing import Protocol

from chorus.runtime.manifest import AdapterManifest
from chorus.runtime.types import AdapterInfo, GenerationRequest, GenerationResult, TextCallback


class AdapterHost(Protocol):
    """Adapters a backend can apply per call, by name."""

    def fits(self, manifest: AdapterManifest) -> bool:
        """Was an adapter with this manifest trained on this backend's base weights?"""
        ...

    def __contains__(self, name: object) -> bool: ...

    def load(self, directory: str | PathLike[str], name: str | None = None) -> AdapterInfo:
        ...

    def list(self) -> list[AdapterInfo]: ...


class Backend(Protocol):
    name: str  # model label, recorded in traces
    adapters: AdapterHost | None  # None: the backend applies no adapters of chorus'
    # Optional `batches_continuously = True`: calls made from several threads join one
    # running batch by themselves, so `Model` puts no coalescing window in front.

    def generate_batch(self, requests: Sequence[GenerationRequest],
                       on_text: TextCallback | None = None) -> list[GenerationResult]:
        """Run requests, ideally together. Results keep the order of the requests.

        A constrained row that fails (budget exhausted) comes back with `error` set rather
        than failing its neighbours.
        """
        ...
