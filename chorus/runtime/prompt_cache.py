"""Computed prompt states on disk, so that a new process does not recompute a known prefix.

An agent's system prompt with its tool list is the same from call to call and from process
to process (`chorus call` with the same tools file): the llama.cpp backend saves the KV state
of a prompt it computed, and a later request under the same model and adapter whose tokens
start the same way loads the longest such prefix instead of evaluating it. Entries are keyed
by model file and adapter, so a state is never reused under another adapter; the least
recently used are evicted beyond a size per model (CHORUS_PROMPT_CACHE_MB, default 512: 30-60
tool prompts of Qwen2.5-0.5B, 12 MB per 1,000 tokens; a count of 12 was too few for one run
of the tool benchmark). A file that cannot be read or written only costs the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chorus.errors import ChorusError

MIN_PREFIX = 32  # tokens: below this, evaluating is as quick as loading a file
DEFAULT_MB = 512  # per model


def budget_bytes() -> int:
    """The size the cache keeps per model: CHORUS_PROMPT_CACHE_MB (0 keeps nothing)."""
    text = os.environ.get("CHORUS_PROMPT_CACHE_MB", "").strip()
    if not text:
        return DEFAULT_MB << 20
    if not text.isdigit():
        raise ChorusError(f"CHORUS_PROMPT_CACHE_MB must be a whole number of megabytes "
                          f"(0 keeps no prompts on disk), not {text!r}")
    return int(text) << 20


@dataclass(frozen=True)
class CachedPrompt:
    tokens: list[int]
    state: Path


class PromptCache:
    def __init__(self, folder: Path, model_key: str, max_bytes: int | None = None):
        self.folder = folder / model_key[:16]
        self.max_bytes = budget_bytes() if max_bytes is None else max_bytes

    def longest_prefix(self, adapter_key: str, tokens: list[int]) -> CachedPrompt | None:
        """The stored prompt of this adapter sharing the longest prefix with `tokens`
        (at least MIN_PREFIX tokens), cut to that prefix."""
        best: CachedPrompt | None = None
        for index in self._entries():
            try:
                entry = json.loads(index.read_text())
            except (OSError, ValueError):
                continue
            if entry.get("adapter") != adapter_key:
                continue
            shared = common_prefix(entry.get("tokens", []), tokens)
            if shared >= MIN_PREFIX and (best is None or shared > len(best.tokens)):
                best = CachedPrompt(entry["tokens"][:shared], index.with_suffix(".state"))
        if best is not None:
            _touch(best.state.with_suffix(".json"))  # recently used: evicted last
        return best

    def store(self, adapter_key: str, tokens: list[int],
              save: Callable[[Path], bool]) -> None:
        """Keep the state of `tokens`; `save(path)` writes it and says whether it could."""
        if len(tokens) < MIN_PREFIX or self.max_bytes == 0:
            return
        name = hashlib.sha256(json.dumps([adapter_key, tokens]).encode()).hexdigest()[:24]
        index = self.folder / f"{name}.json"
        if index.is_file():
            _touch(index)
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = self.folder / f".{name}.{os.getpid()}.state"
            if not save(partial):
                partial.unlink(missing_ok=True)
                return
            os.replace(partial, index.with_suffix(".state"))
            staged = self.folder / f".{name}.{os.getpid()}.json"
            staged.write_text(json.dumps({"adapter": adapter_key, "tokens": tokens}))
            os.replace(staged, index)  # the index last: an entry is whole or absent
        except OSError:
            return
        self._evict()

    def _entries(self) -> list[Path]:
        try:
            return [path for path in self.folder.glob("*.json") if not path.name.startswith(".")]
        except OSError:
            return []

    def _evict(self) -> None:
        """Drop the least recently used entries until the rest fit the budget."""
        sized = sorted(((_modified(index), _size(index.with_suffix(".state")), index)
                        for index in self._entries()), reverse=True)
        kept = 0
        for _, size, index in sized:
            kept += size
            if kept > self.max_bytes:
                index.unlink(missing_ok=True)  # the index first: an entry is whole or absent
                index.with_suffix(".state").unlink(missing_ok=True)


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:  # evicted meanwhile by another process
        pass


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def common_prefix(first: list[int], second: list[int]) -> int:
    """How many tokens the two lists share from the start."""
    shared = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        shared += 1
    return shared
