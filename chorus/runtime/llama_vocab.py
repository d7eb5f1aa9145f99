"""The byte pieces of a llama.cpp vocabulary, as llguidance's tokenizer takes them, kept on
disk per model file.

Reading them costs one ctypes call per token: 0.8 s for Qwen2.5's 151,936 tokens on these
machines, paid by every process that constrains an output (`chorus call` included). The
pieces depend only on the GGUF file, so they are stored once under CHORUS_HOME/vocab, named
by the file's sha256, and read back in a few milliseconds. A file that cannot be read or
written only costs the cache.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np

_MAGIC = b"chorus-vocab-1\n"
_SPECIAL = b"\xff"  # llguidance's mark of a token its bytes alone do not produce


def read_pieces(api, vocab) -> list[bytes]:
    """Each token's bytes, control tokens (and user-defined ones that look like them) marked
    special, as `llguidance.llamacpp` reads them; through llama.cpp's current attribute
    call, since the deprecated one llguidance uses warns once per token."""
    buffer = ctypes.create_string_buffer(16 * 1024)
    pieces = []
    for token in range(api.llama_vocab_n_tokens(vocab)):
        size = api.llama_token_to_piece(vocab, token, buffer, len(buffer), 0, True)
        piece = buffer[:max(size, 0)]
        attributes = api.llama_vocab_get_attr(vocab, token)
        if attributes & api.LLAMA_TOKEN_ATTR_CONTROL or (
                attributes & api.LLAMA_TOKEN_ATTR_USER_DEFINED
                and piece.startswith(b"<") and piece.endswith(b">")):
            piece = _SPECIAL + piece
        pieces.append(piece)
    return pieces


def cached_pieces(folder: Path, model_sha256: str, api, vocab) -> list[bytes]:
    """`read_pieces`, from `folder` where an earlier process stored them for this model."""
    path = folder / f"{model_sha256[:32]}.bin"
    pieces = _load(path)
    if pieces is None:
        pieces = read_pieces(api, vocab)
        _store(path, pieces)
    return pieces


def _load(path: Path) -> list[bytes] | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + 4:
        return None
    start = len(_MAGIC)
    count = int(np.frombuffer(data, dtype="<u4", count=1, offset=start)[0])
    lengths_end = start + 4 + 4 * count
    if len(data) < lengths_end:
        return None
    lengths = np.frombuffer(data, dtype="<u4", count=count, offset=start + 4)
    ends = (lengths_end + np.cumsum(lengths, dtype=np.int64)).tolist()
    if count and ends[-1] != len(data):  # cut short or grown: not ours to trust
        return None
    begins = [lengths_end, *ends[:-1]]
    return [data[begin:end] for begin, end in zip(begins, ends, strict=True)]


def _store(path: Path, pieces: list[bytes]) -> None:
    lengths = np.array([len(piece) for piece in pieces], dtype="<u4")
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as file:
            file.write(_MAGIC)
            file.write(np.uint32(len(pieces)).astype("<u4").tobytes())
            file.write(lengths.tobytes())
            file.write(b"".join(pieces))
        os.replace(partial, path)  # whole or absent
    except OSError:
        partial.unlink(missing_ok=True)
