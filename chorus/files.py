"""Reading the files users hand to chorus: one clear error for missing, unreadable, non-UTF-8
or malformed files, naming the file and what it was meant to be."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chorus.errors import ChorusError

# Far above any real tools file, graph spec or chat history; reading more would only delay
# the error the model's context would give anyway.
MAX_FILE_BYTES = 16 << 20


def read_text(path: str | Path, what: str, error: type[ChorusError] = ChorusError) -> str:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise error(f"{path}: {what} is larger than {MAX_FILE_BYTES >> 20} MB")
        return path.read_text(encoding="utf-8")
    except OSError as problem:
        raise error(f"Cannot read {what} {path}: {problem.strerror or problem}") from problem
    except UnicodeDecodeError as problem:
        raise error(f"{path}: {what} must be UTF-8 text (invalid byte at offset "
                    f"{problem.start})") from problem


def read_json(path: str | Path, what: str, error: type[ChorusError] = ChorusError) -> Any:
    text = read_text(path, what, error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as problem:
        raise error(f"{path}: {what} is not valid JSON at line {problem.lineno}, column "
                    f"{problem.colno}: {problem.msg}") from problem
    except RecursionError as problem:
        raise error(f"{path}: {what} is nested too deeply") from problem
