"""Per-row bookkeeping of a generation: budgets, stop strings, grammars and streamed text.

Every backend feeds each row's tokens to `RowTracker.advance` as soon as they are chosen; it
stops rows independently (end of text, a stop string, a repeated line, the budget, a grammar
that is complete), streams each row's new text to a callback, and turns a finished row into
its validated `GenerationResult`. It knows no tensors, so backends without torch use it too.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from chorus.errors import ChorusError, InvalidOutputError, OutputTruncatedError
from chorus.runtime.guidance import matcher_error
from chorus.runtime.types import FinishReason, GenerationRequest, GenerationResult, TextCallback


def repeated_line_start(text: str) -> int | None:
    """Where the last complete line starts, if it repeats an earlier non-empty line."""
    end = text.rfind("\n")
    if end < 0:
        return None
    lines = text[:end].split("\n")
    last = lines[-1].strip()
    if not last or last not in (line.strip() for line in lines[:-1]):
        return None
    return end - len(lines[-1])


# A phrase looping inside a line ("[amount] [amount] [amount] ...", "1. **1. **1. **"): at
# least 4 back-to-back copies of a piece of 2-40 characters holding a letter or digit, 20
# characters or more in all ("ha ha ha ha" and "--------" are left alone).
_LOOP_COPIES, _LOOP_CHARS, _LOOP_PERIOD = 4, 20, 40
_SENTENCE_END = re.compile(r"[.!?…]+(?=\s)")  # as the checkers read it, about


def looping_start(text: str) -> int | None:
    """Where the text should end if it ends in a looping phrase: after the loop's first copy."""
    for period in range(2, _LOOP_PERIOD + 1):
        unit = text[-period:]
        copies = max(_LOOP_COPIES, -(-_LOOP_CHARS // period))
        if len(text) < period * copies or not any(c.isalnum() for c in unit):
            continue
        if text.endswith(unit * copies):
            start = len(text) - period * copies
            while start >= period and text[start - period:start] == unit:
                start -= period
            return start + period
    return None


# Blank space looping (Qwen2.5 0.5B wrote "\xa0 " to its budget's end after a closing): 8 line
# breaks, or 32 blank characters on a line; 64 where they are plain spaces alone, which indent
# and align (a random test model's first token was 33 of them, and words followed).
_BLANK_LINE_BREAKS, _BLANK_CHARS, _BLANK_SPACES = 8, 32, 64


def blank_run_start(text: str) -> int | None:
    """Where the run of blank space the text ends with begins, if it is a loop."""
    kept = len(text.rstrip())
    run = text[kept:]
    if run.count("\n") >= _BLANK_LINE_BREAKS:
        return kept
    line = run[run.rfind("\n") + 1:]
    if len(line) >= (_BLANK_SPACES if set(line) == {" "} else _BLANK_CHARS):
        return len(text) - len(line)
    return None


# A paragraph looping: its last sentence, just ended, repeats an earlier one of the same line
# ("The economy was driven by trade. Rome fell. The economy was driven by trade."), where it
# holds 5 words or more ("Thank you." may come twice). Lines repeat across paragraphs and
# responses (a sign-off in each of two letters); a sentence within one line does not.
SENTENCE_STOPS = (".", "!", "?", "…")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?…])\s+")
_LOOP_SENTENCE_WORDS = 5


def repeated_sentence_start(text: str) -> int | None:
    """Where the last sentence starts, if it has just ended and repeats an earlier sentence
    of its own line."""
    ended = text.rstrip()
    if not ended.endswith(SENTENCE_STOPS):
        return None
    line_start = ended.rfind("\n") + 1
    starts = [line_start] + [line_start + match.end()
                             for match in _SENTENCE_BREAK.finditer(ended, line_start)]
    last = ended[starts[-1]:]
    if len(last.split()) < _LOOP_SENTENCE_WORDS:
        return None
    earlier = (ended[start:end].strip()
               for start, end in zip(starts[:-1], starts[1:], strict=True))
    return starts[-1] if last in earlier else None


def repetition_start(text: str) -> int | None:
    """Where a small model's loop begins: a line repeating an earlier one, a sentence
    repeating an earlier one of its line, a phrase repeating itself, or a run of blank
    space (`stop_on_repeated_line` ends the reply there)."""
    for find in (repeated_line_start, repeated_sentence_start, blank_run_start,
                 looping_start):
        start = find(text)
        if start is not None:
            return start
    return None


def refused(request: GenerationRequest, error: ChorusError,
            prompt_tokens: int = 0) -> GenerationResult:
    """The result of a row not decoded at all (its grammar cannot be enforced on this
    vocabulary): the error is recorded, so that a batch keeps its other rows and
    `Model.generate` still raises it."""
    result = GenerationResult(text="", finish_reason="stop", prompt_tokens=prompt_tokens,
                              new_tokens=0, latency_s=0.0, adapter=request.adapter)
    result.fail(error)
    return result


def truncated(request: GenerationRequest, text: str) -> OutputTruncatedError:
    return OutputTruncatedError(
        f"Constrained output ran out of tokens (max_new_tokens={request.max_new_tokens}) "
        f"before it was complete; raise max_new_tokens. Partial output: {text[:200]!r}", text)


class RowTracker:
    # how often a constrained row's loop is taken back before the loop ends it
    MAX_REWINDS = 8
    # tokens per word of English prose, about, in BPE vocabularies of 49k-152k entries
    TOKENS_PER_WORD = 1.4
    # tokens per sentence, taken so that with the Closer's reserve (32) the closings come
    # while 2 sentences are left
    TOKENS_PER_SENTENCE = 24

    def __init__(self, requests: list[GenerationRequest], *, matchers: list,
                 eos_ids: set[int], decode: Callable[[list[int]], str],
                 on_text: TextCallback | None, rewind_loops: bool = False):
        """`decode` turns a row's token ids into text (special tokens left out).
        `rewind_loops`: where a row under a grammar that is not complete yet starts to loop,
        its loop is taken back (`rewound`) instead of ending the row, so that the backend
        can lead it on from where the loop began: with a closing (guidance.Closer), else
        with another token than the one that began the loop (`avoided`)."""
        rows = len(requests)
        self.requests = requests
        self.budgets = [r.max_new_tokens for r in requests]
        self.stops = [r.stop for r in requests]
        self.matchers = matchers
        self.eos_ids = eos_ids
        self.decode = decode
        self.on_text = on_text
        self.stop_on_repeat = [r.stop_on_repeated_line for r in requests]
        self.finished = [False] * rows
        self.reasons: list[FinishReason] = ["length"] * rows
        self.rewind_loops = rewind_loops
        self.rewound = [0] * rows  # rewinds so far
        self._rewound_to: list[set[int]] = [set() for _ in range(rows)]
        self._avoid: list[tuple[int, int] | None] = [None] * rows  # (position, token)
        self.token_ids: list[list[int]] = [[] for _ in range(rows)]
        self.texts = [""] * rows
        self._emitted = [0] * rows

    def advance(self, row: int, token: int) -> None:
        """Row `row` chose `token`: record it, and finish the row if it is done."""
        if token in self.eos_ids:
            if not self._last_line_copied(row):
                self._finish(row, "stop")
            return
        self.token_ids[row].append(token)
        matcher = self.matchers[row]
        if matcher is not None:
            matcher.consume_token(token)
            if matcher.is_error():  # llguidance gave up (its lexer's limits): no use going on
                self._finish(row, "stop")
                return
        text = self.decode(self.token_ids[row])
        self.texts[row] = text
        for stop in self.stops[row]:
            cut = text.find(stop)
            if cut >= 0:
                self.texts[row] = text[:cut]
                self._finish(row, "stop_string")
                return
        if self.stop_on_repeat[row]:
            cut = repetition_start(text)
            breaks = cut is not None and self._cut_breaks_grammar(row, text[:cut].rstrip())
            if cut is not None and self._rewind(row, cut, breaks):
                return
            if breaks:
                # Complete with its repeated line and not without it, and not taken back
                # (no rewinds, or too many): it ends as it is, what the grammar accepts.
                self._finish(row, "stop")
                return
            if cut is not None:
                self.texts[row] = text[:cut].rstrip()
                self._finish(row, "repetition")
                return
        if len(self.token_ids[row]) >= self.budgets[row]:
            self._finish(row, "length")
            return
        if matcher is not None and matcher.is_stopped():
            self._finish(row, "stop")
            return
        self._stream(row, final=False)

    def budget_left(self, row: int) -> int:
        """The tokens row `row` may still write: the rest of its budget, or fewer where its
        grammar bounds the words or sentences (`Lark.word_limit`, `Lark.sentence_limit`),
        so that a closing comes while words and sentences are left for it. Words are
        estimated by spaces, sentences by stops before a space, tokens by `TOKENS_PER_WORD`
        and `TOKENS_PER_SENTENCE`; one sentence is kept back beyond the closing's own (a
        "P.S." is a sentence by itself, and its note another)."""
        left = self.budgets[row] - len(self.token_ids[row])
        words, sentences = self._within_limits(row, just_ended=False)
        if words is not None:
            left = min(left, int(words * self.TOKENS_PER_WORD))
        if sentences is not None:
            left = min(left, (sentences - 1) * self.TOKENS_PER_SENTENCE)
        return left

    def _within_limits(self, row: int, *, just_ended: bool) -> tuple[int | None, int | None]:
        """The words and the sentences row `row` may still write where its grammar bounds
        them (`Lark.word_limit`, `Lark.sentence_limit`; None where it does not). Words are
        counted by spaces, sentences by stops before a space, with `just_ended` also one at
        the very end."""
        output, text = self.requests[row].output, self.texts[row]
        words = getattr(output, "word_limit", None)
        sentences = getattr(output, "sentence_limit", None)
        ended = _SENTENCE_END.findall(text + " " if just_ended else text)
        return (None if words is None else words - len(text.split()),
                None if sentences is None else sentences - len(ended))

    def _last_line_copied(self, row: int) -> bool:
        """At the end of the reply, its last line is complete too: where it repeats an
        earlier line and the grammar is complete only with it (two responses, "Aqua" and
        "Aqua", which the checker refuses), it is taken back as a loop would be; whether
        it was."""
        if not self.may_rewind(row):  # which holds only where repeats are watched
            return False
        text = self.texts[row]
        cut = repeated_line_start(text + "\n")
        return cut is not None and self._cut_breaks_grammar(row, text[:cut].rstrip()) \
            and self._rewind(row, cut, cut_breaks_grammar=True)

    def limit_reached(self, row: int) -> bool:
        """Whether row `row` holds all the words or sentences its grammar allows
        (`Lark.word_limit`, `Lark.sentence_limit`); a sentence just ended counts."""
        return any(left is not None and left <= 0
                   for left in self._within_limits(row, just_ended=True))

    def _cut_breaks_grammar(self, row: int, kept: str) -> bool:
        """Whether row `row`'s grammar, complete at its whole text, refuses `kept`."""
        matcher, output = self.matchers[row], self.requests[row].output
        if matcher is None or output is None or not matcher.is_accepting():
            return False
        try:
            output.parse(kept)
        except ChorusError:
            return True
        return False

    def _rewind(self, row: int, cut: int, cut_breaks_grammar: bool = False) -> bool:
        """Take back the tokens of a constrained row's loop, which begins at character
        `cut`, where ending there would fail the grammar: it is not complete yet, or it is
        complete only with the loop (the second of two responses a copy of the first, which
        the checker refuses); whether it was taken back."""
        matcher, ids = self.matchers[row], self.token_ids[row]
        if not self.may_rewind(row) or (matcher.is_accepting() and not cut_breaks_grammar) \
                or self.rewound[row] >= self.MAX_REWINDS or cut < self._emitted[row]:
            return False
        keep = len(ids)
        while keep > 0 and len(self.decode(ids[:keep])) > cut:
            keep -= 1
        # back at a point it was taken back to, greedy decoding only loops again
        if keep == len(ids) or keep in self._rewound_to[row] \
                or not matcher.rollback(len(ids) - keep):
            return False
        self._avoid[row] = (keep, ids[keep])
        del ids[keep:]
        self.texts[row] = self.decode(ids)
        self.rewound[row] += 1
        self._rewound_to[row].add(keep)
        return True

    def may_rewind(self, row: int) -> bool:
        """Whether row `row`'s loops are taken back rather than end it."""
        return self.rewind_loops and self.stop_on_repeat[row] \
            and self.matchers[row] is not None

    def avoided(self, row: int) -> int | None:
        """The token that began the loop taken back to where row `row` now stands, not to
        be written there again: greedy decoding would only loop again."""
        avoid = self._avoid[row]
        return avoid[1] if avoid is not None and avoid[0] == len(self.token_ids[row]) \
            else None

    def _finish(self, row: int, reason: FinishReason) -> None:
        self.finished[row] = True
        self.reasons[row] = reason
        self._stream(row, final=True)

    def _stream(self, row: int, *, final: bool) -> None:
        if self.on_text is None:
            return
        text = self.texts[row]
        end = len(text)
        if not final:
            # Hold back what could be the start of a stop string or a split character.
            hold = max((len(s) - 1 for s in self.stops[row]), default=0)
            end = max(self._emitted[row], end - hold)
            if self.stop_on_repeat[row]:  # a line is shown once it is known not to repeat
                end = max(self._emitted[row], min(end, text.rfind("\n")))
            while end > self._emitted[row] and text[end - 1] == "\ufffd":
                end -= 1
        if end > self._emitted[row]:
            self.on_text(row, text[self._emitted[row]:end])
            self._emitted[row] = end

    def result(self, row: int, prompt_tokens: int, latency: float) -> GenerationResult:
        """The finished row, its constrained output parsed and validated; a failure is
        recorded on the result (Model.generate raises it; a batch keeps its other rows)."""
        request, text = self.requests[row], self.texts[row]
        result = GenerationResult(
            text=text, finish_reason=self.reasons[row], prompt_tokens=prompt_tokens,
            new_tokens=len(self.token_ids[row]), latency_s=latency, adapter=request.adapter)
        if request.output is None:
            return result
        try:
            reason = matcher_error(self.matchers[row])
            if reason:
                raise InvalidOutputError(f"Constrained decoding stopped: {reason}")
            if not self.matchers[row].is_accepting():
                if self.reasons[row] != "length":  # a stop string or a loop cut it short
                    raise InvalidOutputError(
                        f"Constrained output ended ({self.reasons[row]}) before its grammar "
                        f"was complete: {text[:200]!r}")
                raise truncated(request, text)
            result.value = request.output.parse(text)
        except ChorusError as error:
            result.fail(error)
        return result
