"""Continuous batching on the transformers backend: rows join and leave between tokens.

Calls from different threads (parallel graph branches, the clients of `chorus serve`) decode
together, one batched forward per token, each row with its own adapter (row-wise LoRA),
grammar, budget and sampling; a row alone in the batch (one caller) feeds what its grammar
forces in the same forward (a tool call in 30 forwards instead of 51, SmolLM2). A call
that arrives while others decode is prefilled and joins at the next token; a row that
finishes leaves at once. (Batches fixed at their start made a one-token answer wait for the
longest row of its batch, and a call that arrived meanwhile wait for the whole batch.)

Who steps the batch (`DecodeLoop`): the main thread for its own calls, else the loop's own
thread.

The KV cache is one left-padded DynamicCache: a join pads the shorter side on the left, a
row that leaves is dropped with the padding columns no row needs any more; the attention
mask marks each row's padding, and position ids count each row's own tokens.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from transformers import DynamicCache

from chorus.errors import ChorusError
from chorus.runtime.choosing import NextTokens
from chorus.runtime.prompt_cache import budget_bytes, common_prefix
from chorus.runtime.rows import RowTracker
from chorus.runtime.types import GenerationRequest, GenerationResult


@dataclass(eq=False)
class Row:
    """One request on its way through the batch."""

    request: GenerationRequest
    prompt: list[int]  # the prompt's tokens and the reply's forced start
    prompt_tokens: int  # the prompt's alone, as reported
    adapter: str  # the adapter registry's row name
    tracker: RowTracker
    chooser: NextTokens
    started: float = field(default_factory=time.perf_counter)
    pending: list[int] = field(default_factory=list)  # chosen, not fed yet (a closing)
    result: GenerationResult | None = None
    error: BaseException | None = None
    done: bool = False
    cancelled: bool = False  # its caller stopped waiting (interrupted): drop it
    # The cache columns (RunningBatch ids) of the prompt's last token and of every token of
    # the reply fed since: where a loop taken back (RowTracker) cuts the row's cache.
    columns: list[int] = field(default_factory=list)

    def next_token(self, logits: np.ndarray) -> int:
        if not self.pending:
            self.pending = self.chooser.next(logits)
        return self.pending.pop(0)


class RunningBatch:
    """The rows decoding now and their shared KV cache. Not thread-safe: the backend steps
    it under its lock."""

    def __init__(self, adapters):
        self.adapters = adapters
        self.prefixes = PrefixStore()
        self.rows: list[Row] = []
        self.steps = 0  # forwards that decoded a token, and the most rows one held (tests,
        self.widest = 0  # benchmarks)
        self._cache = None
        self._mask: torch.Tensor | None = None  # (rows, columns): 1 where a row has a token
        self._positions: torch.Tensor | None = None  # (rows,): each row's next position
        # A column's id: the columns appended before it; its index is the width less its
        # distance from the right end, which neither padding nor trimming on the left moves.
        self._next_column = 0
        self._logits: np.ndarray | None = None  # (rows, vocabulary): the next token's
        self._adapters = ExitStack()  # the adapters of the rows in the last forward
        self._adapter_rows: list[str] | None = None
        self._version = -1  # the adapters' version when they were applied
        self._module = None
        self._options: dict = {}

    def step(self, joining: list[Row]) -> list[Row]:
        """Admit `joining`, write the next token of every row and compute the logits after
        it; the rows that finished (each with its result)."""
        if joining:
            self._admit(joining)
        tokens, finished = [], []
        for index, row in enumerate(self.rows):
            if row.cancelled:
                row.tracker.finished[0] = True
                tokens.append(None)
                continue
            try:
                token, rewinds = row.next_token(self._logits[index]), row.tracker.rewound[0]
                row.tracker.advance(0, token)
                fed = [token]
                if row.tracker.rewound[0] != rewinds:
                    fed = [self._take_back(index, row)]
                elif len(self.rows) == 1 and not row.tracker.may_rewind(0):
                    # A lone row feeds what its grammar forces in the same forward (a
                    # batch's rows each feed one token), where no loop can be taken back
                    # on the way.
                    while row.pending and not row.tracker.finished[0]:
                        fed.append(row.pending.pop(0))
                        row.tracker.advance(0, fed[-1])
            except Exception as error:  # noqa: BLE001 (its text callback or grammar failed:
                row.error, fed = error, None  # this row ends, its neighbours go on)
                row.tracker.finished[0] = True
            tokens.append(fed)
            if row.tracker.finished[0]:
                if row.error is None:
                    row.result = row.tracker.result(0, row.prompt_tokens,
                                                    time.perf_counter() - row.started)
                finished.append(row)
        kept = [i for i, row in enumerate(self.rows) if not row.tracker.finished[0]]
        if len(kept) < len(self.rows):
            tokens = [tokens[i] for i in kept]
            self._keep(kept)
        if self.rows:
            width = len(tokens[0])  # several tokens only for a lone row
            self._mask = F.pad(self._mask, (0, width), value=1)
            self._cache, self._logits = self._forward(
                torch.tensor(tokens), self._mask,
                self._positions.unsqueeze(1) + torch.arange(width), self._cache,
                [row.adapter for row in self.rows])
            self._positions += width
            for row in self.rows:
                row.columns += range(self._next_column, self._next_column + width)
            self._next_column += width
            self.steps += 1
            self.widest = max(self.widest, len(self.rows))
        return finished

    def abandon(self) -> list[Row]:
        """Drop every row (a forward failed); the rows that were in."""
        rows, self.rows = self.rows, []
        self._keep([])
        return rows

    def _take_back(self, index: int, row: Row) -> int:
        """The row's loop was taken back (its tracker kept its first k tokens): its cache
        columns from the k-th token's on are masked out, that token is fed again for its
        logits, and a closing comes next where the grammar has closings. The token to
        feed."""
        kept = len(row.tracker.token_ids[0])
        width = self._mask.shape[1]
        self._mask[index, width - (self._next_column - row.columns[kept]):] = 0
        del row.columns[kept:]
        self._positions[index] = row.prompt_tokens - 1 + kept
        row.pending = []
        if row.chooser.closer is not None:
            row.chooser.closer.close_next()
        return ([row.prompt[row.prompt_tokens - 1]] + row.tracker.token_ids[0])[kept]

    def _admit(self, joining: list[Row]) -> None:
        """Prefill the joining rows in one forward, each from the longest beginning of its
        prompt the prefix store holds (their stored states left-padded to one width, their
        new tokens after them, each row's gaps masked out); then pad the shorter of the
        joiners' cache and the batch's on the left and stack the joiners under the rows."""
        keys = [(self.adapters.version, row.adapter) for row in joining]
        stored = [self.prefixes.longest(key, row.prompt) for key, row in zip(keys, joining,
                                                                              strict=True)]
        known = [length for length, _ in stored]
        suffixes = [row.prompt[length:] for row, length in zip(joining, known, strict=True)]
        old, new = max(known), max(map(len, suffixes))
        mask = torch.tensor([[0] * (old - k) + [1] * k + [0] * (new - len(t)) + [1] * len(t)
                             for k, t in zip(known, suffixes, strict=True)])
        ids = torch.tensor([[0] * (new - len(t)) + t for t in suffixes])
        positions = torch.tensor([[0] * (new - len(t)) + list(range(k, k + len(t)))
                                  for k, t in zip(known, suffixes, strict=True)])
        cache, logits = self._forward(ids, mask, positions,
                                      _stacked_states(stored, old) if old else None,
                                      [row.adapter for row in joining])
        width = mask.shape[1]
        for index, (key, row) in enumerate(zip(keys, joining, strict=True)):
            real = mask[index].nonzero().squeeze(1)
            self.prefixes.add(key, row.prompt, [
                (layer.keys[index:index + 1, :, real], layer.values[index:index + 1, :, real])
                for layer in _layers(cache)])
            tail = real[row.prompt_tokens - 1:] - width  # the prompt's last token, the start
            row.columns = [self._next_column + int(column) for column in tail]  # of the reply
        self.rows += joining
        if self._cache is None:
            self._cache, self._mask, self._logits = cache, mask, logits
            self._positions = torch.tensor([len(row.prompt) for row in joining])
            return
        old_width = self._mask.shape[1]
        total = max(old_width, width)
        for running, joined in zip(_layers(self._cache), _layers(cache), strict=True):
            running.keys = torch.cat([_pad_columns(running.keys, total - old_width),
                                      _pad_columns(joined.keys, total - width)])
            running.values = torch.cat([_pad_columns(running.values, total - old_width),
                                        _pad_columns(joined.values, total - width)])
        self._mask = torch.cat([F.pad(self._mask, (total - old_width, 0)),
                                F.pad(mask, (total - width, 0))])
        self._positions = torch.cat([self._positions,
                                     torch.tensor([len(row.prompt) for row in joining])])
        self._logits = np.concatenate([self._logits, logits])

    def _keep(self, indices: list[int]) -> None:
        """Keep the rows at `indices`, and drop the padding columns no kept row needs."""
        self.rows = [self.rows[i] for i in indices]
        if not self.rows:
            self._cache = self._mask = self._positions = self._logits = None
            self._adapters.close()
            self._adapter_rows, self._version = None, -1
            return
        selected = torch.tensor(indices)
        self._mask = self._mask[selected]
        first = int(self._mask.any(0).int().argmax())  # the first column a row needs
        self._mask = self._mask[:, first:]
        self._positions = self._positions[selected]
        self._logits = self._logits[indices]
        for layer in _layers(self._cache):
            layer.keys = layer.keys[selected, :, first:]
            layer.values = layer.values[selected, :, first:]

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache,
                 adapters: list[str]) -> tuple:
        """The cache after `ids` (one row each) and the logits of each row's next token."""
        # Rows joined or left, or adapters were loaded between steps (peft may have wrapped
        # the model since): the next forward's rows and module.
        if adapters != self._adapter_rows or self.adapters.version != self._version:
            if self.adapters.version != self._version or not self.adapters.repick(adapters):
                self._adapters.close()
                self._module, self._options = self._adapters.enter_context(
                    self.adapters.applied(adapters, per_row=True))
            self._adapter_rows, self._version = adapters, self.adapters.version
        output = self._module(input_ids=ids, attention_mask=mask, position_ids=positions,
                              cache=cache, use_cache=True, logits_to_keep=1, **self._options)
        return output.cache, output.logits[:, -1].float().numpy()


class PrefixStore:
    """The KV states of recent prompts, per adapter: a prompt that begins as one of them (an
    agent's instructions and tools, a chat template's system prompt) is computed from where
    the two part. The least recently used go first once they hold more than `max_bytes`:
    CHORUS_PROMPT_CACHE_MB (the llama.cpp backend's budget on disk), at most MAX_MB in
    memory (a 700-token tool prompt of SmolLM2 in fp32 holds 32 MB); 0 keeps nothing."""

    MIN_PREFIX = 4  # shorter common beginnings are computed again
    MAX_MB = 256

    def __init__(self, max_bytes: int | None = None):
        self.max_bytes = min(budget_bytes(), self.MAX_MB << 20) if max_bytes is None \
            else max_bytes
        self.reused = 0  # prompt tokens taken from stored states, so far
        self._states: OrderedDict[tuple, list[tuple[torch.Tensor, torch.Tensor]]] = \
            OrderedDict()
        self._bytes = 0  # what the stored states hold, kept as they come and go

    def longest(self, key: tuple, tokens: list[int]) -> tuple[int, list | None]:
        """How many of `tokens` (never the last: its logits are needed) a stored state of
        `key` holds, and that state's (keys, values) per layer, cut to them."""
        best, best_entry = 0, None
        for entry_key, stored in self._states:
            if entry_key == key:
                common = common_prefix(stored, tokens[:-1])
                if common > best:
                    best, best_entry = common, (entry_key, stored)
        if best < self.MIN_PREFIX:
            return 0, None
        self._states.move_to_end(best_entry)
        self.reused += best
        return best, [(k[:, :, :best], v[:, :, :best]) for k, v in self._states[best_entry]]

    def clear(self) -> None:
        self._states.clear()
        self._bytes = 0

    def add(self, key: tuple, tokens: list[int], layers: list) -> None:
        """Keep the state of `tokens`, (keys, values) of one row per layer, under `key`."""
        entry = (key, tuple(tokens))
        if entry in self._states:
            self._bytes -= _size(self._states[entry])
        self._states[entry] = layers
        self._states.move_to_end(entry)
        self._bytes += _size(layers)
        while self._bytes > self.max_bytes:
            self._bytes -= _size(self._states.popitem(last=False)[1])


def _stacked_states(stored: list[tuple[int, list | None]], width: int) -> DynamicCache:
    """One cache of the rows' stored states, each left-padded to `width` columns (empty for
    a row with none)."""
    reference = next(layers for _, layers in stored if layers)

    def stacked(layer: int, part: int) -> torch.Tensor:
        like = reference[layer][part]
        return torch.cat([_pad_columns(layers[layer][part], width - length) if layers
                          else like.new_zeros(1, like.shape[1], width, like.shape[3])
                          for length, layers in stored])

    return DynamicCache(ddp_cache_data=[(stacked(index, 0), stacked(index, 1))
                                        for index in range(len(reference))])


def _layers(cache) -> list:
    layers = cache.layers
    for layer in layers:
        if type(layer).__name__ != "DynamicLayer":
            raise ChorusError(f"Batched decoding supports full-attention caches only; this "
                              f"model's cache has a {type(layer).__name__}")
    return layers


def _size(layers: list[tuple[torch.Tensor, torch.Tensor]]) -> int:
    return sum(k.nbytes + v.nbytes for k, v in layers)


def _pad_columns(states: torch.Tensor, width: int) -> torch.Tensor:
    """(rows, heads, columns, dim) states with `width` empty columns on the left."""
    return F.pad(states, (0, 0, width, 0)) if width else states


class DecodeLoop:
    """Steps a `RunningBatch` while any caller's rows are in it or waiting: the main thread
    steps it itself where it finds nobody stepping (a script's or the CLI's tokens are
    computed in its own thread); rows from other threads, and the rows left when the main
    thread's own are done, are stepped by the loop's own thread.

    Why threads matter here: torch's OpenMP threads belong to the thread that calls torch,
    and once two threads of a process hold a team, both run slower (libgomp's wait turns
    passive where its threads outnumber the cores). Stepping passed from caller to caller
    made two clients decode slower than one; one thread of chorus' own for every call made
    torch work in the main thread (training, llama.cpp's own OpenMP) 2-4 times slower after
    a generation; a server's requests stepped in their handler threads made requests one by
    one 4 times slower after a burst of concurrent ones."""

    def __init__(self, batch: RunningBatch, lock: threading.RLock, max_rows: int):
        self.batch = batch
        self.lock = lock  # the backend's: adapters change under it, between steps
        self.max_rows = max_rows
        self.in_flight = 0  # rows handed in and not done, or given up on
        self._joining: list[Row] = []
        self._stepping = False  # a thread is stepping the batch
        self._handed_over = False  # the loop's own thread is to step it
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def run(self, rows: list[Row]) -> list[GenerationResult]:
        """Decode `rows` with whatever else is decoding; their results (the first error of
        a row is raised)."""
        with self._changed:
            self._joining += rows
            self.in_flight += len(rows)
            # Only the main thread steps for itself: a server's or a graph's worker threads
            # would each leave an OpenMP team behind (see the class's docstring).
            leading = not self._stepping and threading.current_thread() is threading.main_thread()
            if not self._stepping and not leading:
                self._wake_thread()
            self._stepping = True
        try:
            if leading:
                self._step_until(lambda: all(row.done for row in rows))
            with self._changed:
                while not all(row.done for row in rows):
                    self._changed.wait()
        except BaseException:  # interrupted: the loop drops these rows at its next step
            with self._changed:
                for row in rows:
                    row.cancelled = True
                self._joining = [row for row in self._joining if not row.cancelled]
            raise
        finally:
            with self._changed:
                self.in_flight -= len(rows)
        for row in rows:
            if row.error is not None:
                raise row.error
        return [row.result for row in rows]

    def _step_until(self, enough) -> None:
        """Step the batch until `enough()` (or nothing is left); then hand the stepping to
        the loop's own thread if rows are left."""
        try:
            while not enough() and (self._joining or self.batch.rows):
                self._step()
        finally:
            with self._changed:
                self._stepping = False
                if self._joining or self.batch.rows:
                    self._stepping = True
                    self._wake_thread()
                self._changed.notify_all()

    def _wake_thread(self) -> None:
        """(Holding the condition) let the loop's own thread step the batch."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="chorus-decode",
                                            daemon=True)
            self._thread.start()
        self._handed_over = True
        self._changed.notify_all()

    def _loop(self) -> None:
        while True:
            with self._changed:
                while not self._handed_over:
                    self._changed.wait()
                self._handed_over = False
            self._step_until(lambda: False)

    def _step(self) -> None:
        with self._changed:
            room = self.max_rows - len(self.batch.rows)
            joining, self._joining = self._joining[:room], self._joining[room:]
        try:
            with self.lock, torch.inference_mode():
                done = self.batch.step(joining)
        except BaseException as error:  # every row in flight shares the failure
            done = list(dict.fromkeys(self.batch.abandon() + joining))
            for row in done:
                row.error = error
        if done:
            with self._changed:
                for row in done:
                    row.done = True
                self._changed.notify_all()
