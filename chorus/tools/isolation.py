"""Run one function call in a forked child process, within hard limits.

A thread cannot be stopped: work that holds the GIL ignores a thread's timeout and keeps a core
busy after it. A forked child can be killed. Forking (rather than a pool of spawned workers)
means any function works, closures included, with no pickling; it costs about 20 ms a call
in a process that holds a 0.5B model (benchmarks/RESULTS.md, "What isolating a tool
costs"). The child sends back the rendered, already truncated text, so nothing unbounded
ever reaches the parent.
"""

from __future__ import annotations

import ctypes
import faulthandler
import json
import math
import os
import resource
import select
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# Room a tool's process may allocate on top of what it inherits from the parent.
DEFAULT_MEMORY_MB = 1024
MAX_REPLY_BYTES = 1 << 20
_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
# Parallel tool calls fork from several threads. A child forked while another call's pipe is
# still open for writing in this process would hold that end too, and the other call would
# see no end of its reply until this child exits: forks, and closing our copy of the
# writing end, happen one at a time.
_FORKING = threading.Lock()


def available() -> bool:
    return hasattr(os, "fork")


@dataclass(frozen=True)
class Outcome:
    status: str  # "ok" | "error" | "timeout"
    content: str


def run_isolated(call: Callable[[], str], *, timeout_s: float,
                 memory_mb: int = DEFAULT_MEMORY_MB) -> Outcome:
    """`call()` in a child process: killed after `timeout_s`, its memory capped at
    `memory_mb` more than the parent's, its exceptions (and crashes) reported as errors.
    `call` must return the text to hand back (rendered and truncated in the child)."""
    parent = os.getpid()
    with _FORKING:  # no other child may inherit this pipe's writing end (see _FORKING)
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's code
            os.close(reader)
            _child(call, writer, parent, timeout_s, memory_mb)
        os.close(writer)
    try:
        data, finished = _read_until(reader, time.monotonic() + timeout_s)
    finally:
        os.close(reader)
    if not finished:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if not finished:
        return timed_out(timeout_s)
    try:
        reply = json.loads(data)
        return Outcome(reply["status"], reply["content"])
    except (ValueError, KeyError, TypeError):
        return Outcome("error", _death(status))


def _child(call: Callable[[], str], writer: int, parent: int, timeout_s: float,
           memory_mb: int) -> None:
    code = 0
    try:
        _die_with(parent)
        faulthandler.disable()  # a crashing tool is reported once, by the parent
        _limit_memory(memory_mb)
        # An orphan (the parent killed) still stops once it has used its time.
        cpu = math.ceil(timeout_s) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        try:
            reply = {"status": "ok", "content": call()}
        except BaseException as error:  # noqa: BLE001 - every failure is the tool's outcome
            reply = {"status": "error", "content": describe(error)}
        payload = json.dumps(reply).encode()[:MAX_REPLY_BYTES]
        view = memoryview(payload)
        while view:
            view = view[os.write(writer, view):]
    except BaseException:  # noqa: BLE001 - the parent reports the missing reply
        code = 1
    finally:
        os._exit(code)  # no atexit handlers, no flushing of the parent's buffers


def timed_out(timeout_s: float) -> Outcome:
    return Outcome("timeout", f"Timed out after {timeout_s:g} s.")


def _die_with(parent: int) -> None:
    """Linux: be killed when the parent dies (a run killed mid-call leaves no tool behind)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux
        return
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)


def _limit_memory(memory_mb: int) -> None:
    try:
        with open("/proc/self/statm") as statm:  # inherited address space, in pages
            inherited = int(statm.read().split()[0]) * resource.getpagesize()
    except OSError:  # not Linux: leave the address space unbounded
        return
    limit = inherited + memory_mb * (1 << 20)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def describe(error: BaseException) -> str:
    if isinstance(error, MemoryError):
        return "MemoryError: the tool ran out of its memory allowance"
    try:
        return f"{type(error).__name__}: {error}"
    except Exception:  # noqa: BLE001 - an exception whose str() fails
        return type(error).__name__


def _read_until(fd: int, deadline: float) -> tuple[bytes, bool]:
    """Everything written to `fd` until its writer closes it (True) or the deadline (False)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"", False
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks), True
        size += len(chunk)
        if size <= MAX_REPLY_BYTES:
            chunks.append(chunk)


def _death(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number == signal.SIGXCPU:
            return "The tool's process used up its CPU time and was stopped."
        return f"The tool's process died ({signal.Signals(number).name})."
    return f"The tool's process exited with code {os.WEXITSTATUS(status)} without a result."

