"""Where chorus keeps its files: one home folder, CHORUS_HOME (default ~/.cache/chorus)."""

from __future__ import annotations

import os
from pathlib import Path


def chorus_home() -> Path:
    """`$CHORUS_HOME`; unset or empty means ~/.cache/chorus (an empty value would otherwise
    scatter stores over whatever folder a command runs in)."""
    return Path(os.environ.get("CHORUS_HOME") or Path.home() / ".cache" / "chorus")
