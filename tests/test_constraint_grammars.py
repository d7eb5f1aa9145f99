"""Constraints compiled into grammars: every text a constraint's grammar accepts passes its
checker (random texts walked under the grammar itself), the reverse where the grammar is
exact (hypothesis texts), and how constraints combine, conflict and fall back."""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chorus.checks import check_all, parse_constraint
from chorus.checks.base import words
from chorus.checks.compiling import (
    NEEDS_CONTENT,
    NOT_EXPRESSIBLE,
    compile_constraints,
    grammar_of,
)
from chorus.checks.patterns import Alphabet
from chorus.errors import InvalidOutputError, UnsupportedSchemaError
from chorus.runtime import Lark
from chorus.runtime.guidance import accepts, grammar_problem

sys.path.insert(0, str(Path(__file__).parent / "support"))
from grammar_walk import walk  # noqa: E402

LATIN = Alphabet.for_languages(())

# Every constraint type that has a grammar, with parameters that reach its edge cases:
# zero counts, phrases ending in punctuation or a word, joiners, case, multi-word phrases.
SAMPLES = [
    {"type": "lowercase"}, {"type": "uppercase"}, {"type": "no_commas"},
    {"type": "word_count", "relation": "at_most", "value": 5},
    {"type": "word_count", "relation": "at_least", "value": 8},
    {"type": "word_count", "relation": "exactly", "value": 3},
    {"type": "word_count", "relation": "at_most", "value": 0},
    {"type": "character_count", "relation": "at_most", "value": 12},
    {"type": "character_count", "relation": "at_least", "value": 20},
    {"type": "character_count", "relation": "exactly", "value": 1},
    {"type": "paragraph_count", "relation": "exactly", "value": 2},
    {"type": "sentence_count", "relation": "exactly", "value": 2},
    {"type": "sentence_count", "relation": "at_most", "value": 3},
    {"type": "sentence_count", "relation": "at_least", "value": 2},
    {"type": "sentence_count", "relation": "at_most", "value": 0},
    {"type": "paragraph_count", "relation": "at_most", "value": 1},
    {"type": "paragraph_count", "relation": "at_least", "value": 3},
    {"type": "nth_paragraph_first_word", "paragraphs": 2, "n": 2, "word": "yet"},
    {"type": "include_keywords", "keywords": ["tea", "green leaf"]},
    {"type": "forbidden_words", "words": ["a", "is"]},
    {"type": "keyword_frequency", "keyword": "an", "relation": "exactly", "value": 2},
    {"type": "keyword_frequency", "keyword": "ab", "relation": "at_most", "value": 1},
    {"type": "letter_frequency", "letter": "e", "relation": "at_least", "value": 3},
    {"type": "letter_frequency", "letter": "a", "relation": "at_most", "value": 2},
    {"type": "capital_word_frequency", "relation": "at_least", "value": 2},
    {"type": "bullet_count", "value": 2}, {"type": "bullet_count", "value": 0},
    {"type": "numbered_sections", "marker": "SECTION", "value": 2},
    {"type": "numbered_sections", "marker": "Day", "value": 0},
    {"type": "highlighted_sections", "value": 2}, {"type": "placeholders", "value": 2},
    {"type": "title"}, {"type": "starts_with", "phrase": "Dear Jo"},
    {"type": "starts_with", "phrase": "Note:"}, {"type": "ends_with", "phrase": "See you"},
    {"type": "ends_with", "phrase": "- end."}, {"type": "quotation"},
    {"type": "postscript", "marker": "P.S."},
    {"type": "two_responses", "separator": "******"},
    {"type": "two_responses", "separator": "---"}, {"type": "two_responses", "separator": "*"},
    {"type": "two_responses", "separator": "-*-"},
    {"type": "repeat_request", "request": "Name a fruit"},
    {"type": "constrained_response", "options": ["yes", "no", "maybe"]},
    {"type": "constrained_response", "options": ["yes", "yes, surely"]},
    {"type": "json_format"},
]


def _grammar(expression: str) -> str:
    return grammar_of([expression], LATIN)


# Pieces that texts are assembled from: words, joiners, line structure, markdown, and the
# marks each constraint type looks for; a sample adds its own strings (keywords, phrases).
_PIECES = ["tea", "An", "an", "ab", "is", "a", "yet", "Yet", "word", "don't", "well-known", "é",
           "ÉTÉ", "2", " ", " ", " ", ", ", ". ", "'", "’", "-", "\n", "\n", "\n\n", "\n***\n",
           "* ", "- ", "*", "**", "[", "]", "[x]", "(", "<<", ">>", "<<T>>", "P.S.", "P.S. ok",
           "SECTION ", "1", "######", '"', "\t", "# ", "\u00b2", "E", "*a b*", "**bold**",
           "[x]", "[a b]", "[ ]"]
_LINE_STARTS = ["", "", "* ", "- ", "-", "  * ", "SECTION 1", "SECTION 2", "## SECTION 1: ",
                "section 2", "******", "# ", "P.S. "]


def _strings(data: dict) -> list[str]:
    found = []
    for value in data.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item != data["type"]:
                found += [item, item.upper(), item.lower(), f"{item} ", f"\n{item} ",
                          f"\n{item}\n"]
    return found


def _candidates(grammar: str, data: dict, rng: random.Random) -> list[str]:
    """Texts walked under the grammar, and texts assembled from pieces at random, some
    finished by walking the grammar from where they stop."""
    pieces = _PIECES + _strings(data) * 6
    def some(count: int) -> str:
        return "".join(rng.choice(pieces) for _ in range(rng.randint(0, count)))

    texts = [walk(grammar, rng) for _ in range(8)]
    for _ in range(150):
        texts.append(some(14))
        texts.append(f'"{some(8)}"')
        texts.append("\n".join(rng.choice(_LINE_STARTS) + some(4)
                               for _ in range(rng.randint(1, 6))))
        texts.append("\n".join(rng.choice(_LINE_STARTS) + rng.choice(["tea", "An", "yet"])
                               for _ in range(rng.randint(1, 6))))  # lines opened as lines are
        texts.append(some(3) + "".join(  # sections in order, as a response would number them
            f"\n{rng.choice(['', '## ', '**', ' '])}SECTION {number}{rng.choice(['', ':', 'a'])}"
            f"\n{some(3)}" for number in range(1, rng.randint(1, 3) + 1)))
    return [text for text in texts + _json_texts(random.Random(11)) if text is not None]


def _json_texts(rng: random.Random) -> list[str]:
    """JSON documents, some nested deeper than a grammar allows, some pretty-printed."""
    def value(depth: int):
        kind = rng.choice(["scalar", "scalar", "list", "dict"] if depth else ["scalar"])
        if kind == "list":
            return [value(depth - 1) for _ in range(rng.randint(0, 3))]
        if kind == "dict":
            return {rng.choice(["a", "tea", "An", "x y"]): value(depth - 1)
                    for _ in range(rng.randint(0, 3))}
        return rng.choice(["tea", "An", 'say "hi"', "é", 0, -2.5, 10**6, True, None])

    return [json.dumps(value(rng.randint(1, 6)), indent=rng.choice([None, 2, 4]),
                       ensure_ascii=rng.random() < 0.5) for _ in range(60)]


@pytest.mark.parametrize("data", SAMPLES, ids=lambda d: "-".join(map(str, d.values())))
def test_every_text_a_constraints_grammar_accepts_passes_its_check(data):
    constraint = parse_constraint(data)
    options = constraint.grammars(LATIN)
    assert options, f"{constraint.type} has no grammar"
    rng = random.Random(7)
    for option in options:
        grammar = _grammar(option)
        assert grammar_problem(grammar) is None
        accepted = [text for text in _candidates(grammar, data, rng) if accepts(grammar, text)]
        assert len(accepted) >= 5, "too few accepted texts to say anything"
        for text in accepted:
            result = constraint.check(text)
            if constraint.type == "two_responses" and "identical" in result.feedback:
                continue  # that the two differ is the checker's part, documented
            assert result.passed, (text, result.feedback)


_TEXT = st.text(alphabet=st.sampled_from(list("abE ,.'’-\n*Ié\t")), max_size=40)


@pytest.mark.parametrize("data", [
    {"type": "lowercase"}, {"type": "uppercase"}, {"type": "no_commas"},
    {"type": "letter_frequency", "letter": "e", "relation": "exactly", "value": 2},
    {"type": "character_count", "relation": "at_most", "value": 10},
    {"type": "character_count", "relation": "at_least", "value": 3},
    {"type": "quotation"}, {"type": "forbidden_words", "words": ["ab"]},
    {"type": "word_count", "relation": "at_most", "value": 4},
])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_TEXT)
def test_where_the_grammar_is_exact_every_passing_text_is_accepted(data, text):
    """Restrictions lose nothing: the grammar is the checker. (Word counts bound the
    punctuation around the words and the length of words, and forbidden words also refuse
    "ab" in "ab'", so texts outside those margins are not expected.)"""
    constraint = parse_constraint(data)
    if data["type"] == "word_count" and (
            len(text) - len(text.strip(" ,.'’-\n*\t")) > 12
            or any(len(piece) > 24 or word.count("'") + word.count("’") + word.count("-") > 3
                   for word in words(text) for piece in re.split("['’-]", word))):
        return
    if data["type"] == "forbidden_words" and any(j in text for j in "'’-"):
        return
    if constraint.check(text).passed:
        assert accepts(_grammar(constraint.grammars(LATIN)[0]), text), text


def test_json_by_construction_takes_nested_and_indented_json_and_refuses_the_rest():
    compiled = compile_constraints([{"type": "json_format"}, {"type": "lowercase"}])
    assert compiled.compiled == (0, 1)
    grammar = compiled.grammar
    taken = ['{"facts": ["mars is red.", "it has two moons."]}',
             '{\n    "steps": [\n        {"n": 1, "do": "boil \\"water\\""}\n    ]\n}',
             '[1, -2.5e3, true, null, {"a": {"b": []}}]']
    refused = ['', '{}', '[]', '"a lone value"', 'here it is: {"a": 1}', '{"a": 1,}',
               '```json\n{"a": 1}\n```', '{"A": 1}', '{"a": [[[[[1]]]]]}']
    assert [text for text in taken if not accepts(grammar, text)] == []
    assert [text for text in refused if accepts(grammar, text)] == []


def test_two_responses_separated_by_a_run_of_one_character_compile_to_one_plain_regex():
    """No complement: the responses' own runs of the character are shorter, so the separator
    line can only be the one between them."""
    grammar = _grammar(parse_constraint({"type": "two_responses"}).grammars(LATIN)[0])
    assert "~" not in grammar
    taken = ["Tea.\n******\nCoffee.", "* a bullet\n** bold **\n\n  ******  \n*****\n",
             "x\n******\n*"]
    refused = ["Tea.\n******\nCoffee.\n******\nJuice.", "Tea ****** now\n******\nCoffee.",
               "\n******\nCoffee.", "Tea.\n******\n \n", "Tea. ****** Coffee."]
    assert [text for text in taken if not accepts(grammar, text)] == []
    assert [text for text in refused if accepts(grammar, text)] == []


def test_compatible_constraints_combine_and_their_grammar_enforces_all():
    constraints = [{"type": "lowercase"}, {"type": "no_commas"},
                   {"type": "word_count", "relation": "at_most", "value": 6},
                   {"type": "starts_with", "phrase": "dear sam"}]
    compiled = compile_constraints(constraints)
    assert compiled.compiled == (0, 1, 2, 3) and not compiled.left
    rng = random.Random(3)
    texts = [t for t in (walk(compiled.grammar, rng) for _ in range(10)) if t is not None]
    assert texts
    for text in texts:
        assert all(parse_constraint(c).check(text).passed for c in constraints), text
    assert not accepts(compiled.grammar, "Dear sam, hi")


def test_a_long_text_under_counted_constraints_is_followed_to_its_end():
    """An intersection of counters meets new lexer states at every word: the matcher that
    follows a whole text, a mask at each step as decoding does or token by token as
    `accepts` does, must not run out of lexer fuel half way (it did: "too many expressions
    constructed", and a text the checkers pass was refused as not matching its grammar)."""
    import llguidance

    from chorus.runtime.guidance import byte_tokenizer, parser_limits

    constraints = [{"type": "title"},
                   {"type": "word_count", "relation": "at_least", "value": 100}]
    compiled = compile_constraints(constraints)
    assert compiled.compiled == (0, 1)
    prose = " ".join(f"the {i}th word is here" for i in range(25))
    text = f"<<a title>>: {prose}."
    assert all(parse_constraint(c).check(text).passed for c in constraints)
    assert accepts(compiled.grammar, text)
    matcher = llguidance.LLMatcher(byte_tokenizer(), compiled.grammar, log_level=0,
                                   limits=parser_limits())
    for byte in text.encode():
        matcher.compute_bitmask()
        assert matcher.consume_token(byte), matcher.get_error()
    assert matcher.is_accepting()


def test_conflicts_are_reported_before_decoding_and_never_compiled():
    compiled = compile_constraints([{"type": "lowercase"}, {"type": "uppercase"},
                                    {"type": "no_commas"}])
    assert compiled.compiled == (2,)
    assert compiled.left == {0: "in conflict with another constraint",
                             1: "in conflict with another constraint"}


def test_a_grammar_that_cannot_join_the_others_falls_back_with_its_reason():
    # No rule in conflicts.py knows that a capitalised opening breaks "lowercase": the
    # intersection is empty, llguidance says so at the first mask, refinement takes over.
    compiled = compile_constraints([{"type": "starts_with", "phrase": "Hello"},
                                    {"type": "lowercase"}])
    assert compiled.compiled == (0,)
    assert "no text can satisfy it" in compiled.left[1]


def test_a_preferred_option_that_does_not_fit_gives_way_to_the_next():
    # The title opens the response by preference; after "Dear Jo" it goes anywhere.
    compiled = compile_constraints([{"type": "starts_with", "phrase": "Dear Jo"},
                                    {"type": "title"}])
    assert compiled.compiled == (0, 1)
    assert accepts(compiled.grammar, "Dear Jo, <<my title>> and more")


_SENTENCE_PIECES = ["Tea", "is", "a", "x", "3", " ", " ", ". ", ".", "!", "?", "…", "\n",
                    "\n\n", " \n ", '"', "(", "e.g.", "U.S.", "-", "* ", "# ", "1. ", "***",
                    "\t", ",", "\u00a0", "\u3002", "<<T>>", "P.S."]


@pytest.mark.parametrize("relation", ["exactly", "at_most", "at_least"])
def test_sentence_counts_compile_to_prose_the_checker_counts_alike(relation):
    """The grammar is a subset: lines open with a letter (no markdown line), and a stop
    inside a sentence is followed by a digit or a closing mark; every text it accepts has
    the count, by the checker's own rule (random texts of sentence pieces)."""
    rng = random.Random(11)
    accepted = 0
    for value in (0, 1, 2, 3):
        constraint = parse_constraint({"type": "sentence_count", "relation": relation,
                                       "value": value})
        grammar = _grammar(constraint.grammars(LATIN)[0])
        for _ in range(1500):
            text = "".join(rng.choice(_SENTENCE_PIECES) for _ in range(rng.randint(1, 12)))
            if accepts(grammar, text):
                accepted += 1
                assert constraint.check(text).passed, (text, constraint.check(text).feedback)
    assert accepted >= 100, "too few accepted texts to say anything"
    # A model held back from ending writes on into the next sentence: no closing needed,
    # and the count is compiled into every answer's grammar.
    compiled = compile_constraints([{"type": "sentence_count", "relation": relation,
                                     "value": 2}])
    assert compiled.compiled == (0,) and compiled.closings == ()
    two = _grammar(parse_constraint({"type": "sentence_count", "relation": "exactly",
                                     "value": 2}).grammars(LATIN)[0])
    for text in ["It is 3.5 km. Go on!", "<<Tea>>\n\nTea is hot.", "P.S. Call me.",
                 'He said "Yes." Then he left. Fine.\n', "The U.S.A is big. Read it"]:
        assert accepts(two, text), text
    for text in ["It ends.here. Then more.", "- a bullet. Two.", "One. Two. Three.",
                 "One.\n# Two."]:
        assert not accepts(two, text), text


def test_constraints_needing_content_are_refined_unless_asked_for():
    data = [{"type": "include_keywords", "keywords": ["tea"]}, {"type": "lowercase"}]
    assert compile_constraints(data).left == {0: NEEDS_CONTENT}
    assert compile_constraints(data, needs_content=True).compiled == (0, 1)
    assert compile_constraints([{"type": "response_language", "language": "fr"}]).left == {
        0: NOT_EXPRESSIBLE}


def test_constraints_a_closing_leads_into_compile_with_the_refusals_as_fallback():
    data = [{"type": "postscript", "marker": "P.S."}, {"type": "no_commas"},
            {"type": "include_keywords", "keywords": ["tea"]}]
    compiled = compile_constraints(data)
    assert compiled.compiled == (0, 1) and compiled.left == {2: NEEDS_CONTENT}
    assert compiled.closings == ("\n\nP.S.",)
    assert accepts(compiled.grammar, "Tea time.\n\nP.S. bring cups")
    assert not accepts(compiled.grammar, "Tea time.")  # the fallback allows it
    assert accepts(compiled.fallback, "Tea time.") and not accepts(compiled.fallback, "a, b")
    output = compiled.output
    assert output.closings == compiled.closings
    # the fallback keeps the nudges toward "tea": they force nothing
    assert output.fallback_output() == Lark(compiled.fallback, nudges=compiled.nudges)
    refusals_only = compile_constraints(data[1:2])
    assert refusals_only.closings == () and refusals_only.fallback is None


def test_the_fewest_words_a_grammar_allows_travel_with_its_output_and_its_state():
    data = [{"type": "postscript", "marker": "P.S."},
            {"type": "word_count", "relation": "at_most", "value": 40},
            {"type": "word_count", "relation": "exactly", "value": 30},
            {"type": "word_count", "relation": "at_least", "value": 20}]
    compiled = compile_constraints([data[0], data[3]])
    assert compiled.word_limit is None and compiled.output.word_limit is None
    compiled = compile_constraints(data)
    assert compiled.compiled == (0, 1, 2, 3) and compiled.output.word_limit == 30
    again = type(compiled).from_state(compiled.to_state())
    assert again.output == compiled.output and again.compiled == compiled.compiled


def _closer_over_bytes(compiled):
    """A matcher of the compiled grammar over a vocabulary of bytes, the `Closer` of its
    closings as a backend makes it, and the end-of-text token."""
    import llguidance

    from chorus.runtime.guidance import Closer, byte_tokenizer, parser_limits

    matcher = llguidance.LLMatcher(byte_tokenizer(), compiled.grammar, limits=parser_limits())
    eos = byte_tokenizer().eos_token
    closer = Closer(matcher, [(text, list(text.encode())) for text in compiled.closings], {eos},
                    endings=compiled.endings)
    return matcher, closer, eos


@pytest.mark.parametrize("data", [
    {"type": "postscript", "marker": "P.S."}, {"type": "postscript", "marker": "P.P.S"},
    {"type": "bullet_count", "value": 3}, {"type": "ends_with", "phrase": "Any questions?"},
    {"type": "paragraph_count", "relation": "exactly", "value": 3},
    {"type": "paragraph_count", "relation": "at_least", "value": 2},
    {"type": "numbered_sections", "marker": "SECTION", "value": 2},
    {"type": "two_responses", "separator": "******"},
    {"type": "highlighted_sections", "value": 2}, {"type": "placeholders", "value": 2},
    {"type": "nth_paragraph_first_word", "paragraphs": 3, "n": 2, "word": "Yet"}])
def test_a_closing_written_where_the_model_would_end_leads_to_a_passing_text(data):
    """What a Closer does: wherever the model ends too early, the first closing the grammar
    accepts is written and a little more text follows, until the grammar lets it end; the
    text then passes the check."""
    constraint = parse_constraint(data)
    compiled = compile_constraints([data])
    assert compiled.closings == tuple(constraint.closings())
    matcher, closer, eos = _closer_over_bytes(compiled)
    text = "Some words here."
    assert matcher.consume_tokens(list(text.encode()))
    for number in range(1, 7):
        tokens = closer.instead_of(eos, 100, text)
        if tokens in ([], [eos]):  # the grammar lets the model end, or ends the reply
            break
        closing = bytes(tokens).decode()
        # What a model might write next: words, closing what the closing opened.
        more = {" ": f"More words {number}.", "*": "more words**",
                "[": "more words]"}.get(closing[-1], " more words")
        if "word" in data and closing.endswith("\n"):  # a paragraph that opens with it
            more = f"{data['word']} more words"
        if accepts(compiled.grammar, text + closing):
            more = ""
        assert matcher.consume_tokens(list((closing + more).encode()))
        text += closing + more
    assert accepts(compiled.grammar, text)
    assert constraint.check(text).passed, text


def test_a_title_the_response_cannot_open_with_is_led_into_where_the_model_would_end():
    """An option opens the response, so the title goes elsewhere; where the model would end
    without one, a heading is opened for it, and never a second one."""
    data = [{"type": "constrained_response", "options": ["Definitely yes.", "Definitely not."]},
            {"type": "title"}]
    compiled = compile_constraints(data)
    assert compiled.compiled == (0, 1)
    matcher, closer, eos = _closer_over_bytes(compiled)
    text = "Definitely not. Work can wait."
    assert matcher.consume_tokens(list(text.encode()))
    assert closer.instead_of(eos, 100, text) == list(b"\n\n<<")
    assert matcher.consume_tokens(list(b"\n\n<<Rest first>>"))
    assert closer.instead_of(eos, 100, text) == []
    assert all(result.passed for result in check_all(text + "\n\n<<Rest first>>", data))

    titled = compile_constraints([{"type": "title"}, {"type": "postscript", "marker": "P.S."}])
    matcher, closer, eos = _closer_over_bytes(titled)
    assert matcher.consume_tokens(list(b"<<Rest>> Work can wait."))
    assert closer.instead_of(eos, 100) == list(b"\n\nP.S.")
    assert not accepts(titled.grammar, "<<Rest>> Work can wait.\n\n<<Again>>\n\nP.S. ok")


def test_a_reply_holding_its_sentences_ends_where_the_model_would_write_on():
    """Masked, the model bent a fourth sentence into what the grammar still took
    ("tasks._only in emergencies_...") until its budget ran out."""
    compiled = compile_constraints([{"type": "sentence_count", "relation": "at_most",
                                     "value": 2}])
    matcher, closer, eos = _closer_over_bytes(compiled)
    text = "One is here. Two is here."
    assert matcher.consume_tokens(list(text.encode()))
    assert closer.instead_of(ord("x"), 100, text, limit_reached=False) == []
    assert closer.instead_of(ord("_"), 100, text, limit_reached=True) == []  # allowed: stands
    assert closer.instead_of(ord("x"), 100, text, limit_reached=True) == [eos]


def test_a_postscript_marker_never_stands_alone_on_its_line():
    compiled = compile_constraints([{"type": "postscript", "marker": "P.S."}])
    assert not accepts(compiled.grammar, "Hi.\n\nP.S.\n\nP.S. see you")
    assert accepts(compiled.grammar, "Hi.\n\nP.S. see you")


def test_a_response_language_adds_its_script_to_the_alphabet():
    data = [{"type": "response_language", "language": "ru"}, {"type": "no_commas"}]
    grammar = compile_constraints(data).grammar
    assert accepts(grammar, "привет мир")
    assert not accepts(compile_constraints(data[1:]).grammar, "привет мир")


def test_lark_outputs_are_checked_when_made_and_when_parsed():
    with pytest.raises(UnsupportedSchemaError, match="no text can satisfy"):
        Lark("start: TEXT\nTEXT: /a+/ & /b+/\n")
    output = Lark("start: TEXT\nTEXT: /[a-z]+/ & ~/(?s:.*x.*)/\n")
    assert output.parse("abc") == "abc"
    with pytest.raises(InvalidOutputError):
        output.parse("abx")


def test_a_closer_writes_the_first_closing_the_grammar_takes_only_where_the_model_ends_early():
    import llguidance

    from chorus.runtime.guidance import Closer, byte_tokenizer, parser_limits

    compiled = compile_constraints([{"type": "postscript", "marker": "P.S."}])
    matcher = llguidance.LLMatcher(byte_tokenizer(), compiled.grammar, limits=parser_limits())
    eos = byte_tokenizer().eos_token
    closer = Closer(matcher, [(text, list(text.encode())) for text in ["\nP.S.\n", "\n\nP.S."]],
                    {eos})
    assert matcher.consume_tokens(list(b"Hi there."))
    assert closer.instead_of(ord("!"), 100) == []  # not an end: the model's token stands
    assert closer.instead_of(eos, 100) == list(b"\n\nP.S.")  # a bare marker line is refused
    assert matcher.consume_tokens(list(b"\n\nP.S. bye"))
    assert closer.instead_of(eos, 100) == []  # complete: the model may end


def test_a_closer_writes_a_closing_where_the_budget_runs_low_then_lets_the_model_write():
    import llguidance

    from chorus.runtime.guidance import Closer, byte_tokenizer, parser_limits

    compiled = compile_constraints([{"type": "bullet_count", "value": 3}])
    matcher = llguidance.LLMatcher(byte_tokenizer(), compiled.grammar, limits=parser_limits())
    closer = Closer(matcher, [("\n* ", list(b"\n* "))], {byte_tokenizer().eos_token})
    assert matcher.consume_tokens(list(b"Reasons:"))
    assert closer.instead_of(ord("!"), Closer.RESERVE + 1) == []
    assert closer.instead_of(ord("!"), Closer.RESERVE) == list(b"\n* ")
    assert matcher.consume_tokens(list(b"\n* one"))
    # the model writes on for `GAP` tokens before the budget brings the next bullet
    assert [closer.instead_of(ord("!"), 20) for _ in range(Closer.GAP)] == [[]] * Closer.GAP
    assert closer.instead_of(ord("!"), 12) == list(b"\n* ")


def test_a_closing_the_grammar_still_takes_once_met_gives_way_to_one_not_written_yet():
    """Seen on Qwen2.5 0.5B under "at least 3 paragraphs" and "highlight a line": the
    paragraph's closing, taken whether or not its count was met, was written at every end
    the model tried until the budget ran out, and the highlight never came."""
    matcher, closer, eos = _closer_over_bytes(compile_constraints(
        [{"type": "paragraph_count", "relation": "at_least", "value": 2},
         {"type": "highlighted_sections", "value": 1}]))
    text = "One.\n\nTwo."
    assert matcher.consume_tokens(list(text.encode()))
    written = []
    for _ in range(3):
        tokens = closer.instead_of(eos, 100, text)
        if tokens in ([], [eos]):
            break
        closing = bytes(tokens).decode()
        written.append(closing)
        more = "more words**" if closing.endswith("*") else "More words."
        assert matcher.consume_tokens(list((closing + more).encode()))
        text += closing + more
    assert written == ["\n\n", "\n\n**"] and matcher.is_accepting()


def test_a_bullet_closing_is_passed_over_once_the_count_is_reached():
    """Seen on Qwen2.5 0.5B under "3 bullets, then a P.S.": a bare "\n*" was still a valid
    start of some other line after the third bullet, so it was written where the P.S. was
    due and the model went on "*PS. ..." to a failed grammar."""
    matcher, closer, eos = _closer_over_bytes(compile_constraints(
        [{"type": "bullet_count", "value": 2}, {"type": "postscript", "marker": "P.S."}]))
    assert matcher.consume_tokens(list(b"Tips:\n* one"))
    assert closer.instead_of(eos, 100) == list(b"\n* ")
    assert matcher.consume_tokens(list(b"\n* two"))
    assert closer.instead_of(eos, 100) == list(b"\n\nP.S.")
    # nor may a marker open another line before spaces (Qwen wrote spaces to its budget)
    assert matcher.validate_tokens(list(b"\n-  ")) == len(b"\n-")


def test_an_ending_stops_the_reply_where_it_completes_the_grammar():
    """Qwen2.5 0.5B wrote "... you will do great." and, asked to end with "you will do
    great", had to write the phrase again after the stop: it looped instead."""
    matcher, closer, eos = _closer_over_bytes(compile_constraints(
        [{"type": "lowercase"}, {"type": "ends_with", "phrase": "you will do great"}]))
    assert matcher.consume_tokens(list(b"you will do great"))
    # a reply that opens with the phrase goes on to its answer
    assert closer.instead_of(ord("!"), 100, "you will do great") == []
    matcher.rollback(len(b"you will do great"))
    text = "study hard and you will do great"
    assert matcher.consume_tokens(list(text[:-6].encode()))
    assert closer.instead_of(ord("."), 100, text[:-6]) == []
    assert matcher.consume_tokens(list(text[-6:].encode()))
    assert closer.instead_of(ord("."), 100, text) == [eos]


def test_an_ending_closing_waits_until_it_completes_the_grammar():
    """Seen on Qwen2.5 0.5B: "... See you at the trailhead." with one placeholder of two;
    the phrase's closing came first and was written again, a loop. Now a placeholder is
    led into, then the phrase, which completes the grammar and ends the reply."""
    matcher, closer, eos = _closer_over_bytes(compile_constraints(
        [{"type": "ends_with", "phrase": "See you at the trailhead."},
         {"type": "placeholders", "value": 2}]))
    text = "[Date] A day in the Alps. See you at the trailhead."
    assert matcher.consume_tokens(list(text.encode()))
    assert closer.instead_of(eos, 100, text) == list(b"\n[")
    text += "\n[Your name]"
    assert matcher.consume_tokens(list(b"\n[Your name]"))
    closing = closer.instead_of(eos, 100, text)
    assert closing == list(b"\n\nSee you at the trailhead.")
    text += bytes(closing).decode()
    assert matcher.consume_tokens(closing)
    assert closer.instead_of(ord("!"), 100, text) == [eos]
    assert all(result.passed for result in check_all(text, [
        {"type": "ends_with", "phrase": "See you at the trailhead."},
        {"type": "placeholders", "value": 2}]))


def test_closings_still_accepted_once_met_come_after_the_others():
    """At least 1 placeholder: "\n[" is accepted however many there are, so the closer,
    which writes the first closing accepted, tries it only after the P.S.'s."""
    compiled = compile_constraints([{"type": "placeholders", "value": 1},
                                    {"type": "postscript", "marker": "P.S."}])
    assert compiled.closings == ("\n\nP.S.", "\n[")
    matcher, closer, eos = _closer_over_bytes(compiled)
    assert matcher.consume_tokens(list(b"Dear [name], see you."))
    assert closer.instead_of(eos, 100) == list(b"\n\nP.S.")


def test_a_section_closing_is_passed_over_once_the_last_section_is_written():
    matcher, closer, eos = _closer_over_bytes(compile_constraints(
        [{"type": "numbered_sections", "marker": "SECTION", "value": 2},
         {"type": "postscript", "marker": "P.S."}]))
    assert matcher.consume_tokens(list(b"SECTION 1\nWhy."))
    assert closer.instead_of(eos, 100) == list(b"\n\nSECTION 2")
    assert matcher.consume_tokens(list(b"\n\nSECTION 2\nHow."))
    # "\n\nSECTION " would still be accepted (a line "SECTION  Conclusion" is no section)
    # and led the model nowhere: the numbered closings are all refused now
    assert closer.instead_of(eos, 100) == list(b"\n\nP.S.")
