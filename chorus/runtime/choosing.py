"""What one row writes next, from its model's logits: the one rule both backends follow.

First what the row's grammar forces (a JSON key, the rest of a tool's name), which needs no
logits; else a closing where the model would end before its grammar allows
(`guidance.Closer`); else the model's own choice, its logits raised toward words the text
still needs (`nudging.Nudger`) and lowered for the token that began a loop taken back
(`RowTracker.avoided`): greedy, or nucleus sampling from the row's seeded generator, under
the grammar's mask where the grammar refuses it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from chorus.runtime.guidance import allowed_tokens
from chorus.runtime.nudging import Nudger
from chorus.runtime.types import GenerationRequest


class NextTokens:
    AVOIDED = 1e4  # taken off a loop's first token's logit where the loop was taken back

    def __init__(self, request: GenerationRequest, matcher, closer, *,
                 budget_left: Callable[[], int], bitmask: np.ndarray,
                 nudger: Nudger | None = None, text: Callable[[], str] = str,
                 avoided: Callable[[], int | None] = lambda: None,
                 limit_reached: Callable[[], bool] = lambda: False):
        """`budget_left`: the row's new tokens still allowed; `bitmask`: scratch space of
        (vocabulary + 31) // 32 int32 words for the grammar's masks; `text`: the row's text
        so far, which `nudger` reads; `avoided`: a token not to choose here, if any;
        `limit_reached`: whether the row holds all the words or sentences its grammar
        allows (`RowTracker.limit_reached`)."""
        self.matcher = matcher
        self.closer = closer
        self.nudger = nudger
        self.text = text
        self.avoided = avoided
        self.limit_reached = limit_reached
        self.temperature = request.temperature
        self.top_p = request.top_p
        self.random = np.random.default_rng(request.seed) if request.temperature > 0 else None
        self.budget_left = budget_left
        self.bitmask = bitmask

    def next(self, logits: np.ndarray) -> list[int]:
        """The tokens to write next: what the grammar forces, else what `chosen` picks."""
        return self.forced() or self.chosen(logits)

    def forced(self) -> list[int]:
        """The tokens the grammar allows alone from here ([] where it leaves a choice)."""
        return self.matcher.compute_ff_tokens() if self.matcher is not None else []

    def chosen(self, logits: np.ndarray) -> list[int]:
        """The tokens to write from these next-token logits: a closing, or one token."""
        if self.nudger is not None:
            logits = self.nudger.bias(logits, self.text())
        avoided = self.avoided()
        if avoided is not None:  # finite: still chosen where the grammar allows nothing else
            logits = logits.copy()
            logits[avoided] -= self.AVOIDED
        if self.closer is not None:
            closing = self.closer.instead_of(int(np.argmax(logits)), self.budget_left(),
                                             self.text(), self.limit_reached())
            if closing:
                return closing
        # Greedy, a token the grammar allows is the masked argmax too: checking that one
        # token costs far less than a mask over the whole vocabulary.
        token = int(np.argmax(logits)) if self.random is None else None
        if self.matcher is not None and (token is None
                                         or not self.matcher.validate_tokens([token])):
            allowed = allowed_tokens(self.matcher, min(len(logits), self.bitmask.size * 32),
                                     self.bitmask)
            masked = np.full(len(logits), -np.inf, dtype=np.float32)
            masked[:len(allowed)] = np.where(allowed, logits[:len(allowed)], -np.inf)
            logits, token = masked, None
        return [token if token is not None else sample(logits, self.temperature, self.top_p,
                                                       self.random)]


def sample(logits: np.ndarray, temperature: float, top_p: float,
           random: np.random.Generator | None) -> int:
    """Greedy at temperature 0; otherwise nucleus sampling from a seeded generator."""
    if random is None or temperature <= 0:
        return int(np.argmax(logits))
    scaled = (logits - logits.max()) / temperature
    probabilities = np.exp(scaled)
    probabilities /= probabilities.sum()
    order = np.argsort(-probabilities)
    cumulative = np.cumsum(probabilities[order])
    kept = order[: int(np.searchsorted(cumulative, top_p)) + 1]
    weights = probabilities[kept] / probabilities[kept].sum()
    return int(random.choice(kept, p=weights))
