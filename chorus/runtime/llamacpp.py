"""The llama.cpp backend: a GGUF file run directly by llama-cpp-python, without torch.

One model, one context, requests run one after another under a lock (a context holds one
adapter set at a time, and on two cores a second context buys no throughput). Each request:

- the chat template of the GGUF (jinja2, as transformers renders it) turns messages into a
  prompt;
- **prefix cache**: the KV cache keeps the last prompt's tokens; a request under the same
  adapter evaluates only what follows their common prefix. Cached states are per adapter: a
  state computed under one adapter is never reused under another (switching saves the
  current sequence's KV state and restores the one saved for the adapter being activated),
  and computed prompts are also kept on disk for later processes (prompt_cache.py);
- **adapters**: peft LoRA folders converted to GGUF LoRA (gguf_lora.py), loaded once per
  model and set on the context per call;
- **constrained output**: llguidance masks on the logits (tokenizer from the llama.cpp
  vocabulary), grammars compiled and cached by key as in the transformers backend, and every
  output parsed and validated by the same RowTracker. What the grammar forces next (a JSON
  key, the rest of a tool's name) is fed in one pass, not decoded: about half the tokens of
  a tool call.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from chorus.errors import AdapterError, ModelLoadError, UnsupportedSchemaError, check_context
from chorus.paths import chorus_home
from chorus.runtime.chat_format import ToolSpec, chat_inputs, reply_output
from chorus.runtime.choosing import NextTokens
from chorus.runtime.gguf_lora import cached_conversion, peft_parameters, read_peft_config
from chorus.runtime.guidance import GrammarCache
from chorus.runtime.llama_vocab import cached_pieces
from chorus.runtime.manifest import AdapterManifest, read_manifest
from chorus.runtime.prompt_cache import MIN_PREFIX, PromptCache, common_prefix
from chorus.runtime.rows import RowTracker, refused
from chorus.runtime.sources import cached_sha256
from chorus.runtime.types import AdapterInfo, GenerationRequest, GenerationResult, TextCallback

DEFAULT_CONTEXT = 4096
CACHED_STATES = 4  # adapters whose prompt state is kept while another one runs


def give_freed_memory_back() -> None:
    """Return the heap's free pages to the system. glibc raises its mmap threshold to the
    size of each large block freed, so the compute buffers that llama.cpp allocates anew
    after the active adapter changes come to live on the heap, which does not shrink by
    itself: with the 4 role adapters, RSS grew about 5 MB per switch and went on growing
    (benchmarks/RESULTS.md). Called after loading an adapter and after a call that switched
    adapters (about 0.2 ms). glibc only."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # another C library
        return None


_LIBC = _glibc()


def default_threads() -> int:
    # llama-cpp-python's default is half the cores: one thread on a 2-core machine.
    return max(1, os.cpu_count() or 1)


class LlamaCppBackend:
    def __init__(self, gguf: Path, *, name: str, n_ctx: int = DEFAULT_CONTEXT,
                 n_threads: int | None = None, persist_prompts: bool = True):
        """`persist_prompts`: keep computed prompt states on disk for later processes."""
        try:
            import llama_cpp
            from llama_cpp import Llama
        except ImportError as error:
            raise ModelLoadError("The llama.cpp backend needs llama-cpp-python: "
                                 "pip install llama-cpp-python (it compiles llama.cpp, about "
                                 "10 minutes on 2 cores), or use --backend transformers"
                                 ) from error
        threads = n_threads or default_threads()
        try:
            self.llm = Llama(model_path=str(gguf), n_ctx=n_ctx, n_threads=threads,
                             n_threads_batch=threads, n_batch=512, verbose=False)
        except (ValueError, RuntimeError) as error:
            raise ModelLoadError(f"{gguf} could not be loaded by llama.cpp ({error}). Is the "
                                 "file a complete GGUF model?") from error
        self._api = llama_cpp
        self.name = name
        self.path = gguf
        self.lock = threading.RLock()
        self.n_ctx = n_ctx
        self.n_vocab = self.llm.n_vocab()
        vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self.eos_ids = {token for token in (llama_cpp.llama_vocab_eos(vocab),
                                            llama_cpp.llama_vocab_eot(vocab)) if token >= 0}
        self._format = self._chat_formatter()
        self.grammars = GrammarCache(lambda: self._llguidance_tokenizer(vocab))
        self.adapters = GgufAdapters(self)
        self._bitmask = np.zeros((self.n_vocab + 31) // 32, dtype=np.int32)
        self._kv_tokens: list[int] = []  # what the context's KV cache holds, in order
        self._kv_adapter: str | None = None
        self._saved: OrderedDict[str | None, tuple[list[int], bytes]] = OrderedDict()
        self.persist_prompts = persist_prompts
        self._cache: PromptCache | None = None

    # --- prompts ---------------------------------------------------------------------------

    def _chat_formatter(self):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelLoadError(f"{self.path} has no chat template; chorus needs an "
                                 "instruct/chat model")

        def text_of(key: str) -> str:
            token = int(self.llm.metadata.get(key, -1))
            return self.llm.detokenize([token], special=True).decode() if token >= 0 else ""

        return Jinja2ChatFormatter(template, eos_token=text_of("tokenizer.ggml.eos_token_id"),
                                   bos_token=text_of("tokenizer.ggml.bos_token_id"))

    def prompt_tokens(self, messages: list[dict[str, str]], tools: Sequence[ToolSpec] = ()
                      ) -> list[int]:
        messages, specs = chat_inputs(messages, tools, self._format.template)
        prompt = self._format(messages=messages, tools=specs).prompt
        return self.llm.tokenize(prompt.encode(), add_bos=False, special=True)

    def _piece(self, token: int) -> bytes:
        return self.llm.detokenize([token])

    def _llguidance_tokenizer(self, vocab):
        """llguidance's tokenizer of this vocabulary, as `llguidance.llamacpp` builds it, from
        pieces kept on disk per model file (llama_vocab.py). Without llguidance's "slices"
        (precomputed token sets that speed up masks over free strings): on Qwen2.5's
        vocabulary they cost 0.25 s of every process's 0.5 s build, and masks are computed
        only where the greedy token is refused, in about the same time without them (a tool
        call's masks 3.2 ms against 1.8 in all, a lowercase no-commas word-count text's 66
        against 57 ms)."""
        from llguidance import LLTokenizer

        pieces = cached_pieces(chorus_home() / "vocab", self.adapters.gguf_sha256, self._api,
                               vocab)
        pieces += [b""] * (self.n_vocab - len(pieces))
        tokenize = ctypes.cast(self._api.llama_cpp._lib.llama_tokenize, ctypes.c_void_p).value
        return LLTokenizer.from_llamacpp(tokens=pieces, vocab_ptr=vocab, tokenize_fptr=tokenize,
                                         eos_token=sorted(self.eos_ids)[0], slices=[])

    # --- generation ------------------------------------------------------------------------

    def generate_batch(self, requests: Sequence[GenerationRequest],
                       on_text: TextCallback | None = None) -> list[GenerationResult]:
        results = []
        for index, request in enumerate(requests):
            def forward(_row: int, piece: str, index=index) -> None:
                on_text(index, piece)

            with self.lock:
                results.append(self._generate(request, forward if on_text else None))
        return results

    def _generate(self, request: GenerationRequest,
                  on_text: TextCallback | None) -> GenerationResult:
        tokens = self.prompt_tokens(request.messages, request.tools)
        check_context(len(tokens), request.max_new_tokens, self.n_ctx)
        request = request.model_copy(update={"output": reply_output(
            request.output, self._format.template, self.grammars.is_special)})
        try:
            matcher = self.grammars.matcher(request.output) if request.output else None
        except UnsupportedSchemaError as error:  # the row fails, its batch goes on
            return refused(request, error, len(tokens))
        closer = self.grammars.closer(request.output, matcher, self.eos_ids) if matcher else None
        tracker = RowTracker([request], matchers=[matcher], eos_ids=self.eos_ids,
                             decode=_GrowingText(self._piece), on_text=on_text,
                             rewind_loops=True)
        chooser = NextTokens(request, matcher, closer, bitmask=self._bitmask,
                             budget_left=lambda: tracker.budget_left(0),
                             nudger=self.grammars.nudger(request.output),
                             text=lambda: tracker.texts[0],
                             avoided=lambda: tracker.avoided(0),
                             limit_reached=lambda: tracker.limit_reached(0))
        started = time.perf_counter()
        switched = request.adapter != self._kv_adapter  # compute buffers will be made anew
        # What the grammar forces first (a tool call's opening) goes in with the prompt, in
        # one pass: the prompt's own logits would choose nothing.
        opening = []
        for token in chooser.forced():
            if tracker.finished[0]:
                break
            tracker.advance(0, token)
            opening.append(token)
        self._prefill(request.adapter, tokens + opening)
        while not tracker.finished[0]:
            # What the grammar forces (a JSON key, the rest of a tool's name, the calls an
            # added call follows), or a closing, is fed in one pass, not token by token.
            chosen = chooser.next(np.ctypeslib.as_array(  # a view of llama.cpp's logits
                self._api.llama_get_logits_ith(self.llm.ctx, -1), shape=(self.n_vocab,)))
            rewinds, fed = tracker.rewound[0], []
            for token in chosen:
                tracker.advance(0, token)
                fed.append(token)
                if tracker.finished[0] or tracker.rewound[0] != rewinds:
                    break
            else:
                self._extend(fed)
            if tracker.rewound[0] != rewinds:
                self._take_back(tokens, tracker.token_ids[0], closer)
        if switched:
            give_freed_memory_back()
        return tracker.result(0, len(tokens), time.perf_counter() - started)

    def _take_back(self, prompt: list[int], kept: list[int], closer) -> None:
        """The reply's loop was taken back to `kept` (RowTracker): the cache goes back to
        the prompt and `kept`, the last token evaluated again for its logits, and a closing
        comes next where the grammar has closings."""
        tokens = prompt + kept
        self._evaluate_from(common_prefix(self._kv_tokens, tokens), tokens)
        if closer is not None:
            closer.close_next()

    def _prefill(self, adapter: str | None, tokens: list[int]) -> None:
        """Make the KV cache hold `tokens` under `adapter`, computing only what no cached
        state of that adapter holds (in memory, else on disk); the logits of the last token
        are then ready."""
        if adapter != self._kv_adapter:
            self._switch(adapter)
        known = common_prefix(self._kv_tokens, tokens)
        cache = self._prompt_cache()
        if cache is not None and known < len(tokens) - 1:
            stored = cache.longest_prefix(self.adapters.key(adapter), tokens[:-1])
            if stored is not None and len(stored.tokens) > known:
                self._load_state(stored.state)
                known = common_prefix(self._kv_tokens, tokens)
        keep = self._evaluate_from(known, tokens)
        if cache is not None and len(tokens) - keep >= MIN_PREFIX:
            cache.store(self.adapters.key(adapter), tokens, self._save_state)

    def _evaluate_from(self, known: int, tokens: list[int]) -> int:
        """Make the KV cache hold `tokens`, of which its first `known` are there already;
        the last token is evaluated again at least, for its logits. How many were kept."""
        keep = min(known, len(tokens) - 1)
        self.llm.n_tokens = keep
        self._kv_tokens = self._kv_tokens[:keep]
        self._extend(tokens[keep:])
        return keep

    def _prompt_cache(self) -> PromptCache | None:
        if self._cache is None and self.persist_prompts:
            self._cache = PromptCache(chorus_home() / "prompt-cache", self.adapters.gguf_sha256)
        return self._cache

    def _save_state(self, path: Path) -> bool:
        tokens = (self._api.llama_token * len(self._kv_tokens))(*self._kv_tokens)
        return bool(self._api.llama_state_seq_save_file(
            self.llm.ctx, str(path).encode(), 0, tokens, len(self._kv_tokens)))

    def _load_state(self, path: Path) -> None:
        """The KV state saved in `path`, or an empty cache where it cannot be read."""
        self.llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        tokens = (self._api.llama_token * self.n_ctx)()
        count = ctypes.c_size_t(0)
        read = self._api.llama_state_seq_load_file(self.llm.ctx, str(path).encode(), 0, tokens,
                                                   self.n_ctx, ctypes.byref(count))
        self._kv_tokens = list(tokens[:count.value]) if read else []
        if not read:
            self.llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        self.llm.n_tokens = len(self._kv_tokens)

    def _extend(self, tokens: list[int]) -> None:
        self.llm.eval(tokens)
        self._kv_tokens += tokens

    def _switch(self, adapter: str | None) -> None:
        """Save the current adapter's state, activate `adapter` and restore its own."""
        if self._kv_tokens:
            self._saved[self._kv_adapter] = (list(self._kv_tokens), self._sequence_state())
            self._saved.move_to_end(self._kv_adapter)
            while len(self._saved) > CACHED_STATES:
                self._saved.popitem(last=False)
        self.adapters.activate(adapter)
        self.llm.reset()
        self.llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        self._kv_tokens, self._kv_adapter = [], adapter
        saved = self._saved.pop(adapter, None)
        if saved is not None:
            tokens, state = saved
            buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
            if self._api.llama_state_seq_set_data(self.llm.ctx, buffer, len(state), 0):
                self.llm.n_tokens = len(tokens)
                self._kv_tokens = tokens

    def _sequence_state(self) -> bytes:
        size = self._api.llama_state_seq_get_size(self.llm.ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = self._api.llama_state_seq_get_data(self.llm.ctx, buffer, size, 0)
        return bytes(buffer[:written])


class _GrowingText:
    """The text of one row's tokens, which grow (or are taken back from the end, where a
    loop is): each call adds the bytes of the new tokens alone (llama-cpp-python's
    detokenize walks every token in Python, which made the text of a 256-token reply cost
    256 x 128 calls)."""

    def __init__(self, piece):
        self._piece = piece
        self._bytes = bytearray()
        self._ends: list[int] = []  # where each token's bytes end

    def __call__(self, tokens: list[int]) -> str:
        if len(tokens) < len(self._ends):
            del self._ends[len(tokens):]
            del self._bytes[self._ends[-1] if self._ends else 0:]
        for token in tokens[len(self._ends):]:
            self._bytes += self._piece(token)
            self._ends.append(len(self._bytes))
        return self._bytes.decode("utf-8", errors="replace")


class GgufAdapters:
    """peft adapters, converted to GGUF LoRA and loaded on the llama.cpp model by name."""

    def __init__(self, backend: LlamaCppBackend):
        self._backend = backend
        self._loaded: dict[str, tuple[object, AdapterInfo, Path]] = {}
        self._sha256: str | None = None

    @property
    def gguf_sha256(self) -> str:
        """The base GGUF file's hash, cached by path, size and time (hashing 0.5 GB takes
        a second)."""
        if self._sha256 is None:
            self._sha256 = cached_sha256(self._backend.path)
        return self._sha256

    def fits(self, manifest: AdapterManifest) -> bool:
        return manifest.base_model.gguf_sha256 == self.gguf_sha256

    def __contains__(self, name: object) -> bool:
        return name in self._loaded

    def list(self) -> list[AdapterInfo]:
        return [info for _, info, _ in self._loaded.values()]

    def key(self, name: str | None) -> str:
        """What a cached prompt state was computed under: the converted file, named by its
        contents, so the key holds across processes."""
        return "base" if name is None else self._loaded[name][2].name

    def load(self, directory: str | os.PathLike[str], name: str | None = None) -> AdapterInfo:
        path = Path(directory)
        if not (path / "adapter_config.json").is_file():
            raise AdapterError(f"{path} is not an adapter directory: no adapter_config.json")
        name = name or path.name
        if name in self._loaded:
            raise AdapterError(f"An adapter named '{name}' already exists; remove it first")
        manifest = read_manifest(path)
        if manifest is not None and not self.fits(manifest):
            raise AdapterError(
                f"Adapter {path} was trained for base model '{manifest.base_model.name}', not "
                f"for {self._backend.path.name}: a LoRA adapter only works on the weights it "
                "was trained on. Train it again on this model (`chorus adapters train`).")
        config = read_peft_config(path)
        metadata = self._backend.llm.metadata
        architecture = metadata.get("general.architecture", "llama")
        heads = int(metadata.get(f"{architecture}.attention.head_count", 0))
        kv_heads = int(metadata.get(f"{architecture}.attention.head_count_kv", heads))
        converted = cached_conversion(path, architecture=architecture, heads=heads,
                                      kv_heads=kv_heads)
        api = self._backend._api
        with self._backend.lock:
            pointer = api.llama_adapter_lora_init(self._backend.llm.model,
                                                  str(converted).encode())
        if not pointer:
            raise AdapterError(f"llama.cpp refused the adapter {path} (converted to "
                               f"{converted}): was it trained for this base model?")
        info = AdapterInfo(name=name, rank=int(config["r"]),
                           target_modules=tuple(sorted(config.get("target_modules") or ())),
                           parameters=peft_parameters(path),
                           source=str(path))
        self._loaded[name] = (pointer, info, converted)
        give_freed_memory_back()  # what reading and converting it allocated
        return info

    def activate(self, name: str | None) -> None:
        """Set adapter `name` (None: none) on the context; called under the backend's lock."""
        if name is not None and name not in self._loaded:
            known = ", ".join(self._loaded) or "none yet"
            raise AdapterError(f"No adapter named '{name}' (loaded: {known}). Load it with "
                               "model.adapters.load(folder).")
        api = self._backend._api
        if name is None:
            api.llama_set_adapters_lora(self._backend.llm.ctx, None, 0, None)
        else:
            adapters = (api.llama_adapter_lora_p_ctypes * 1)(self._loaded[name][0])
            scales = (ctypes.c_float * 1)(1.0)
            if api.llama_set_adapters_lora(self._backend.llm.ctx, adapters, 1, scales):
                raise AdapterError(f"llama.cpp could not activate adapter '{name}'")

