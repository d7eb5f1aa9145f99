"""Fuzzing (issue 14), bounded for CI: every target ends in a result or a clear error.
benchmarks/fuzz.py runs the same targets with 10,000 examples each (RESULTS.md)."""

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "support"))
import fuzz_targets  # noqa: E402

EXAMPLES = {"tool_arguments": 40, "tool_output": 25, "cli_arguments": 60,
            "server_request": 40}


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    return fuzz_targets.Workspace()


@pytest.fixture(autouse=True)
def offline_cli(monkeypatch, space):
    """The CLI target must never load a model (or look for one on a hub), and writes only
    inside the workspace."""
    monkeypatch.setenv("CHORUS_MODEL", str(space.root / "no-such-model.gguf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CHORUS_HOME", str(space.root / "home"))
    monkeypatch.chdir(space.root)


@pytest.mark.parametrize("name", sorted(fuzz_targets.TARGETS))
def test_fuzz_target(name, space):
    target, strategies = fuzz_targets.TARGETS[name]

    @settings(max_examples=EXAMPLES.get(name, 100), deadline=None, database=None,
              derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.tuples(*strategies))
    def run(drawn):
        target(space, *drawn)

    run()
