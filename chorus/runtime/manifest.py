"""What an adapter was made from, stored beside its weights as chorus.json.

The base model is identified by a fingerprint of its weights (`base_fingerprint` in
adapters.py) and, where the weights came from a GGUF file, by that file's hash; not by a
name: the same SmolLM2 can be a GGUF file, a converted folder or a hub id, and two different
models can share a name. A backend decides with `fits(manifest)` whether an adapter is its.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ValidationError

from chorus.errors import AdapterError

MANIFEST = "chorus.json"


class BaseModelRecord(BaseModel):
    name: str
    fingerprint: str  # of the weights as transformers loads them
    # The GGUF file those weights were converted from, if any: what the llama.cpp backend,
    # which runs that file directly, checks an adapter against.
    gguf_sha256: str | None = None


class TrainingRecord(BaseModel):
    data: str  # the training data folder, as given
    data_version: str
    roles: list[str]
    from_adapter: str | None = None
    steps: int
    batch_size: int
    learning_rate: float
    rank: int
    seed: int
    precision: str
    seconds: float
    final_loss: float | None = None


class AdapterManifest(BaseModel):
    name: str
    role: str  # planner, caller, summarizer, verifier, or "all"
    base_model: BaseModelRecord
    training: TrainingRecord | None = None
    command: str | None = None
    created: str | None = None


def write_manifest(directory: Path, manifest: AdapterManifest) -> None:
    (Path(directory) / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")


def read_manifest(directory: Path) -> AdapterManifest | None:
    """The adapter's manifest, or None for an adapter made elsewhere (plain peft)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    try:
        return AdapterManifest.model_validate_json(path.read_text())
    except (OSError, ValidationError) as error:
        raise AdapterError(f"{path} is not a valid chorus adapter manifest: {error}") from error
