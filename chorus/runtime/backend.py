"""The one protocol a generation backend implements.

Agents and graphs talk to `Model`, which talks to a Backend. The local transformers backend is
the only one today; a client for an OpenAI-compatible multi-LoRA server would implement the
same method, mapping `adapter` to the server's LoRA name and `output` to its JSON-schema mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from chorus.runtime.rows import TextCallback
from chorus.runtime.types import GenerationRequest, GenerationResult


class Backend(Protocol):
    name: str  # model label, recorded in traces

    def generate_batch(self, requests: Sequence[GenerationRequest],
                       on_text: TextCallback | None = None) -> list[GenerationResult]:
        """Run requests, ideally together. Results keep the order of the requests.

        A constrained row that fails (budget exhausted) comes back with `error` set rather
        than failing its neighbours.
        """
        ...
