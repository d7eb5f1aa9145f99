"""Model references, the GGUF conversion cache, and dtype choice (no model is loaded)."""

import json
import os
import re
from pathlib import Path

import pytest
import torch

import chorus
from chorus.errors import ModelLoadError, ModelNotFoundError
from chorus.runtime import choose_dtype, loading, sources
from chorus.runtime.embedded import EMBEDDED
from chorus.runtime.sources import MANIFEST, resolve


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private CHORUS_HOME for one test."""
    directory = tmp_path / "chorus-home"
    monkeypatch.setenv("CHORUS_HOME", str(directory))
    return directory


def leftovers(home: Path) -> list[str]:
    """Everything a failed conversion left in the cache: should be nothing."""
    models = home / "models"
    return sorted(p.name for p in models.iterdir()) if models.exists() else []


# resolve -----------------------------------------------------------------------------------


def test_resolve_a_missing_path_names_it(tmp_path: Path):
    missing = tmp_path / "nowhere" / "model"
    with pytest.raises(ModelNotFoundError) as caught:
        resolve(missing)
    assert str(missing) in str(caught.value)
    assert "no such file or directory" in str(caught.value)


@pytest.mark.parametrize("reference", ["./org/name", "~/org/name", "/org/name", "no-slash"])
def test_resolve_path_like_references_are_not_hub_ids(reference: str):
    with pytest.raises(ModelNotFoundError, match="No model at"):
        resolve(reference)


def test_resolve_a_directory_without_config_json(tmp_path: Path):
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="config.json") as caught:
        resolve(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_resolve_a_model_directory(tmp_path: Path):
    (tmp_path / "config.json").write_text("{}")
    source = resolve(tmp_path)
    assert source.kind == "directory"
    assert source.location == str(tmp_path.resolve())
    assert source.label == tmp_path.name


def test_resolve_a_file_that_is_not_gguf(tmp_path: Path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"not a model")
    with pytest.raises(ModelNotFoundError, match=r"not a \.gguf") as caught:
        resolve(weights)
    assert str(weights) in str(caught.value)


@pytest.mark.parametrize("name", ["tiny.gguf", "TINY.GGUF"])
def test_resolve_a_gguf_file(tmp_path: Path, name: str):
    gguf = tmp_path / name
    gguf.write_bytes(b"GGUF")
    source = resolve(gguf)
    assert source.kind == "gguf"
    assert source.location == str(gguf.resolve())
    assert source.label == Path(name).stem


@pytest.mark.parametrize("hub_id", ["someorg/somemodel", "HuggingFaceTB/SmolLM2-135M-Instruct",
                                    "org/model.v2"])
def test_resolve_a_hub_id(hub_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # so no local directory of that name can shadow it
    source = resolve(hub_id)
    assert source.kind == "hub"
    assert source.location == hub_id
    assert source.label == hub_id


def test_resolve_nothing_is_the_default_embedded_model():
    # conftest sets CHORUS_MODEL=smollm2-135m for the tests
    source = resolve(None)
    assert source.kind == "gguf"
    assert Path(source.location) == EMBEDDED["smollm2-135m"].gguf()
    assert source.label == "SmolLM2-135M-Instruct"


def test_load_model_from_an_unknown_hub_id_fails_offline(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError, match="hub") as caught:
        chorus.load_model("someorg/somemodel", backend="transformers", show_progress=False)
    assert "someorg/somemodel" in str(caught.value)


def test_load_model_from_a_missing_path(tmp_path: Path):
    with pytest.raises(ModelNotFoundError):
        chorus.load_model(tmp_path / "missing", backend="transformers", show_progress=False)


def test_load_model_from_a_directory_with_a_broken_config(tmp_path: Path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=re.escape(str(tmp_path.resolve()))):
        chorus.load_model(tmp_path, backend="transformers", show_progress=False)


# GGUF conversion ---------------------------------------------------------------------------


def test_a_corrupt_gguf_raises_model_load_error_and_caches_nothing(tmp_path: Path, home: Path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(os.urandom(4096))
    with pytest.raises(ModelLoadError) as caught:
        chorus.load_model(broken, backend="transformers", show_progress=False)
    assert "broken.gguf" in str(caught.value)
    assert leftovers(home) == []


def test_a_truncated_gguf_raises_model_load_error_and_caches_nothing(tmp_path: Path,
                                                                      home: Path):
    # Starts like the real file (valid magic and header), then stops.
    truncated = tmp_path / "truncated.gguf"
    with EMBEDDED["smollm2-135m"].gguf().open("rb") as source:
        truncated.write_bytes(source.read(1 << 20))
    with pytest.raises(ModelLoadError, match="truncated.gguf"):
        chorus.load_model(truncated, backend="transformers", show_progress=False)
    assert leftovers(home) == []


def test_a_conversion_that_fails_midway_leaves_no_partial_directory(
        tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch):
    gguf = tmp_path / "half.gguf"
    gguf.write_bytes(b"GGUF" + bytes(64))

    def write_half_then_fail(source: Path, staging: Path, progress) -> None:
        staging.mkdir(parents=True)
        (staging / "model.safetensors").write_bytes(b"half a model")
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-write

    monkeypatch.setattr(sources, "_write_converted", write_half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        sources.materialise(resolve(gguf), show_progress=False)
    assert leftovers(home) == []


def test_a_finished_conversion_is_cached_and_reused(tmp_path: Path, home: Path,
                                                    monkeypatch: pytest.MonkeyPatch):
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF" + bytes(64))
    calls = []

    def write_fake(source: Path, staging: Path, progress) -> None:
        calls.append(source)
        staging.mkdir(parents=True)
        (staging / "config.json").write_text("{}")
        (staging / MANIFEST).write_text(json.dumps({"source": str(source)}))

    monkeypatch.setattr(sources, "_write_converted", write_fake)
    first = sources.materialise(resolve(gguf), show_progress=False)
    second = sources.materialise(resolve(gguf), show_progress=False)
    assert calls == [gguf.resolve()]
    assert first == second
    assert first.kind == "directory"
    assert first.label == "fake"
    target = Path(first.location)
    assert target.parent == home / "models"
    assert (target / MANIFEST).is_file()
    assert [p.name for p in (home / "models").iterdir()] == [target.name]

    # A replaced file (new size and mtime) is converted again, into a new directory.
    gguf.write_bytes(b"GGUF" + bytes(128))
    third = sources.materialise(resolve(gguf), show_progress=False)
    assert len(calls) == 2
    assert third.location != first.location


def test_materialise_leaves_directories_alone(tmp_path: Path):
    (tmp_path / "config.json").write_text("{}")
    source = resolve(tmp_path)
    assert sources.materialise(source, show_progress=False) is source


# dtype -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, dtype", [
    ("float32", torch.float32), ("fp32", torch.float32),
    ("bfloat16", torch.bfloat16), ("bf16", torch.bfloat16),
])
def test_choose_dtype_by_name(name: str, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CHORUS_DTYPE", raising=False)
    assert choose_dtype(name) is dtype


def test_choose_dtype_passes_a_torch_dtype_through():
    assert choose_dtype(torch.float16) is torch.float16


@pytest.mark.parametrize("name", ["float64", "int8", "BF-16", "fast"])
def test_choose_dtype_rejects_unknown_names(name: str):
    with pytest.raises(ModelLoadError, match=name):
        choose_dtype(name)


@pytest.mark.parametrize("fast_bf16, dtype", [(True, torch.bfloat16), (False, torch.float32)])
def test_choose_dtype_auto_follows_the_cpu(fast_bf16: bool, dtype: torch.dtype,
                                           monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CHORUS_DTYPE", raising=False)
    monkeypatch.setattr(loading, "_cpu_has_fast_bf16", lambda: fast_bf16)
    assert choose_dtype() is dtype
    assert choose_dtype("auto") is dtype


def test_choose_dtype_reads_chorus_dtype(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(loading, "_cpu_has_fast_bf16", lambda: False)
    monkeypatch.setenv("CHORUS_DTYPE", "bf16")
    assert choose_dtype() is torch.bfloat16
    assert choose_dtype(None) is torch.bfloat16
    assert choose_dtype("float32") is torch.float32  # an explicit value wins
    monkeypatch.setenv("CHORUS_DTYPE", "float32")
    assert choose_dtype() is torch.float32
    monkeypatch.setenv("CHORUS_DTYPE", "float128")
    with pytest.raises(ModelLoadError, match="float128"):
        choose_dtype()
