"""Per-row bookkeeping of a batch: repetition cut-off, stop strings, budgets, streaming."""

import pytest
import torch
from transformers import AutoTokenizer

from chorus.runtime.rows import RowTracker, repeated_line_start


@pytest.mark.parametrize("text, expected", [
    ("12 * 12 = 144\n12 * 12 = 144\n", "12 * 12 = 144\n"),
    ("a\nb\na\nmore", "a\nb\n"),
    ("a\n\n\nb", None),  # blank lines are not a loop
    ("a\nb\nc\n", None),
    ("no newline yet", None),
    ("  x = 1\nx = 1  \n", "  x = 1\n"),
])
def test_repeated_line_start(text, expected):
    cut = repeated_line_start(text)
    assert (None if cut is None else text[:cut]) == expected


@pytest.fixture(scope="module")
def tokenizer(smol_tokenizer_dir):
    return AutoTokenizer.from_pretrained(smol_tokenizer_dir)


def feed(tracker: RowTracker, rows: list[list[int]]) -> None:
    """Offer the tracker one token per row per step, as generate() does."""
    for step in range(max(len(r) for r in rows)):
        column = [r[step] if step < len(r) else tracker.eos_ids.copy().pop() for r in rows]
        tracker(torch.tensor(column).unsqueeze(1), None)


def tracker_for(tokenizer, rows, **options) -> RowTracker:
    defaults = dict(budgets=[100] * rows, stops=[()] * rows,
                    matchers=[None] * rows, eos_ids={tokenizer.eos_token_id},
                    tokenizer=tokenizer, on_text=None)
    return RowTracker(**{**defaults, **options})


def test_rows_stop_independently_and_stream_exactly_their_text(tokenizer):
    looping = tokenizer.encode("It is 144.\nIt is 144.\nIt is 144.\n")
    plain = tokenizer.encode("Paris is the capital. The end")
    stopped = tokenizer.encode("One. Two. STOP here")
    pieces: dict[int, list[str]] = {0: [], 1: [], 2: []}
    tracker = tracker_for(tokenizer, 3, budgets=[100, 4, 100], stops=[(), (), ("STOP",)],
                          stop_on_repeat=[True, False, False],
                          on_text=lambda row, piece: pieces[row].append(piece))
    feed(tracker, [looping, plain, stopped])
    assert (tracker.texts[0], tracker.reasons[0]) == ("It is 144.", "repetition")
    assert tracker.reasons[1] == "length" and len(tracker.token_ids[1]) == 4
    assert (tracker.texts[2], tracker.reasons[2]) == ("One. Two. ", "stop_string")
    for row in range(3):
        assert "".join(pieces[row]) == tracker.texts[row]
