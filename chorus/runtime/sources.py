"""Resolve what the user asked to load into a local directory of safetensors weights.

A model reference is one of: the short name of an embedded model (chorus.runtime.embedded;
nothing means CHORUS_MODEL, else the default one), a local Hugging Face model directory, a
local `.gguf` file, or a hub id such as `org/name`.
GGUF files are converted once into a safetensors copy under CHORUS_HOME, because loading
from GGUF dequantises every tensor (~16 s) while the copy loads in about a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from chorus.errors import ModelLoadError, ModelNotFoundError
from chorus.paths import chorus_home
from chorus.runtime.embedded import DEFAULT_MODEL, EMBEDDED
from chorus.runtime.progress import ConversionProgress, conversion_progress

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
MANIFEST = "chorus-model.json"


@dataclass(frozen=True)
class ModelSource:
    """Where weights come from: a directory to load, or a hub id to hand to transformers."""

    kind: Literal["directory", "gguf", "hub"]
    location: str  # directory path, .gguf path, or hub id
    label: str  # short name for traces and messages


def resolve(reference: str | os.PathLike[str] | None) -> ModelSource:
    """Classify a model reference without loading anything (an embedded model split over
    packages is joined into one file the first time)."""
    text = str(reference or os.environ.get("CHORUS_MODEL") or DEFAULT_MODEL)
    if text in EMBEDDED:
        model = EMBEDDED[text]
        return ModelSource("gguf", str(model.gguf()), model.label)
    path = Path(text).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelNotFoundError(
                f"{path} is a file but not a .gguf model; pass a .gguf file or a model directory "
                "containing config.json"
            )
        return ModelSource("gguf", str(path.resolve()), path.stem)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"{path} is not a model directory: it has no config.json "
                "(expected a directory written by save_pretrained)"
            )
        return ModelSource("directory", str(path.resolve()), path.name)
    if _HUB_ID.match(text) and not text.startswith((".", "/", "~")):
        return ModelSource("hub", text, text)
    raise ModelNotFoundError(
        f"No model at '{text}': no such file or directory. Pass a model directory, a .gguf "
        f"file, a hub id like org/name, or an embedded model: {', '.join(EMBEDDED)}."
    )


def _cache_dir_for(gguf: Path) -> Path:
    # Keyed on path, size and mtime so a replaced file is converted again, without hashing
    # 100 MB on every warm load.
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return chorus_home() / "models" / f"{gguf.stem}-{key.hexdigest()[:12]}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_sha256(path: Path) -> str:
    """`file_sha256`, remembered in CHORUS_HOME/hashes per path, size and mtime."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    cache = chorus_home() / "hashes" / f"{key.hexdigest()[:16]}.json"
    if cache.is_file():
        try:
            return json.loads(cache.read_text())["sha256"]
        except (OSError, ValueError, KeyError):
            pass
    digest = file_sha256(path)
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(f".{cache.name}.{os.getpid()}")
    partial.write_text(json.dumps({"path": str(path), "sha256": digest}))
    os.replace(partial, cache)
    return digest


def gguf_origin(directory: Path) -> str | None:
    """The sha256 of the GGUF file a converted model folder was made from, if it was."""
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return None
    try:
        return json.loads(manifest.read_text()).get("source_sha256")
    except (OSError, ValueError):
        return None


def materialise(source: ModelSource, *, show_progress: bool = True) -> ModelSource:
    """Turn a GGUF source into a directory source, converting it once if needed."""
    if source.kind != "gguf":
        return source
    gguf = Path(source.location)
    target = _cache_dir_for(gguf)
    if not (target / MANIFEST).is_file():
        convert_gguf(gguf, target, show_progress=show_progress)
    return ModelSource("directory", str(target), source.label)


def convert_gguf(gguf: Path, target: Path, *, show_progress: bool = True) -> None:
    """Dequantise a GGUF file into `target` as safetensors, atomically.

    Everything is written into a sibling temporary directory that is renamed into place
    only when complete, so an interrupted conversion never leaves a half-written cache.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with conversion_progress(gguf.name, enabled=show_progress) as progress:
            _write_converted(gguf, staging, progress)
        try:
            os.replace(staging, target)
        except OSError:
            # Another process finished the same conversion first; its copy is as good.
            if not (target / MANIFEST).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def _tensor_progress(progress: ConversionProgress) -> Iterator[None]:
    """Route transformers' per-tensor tqdm loop over the GGUF into our rich display."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    original = getattr(gguf_utils, "tqdm", None)
    if original is None:  # a transformers without that loop: phases only
        yield
        return
    gguf_utils.tqdm = lambda items, **_: progress.track(items, total=len(items))
    try:
        yield
    finally:
        gguf_utils.tqdm = original


def _write_converted(gguf: Path, staging: Path, progress: ConversionProgress) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    started = time.time()
    try:
        progress.phase("reading tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        progress.phase("dequantising tensors")
        # dequantize=True is what makes the result saveable (and trainable).
        with _tensor_progress(progress):
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                quantization_config=GgufConfig(dequantize=True),
            )
    except Exception as error:  # transformers raises many kinds for a bad file
        raise ModelLoadError(
            f"{gguf} could not be read as a GGUF model ({type(error).__name__}: {error}). "
            "Is the file complete? Re-download or reinstall it."
        ) from error
    progress.phase("writing safetensors")
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    progress.phase("hashing source")
    manifest = {
        "source": str(gguf),
        "source_sha256": file_sha256(gguf),
        "converted_in_s": round(time.time() - started, 2),
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
