"""peft LoRA adapters as GGUF LoRA files, for the llama.cpp backend.

The arrays are peft's (lora_a: rank x in, lora_b: out x rank), stored as float16 as llama.cpp's
own converter stores them (half the memory of float32, the same greedy outputs here), named
the way llama.cpp names the base tensors they modify (`blk.N.attn_q.weight.lora_a`). For the
llama architecture llama.cpp's own converter permutes the rows of the q and k weights (its
rotary embedding expects the halves interleaved), so the rows of their lora_b are permuted
the same way. Conversions are cached under CHORUS_HOME, keyed by the adapter's contents.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path

import numpy as np

from chorus.errors import AdapterError
from chorus.paths import chorus_home

# peft module name -> llama.cpp tensor name, for the decoder blocks of llama-like models.
_MODULES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
            "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
_KEY = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$")
MAX_HEADER = 100_000_000  # safetensors' own limit on a header
_PERMUTED = ("llama",)  # architectures whose q/k rows llama.cpp's converter permutes


def _permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's `permute` of a q or k weight's rows, applied to a lora_b."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def read_peft_config(directory: Path) -> dict:
    """An adapter folder's LoRA config, or a clear error."""
    try:
        config = json.loads((directory / "adapter_config.json").read_text())
    except (OSError, ValueError) as error:
        raise _unreadable(directory, error) from error
    if not isinstance(config, dict):
        raise AdapterError(f"{directory}/adapter_config.json must be a JSON object")
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterError(f"{directory}: only LoRA adapters run on llama.cpp, not "
                           f"{config.get('peft_type')}")
    return config


def read_peft(directory: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """An adapter folder's config and weights, or a clear error."""
    from safetensors.numpy import load_file

    config = read_peft_config(directory)
    try:
        weights = load_file(str(directory / "adapter_model.safetensors"))
    except Exception as error:  # OSError, safetensors' own SafetensorError
        raise _unreadable(directory, error) from error
    return config, weights


def peft_parameters(directory: Path) -> int:
    """How many numbers the adapter's weights hold, read from the safetensors header: the
    weights themselves are not loaded (a process that runs a converted adapter never needs
    them, and memory freed after reading them is not given back)."""
    try:
        with open(directory / "adapter_model.safetensors", "rb") as file:
            size = int.from_bytes(file.read(8), "little")
            if not 2 <= size <= MAX_HEADER:
                raise ValueError(f"a safetensors header of {size} bytes")
            header = json.loads(file.read(size))
        return sum(math.prod(entry["shape"]) for key, entry in header.items()
                   if key != "__metadata__")
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        raise _unreadable(directory, error) from error


def _unreadable(directory: Path, error: Exception) -> AdapterError:
    return AdapterError(f"Cannot read the adapter in {directory}: {error}. Is it a peft LoRA "
                        "adapter folder (adapter_config.json, adapter_model.safetensors)?")


def convert(directory: Path, target: Path, *, architecture: str, heads: int,
            kv_heads: int) -> Path:
    """Write the GGUF LoRA of the peft adapter in `directory` to `target`, atomically."""
    import gguf

    config, weights = read_peft(directory)
    tensors: dict[str, np.ndarray] = {}
    for key, array in sorted(weights.items()):
        match = _KEY.search(key)
        if match is None or match.group(2) not in _MODULES:
            raise AdapterError(f"{directory}: cannot place weight {key} in a llama.cpp model")
        layer, module, side = match.groups()
        array = np.asarray(array, dtype=np.float32)
        if side == "B" and architecture in _PERMUTED and module in ("q_proj", "k_proj"):
            array = _permute(array, heads if module == "q_proj" else kv_heads)
        tensors[f"blk.{layer}.{_MODULES[module]}.weight.lora_{side.lower()}"] = \
            np.ascontiguousarray(array, dtype=np.float16)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    writer = gguf.GGUFWriter(str(partial), architecture)
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(config.get("lora_alpha") or config["r"]))
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(partial, target)
    return target


def cached_conversion(directory: Path, *, architecture: str, heads: int,
                      kv_heads: int) -> Path:
    """The GGUF LoRA of `directory`, converted once per content and architecture."""
    digest = hashlib.sha256(f"f16:{architecture}:{heads}:{kv_heads}".encode())
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        path = directory / name
        if path.is_file():
            with open(path, "rb") as file:
                digest.update(hashlib.file_digest(file, "sha256").digest())
    target = chorus_home() / "gguf-lora" / f"{directory.name}-{digest.hexdigest()[:16]}.gguf"
    if not target.is_file():
        convert(directory, target, architecture=architecture, heads=heads, kv_heads=kv_heads)
    return target
