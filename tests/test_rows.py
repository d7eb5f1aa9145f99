"""Per-row bookkeeping of a batch: repetition cut-off, stop strings, budgets, streaming."""

import numpy as np
import pytest
from transformers import AutoTokenizer

from chorus.runtime.guidance import Closer
from chorus.runtime.rows import RowTracker, repeated_line_start, repetition_start
from chorus.runtime.types import GenerationRequest


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


@pytest.mark.parametrize("text, expected", [
    ("Dear [name], [amount] [amount] [amount] [amount] ", "Dear [name], [amount] "),
    ("1. **1. **1. **1. **1. **", "1. **"),
    ("so so so so so so so so so so so", "so so"),  # short pieces need 20 characters
    ("so so so so so so", None),
    ("ha ha ha ha", None),
    ("-" * 40, None),  # a rule is no loop: no letter or digit
    ("a\nb\na\n", "a\nb\n"),  # a repeated line still counts first
    ("the cat sat on the mat", None),
    ("Learn a language." + "\xa0 " * 16, "Learn a language."),  # blank space loops too
    ("P.S. Soon." + "\n" * 8, "P.S. Soon."),
    ("P.S. Soon.\n\n\n\n", None),
    ('{\n' + " " * 16 + '"a": 1', None),  # indentation is no loop
    ("Total:" + " " * 40, None),  # nor is alignment, with plain spaces
    ("Total:" + " " * 64, "Total:"),  # until it is long past any
    # a sentence looping within its paragraph, cut where its copy starts
    ("The empire grew by trade. Rome fell. The empire grew by trade.",
     "The empire grew by trade. Rome fell. "),
    ("Rome fell. The empire grew by trade! The empire grew by trade!\n\n",
     "Rome fell. The empire grew by trade! "),
    ("The empire grew by trade. Rome fell. The empire grew by", None),  # not ended yet
    ("Thank you. Thank you.", None),  # too short to be a loop
    # across paragraphs a sentence may come again: a sign-off in each of two letters
    ("Dear Ann, the hike is on. See you at the trail soon.\n******\n"
     "Dear Bob, bring water. See you at the trail soon.", None),
])
def test_repetition_start(text, expected):
    cut = repetition_start(text)
    assert (None if cut is None else text[:cut]) == expected


@pytest.fixture(scope="module")
def tokenizer(smol_tokenizer_dir):
    return AutoTokenizer.from_pretrained(smol_tokenizer_dir)


def feed(tracker: RowTracker, rows: list[list[int]]) -> None:
    """Offer the tracker one token per unfinished row per step, as a backend does."""
    for step in range(max(len(r) for r in rows)):
        for row, tokens in enumerate(rows):
            if not tracker.finished[row]:
                token = tokens[step] if step < len(tokens) else tracker.eos_ids.copy().pop()
                tracker.advance(row, token)


def tracker_for(tokenizer, rows, *, budgets=None, stops=None, stop_on_repeat=None,
                on_text=None) -> RowTracker:
    requests = [GenerationRequest(
        messages="x", max_new_tokens=(budgets or [100] * rows)[row],
        stop=(stops or [()] * rows)[row],
        stop_on_repeated_line=(stop_on_repeat or [False] * rows)[row]) for row in range(rows)]
    return RowTracker(requests, matchers=[None] * rows, eos_ids={tokenizer.eos_token_id},
                      decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
                      on_text=on_text)


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


def test_a_grammar_that_bounds_words_keeps_tokens_for_its_closing_before_they_run_out():
    from chorus.runtime import Lark

    bounded = Lark('start: /[a-z ]*/', closings=("\n\nP.S.",), word_limit=10)
    requests = [GenerationRequest(messages="x", max_new_tokens=100, output=output)
                for output in (bounded, Lark('start: /[a-z ]*/'))]
    tracker = RowTracker(requests, matchers=[None, None], eos_ids=set(),
                         decode=lambda ids: bytes(ids).decode(), on_text=None)
    for row in range(2):
        for token in b"one two three four five six":
            tracker.advance(row, token)
    assert tracker.budget_left(1) == 100 - len(b"one two three four five six")
    assert tracker.budget_left(0) == int(4 * RowTracker.TOKENS_PER_WORD)


def test_a_grammar_that_bounds_sentences_brings_its_closing_while_two_are_left():
    """Under "at most 4 sentences" and a P.S., the closing comes after the second sentence:
    "P.S." is a sentence of its own, and its note another."""
    from chorus.checks.compiling import compile_constraints

    compiled = compile_constraints([{"type": "sentence_count", "relation": "at_most",
                                     "value": 4}, {"type": "postscript", "marker": "P.S."}])
    assert compiled.compiled == (0, 1) and compiled.output.sentence_limit == 4
    request = GenerationRequest(messages="x", max_new_tokens=100, output=compiled.output)
    tracker = RowTracker([request], matchers=[None], eos_ids=set(),
                         decode=lambda ids: bytes(ids).decode(), on_text=None)
    lefts = []
    for token in b"One is here. Two is here. Three":
        tracker.advance(0, token)
        lefts.append(tracker.budget_left(0))
    reserve = Closer.RESERVE
    assert all(left > reserve for left in lefts[:len("One is here. Two is here")])
    assert all(left <= reserve for left in lefts[len("One is here. Two is here."):])


def _bullet_tracker(*, rewind_loops: bool) -> RowTracker:
    """One row under "exactly 2 bullet points", on a vocabulary of bytes."""
    import llguidance

    from chorus.checks.compiling import compile_constraints
    from chorus.runtime.guidance import byte_tokenizer, parser_limits

    grammar = compile_constraints([{"type": "bullet_count", "value": 2}]).grammar
    matcher = llguidance.LLMatcher(byte_tokenizer(), grammar, limits=parser_limits())
    request = GenerationRequest(messages="x", max_new_tokens=200, stop_on_repeated_line=True)
    return RowTracker([request], matchers=[matcher], eos_ids={byte_tokenizer().eos_token},
                      decode=lambda ids: bytes(ids).decode(errors="replace"), on_text=None,
                      rewind_loops=rewind_loops)


def test_a_loop_under_an_incomplete_grammar_is_taken_back_once_per_point():
    text = list(b"Reasons:\n* one\nok\nok\n")
    ended = _bullet_tracker(rewind_loops=False)
    feed(ended, [text])
    assert (ended.texts[0], ended.reasons[0]) == ("Reasons:\n* one\nok", "repetition")

    tracker = _bullet_tracker(rewind_loops=True)
    for token in text:
        tracker.advance(0, token)
    # the repeated line is taken back from the text and from the grammar: the backend
    # goes on from there (with a closing), and the row is not finished
    assert not tracker.finished[0] and tracker.rewound[0] == 1
    assert tracker.texts[0] == "Reasons:\n* one\nok\n"
    assert bytes(tracker.token_ids[0]).decode() == tracker.texts[0]
    # the token that began the loop is not to be written there again, and only there
    assert tracker.avoided(0) == ord("o")
    tracker.advance(0, ord("*"))
    assert tracker.avoided(0) is None
    for token in b" two":
        tracker.advance(0, token)
    assert tracker.matchers[0].is_accepting()  # the grammar saw the text as it is now
    # a loop back to the same point again ends the row, as without rewinds
    again = _bullet_tracker(rewind_loops=True)
    for token in text + list(b"ok\n"):
        again.advance(0, token)
    assert again.rewound[0] == 1 and again.reasons[0] == "repetition" and again.finished[0]


def test_where_a_loop_was_taken_back_the_next_choice_is_another_token():
    """Greedy decoding back at a loop's start would write the loop again: the token that
    began it is passed over there, for the likeliest token the grammar allows after it."""
    from chorus.runtime.choosing import NextTokens

    tracker = _bullet_tracker(rewind_loops=True)
    for token in b"Reasons:\n* one\nok\nok\n":
        tracker.advance(0, token)
    chooser = NextTokens(tracker.requests[0], tracker.matchers[0], None,
                         budget_left=lambda: tracker.budget_left(0),
                         bitmask=np.zeros((257 + 31) // 32, dtype=np.int32),
                         avoided=lambda: tracker.avoided(0))
    logits = np.zeros(257, dtype=np.float32)
    logits[ord("o")], logits[ord("*")], logits[ord("#")] = 3.0, 2.0, 1.0
    assert chooser.chosen(logits) == [ord("*")]
    tracker.advance(0, ord("*"))
    assert chooser.chosen(logits) == [ord("o")]  # further on, the same token stands


def test_a_repeated_line_that_completes_the_grammar_is_kept():
    """Two responses, the second a copy of the first: cut at the repeated line, the answer
    would lack its second response and fail the grammar it meets whole."""
    import llguidance

    from chorus.checks.compiling import compile_constraints
    from chorus.runtime.guidance import byte_tokenizer, parser_limits

    output = compile_constraints([{"type": "two_responses", "separator": "******"}]).output
    text = "good morning\n******\ngood morning\n"

    def tracked(output) -> RowTracker:
        matcher = llguidance.LLMatcher(byte_tokenizer(), output.grammar(),
                                       limits=parser_limits()) if output else None
        request = GenerationRequest(messages="x", max_new_tokens=200, output=output,
                                    stop_on_repeated_line=True)
        tracker = RowTracker([request], matchers=[matcher],
                             eos_ids={byte_tokenizer().eos_token},
                             decode=lambda ids: bytes(ids).decode(), on_text=None)
        feed(tracker, [list(text.encode())])
        return tracker

    kept = tracked(output)
    assert (kept.texts[0], kept.reasons[0]) == (text, "stop")
    assert kept.result(0, 0, 0.0).error is None
    cut = tracked(None)  # free text: the loop is cut where it begins
    assert (cut.texts[0], cut.reasons[0]) == ("good morning\n******", "repetition")


def test_a_second_response_copying_the_first_is_taken_back_where_loops_are():
    """The grammar takes two responses the same; the checker does not. Where loops are taken
    back, the copy is too, and its first token is passed over there."""
    import llguidance

    from chorus.checks.compiling import compile_constraints
    from chorus.runtime.guidance import byte_tokenizer, parser_limits

    output = compile_constraints([{"type": "two_responses", "separator": "******"}]).output
    matcher = llguidance.LLMatcher(byte_tokenizer(), output.grammar(), limits=parser_limits())
    request = GenerationRequest(messages="x", max_new_tokens=200, output=output,
                                stop_on_repeated_line=True)
    tracker = RowTracker([request], matchers=[matcher], eos_ids={byte_tokenizer().eos_token},
                         decode=lambda ids: bytes(ids).decode(), on_text=None,
                         rewind_loops=True)
    for token in b"good morning\n******\ngood morning\n":
        tracker.advance(0, token)
    assert not tracker.finished[0] and tracker.rewound[0] == 1
    assert tracker.texts[0] == "good morning\n******\n"
    assert tracker.avoided(0) == ord("g")
    for token in b"hello there":
        tracker.advance(0, token)
    tracker.advance(0, byte_tokenizer().eos_token)
    assert tracker.reasons[0] == "stop"
    assert tracker.result(0, 0, 0.0).error is None


def test_a_second_response_copying_the_first_at_the_end_is_taken_back():
    """The copy is the reply's last line, ended by the model rather than by a newline."""
    import llguidance

    from chorus.checks.compiling import compile_constraints
    from chorus.runtime.guidance import byte_tokenizer, parser_limits

    output = compile_constraints([{"type": "two_responses", "separator": "******"}]).output
    matcher = llguidance.LLMatcher(byte_tokenizer(), output.grammar(), limits=parser_limits())
    request = GenerationRequest(messages="x", max_new_tokens=200, output=output,
                                stop_on_repeated_line=True)
    eos = byte_tokenizer().eos_token
    tracker = RowTracker([request], matchers=[matcher], eos_ids={eos},
                         decode=lambda ids: bytes(ids).decode(), on_text=None,
                         rewind_loops=True)
    for token in [*b"Aqua\n******\nAqua", eos]:
        tracker.advance(0, token)
    assert not tracker.finished[0] and tracker.texts[0] == "Aqua\n******\n"
    assert tracker.avoided(0) == ord("A")
    for token in [*b"Sip", eos]:
        tracker.advance(0, token)
    assert (tracker.texts[0], tracker.reasons[0]) == ("Aqua\n******\nSip", "stop")


def test_the_limit_is_reached_with_the_words_or_sentences_the_grammar_allows():
    from chorus.checks.compiling import compile_constraints

    def tracker(data) -> RowTracker:
        request = GenerationRequest(messages="x", max_new_tokens=100,
                                    output=compile_constraints(data).output)
        return RowTracker([request], matchers=[None], eos_ids=set(),
                          decode=lambda ids: bytes(ids).decode(), on_text=None)

    sentences = tracker([{"type": "sentence_count", "relation": "at_most", "value": 2}])
    reached = []
    for token in b"One is here. Two is here.":
        sentences.advance(0, token)
        reached.append(sentences.limit_reached(0))
    assert reached.index(True) == len(b"One is here. Two is here.") - 1  # at its stop
    words = tracker([{"type": "word_count", "relation": "at_most", "value": 3}])
    feed(words, [list(b"one two thre")])
    assert words.limit_reached(0)
    free = tracker([{"type": "no_commas"}])
    feed(free, [list(b"one. two. three. four.")])
    assert not free.limit_reached(0)
