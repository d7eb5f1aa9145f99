"""The on-disk cache of computed prompt states: the longest stored prefix per adapter, and
the least recently used entries evicted beyond a size per model."""

from __future__ import annotations

import os
import time

import pytest

from chorus.errors import ChorusError
from chorus.runtime.prompt_cache import MIN_PREFIX, PromptCache, budget_bytes


def _writer(size: int):
    def save(path) -> bool:
        path.write_bytes(b"s" * size)
        return True
    return save


def _prompt(first: int, length: int = MIN_PREFIX + 8) -> list[int]:
    return [first, *range(1, length)]


def test_the_longest_stored_prefix_of_the_same_adapter_is_found(tmp_path):
    cache = PromptCache(tmp_path, "model-sha", max_bytes=1 << 20)
    short, long = list(range(MIN_PREFIX + 2)), list(range(MIN_PREFIX + 20))
    cache.store("caller", short, _writer(10))
    cache.store("caller", long, _writer(10))
    found = cache.longest_prefix("caller", [*range(MIN_PREFIX + 10), 999])
    assert found.tokens == list(range(MIN_PREFIX + 10)) and found.state.is_file()
    assert cache.longest_prefix("planner", long) is None  # never under another adapter
    assert cache.longest_prefix("caller", [7, *long]) is None  # no common start


def test_the_least_recently_used_go_beyond_the_size(tmp_path):
    cache = PromptCache(tmp_path, "model-sha", max_bytes=250)
    for first in range(3):
        cache.store("base", _prompt(first), _writer(100))
        time.sleep(0.01)
    # the oldest went: 300 bytes do not fit in 250
    assert cache.longest_prefix("base", _prompt(0)) is None
    assert cache.longest_prefix("base", _prompt(1)) is not None
    time.sleep(0.01)
    cache.store("base", _prompt(1), _writer(100))  # used again: now the most recent
    cache.store("base", _prompt(3), _writer(100))
    assert cache.longest_prefix("base", _prompt(2)) is None
    assert cache.longest_prefix("base", _prompt(1)) is not None
    assert not [path for path in cache.folder.iterdir() if path.name.startswith(".")]


def test_the_size_is_a_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("CHORUS_PROMPT_CACHE_MB", "64")
    assert budget_bytes() == 64 << 20
    monkeypatch.setenv("CHORUS_PROMPT_CACHE_MB", "0")
    cache = PromptCache(tmp_path, "model-sha")
    cache.store("base", _prompt(0), _writer(10))
    assert not os.path.exists(cache.folder)  # nothing is kept
    monkeypatch.setenv("CHORUS_PROMPT_CACHE_MB", "lots")
    with pytest.raises(ChorusError, match="CHORUS_PROMPT_CACHE_MB must be a whole number"):
        budget_bytes()


def test_a_state_read_back_counts_as_used(tmp_path):
    cache = PromptCache(tmp_path, "model-sha", max_bytes=250)
    cache.store("base", _prompt(0), _writer(100))
    time.sleep(0.01)
    cache.store("base", _prompt(1), _writer(100))
    time.sleep(0.01)
    assert cache.longest_prefix("base", _prompt(0)) is not None  # read: now the most recent
    cache.store("base", _prompt(2), _writer(100))
    assert cache.longest_prefix("base", _prompt(1)) is None
    assert cache.longest_prefix("base", _prompt(0)) is not None
