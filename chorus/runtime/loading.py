"""`load_model`: the one shared base model, from whatever the user pointed at."""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import torch

from chorus.errors import ModelLoadError, ModelNotFoundError
from chorus.runtime.local import LocalBackend
from chorus.runtime.model import Model
from chorus.runtime.sources import ModelSource, materialise, resolve

_DTYPES = {"float32": torch.float32, "fp32": torch.float32,
           "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


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
    if isinstance(requested, torch.dtype):
        return requested
    requested = requested or os.environ.get("CHORUS_DTYPE", "auto")
    if requested == "auto":
        return torch.bfloat16 if _cpu_has_fast_bf16() else torch.float32
    if requested not in _DTYPES:
        raise ModelLoadError(f"Unknown dtype {requested!r}: use auto, float32 or bfloat16")
    return _DTYPES[requested]


def load_model(name_or_path: str | os.PathLike[str] | None = None, *,
               dtype: str | torch.dtype | None = None, show_progress: bool = True) -> Model:
    """Load the shared base model. None means the embedded SmolLM2-135M-Instruct.

    A GGUF file is converted once to a safetensors copy in CHORUS_HOME (progress shown on
    stderr); later loads read the copy.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    source = materialise(resolve(name_or_path), show_progress=show_progress)
    model, tokenizer = _load_transformers(source, choose_dtype(dtype))
    return Model(LocalBackend(model, tokenizer, name=source.label))


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
                "nothing for the embedded SmolLM2."
            ) from error
        raise ModelLoadError(
            f"Could not load the model in {source.location}: {error}"
        ) from error
    if tokenizer.chat_template is None:
        raise ModelLoadError(
            f"{source.location} has no chat template; chorus needs an instruct/chat model"
        )
    return model, tokenizer
