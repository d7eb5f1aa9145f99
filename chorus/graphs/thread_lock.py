"""One process at a time per thread: an exclusive lock file per thread id.

The lock is an `flock` on a file in the run store: the kernel releases it when its process
ends, however it ends (kill -9 included), so a dead run never blocks its thread.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chorus.errors import ChorusError


class ThreadBusyError(ChorusError):
    """Another process is running this thread now."""


@contextmanager
def thread_lock(store: Path, thread_id: str) -> Iterator[None]:
    folder = store / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    # Thread ids are user text: the file is named by their hash.
    path = folder / (hashlib.sha256(thread_id.encode()).hexdigest()[:32] + ".lock")
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
            raise ThreadBusyError(
                f"Thread '{thread_id}' is being run by another process"
                f"{f' (pid {holder})' if holder else ''}; wait for it to finish, or use "
                "another thread") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(descriptor)  # releases the lock
