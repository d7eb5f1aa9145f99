"""Named LoRA adapters on the one shared base model.

The base model is wrapped by peft the first time an adapter is added, and unwrapped when the
last one is removed. Each call names its adapters; `applied` turns those names into the
module to run and its options, inside the backend's lock, so no call can see another's
adapter. A batch on a single adapter activates it; a batch that mixes adapters adds each
row's LoRA delta with batched matmuls (rowwise_lora.py). peft's own per-row path
(`adapter_names=`) costs about 20% more per forward on this model (benchmarks/RESULTS.md)
and is kept only for LoRA variants the batched path does not handle.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model, load_peft_weights, set_peft_model_state_dict

from chorus.errors import AdapterError, AdapterNotFoundError
from chorus.runtime.manifest import AdapterManifest, read_manifest
from chorus.runtime.rowwise_lora import RowwiseLora, adapter_layers, adapters_off
from chorus.runtime.types import AdapterInfo

_SAMPLED = 1024  # values per tensor: enough to tell models apart, fast on 135M parameters
BASE = "__base__"  # peft's name for "no adapter" in adapter_names
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


def base_fingerprint(model: torch.nn.Module) -> str:
    """Which weights an adapter fits: a hash of the shape and of sampled values, rounded to
    bfloat16 first so that a float32 and a bfloat16 load of one model agree."""
    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None:
        shape = {key: getattr(config, key, None) for key in (
            "model_type", "vocab_size", "hidden_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "intermediate_size")}
        digest.update(json.dumps(shape, sort_keys=True).encode())
    for name, parameter in model.named_parameters():
        if "lora_" in name:
            continue
        digest.update(name.removeprefix("base_model.model.").encode())
        sample = parameter.detach().flatten()[:_SAMPLED]
        digest.update(sample.to(torch.bfloat16).view(torch.int16).numpy().tobytes())
    return digest.hexdigest()[:16]


class AdapterRegistry:
    def __init__(self, base_model: torch.nn.Module, lock: threading.RLock, *,
                 gguf_sha256: str | None = None):
        """`gguf_sha256`: the GGUF file the base weights were converted from, if any; it is
        recorded in the manifests of adapters trained here."""
        self.gguf_sha256 = gguf_sha256
        self._base = base_model
        self._peft = None
        self._sources: dict[str, str | None] = {}
        self._lock = lock
        self.version = 0  # counts changes of adapters' weights: states computed under an
        # older version are stale
        self.rowwise = True  # row-wise LoRA where it applies (False: peft's adapter_names)
        self._rowwise: RowwiseLora | None = None  # the adapters stacked, until they change
        self._rowwise_active: RowwiseLora | None = None  # inside a row-wise `applied`
        self._layers: list[torch.nn.Module] | None = None  # `adapter_layers`, until they change
        # Taken before peft wraps anything, so wrapper names never enter it.
        self.base_fingerprint = base_fingerprint(base_model)

    @property
    def module(self) -> torch.nn.Module:
        """The module to run: the peft wrapper once any adapter exists, else the base."""
        return self._peft if self._peft is not None else self._base

    def names(self) -> list[str]:
        return list(self._sources)

    def __contains__(self, name: object) -> bool:
        return name in self._sources

    def require(self, name: str | None) -> str:
        """The peft row name for `name` (None is the plain base), or a clear error."""
        if name is None:
            return BASE
        if name not in self._sources:
            known = ", ".join(self._sources) or "none yet"
            raise AdapterNotFoundError(
                f"No adapter named '{name}' (registered: {known}). "
                "Create it with adapters.create() or load it with adapters.load()."
            )
        return name

    def create(self, name: str, *, rank: int = 8, alpha: int | None = None,
               target_modules: tuple[str, ...] = DEFAULT_TARGETS, dropout: float = 0.0,
               init: str = "zeros", seed: int | None = None) -> AdapterInfo:
        """A new adapter. `init="zeros"` starts as a no-op (LoRA's B = 0), ready to train;
        `init="random"` gives it random weights, useful for tests and benchmarks."""
        if init not in ("zeros", "random"):
            raise AdapterError(f"init must be 'zeros' or 'random', not {init!r}")
        config = LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, lora_dropout=dropout,
                            target_modules=list(target_modules),
                            init_lora_weights=init == "zeros", task_type="CAUSAL_LM")
        with self._lock, torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self._check_new(name)
            try:
                self._add(name, config)
            except ValueError as error:
                self._discard(name)
                raise AdapterError(f"Cannot create adapter '{name}': {error}") from error
            self._sources[name] = None
        return self.info(name)

    def load(self, directory: str | os.PathLike[str], name: str | None = None) -> AdapterInfo:
        """Load an adapter saved by `save` (or by peft's save_pretrained). One whose
        manifest says it was trained for another base model is refused."""
        path = Path(directory)
        if not (path / "adapter_config.json").is_file():
            raise AdapterError(f"{path} is not an adapter directory: no adapter_config.json")
        name = name or path.name
        self._check_base(path)
        with self._lock:
            self._check_new(name)
            try:
                config = LoraConfig.from_pretrained(path)
                # The folder it was trained from is no concern here (the base is checked by
                # fingerprint), and peft warns on every load where it differs.
                config.base_model_name_or_path = None
                self._add(name, config)
                result = set_peft_model_state_dict(self._peft, load_peft_weights(path),
                                                   adapter_name=name)
                unexpected = [key for key in result.unexpected_keys if "lora_" in key]
                if unexpected:
                    raise ValueError(f"weights for modules this model lacks: {unexpected[:3]}")
            except Exception as error:  # peft raises ValueError, KeyError, RuntimeError
                self._discard(name)
                raise AdapterError(
                    f"Cannot load adapter from {path}: {type(error).__name__}: {error}. "
                    "Was it trained for this base model?"
                ) from error
            self._sources[name] = str(path)
        return self.info(name)

    def _check_base(self, path: Path) -> None:
        manifest = read_manifest(path)
        if manifest is None or self.fits(manifest):
            return
        raise AdapterError(
            f"Adapter {path} was trained for base model '{manifest.base_model.name}' "
            f"(fingerprint {manifest.base_model.fingerprint}), but the loaded base model has "
            f"fingerprint {self.base_fingerprint}. A LoRA adapter only works on the weights "
            "it was trained on: load that model, or train the adapter again on this one "
            "(`chorus adapters train`).")

    def fits(self, manifest: AdapterManifest) -> bool:
        return manifest.base_model.fingerprint == self.base_fingerprint

    @contextmanager
    def trainable(self, name: str) -> Iterator[tuple[torch.nn.Module, list[torch.nn.Parameter]]]:
        """Adapter `name` active with gradients on its weights only, for a training loop;
        the lock is held throughout, so no generation sees a half-trained adapter."""
        self.require(name)
        with self._lock:
            self._peft.set_adapter(name)
            parameters = []
            for key, parameter in self._peft.named_parameters():
                parameter.requires_grad = "lora_" in key and f".{name}." in key
                if parameter.requires_grad:
                    parameters.append(parameter)
            try:
                with torch.enable_grad():
                    yield self._peft, parameters
            finally:
                self._weights_changed()
                for parameter in parameters:
                    parameter.requires_grad = False
                    parameter.grad = None

    def save(self, name: str, directory: str | os.PathLike[str]) -> Path:
        """Write adapter `name` to `directory`, atomically (complete or not there at all)."""
        self.require(name)
        target = Path(directory)
        staging = target.with_name(f".{target.name}.partial-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            with self._lock:
                self._peft.save_pretrained(staging, selected_adapters=[name])
            written = staging if name == "default" else staging / name  # peft's layout
            if target.exists():
                shutil.rmtree(target)
            os.replace(written, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def remove(self, name: str) -> None:
        self.require(name)
        with self._lock:
            self._discard(name)
            del self._sources[name]

    @contextmanager
    def applied(self, rows: list[str], *, per_row: bool = False
                ) -> Iterator[tuple[torch.nn.Module, dict]]:
        """The module to run for a batch whose rows use adapters `rows` (peft names), and the
        options to pass it. Hold the backend's lock for as long as it is used. `per_row`: the
        row-wise path also where the rows share one adapter, so that `repick` can change the
        rows between forwards (a running batch)."""
        if self._peft is None:
            yield self._base, {}
            return
        if per_row or len(set(rows)) > 1:
            if self.rowwise and self._stacked().knows(rows):
                with self._rowwise.applied(rows):
                    self._rowwise_active = self._rowwise
                    try:
                        yield self._peft, {}
                    finally:
                        self._rowwise_active = None
            else:
                yield self._peft, {"adapter_names": rows}
            return
        if rows[0] == BASE:
            context = adapters_off(self._adapter_layers())
        else:
            self._peft.set_adapter(rows[0])
            context = nullcontext()
        with context:
            yield self._peft, {}

    def repick(self, rows: list[str]) -> bool:
        """Inside a row-wise `applied`, make the next forwards' rows use adapters `rows`
        instead, where that costs no more than an index (every adapter of `rows` is stacked
        there); whether it could."""
        lora = self._rowwise_active
        if lora is None or lora is not self._rowwise or not lora.knows(rows):
            return False
        lora.pick(rows)
        return True

    def _stacked(self) -> RowwiseLora:
        if self._rowwise is None:
            self._rowwise = RowwiseLora(self._peft, self._adapter_layers())
        return self._rowwise

    def _adapter_layers(self) -> list[torch.nn.Module]:
        # A walk over every module (5 ms on SmolLM2 with 4 adapters): once per set of
        # adapters, not per call.
        if self._layers is None:
            self._layers = adapter_layers(self._peft)
        return self._layers

    def _weights_changed(self) -> None:
        self.version += 1
        self._rowwise = None  # its stacks hold the weights before
        self._layers = None  # adapters come and go with their layers

    def _add(self, name: str, config) -> None:
        """Attach an adapter, wrapping the base model in peft on first use."""
        self._weights_changed()
        if self._peft is None:
            with warnings.catch_warnings():  # peft calls an API transformers deprecates
                warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated",
                                        FutureWarning)
                self._peft = get_peft_model(self._base, config, adapter_name=name)
        else:
            self._peft.add_adapter(name, config)
        self._peft.eval()  # peft allows per-row adapter_names only in eval mode

    def _discard(self, name: str) -> None:
        """Detach an adapter, also a half-attached one; without adapters, unwrap the base."""
        self._weights_changed()
        if self._peft is None or name not in self._peft.peft_config:
            return
        if len(self._peft.peft_config) == 1:
            self._base = self._peft.unload()
            self._peft = None
            return
        # Activate another first: peft would otherwise keep pointing at the deleted one.
        self._peft.set_adapter(next(n for n in self._peft.peft_config if n != name))
        self._peft.delete_adapter(name)

    def info(self, name: str) -> AdapterInfo:
        self.require(name)
        config = self._peft.peft_config[name]
        parameters = sum(p.numel() for key, p in self._peft.named_parameters()
                         if f".{name}." in key and "lora_" in key)
        return AdapterInfo(name=name, rank=config.r,
                           target_modules=tuple(sorted(config.target_modules)),
                           parameters=parameters, source=self._sources[name])

    def list(self) -> list[AdapterInfo]:
        return [self.info(name) for name in self._sources]

    def _check_new(self, name: str) -> None:
        if not name or name == BASE or not name.replace("-", "_").isidentifier():
            raise AdapterError(
                f"Invalid adapter name {name!r}: use letters, digits, '_' or '-'"
            )
        if name in "lora_":  # peft finds its own parameters by that prefix
            raise AdapterError(f"Invalid adapter name {name!r}: it is part of peft's 'lora_' "
                               "prefix; choose a longer name")
        if name in self._sources:
            raise AdapterError(f"An adapter named '{name}' already exists; remove it first")

