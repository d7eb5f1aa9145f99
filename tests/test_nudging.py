"""Nudges: words a response still needs (a keyword, words in capitals), favoured on the
logits until the text holds them, on a real vocabulary and in both local backends."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chorus.checks.case import capital_words
from chorus.checks.compiling import CompiledConstraints, compile_constraints
from chorus.checks.keywords import keyword_nudge, occurrences
from chorus.runtime.nudging import Nudge, Nudger, NudgeTokens
from chorus.runtime.types import GenerationRequest

FILLER = " and the day went on as days do, slowly and without a sound"  # > 40 characters


@pytest.fixture(scope="module")
def vocabulary(smol_tokenizer_dir):
    import llguidance.hf
    from transformers import AutoTokenizer

    return llguidance.hf.from_tokenizer(AutoTokenizer.from_pretrained(smol_tokenizer_dir))


@pytest.fixture(scope="module")
def tokens(vocabulary):
    return NudgeTokens(lambda: vocabulary)


def token_of(vocabulary, text: str) -> int:
    [token] = vocabulary.tokenize_str(text)
    return token


def raised(nudger: Nudger, text: str, size: int, likeliest: int | None = None) -> np.ndarray:
    logits = np.zeros(size, dtype=np.float32)
    if likeliest is not None:
        logits[likeliest] = 1.0
    return nudger.bias(logits, text) - logits


def test_a_keyword_is_favoured_until_the_text_holds_it_enough_times(vocabulary, tokens):
    nudger = Nudger([keyword_nudge("rain", 2)], tokens)
    size = vocabulary.vocab_size
    spaced = {token_of(vocabulary, " rain"), token_of(vocabulary, " Rain")}
    favoured = spaced | {token_of(vocabulary, "Rain")}  # the last where no word goes on

    def favours(text: str) -> set[int]:
        return set(np.flatnonzero(raised(nudger, text, size) > 0).tolist())

    assert favours("The sky is grey.") == favoured
    assert favours("") == favoured
    assert favours("Raindrops fall" + FILLER) == spaced  # not the word: still wanted
    assert favours("The rain falls" + FILLER) == spaced  # one of two
    assert favours("The rain falls" + FILLER + ".\n") == favoured
    assert favours("The rain") == set()  # it rests just after one
    assert favours("The rain falls" + FILLER + " rain") == set()  # twice: done
    assert np.all(raised(nudger, "The sky", size)[list(spaced)] == Nudger.BIAS)
    # Just written, the word ends there: "rainy" would not count.
    after = raised(nudger, "The rain", size)
    assert after[token_of(vocabulary, "y")] == -Nudger.BIAS
    assert after[token_of(vocabulary, " falls")] == 0


def test_a_keyword_wanted_exactly_so_often_is_barred_once_written_so_often(vocabulary,
                                                                           tokens):
    """"Flour" exactly twice: favoured until written twice, barred after (a model that
    liked the word wrote it twelve times)."""
    nudger = Nudger([keyword_nudge("flour", 2, most=2)], tokens)
    size = vocabulary.vocab_size
    flour = token_of(vocabulary, " flour")
    assert raised(nudger, "Add", size)[flour] == Nudger.BIAS
    assert raised(nudger, "Add flour" + FILLER, size)[flour] == Nudger.BIAS
    two = "Add flour" + FILLER + ", then flour" + FILLER
    assert raised(nudger, two, size)[flour] == -Nudger.BAR
    whole = tokens.starts(("flour",)).whole  # " flour", " Flour", "Flour" where one token
    assert flour in whole
    assert np.all(raised(nudger, two + ".\n", size)[whole] == -Nudger.BAR)
    [nudge] = compile_constraints([{"type": "keyword_frequency", "keyword": "flour",
                                    "relation": "exactly", "value": 2}]).nudges
    assert (nudge.times, nudge.most) == (2, 2)
    [at_least] = compile_constraints([{"type": "keyword_frequency", "keyword": "flour",
                                       "relation": "at_least", "value": 2}]).nudges
    assert at_least.most is None
    # A forbidden word is barred from the start, pieces that start other words are not.
    [forbidden] = compile_constraints([{"type": "forbidden_words", "words": ["flour"]}]).nudges
    barred = raised(Nudger([forbidden], tokens), "Add", size)
    assert barred[flour] == -Nudger.BAR
    assert set(np.flatnonzero(barred).tolist()) == set(whole.tolist())


@given(st.lists(st.sampled_from(["rain", "Rain", "RAIN", "rainy", "brain", "rain's",
                                 "rain-soaked", "re-rain", " ", "\n", ".", ",", "'",
                                 "the", "x"]), max_size=12))
def test_a_keyword_nudge_counts_as_the_checker_does(pieces):
    text = "".join(pieces)
    nudge = keyword_nudge("rain", 1)
    assert len(re.findall(nudge.pattern, text)) == occurrences("rain", text)


def test_words_in_capitals_are_the_likeliest_content_words_written_in_capitals(vocabulary,
                                                                               tokens):
    nudge = Nudge(pattern=r"(?<![\w'’-])[A-Z]{2,}(?![\w'’-])", times=2, capitals=True,
                  spacing=12)
    nudger = Nudger([nudge], tokens)
    size = vocabulary.vocab_size
    health, plain = token_of(vocabulary, " health"), token_of(vocabulary, " with")
    twin = tokens.twins().words[health]
    assert vocabulary.decode_str([twin]) == " HEALTH"

    def chosen(text: str, likeliest: int) -> int:
        logits = np.zeros(size, dtype=np.float32)
        logits[likeliest] = 1.0
        return int(np.argmax(nudger.bias(logits, text)))

    assert chosen("Good", health) == twin
    assert chosen("Good", plain) == plain  # no emphasis on a function word
    assert chosen("Good HEALTH", health) == health  # it rests just after one
    assert chosen("Good HEALTH" + FILLER + " FOOD" + FILLER, health) == health  # done
    assert capital_words("Good HEALTH and FOOD") == ["HEALTH", "FOOD"]


def test_a_word_begun_in_capitals_goes_on_in_capitals(vocabulary, tokens):
    nudger = Nudger([Nudge(pattern="[A-Z]{2,}", times=1, capitals=True)], tokens)
    rest, twin = next(iter(tokens.twins().rest.items()))
    assert vocabulary.decode_str([twin]) == vocabulary.decode_str([rest]).upper()
    logits = np.zeros(vocabulary.vocab_size, dtype=np.float32)
    logits[rest] = 1.0
    # The nudge is met ("TECH" counts), but a word cut into tokens is not left half done.
    assert int(np.argmax(nudger.bias(logits, "Good TECH"))) == twin
    assert int(np.argmax(nudger.bias(logits, "Good tech"))) == rest


def test_compiled_constraints_carry_the_nudges_of_what_they_need():
    keywords = {"type": "include_keywords", "keywords": ["rain", "grey sky"]}
    compiled = compile_constraints([keywords])
    # Nothing compiles without `needs_content`, but the nudges get a grammar to ride on.
    assert compiled.compiled == () and compiled.grammar is not None
    assert [n.words for n in compiled.output.nudges] == [("rain",), ("grey sky",)]
    assert CompiledConstraints.from_state(compiled.to_state()).nudges == compiled.nudges
    at_most = {"type": "keyword_frequency", "keyword": "rain", "relation": "at_most",
               "value": 2}
    [most] = compile_constraints([at_most]).nudges  # barred past the count, never favoured
    assert (most.times, most.most) == (0, 2)
    # Constraints in conflict are left to refinement, which reports them: no nudge either.
    conflict = [{"type": "keyword_frequency", "keyword": "rain", "relation": "at_least",
                 "value": 2}, {"type": "forbidden_words", "words": ["rain"]}]
    assert compile_constraints(conflict).nudges == ()
    capitals = {"type": "capital_word_frequency", "relation": "at_least", "value": 3}
    [nudge] = compile_constraints([capitals]).nudges
    assert nudge.capitals and nudge.times == 3



def test_a_nudge_favours_its_word_as_the_other_constraints_write_it():
    """All in capitals, a nudge toward " food" is masked: it favours " FOOD" instead."""
    keyword = {"type": "include_keywords", "keywords": ["Food"]}
    [upper] = compile_constraints([keyword, {"type": "uppercase"}]).nudges
    [lower] = compile_constraints([keyword, {"type": "lowercase"}]).nudges
    [plain] = compile_constraints([keyword]).nudges
    assert (upper.words, lower.words, plain.words) == (("FOOD",), ("food",), ("Food",))
    assert upper.pattern == plain.pattern  # counted as the checker counts, in any case


@pytest.mark.parametrize("backend", ["tiny", "smol_llama"])
def test_both_local_backends_write_a_nudged_word(backend, request, monkeypatch):
    """Wiring: with an overwhelming bias, the first word is the nudged one; no more after
    (the nudge is met), where the model goes its own way."""
    model = request.getfixturevalue(backend)
    monkeypatch.setattr(Nudger, "BIAS", 1000.0)
    output = compile_constraints([{"type": "include_keywords", "keywords": ["rain"]}]).output
    result = model.complete(GenerationRequest(messages="Say something.", output=output,
                                              max_new_tokens=6))
    assert re.match(r"\s*rain\b", result.text, re.IGNORECASE), result.text
    plain = model.generate("Say something.", max_new_tokens=6)
    assert not re.match(r"\s*rain\b", plain.text, re.IGNORECASE)
