"""Where named adapters live, and which one a role gets by default.

A name is looked up in CHORUS_HOME/adapters (what the user trained) before the adapters
shipped in the package (chorus/role_adapters), so a user's own `caller` replaces ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chorus.errors import AdapterNotFoundError
from chorus.paths import chorus_home
from chorus.runtime.manifest import AdapterManifest, read_manifest
from chorus.runtime.model import Model

SHIPPED = Path(__file__).resolve().parent.parent / "role_adapters"
AUTO = "auto"  # a graph agent's default: its role's adapter, if one fits the base model


@dataclass(frozen=True)
class Available:
    name: str
    path: Path
    origin: str  # "user" or "shipped"
    manifest: AdapterManifest | None


def user_adapters() -> Path:
    return chorus_home() / "adapters"


def available() -> list[Available]:
    found: dict[str, Available] = {}
    for origin, folder in (("shipped", SHIPPED), ("user", user_adapters())):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if (path / "adapter_config.json").is_file():
                found[path.name] = Available(path.name, path, origin, read_manifest(path))
    return sorted(found.values(), key=lambda item: item.name)


def locate(name_or_path: str | Path) -> Path:
    """An adapter folder from a path, or from a name in the user's or the shipped ones."""
    path = Path(name_or_path)
    if (path / "adapter_config.json").is_file():
        return path
    for item in available():
        if item.name == str(name_or_path):
            return item.path
    names = ", ".join(item.name for item in available()) or "none"
    raise AdapterNotFoundError(
        f"No adapter '{name_or_path}': not an adapter folder, and not one of the named "
        f"adapters ({names}). `chorus adapters list` shows them.")


def ensure_loaded(model: Model, name_or_path: str) -> str:
    """The registered name of an adapter on `model` (a name in the library, or a folder),
    loading it the first time."""
    path = Path(name_or_path)
    if (path / "adapter_config.json").is_file():
        for info in model.adapters.list():
            if info.source == str(path):
                return info.name
        return model.adapters.load(path).name
    if name_or_path not in model.adapters:
        model.adapters.load(locate(name_or_path), name=name_or_path)
    return name_or_path


def role_default(model: Model, role: str) -> str | None:
    """The library's adapter named after `role`, if there is one for this base model; None
    (the plain base) otherwise, and always on a backend that applies no adapters."""
    if not model.serves_adapters:
        return None
    for item in available():
        if item.name == role and item.manifest is not None and \
                model.adapters.fits(item.manifest):
            return ensure_loaded(model, role)
    return None


def resolve(model: Model, role: str, requested: str | None) -> str | None:
    """What an agent spec's `adapter` means on this model: AUTO -> the role default,
    None -> the plain base, a name -> that adapter (an error if it does not fit)."""
    if requested == AUTO:
        return role_default(model, role)
    if requested is None:
        return None
    return ensure_loaded(model, requested)
