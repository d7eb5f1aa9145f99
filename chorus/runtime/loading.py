"""`load_model`: the one shared base model, from whatever the user pointed at, on the backend
that runs it best.

Two local backends: transformers (torch; trains adapters, runs any model folder or hub id)
and llama.cpp (runs a GGUF file directly, without torch). torch is imported only when the
transformers backend is chosen.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlparse

from chorus.errors import ModelLoadError, ModelNotFoundError
from chorus.runtime.model import Model
from chorus.runtime.sources import ModelSource, gguf_origin, materialise, resolve

if TYPE_CHECKING:
    import torch

BackendName = Literal["auto", "transformers", "llamacpp", "openai"]
BACKENDS: tuple[str, ...] = ("auto", "transformers", "llamacpp", "openai")
_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16"}


def choose_backend(requested: str | None, source: ModelSource) -> str:
    """`requested`, else CHORUS_BACKEND, else auto: llama.cpp for a GGUF file where
    llama-cpp-python is installed (measured: about 6x faster end to end, benchmarks/RESULTS.md
    "Backends"), transformers otherwise."""
    requested = requested or os.environ.get("CHORUS_BACKEND") or "auto"
    if requested not in BACKENDS:
        raise ModelLoadError(f"Unknown backend {requested!r}: use one of {', '.join(BACKENDS)}")
    if requested == "llamacpp" and source.kind != "gguf":
        raise ModelLoadError(f"The llama.cpp backend runs GGUF files; {source.location} is a "
                             f"{source.kind}. Pass a .gguf file or use --backend transformers.")
    if requested == "auto":
        usable = source.kind == "gguf" and importlib.util.find_spec("llama_cpp") is not None
        return "llamacpp" if usable else "transformers"
    return requested



@lru_cache(maxsize=1)
def _cpu_has_fast_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_dtype(requested: str | torch.dtype | None = None) -> torch.dtype:
    """bf16 where the CPU computes it natively (1.6-2x faster here), else fp32.
    `CHORUS_DTYPE` or an explicit value overrides: bf16 changes some greedy answers."""
    import torch

    if isinstance(requested, torch.dtype):
        return requested
    requested = requested or os.environ.get("CHORUS_DTYPE", "auto")
    if requested == "auto":
        return torch.bfloat16 if _cpu_has_fast_bf16() else torch.float32
    if requested not in _DTYPES:
        raise ModelLoadError(f"Unknown dtype {requested!r}: use auto, float32 or bfloat16")
    return getattr(torch, _DTYPES[requested])


def load_model(name_or_path: str | os.PathLike[str] | None = None, *,
               dtype: str | torch.dtype | None = None, backend: BackendName | None = None,
               base_url: str | None = None, show_progress: bool = True) -> Model:
    """Load the shared base model: an embedded model's short name, a path or a hub id; None
    means CHORUS_MODEL, else the default embedded model (Qwen2.5-Coder-0.5B-Instruct).

    `backend`: "transformers", "llamacpp" or "auto" (default: CHORUS_BACKEND, else auto).
    On transformers a GGUF file is converted once to a safetensors copy in CHORUS_HOME
    (progress shown on stderr) and later loads read the copy; llama.cpp reads it directly
    (`dtype` does not apply: it computes with the file's own quantised weights).

    "openai" runs on an OpenAI-compatible server at `base_url` (default: CHORUS_BASE_URL):
    vLLM, SGLang, llama-server or `chorus serve`; `name_or_path` is then the server's name
    for the base model (default: the first it lists), and adapters are the server's.
    """
    requested = backend or os.environ.get("CHORUS_BACKEND")
    base_url = base_url or os.environ.get("CHORUS_BASE_URL")
    if requested == "openai" or (requested in (None, "auto") and base_url):
        from chorus.runtime.openai_backend import OpenAIBackend

        if not base_url:
            raise ModelLoadError("The openai backend needs the server's address: --base-url "
                                 "URL (or CHORUS_BASE_URL), e.g. http://localhost:8000/v1")
        return Model(OpenAIBackend(base_url, model=os.fspath(name_or_path)
                                   if name_or_path is not None else None))
    source = resolve(name_or_path)
    if choose_backend(backend, source) == "llamacpp":
        from chorus.runtime.llamacpp import LlamaCppBackend

        return Model(LlamaCppBackend(Path(source.location), name=source.label))
    from transformers.utils import logging as hf_logging

    from chorus.runtime.local import LocalBackend

    hf_logging.disable_progress_bar()
    directory = materialise(source, show_progress=show_progress)
    model, tokenizer = _load_transformers(directory, choose_dtype(dtype))
    return Model(LocalBackend(model, tokenizer, name=source.label,
                              gguf_sha256=gguf_origin(Path(directory.location))))


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """A quick TCP probe, because an unreachable hub otherwise costs ~50 s of retries."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    host = urlparse(constants.ENDPOINT).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def _load_transformers(source: ModelSource, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Offline, a hub id can still be served from the local Hugging Face cache.
    local_only = source.kind == "hub" and not _hub_reachable()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.location, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(source.location, dtype=dtype,
                                                     local_files_only=local_only)
    except (OSError, ValueError) as error:
        if source.kind == "hub":
            raise ModelNotFoundError(
                f"Could not load '{source.location}' from the Hugging Face hub"
                f"{' (unreachable from here, and not in the local cache)' if local_only else ''}"
                f": {type(error).__name__}. Pass a local model directory or .gguf file, or "
                "the name of an embedded model (qwen2.5-coder-0.5b, smollm2-135m)."
            ) from error
        raise ModelLoadError(
            f"Could not load the model in {source.location}: {error}"
        ) from error
    if tokenizer.chat_template is None:
        raise ModelLoadError(
            f"{source.location} has no chat template; chorus needs an instruct/chat model"
        )
    return model, tokenizer
