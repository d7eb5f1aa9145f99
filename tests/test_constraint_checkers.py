"""DVR constraint checkers without a model: every type passing and failing, text units,
feedback wording, parsing errors, conflicts, the decoding schema and the language detector."""

import json
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from chorus.checks import (
    CONSTRAINT_TYPES,
    LANGUAGES,
    CheckResult,
    check_all,
    constraints_schema,
    detect_language,
    find_conflicts,
    parse_constraint,
)
from chorus.checks.base import paragraphs, sentences, words
from chorus.errors import ConstraintSpecError


def check(data: dict[str, Any], text: str) -> CheckResult:
    return parse_constraint(data).check(text)


# One valid instance of each type, in the specification's order (also used by the schema
# tests, so every string stays within the schema's bounds).
EXAMPLES: dict[str, dict[str, Any]] = {
    "word_count": {"relation": "at_most", "value": 50},
    "sentence_count": {"relation": "at_least", "value": 2},
    "paragraph_count": {"relation": "exactly", "value": 3},
    "character_count": {"relation": "at_most", "value": 200},
    "include_keywords": {"keywords": ["ocean", "tide"]},
    "forbidden_words": {"words": ["very", "really"]},
    "keyword_frequency": {"keyword": "sea", "relation": "at_least", "value": 2},
    "letter_frequency": {"letter": "z", "relation": "at_most", "value": 3},
    "lowercase": {},
    "uppercase": {},
    "capital_word_frequency": {"relation": "at_least", "value": 1},
    "bullet_count": {"value": 3},
    "numbered_sections": {"marker": "SECTION", "value": 2},
    "highlighted_sections": {"value": 2},
    "placeholders": {"value": 1},
    "title": {},
    "starts_with": {"phrase": "Dear John"},
    "ends_with": {"phrase": "Any other questions?"},
    "quotation": {},
    "no_commas": {},
    "json_format": {},
    "postscript": {"marker": "P.S."},
    "two_responses": {"separator": "******"},
    "repeat_request": {"request": "Write a poem about the sea."},
    "response_language": {"language": "fr"},
    "constrained_response": {"options": ["My answer is yes.", "My answer is no."]},
    "nth_paragraph_first_word": {"paragraphs": 2, "n": 2, "word": "However"},
}
EXAMPLE_DATA = [{"type": name, **params} for name, params in EXAMPLES.items()]


def c(name: str, **params: Any) -> dict[str, Any]:
    """A constraint dict: the type's example, with `params` overriding."""
    return {"type": name, **EXAMPLES[name], **params}


PASSING: list[tuple[dict[str, Any], str]] = [
    (c("word_count", value=5), "One two three four five."),
    (c("word_count", relation="exactly", value=3), "naïve don't well-known"),
    (c("word_count", relation="at_least", value=2), "🎉 Hello 🎉 world"),
    (c("sentence_count", relation="exactly", value=3), "First one. Second one! Third one?"),
    (c("sentence_count", relation="exactly", value=3), "# Title\n\n* bullet one\n* bullet two"),
    (c("sentence_count", relation="exactly", value=2), "我很好。你呢？"),
    (c("paragraph_count"), "One.\n\nTwo.\n\n\n  Three."),
    (c("paragraph_count", value=2), "One.\n***\nTwo."),
    (c("character_count", value=5), "  héllo \n"),
    (c("character_count", relation="exactly", value=3), "日本語"),
    (c("include_keywords"), "The Ocean rises with the TIDE."),
    (c("include_keywords", keywords=["deep blue sea"]), "Into the deep\nblue sea we go."),
    (c("forbidden_words", words=["very"]), "Everything is every bit fine."),
    (c("forbidden_words", words=["don"]), "I don't know anyone in London."),
    (c("keyword_frequency"), "Sea, sea and more SEA."),
    (c("keyword_frequency", relation="exactly", value=0), "A seaside seal."),
    (c("letter_frequency", letter="e", relation="exactly", value=3), "EeE"),
    (c("letter_frequency", letter="é", relation="at_least", value=1), "Un café."),
    (c("lowercase"), "hello world, ça va? 123 🎉"),
    (c("uppercase"), "HELLO WORLD! ÇA VA?"),
    (c("capital_word_frequency", value=2), "This is VERY IMPORTANT, I think."),
    (c("capital_word_frequency", relation="at_most", value=0), "I am A person."),
    (c("bullet_count"), "Intro:\n* one\n- two\n  * three\n\n***\n- - -"),
    (c("bullet_count", value=0), "No bullets, just *emphasis* and a - dash."),
    (c("numbered_sections"), "SECTION 1\nIntro.\n\nSECTION 2\nMore."),
    (c("numbered_sections", marker="Chapter"), "## Chapter 1\nA\n\n**Chapter 2**\nB"),
    (c("highlighted_sections"), "This is *important* and **very bold**."),
    (c("highlighted_sections", value=0), "Nothing highlighted."),
    (c("placeholders", value=2), "Send it to [address] by [date]."),
    (c("title"), "<<A Poem of Joy>>\nLa la la."),
    (c("starts_with"), "  dear john, how are you?"),
    (c("ends_with"), "Done. any other questions?  \n"),
    (c("quotation"), '"Hello there."'),
    (c("no_commas"), "No commas here. None at all!"),
    (c("json_format"), '{"a": [1, 2]}'),
    (c("json_format"), '```json\n{"a": 1}\n```'),
    (c("json_format"), "```\n[1, 2]\n```"),
    (c("postscript"), "Hello.\n\nP.S. See you soon."),
    (c("postscript", marker="P.P.S"), "Hi\n**P.P.S** bring snacks"),
    (c("two_responses"), "Answer one.\n******\nAnswer two."),
    (c("two_responses", separator="---"), "Answer one.\n---\nAnswer two."),
    (c("repeat_request"), "Write a  poem about the SEA.\nWaves roll in and out."),
    (c("response_language"), "Il fait beau aujourd'hui et nous allons à la plage."),
    (c("response_language", language="ja"), "今日は天気がいいので、海に行きます。"),
    (c("constrained_response"), "After some thought, my answer is no."),
    (c("constrained_response", options=["yes", "yes, definitely"]), "Yes, definitely."),
    (c("nth_paragraph_first_word"), "Intro text.\n\n**However,** this matters."),
]

FAILING: list[tuple[dict[str, Any], str, list[str]]] = [
    (c("word_count", value=300), "word " * 412,
     ["412 words; the limit is 300 - cut at least 112 words."]),
    (c("word_count", relation="exactly", value=4), "one two",
     ["2 words; exactly 4 are required - add 2 more words."]),
    (c("sentence_count", value=3), "Only one sentence here.",
     ["1 sentence;", "at least 3 are required", "add at least 2 more sentences"]),
    (c("paragraph_count", relation="at_most", value=1), "A.\n\nB.",
     ["2 paragraphs", "the limit is 1", "cut at least 1 paragraph ", "blank line"]),
    (c("character_count", relation="at_least", value=10), "short",
     ["5 characters", "add at least 5 more characters"]),
    (c("include_keywords"), "Waves.",
     ["Missing keywords 'ocean' and 'tide' - use each at least once."]),
    (c("include_keywords", keywords=["tide"]), "The tidal wave.", ["Missing keyword 'tide'"]),
    (c("forbidden_words"), "It is very, Very good.",
     ["The word 'very' appears 2 times but is forbidden - remove it."]),
    (c("keyword_frequency", relation="at_most", value=1), "sea sea sea",
     ["'sea' appears 3 times", "the limit is 1", "remove at least 2 occurrences"]),
    (c("letter_frequency", relation="at_least", value=2), "zoo",
     ["The letter 'z' appears once", "add at least 1 more occurrence"]),
    (c("lowercase"), "Hello world", ["1 capital letter found", "'Hello'"]),
    (c("lowercase"), "123 !!", ["no lowercase letters"]),
    (c("uppercase"), "HELLO World", ["4 lowercase letters", "'World'"]),
    (c("capital_word_frequency", relation="at_most", value=1), "NASA and ESA agree",
     ["2 words in capitals", "the limit is 1", "'NASA'"]),
    (c("bullet_count", value=5), "* a\n* b\n* c",
     ["3 bullet points; exactly 5 are required - add 2 more bullet points"]),
    (c("bullet_count", value=0), "- a", ["1 bullet point; none are allowed - remove 1"]),
    (c("numbered_sections", value=3), "SECTION 1\na\nSECTION 2\nb",
     ["2 sections", "exactly 3", "missing 'SECTION 3'"]),
    (c("numbered_sections"), "SECTION 2\na\nSECTION 1\nb", ["numbered 2, 1", "in order"]),
    (c("highlighted_sections"), "* bullet item\n*one* and ** not **",
     ["1 highlighted section", "add at least 1 more"]),
    (c("placeholders"), "[ ] and [link](http://x.org)",
     ["0 placeholders", "add at least 1 placeholder"]),
    (c("title"), "<< >> Title", ["No title found", "<<"]),
    (c("starts_with"), "Hello John", ["starts with 'Hello John'", "'Dear John'"]),
    (c("starts_with"), "   ", ["empty"]),
    (c("starts_with"), "Dear Johnny, hi", ["starts with 'Dear Johnny, hi'"]),
    (c("ends_with", phrase="end."), "The weekend.", ["must end with exactly 'end.'"]),
    (c("ends_with", phrase="Thanks."), "Thanks. P.S. bye",
     ["ends with 'Thanks. P.S. bye'", "nothing after it"]),
    (c("quotation"), '"Unclosed', ["does not end with a double quote"]),
    (c("quotation"), "plain", ["does not start and end"]),
    (c("no_commas"), "a, b，c、d", ["3 commas found"]),
    (c("json_format"), 'Here it is: {"a": 1}', ["not valid JSON", "line 1, column 1"]),
    (c("postscript"), "Hi\nP.S.", ["no text after"]),
    (c("postscript"), "Note: PS see you", ["No postscript found", "'P.S.'"]),
    (c("two_responses"), "a\n******\nb\n******\nc", ["2 separator lines", "exactly 1"]),
    (c("two_responses"), "Same.\n******\n  same. ", ["identical"]),
    (c("two_responses"), "Only one.\n******\n", ["second response is empty"]),
    (c("repeat_request"), "Here is a poem about the sea.",
     ["word 1 is 'Here' instead of 'Write'"]),
    (c("repeat_request"), "Write a poem", ["stops after word 3"]),
    (c("response_language", language="de"), "The cat sleeps on the mat all day.",
     ["in English, not German"]),
    (c("response_language"), "Ok", ["could not be recognised as French"]),
    (c("constrained_response"), "I am not sure.", ["None of the options"]),
    (c("constrained_response"), "My answer is yes. My answer is no.", ["2 options appear"]),
    (c("nth_paragraph_first_word", paragraphs=3, word="So"), "One.\n\nTwo.",
     ["2 paragraphs; exactly 3", "add 1 more paragraph", "Paragraph 2 starts with 'Two'"]),
    (c("nth_paragraph_first_word", paragraphs=3, n=3), "One.\n\nTwo.",
     ["paragraph 3 must start with 'However'"]),
]


def _id(case: tuple) -> str:
    return case[0]["type"]


def test_every_type_has_passing_and_failing_cases():
    assert {case[0]["type"] for case in PASSING} == set(CONSTRAINT_TYPES)
    assert {case[0]["type"] for case in FAILING} == set(CONSTRAINT_TYPES)


@pytest.mark.parametrize("data, text", PASSING, ids=[_id(case) for case in PASSING])
def test_passes(data, text):
    result = check(data, text)
    assert result == CheckResult(type=data["type"], passed=True, feedback="")


@pytest.mark.parametrize("data, text, expected", FAILING, ids=[_id(case) for case in FAILING])
def test_fails_with_precise_feedback(data, text, expected):
    result = check(data, text)
    assert not result.passed and result.type == data["type"]
    for part in expected:
        assert part in result.feedback
    assert "\n" not in result.feedback and result.feedback.endswith(".")


# Empty text ---------------------------------------------------------------------------------

# With the examples' parameters, only upper bounds and prohibitions hold for no text at all.
PASS_ON_EMPTY = {"word_count", "character_count", "forbidden_words", "letter_frequency",
                 "no_commas"}


@pytest.mark.parametrize("data", EXAMPLE_DATA, ids=list(EXAMPLES))
@pytest.mark.parametrize("text", ["", "  \n\n  "], ids=["empty", "blank"])
def test_empty_text_never_crashes_and_only_bounds_from_above_pass(data, text):
    result = check(data, text)
    assert result.passed == (data["type"] in PASS_ON_EMPTY)
    assert result.passed == (result.feedback == "")


@pytest.mark.parametrize("text", ['"', "**", "* ", "<<>>", "[", "```", "```json\n```", "P.S.",
                                  "******", "SECTION", "\r\n\r\n", "a\u2028b", "\u200b",
                                  "İstanbul ß ǅ", "🎉" * 50, "x" * 10_000])
@pytest.mark.parametrize("data", EXAMPLE_DATA, ids=list(EXAMPLES))
def test_odd_text_never_crashes(data, text):
    result = check(data, text)
    assert result.passed == (result.feedback == "")


@pytest.mark.parametrize("name", ["word_count", "sentence_count", "paragraph_count",
                                  "character_count", "keyword_frequency", "letter_frequency",
                                  "capital_word_frequency", "bullet_count", "placeholders",
                                  "highlighted_sections", "numbered_sections"])
def test_count_feedback_states_the_count_and_the_target(name):
    relation = {"relation": "exactly"} if "relation" in EXAMPLES[name] else {}
    feedback = check(c(name, value=7, **relation), "").feedback
    assert "0 " in feedback and "7" in feedback


# Text units ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("", 0),
    ("Hello, world!", 2),
    ("naïve café déjà-vu", 3),
    ("don't won’t rock'n'roll", 3),
    ("**Bold** and _italic_ # header", 4),
    ("🎉🎉 👍", 0),
    ("日本語 テキスト", 2),  # CJK runs count as one word each
    ("3.14 is pi", 4),
])
def test_word_count_rule(text, expected):
    assert len(words(text)) == expected


@pytest.mark.parametrize("text, expected", [
    ("", 0),
    ("No terminator", 1),
    ("One. Two! Three? Four...", 4),
    ("Pi is 3.14 exactly. Yes.", 2),
    ("Wait?! Really.", 2),
    ("# Header\nA sentence. Another\none.", 3),
    ("- item one\n- item two.\n1. first\n2) second", 4),
    ("Line one\nstill line one.\n\nNew paragraph", 2),
    ("我很好。你呢？谢谢！", 3),
    ("***\n...\n!!!", 0),
])
def test_sentence_rule(text, expected):
    assert len(sentences(text)) == expected


@pytest.mark.parametrize("text, expected", [
    ("", 0),
    ("one", 1),
    ("one\ntwo", 1),
    ("one\n\ntwo", 2),
    ("one\n  \t\ntwo\n\n\n\nthree", 3),
    ("one\n***\ntwo", 2),
    ("***\none\n\n***\n\n", 1),
])
def test_paragraph_rule(text, expected):
    assert len(paragraphs(text)) == expected


# describe, models, parsing ------------------------------------------------------------------


@pytest.mark.parametrize("data", EXAMPLE_DATA, ids=list(EXAMPLES))
def test_describe_is_one_imperative_sentence(data):
    description = parse_constraint(data).describe()
    assert description[0].isupper() and description.endswith(".")
    assert "\n" not in description


@pytest.mark.parametrize("data", EXAMPLE_DATA, ids=list(EXAMPLES))
def test_models_round_trip_and_are_frozen(data):
    constraint = parse_constraint(data)
    assert parse_constraint(constraint.model_dump()) == constraint
    assert parse_constraint(constraint) is constraint
    assert type(constraint) is CONSTRAINT_TYPES[data["type"]]
    with pytest.raises(ValidationError):
        constraint.type = "other"


def test_constraint_types_follow_the_specification_order():
    assert list(CONSTRAINT_TYPES) == list(EXAMPLES)


def test_defaults_apply():
    assert parse_constraint({"type": "numbered_sections", "value": 2}).marker == "SECTION"
    assert parse_constraint({"type": "postscript"}).marker == "P.S."
    assert parse_constraint({"type": "two_responses"}).separator == "******"


@pytest.mark.parametrize("data, expected", [
    ({"type": "wordcount"}, ["Unknown constraint type 'wordcount'", "did you mean 'word_count'",
                             "nth_paragraph_first_word"]),
    ({"relation": "at_most"}, ["no 'type' field", "word_count"]),
    (["word_count"], ["must be an object", "list"]),
    ({"type": "word_count", "relation": "less", "value": 3},
     ["'word_count'", "field 'relation'", "'at_most', 'at_least' or 'exactly'", "'less'"]),
    ({"type": "word_count", "relation": "at_most", "value": -1},
     ["field 'value'", "greater than or equal to 0"]),
    ({"type": "word_count", "relation": "at_most"},
     ["field 'value' is required", "word_count(relation, value)"]),
    ({"type": "title", "text": "x"}, ["field 'text' is not allowed", "title()"]),
    ({"type": "include_keywords", "keywords": []}, ["field 'keywords'", "at least 1 item"]),
    ({"type": "include_keywords", "keywords": list("abcdef")}, ["at most 5 items"]),
    ({"type": "forbidden_words", "words": ["  "]}, ["field 'words.0'"]),
    ({"type": "letter_frequency", "letter": "ab", "relation": "at_most", "value": 1},
     ["field 'letter'", "at most 1 character"]),
    ({"type": "letter_frequency", "letter": "7", "relation": "at_most", "value": 1},
     ["field 'letter'", "must be a letter"]),
    ({"type": "response_language", "language": "xx"}, ["field 'language'", "'el'"]),
    ({"type": "constrained_response", "options": ["Yes", "yes"]}, ["different"]),
    ({"type": "constrained_response", "options": ["only one"]}, ["at least 2 items"]),
    ({"type": "nth_paragraph_first_word", "paragraphs": 2, "n": 3, "word": "So"},
     ["n (3) must be at most paragraphs (2)"]),
    ({"type": "nth_paragraph_first_word", "paragraphs": 2, "n": 1, "word": "two words"},
     ["field 'word'", "single word"]),
    ({"type": "numbered_sections", "marker": "A\nB", "value": 2},
     ["field 'marker'", "one line", "numbered_sections(value, marker='SECTION')"]),
])
def test_parse_errors_name_type_field_and_fix(data, expected):
    with pytest.raises(ConstraintSpecError) as raised:
        parse_constraint(data)
    for part in expected:
        assert part in str(raised.value)


def test_check_all_accepts_models_and_dicts_in_order():
    results = check_all("hello world", [parse_constraint(c("lowercase")), c("uppercase")])
    assert [(r.type, r.passed) for r in results] == [("lowercase", True), ("uppercase", False)]
    assert CheckResult.model_validate(results[1].model_dump()) == results[1]
    assert check_all("anything", []) == []


# Conflicts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pair, expected", [
    ([c("word_count"), c("word_count", relation="at_least", value=100)],
     "at most 50 words and at least 100 words"),
    ([c("sentence_count", relation="exactly", value=2),
      c("sentence_count", relation="exactly", value=3)], "exactly 2 sentences"),
    ([c("paragraph_count", value=2), c("nth_paragraph_first_word", paragraphs=3)],
     "exactly 2 paragraphs and exactly 3 paragraphs"),
    ([c("keyword_frequency", keyword="Sea", relation="at_most", value=1),
      c("keyword_frequency", value=3)], "'Sea' at most 1 time"),
    ([c("letter_frequency", letter="Z", value=0), c("letter_frequency", relation="at_least")],
     "the letter 'Z'"),
    ([c("bullet_count", value=2), c("bullet_count", value=4)], "exactly 2 bullet points"),
    ([c("lowercase"), c("uppercase")], "all lowercase and all capitals"),
    ([c("lowercase"), c("capital_word_frequency", value=2)], "at least 2 words in capitals"),
    ([c("include_keywords", keywords=["Ocean"]), c("forbidden_words", words=["ocean"])],
     "'Ocean' must appear but 'ocean' is forbidden"),
    ([c("forbidden_words", words=["ocean"]), c("starts_with", phrase="Dear ocean lover")],
     "'Dear ocean lover' must appear"),
    ([c("keyword_frequency", relation="exactly", value=0), c("include_keywords",
                                                              keywords=["sea"])],
     "'sea' is forbidden"),
    ([c("no_commas"), c("starts_with", phrase="Dear John,")], "comma"),
    ([c("letter_frequency", value=0), c("include_keywords", keywords=["zebra"])],
     "the letter 'z' may not"),
    ([c("json_format"), c("title")], "<<title>>"),
    ([c("json_format"), c("postscript")], "'P.S.'"),
    ([c("json_format"), c("two_responses")], "two responses"),
    ([c("bullet_count"), c("json_format")], "bullet points"),
    ([c("json_format"), c("numbered_sections")], "'SECTION 1'"),
    ([c("starts_with", phrase="Hello"), c("repeat_request")],
     "cannot start with both 'Hello' and 'Write a poem about the sea.'"),
    ([c("starts_with", phrase="Hello"), c("starts_with", phrase="Dear")], "start with both"),
    ([c("ends_with", phrase="Bye."), c("ends_with", phrase="Thanks.")], "end with both"),
    ([c("quotation"), c("starts_with")], "starts with '\"'"),
    ([c("ends_with", phrase="Bye."), c("quotation")], "ends with '\"'"),
    ([c("quotation"), c("repeat_request")], "not with 'Write a poem"),
    ([c("response_language"), c("response_language", language="de")], "French and German"),
])
def test_find_conflicts_reports_impossible_pairs(pair, expected):
    reasons = find_conflicts(pair)
    assert len(reasons) == 1
    assert expected in reasons[0]
    assert pair[0]["type"] in reasons[0] and pair[1]["type"] in reasons[0]


@pytest.mark.parametrize("pair", [
    [c("word_count"), c("word_count", relation="at_least", value=50)],
    [c("word_count"), c("sentence_count", value=100)],
    [c("keyword_frequency", relation="at_most", value=0), c("keyword_frequency", keyword="tide")],
    [c("letter_frequency", value=0), c("letter_frequency", letter="a", relation="at_least")],
    [c("uppercase"), c("include_keywords")],
    [c("uppercase"), c("starts_with")],
    [c("lowercase"), c("capital_word_frequency", relation="at_most", value=2)],
    [c("forbidden_words"), c("include_keywords")],
    [c("forbidden_words", words=["sea"]), c("include_keywords", keywords=["seaside"])],
    [c("json_format"), c("bullet_count", value=0)],
    [c("json_format"), c("quotation")],
    [c("json_format"), c("lowercase")],
    [c("starts_with", phrase="Write a"), c("repeat_request", request="write  a poem")],
    [c("starts_with", phrase="Dear John"), c("starts_with", phrase="dear")],
    [c("ends_with", phrase="questions?"), c("ends_with")],
    [c("quotation"), c("starts_with", phrase='"Dear')],
    [c("quotation"), c("ends_with", phrase='bye."')],
    [c("response_language"), c("response_language")],
    [c("paragraph_count"), c("nth_paragraph_first_word", paragraphs=3)],
    [c("numbered_sections", marker="PART", value=3), c("numbered_sections")],
    [c("highlighted_sections"), c("highlighted_sections", value=9)],
])
def test_find_conflicts_ignores_compatible_pairs(pair):
    assert find_conflicts(pair) == []


def test_find_conflicts_checks_every_pair_once():
    constraints = [c("lowercase"), c("uppercase"), c("word_count"),
                   c("word_count", relation="at_least", value=60)]
    assert len(find_conflicts(constraints)) == 2
    assert find_conflicts(EXAMPLE_DATA[:3]) == []


# Decoding schema ----------------------------------------------------------------------------


def _subschemas(node: Any):
    if isinstance(node, dict):
        yield node
        for key, value in node.items():
            if key == "properties":
                for sub in value.values():
                    yield from _subschemas(sub)
            elif isinstance(value, dict | list):
                yield from _subschemas(value)
    elif isinstance(node, list):
        for item in node:
            yield from _subschemas(item)


def test_schema_is_valid_self_contained_and_bounded():
    schema = constraints_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text and "oneOf" not in text
    items = schema["properties"]["constraints"]
    assert schema["required"] == ["constraints"] and items["maxItems"] == 6
    variants = items["items"]["anyOf"]
    assert [v["properties"]["type"]["const"] for v in variants] == list(CONSTRAINT_TYPES)
    for node in _subschemas(schema):
        if "properties" in node:
            assert node["additionalProperties"] is False
            assert node["required"] == list(node["properties"])
        if node.get("type") == "string" and "const" not in node and "enum" not in node:
            assert 1 <= node["maxLength"] <= 60
        if node.get("type") == "integer":
            assert node["minimum"] >= 0 and node["maximum"] <= 1000
        if node.get("type") == "array":
            assert "maxItems" in node


def test_schema_accepts_one_of_each_type_and_rejects_bad_items():
    validator = jsonschema.Draft202012Validator(constraints_schema(max_items=len(EXAMPLES)))
    validator.validate({"constraints": EXAMPLE_DATA})
    assert validator.is_valid({"constraints": []})
    bad_items = [
        {"type": "word_count", "relation": "at_most", "value": 5, "extra": 1},
        {"type": "no_such_type"},
        {"relation": "at_most", "value": 5},
        {"type": "word_count", "relation": "less", "value": 5},
        {"type": "word_count", "relation": "at_most", "value": 1001},
        {"type": "word_count", "relation": "at_most", "value": -1},
        {"type": "starts_with", "phrase": "x" * 61},
        {"type": "include_keywords", "keywords": list("abcdef")},
        {"type": "numbered_sections", "value": 2},  # every property is required
    ]
    for item in bad_items:
        assert not validator.is_valid({"constraints": [item]}), item
    assert not validator.is_valid({"constraints": [], "extra": True})
    too_many = jsonschema.Draft202012Validator(constraints_schema(max_items=2))
    assert not too_many.is_valid({"constraints": EXAMPLE_DATA[:3]})


def test_schema_valid_items_parse():
    for data in EXAMPLE_DATA:
        assert parse_constraint(data).type == data["type"]


# Language detection ---------------------------------------------------------------------------

SENTENCES: list[tuple[str, str]] = [
    ("en", "The weather was lovely today, so we walked to the park and had lunch by the river."),
    ("en", "Please let me know if you have any questions about the report."),
    ("fr", "Il fait très beau aujourd'hui, alors nous sommes allés au parc près de la rivière."),
    ("fr", "Je pense que c'est une bonne idée, mais il faut en parler avec elle."),
    ("de", "Das Wetter war heute sehr schön, deshalb sind wir in den Park gegangen."),
    ("de", "Ich weiß nicht, ob er morgen kommt, aber ich hoffe es sehr."),
    ("es", "Hoy hace muy buen tiempo, así que fuimos al parque y comimos cerca del río."),
    ("es", "No sé si ella viene mañana, pero espero que sí porque la echamos de menos."),
    ("it", "Oggi il tempo è bellissimo, quindi siamo andati al parco e abbiamo pranzato."),
    ("it", "Non so se lei viene domani, ma spero di sì perché ci manca molto."),
    ("pt", "Hoje o tempo está muito bom, por isso fomos ao parque e almoçamos perto do rio."),
    ("pt", "Não sei se ela vem amanhã, mas espero que sim porque sentimos muito a sua falta."),
    ("nl", "Het weer was vandaag erg mooi, dus we zijn naar het park gegaan."),
    ("nl", "Ik weet niet of ze morgen komt, maar ik hoop het wel want we missen haar."),
    ("ru", "Сегодня прекрасная погода, поэтому мы пошли в парк и пообедали у реки."),
    ("ru", "Я не знаю, придёт ли она завтра, но очень надеюсь."),
    ("zh", "今天天气很好，所以我们去公园散步，然后在河边吃了午饭。"),
    ("zh", "我不知道她明天会不会来，但是我很希望她来。我喜欢用Python写代码。"),
    ("ja", "今日はとても天気が良かったので、公園に行って川のそばで昼ご飯を食べました。"),
    ("ja", "彼女が明日来るかどうか分かりませんが、来てほしいです。Pythonが好きです。"),
    ("ko", "오늘은 날씨가 아주 좋아서 공원에 가서 강가에서 점심을 먹었습니다."),
    ("ko", "그녀가 내일 올지 모르겠지만 꼭 왔으면 좋겠어요."),
    ("ar", "كان الطقس جميلا اليوم، لذلك ذهبنا إلى الحديقة وتناولنا الغداء بجانب النهر."),
    ("ar", "لا أعرف إن كانت ستأتي غدا، لكنني أتمنى ذلك كثيرا."),
    ("hi", "आज मौसम बहुत अच्छा था, इसलिए हम पार्क गए और नदी के किनारे खाना खाया।"),
    ("hi", "मुझे नहीं पता कि वह कल आएगी या नहीं, लेकिन मुझे उम्मीद है।"),
    ("el", "Ο καιρός ήταν υπέροχος σήμερα, γι' αυτό πήγαμε στο πάρκο."),
    ("el", "Δεν ξέρω αν θα έρθει αύριο, αλλά το ελπίζω πολύ."),
]


def test_languages_are_the_specified_ones():
    assert list(LANGUAGES) == ["en", "fr", "de", "es", "it", "pt", "nl", "ru", "zh", "ja", "ko",
                               "ar", "hi", "el"]
    assert {code for code, _ in SENTENCES} == set(LANGUAGES)
    schema_codes = next(v["properties"]["language"]["enum"]
                        for v in constraints_schema()["properties"]["constraints"]["items"]
                        ["anyOf"] if v["properties"]["type"]["const"] == "response_language")
    assert schema_codes == list(LANGUAGES)


@pytest.mark.parametrize("code, text", SENTENCES, ids=[code for code, _ in SENTENCES])
def test_detect_language(code, text):
    assert detect_language(text) == code
    assert check({"type": "response_language", "language": code}, text).passed


@pytest.mark.parametrize("text", [
    "", "   ", "12345 !!", "🎉👍", "Hello",
    "Dzień dobry, jak się masz? Wszystko w porządku, dziękuję bardzo.",  # Polish
    "Bugün hava çok güzel, bu yüzden parka gittik ve yemek yedik.",  # Turkish
    "Привіт, як твої справи? Я сьогодні читаю цікаву книжку і п'ю каву.",  # Ukrainian
    "این یک کتاب خوب است که من دیروز خریدم و خواندم.",  # Persian
    "Hari ini cuacanya sangat bagus, jadi kami pergi ke taman.",  # Indonesian
])
def test_detect_language_says_none_when_unsure_or_unlisted(text):
    assert detect_language(text) is None
