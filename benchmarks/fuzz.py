"""Fuzzing at scale (issue 14): every target, many examples, counting tracebacks and hangs.

Usage:
  python benchmarks/fuzz.py [--examples 10000] [--targets a,b] [--out FILE.json]

The targets are tests/support/fuzz_targets.py, the same that tests/test_fuzz.py runs with a
few examples in CI: graph specs (YAML text, structures), tool specs, tool arguments (run in
their real forked processes), tool outputs (traced and shown), constraint specs, repository
import files (no stored record may be lost), CLI argument lists. An example that raises
anything but a clear error counts as a traceback; one that takes over --hang-s seconds is
stopped and counted as a hang. Failures do not stop the run: each is recorded with its input.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
import traceback
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))
import fuzz_targets  # noqa: E402


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def run_target(name: str, examples: int, hang_s: int, space) -> dict:
    target, strategies = fuzz_targets.TARGETS[name]
    failures: list[dict] = []
    durations: list[float] = []
    hangs = 0

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.tuples(*strategies))
    def run(drawn):
        nonlocal hangs
        started = time.perf_counter()
        signal.alarm(hang_s)
        try:
            target(space, *drawn)
        except Hang:
            hangs += 1
            failures.append({"kind": "hang", "input": repr(drawn)[:300]})
        except Exception as error:  # noqa: BLE001 - each is a finding, recorded
            failures.append({"kind": "traceback", "error": f"{type(error).__name__}: "
                             f"{str(error)[:200]}", "input": repr(drawn)[:300],
                             "where": traceback.format_exc().splitlines()[-3:]})
        finally:
            signal.alarm(0)
            durations.append(time.perf_counter() - started)

    began = time.perf_counter()
    run()
    durations.sort()
    return {"target": name, "examples": len(durations),
            "tracebacks": sum(f["kind"] == "traceback" for f in failures), "hangs": hangs,
            "median_ms": round(1000 * durations[len(durations) // 2], 2),
            "max_s": round(durations[-1], 2), "seconds": round(time.perf_counter() - began, 1),
            "failures": failures[:20]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--targets", help="comma-separated (default: all)")
    parser.add_argument("--hang-s", type=int, default=60)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    space = fuzz_targets.Workspace()
    # As in tests/test_fuzz.py: the CLI never loads a model, and writes only in the workspace.
    os.environ.update(CHORUS_MODEL=str(space.root / "no-such-model.gguf"), HF_HUB_OFFLINE="1",
                      CHORUS_HOME=str(space.root / "home"))
    os.chdir(space.root)
    signal.signal(signal.SIGALRM, _alarm)
    names = args.targets.split(",") if args.targets else list(fuzz_targets.TARGETS)
    reports = []
    for name in names:
        report = run_target(name, args.examples, args.hang_s, space)
        reports.append(report)
        print(json.dumps({k: v for k, v in report.items() if k != "failures"}), flush=True)
        for failure in report["failures"][:3]:
            print("   ", json.dumps(failure)[:400], flush=True)
    summary = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
               "examples_per_target": args.examples, "targets": reports}
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
