"""`chorus chat` driven through a pseudo-terminal (pexpect), on the real embedded model."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
import yaml

from chorus.chat.transcript import Transcripts

pytestmark = pytest.mark.integration

FOOTER = re.compile(r"tokens/s\s+·\s+[\d.]+\s+s")
ANSI = r"(?:\x1b\[[0-9;?]*[A-Za-z])*"


def shown(text: str) -> str:
    """A pattern for `text` as the terminal gets it: styles may sit between characters."""
    return ANSI.join(re.escape(character) for character in text)
THREAD = re.compile(r"thread ([0-9a-f]{8})")


@pytest.fixture
def home(chorus_home, smol) -> Path:
    """The session's CHORUS_HOME: the embedded model is already converted there (`smol`)."""
    return chorus_home


def _spawn(home: Path, *args: str, columns: int = 120, **env: str) -> pexpect.spawn:
    environment = {**os.environ, "CHORUS_HOME": str(home), "TERM": "xterm",
                   "PROMPT_TOOLKIT_NO_CPR": "1", **env}
    child = pexpect.spawn(sys.executable, ["-m", "chorus.cli.main", "chat", "--dtype",
                                           "float32", *args],
                          env=environment, encoding="utf-8", timeout=150,
                          dimensions=(50, columns))
    child.expect("/help for commands")
    return child


def _thread(child: pexpect.spawn) -> str:
    return THREAD.search(child.before + child.after).group(1)


PROMPT = "›"  # prompt_toolkit moves the cursor past it: no literal space follows


def _say(child: pexpect.spawn, text: str) -> None:
    child.expect(PROMPT)
    child.sendline(text)


def _leave(child: pexpect.spawn) -> None:
    child.expect(PROMPT)
    child.sendeof()  # Ctrl-D
    child.expect("Bye")
    child.expect(pexpect.EOF)


def test_a_turn_that_calls_a_tool_shows_the_call_the_result_and_the_answer(home):
    child = _spawn(home)
    _say(child, "What is 12 * 12?")
    child.expect(shown("▸ plan · planner · adapter base model"))
    child.expect(shown("▸ call · caller · adapter base model"))
    child.expect(shown("⚙ "))  # which tool the 135M planner picks is not always right
    child.expect(shown("→ "))
    child.expect(shown("▸ answer · summarizer · adapter summarizer"))
    child.expect(FOOTER)
    answer = re.sub(ANSI[:-1], "", child.before)  # between the summarizer's line and footer
    assert re.search(r"\w", answer)
    _leave(child)


def test_slash_commands(home, tmp_path):
    child = _spawn(home)
    commands = [
        ("/help", "/memory [query]"),
        ("/graph", "plan · planner · adapter base model"),
        ("/tools", "calculator"),
        ("/adapters", "summarizer"),
        ("/memory", "(refinement repository|constraint)"),
        ("/memory word count", "(refinement repository|No refinements|constraint)"),
        ("/trace", "No turn has run yet"),
        ("/verbose off", "verbose off"),
        ("/verbose sideways", "Usage: /verbose on|off"),
        ("/verbose on", "verbose on"),
        ("/tols", "Unknown command /tols. Did you mean /tools?"),
        ("/reset", "New conversation, thread"),
        (f"/save {tmp_path / 'chat.md'}", "Saved the transcript"),
    ]
    for command, expected in commands:
        _say(child, command)
        child.expect(expected if expected.startswith("(") else shown(expected))
    assert (tmp_path / "chat.md").read_text().startswith("# chorus chat ")
    _say(child, "/quit")
    child.expect("Bye")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_trace_shows_the_last_turn(home):
    child = _spawn(home)
    _say(child, "What is 7 + 5?")
    child.expect(FOOTER)
    _say(child, "/trace")
    child.expect(shown("agent=planner adapter=base"))
    child.expect("answer:")
    _leave(child)


@pytest.mark.xfail(reason="seen failing on an idle 2-core AVX2 machine (2026-12-01): the Ctrl-C "
                          "was not acted on and the turn ran to its end; it passed there when "
                          "the machine was loaded. Open problem, see the issue 12 note.",
                   strict=False)
def test_ctrl_c_stops_the_turn_and_the_next_turn_works(home):
    child = _spawn(home)
    thread = _thread(child)
    _say(child, "Write a long story about a lighthouse keeper and then compute 3 * 3.")
    child.expect(shown("▸ plan · planner"))
    # Stop while the long story is being written.
    child.expect(shown("▸ answer · summarizer"))
    child.sendintr()
    child.expect("Stopped")
    _say(child, "What is 2 + 3?")
    child.expect(FOOTER)
    _leave(child)
    statuses = [(m.role, m.status) for m in Transcripts(home / "chat.sqlite").messages(thread)]
    assert statuses[0] == ("user", "stopped")
    assert statuses[1:] == [("user", "done"), ("assistant", "done")]


def test_a_killed_session_resumes_with_its_earlier_turns(home):
    child = _spawn(home)
    thread = _thread(child)
    _say(child, "What is 6 * 7?")
    child.expect(FOOTER)
    child.expect(PROMPT)
    child.kill(signal.SIGKILL)
    child.close()

    resumed = _spawn(home, "--resume", thread)
    resumed.expect(shown("› What is 6 * 7?"))
    answer = Transcripts(home / "chat.sqlite").messages(thread)[1].content
    resumed.expect(shown(answer.split()[0]))  # the earlier answer, shown again
    _leave(resumed)


def test_a_turn_killed_midway_is_finished_on_resume(home):
    child = _spawn(home)
    thread = _thread(child)
    _say(child, "Use the calculator to compute 9 * 9.")
    child.expect(shown("→ "))  # a tool ran
    child.expect(shown("▸ plan"))  # the step after the tool: the tool's step is checkpointed
    child.kill(signal.SIGKILL)
    child.close()

    resumed = _spawn(home, "--resume", thread)
    resumed.expect("The last turn did not finish; resuming it")
    resumed.expect("▸" + ANSI + " " + ANSI + r"(\w+)")
    assert resumed.match.group(1) == "plan"  # goes on after the tool: no call made again
    resumed.expect(FOOTER)
    _leave(resumed)
    messages = Transcripts(home / "chat.sqlite").messages(thread)
    assert [m.status for m in messages] == ["done", "done"]


CONFIRM_TOOL = '''
from pathlib import Path

def delete_notes(name: str) -> str:
    """Delete a notes file.

    Args:
        name: The file name.
    """
    Path(__file__).with_name("deleted").write_text(name)
    return f"deleted {name}"
'''


def test_a_declined_confirmation_does_not_run_the_tool(home, tmp_path):
    (tmp_path / "notes_tools.py").write_text(CONFIRM_TOOL)
    graph = tmp_path / "careful.yaml"
    graph.write_text(yaml.safe_dump({
        "name": "careful",
        "agents": {"caller": {"role": "caller"}, "summarizer": {"role": "summarizer"}},
        "tools": [{"openai": {"name": "delete_notes", "description": "Delete a notes file.",
                              "parameters": {"type": "object", "required": ["name"],
                                             "properties": {"name": {"type": "string"}}}},
                   "function": "notes_tools:delete_notes", "needs_confirmation": True}],
        "nodes": {"call": {"agent": "caller"}, "run_tools": {"run": "tools"},
                  "answer": {"agent": "summarizer"}},
        "edges": [{"from": "START", "to": "call"}, {"from": "call", "to": "run_tools"},
                  {"from": "run_tools", "to": "answer"}, {"from": "answer", "to": "END"}]}))
    child = _spawn(home, "--graph", str(graph))
    _say(child, "Delete my notes file called groceries.")
    child.expect(r"Run delete_notes\(.*\)\? \[y/N\]")
    child.sendline("n")
    child.expect("declined")
    child.expect(FOOTER)
    assert not (tmp_path / "deleted").exists()

    _say(child, "Delete my notes file called groceries.")
    child.expect(r"Run delete_notes\(.*\)\? \[y/N\]")
    child.sendline("y")
    child.expect(shown("→ deleted"))
    child.expect(FOOTER)
    assert (tmp_path / "deleted").exists()
    _leave(child)


def _piped(home: Path, text: str, **env: str) -> str:
    environment = {**os.environ, "CHORUS_HOME": str(home), **env}
    done = subprocess.run([sys.executable, "-m", "chorus.cli.main", "chat", "--dtype",
                           "float32"], input=text, capture_output=True, text=True,
                          env=environment, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_piped_output_has_no_colour_and_fits_a_narrow_width(home):
    out = _piped(home, "/tools\n/graph\nWhat is 4 * 4?\n", COLUMNS="40", TERM="dumb")
    assert "\x1b[" not in out
    assert max(len(line) for line in out.splitlines()) <= 40
    assert "calculator" in out and "→ " in out
    assert FOOTER.search(out)


def test_no_color_on_a_terminal(home):
    child = _spawn(home, NO_COLOR="1", columns=60)
    _say(child, "/tools")
    child.expect("current_datetime")
    assert not re.search(r"\x1b\[[0-9;]*3[0-9]m", child.before)  # no foreground colours
    _leave(child)
