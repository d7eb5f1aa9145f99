"""The rule-based divider: common phrasings of each constraint type, read exactly."""

import json
from pathlib import Path

import pytest

from chorus.agents.dividing import divide
from chorus.checks import parse_constraint
from chorus.checks.phrasing import number, read_constraints, relation

DATA = Path(__file__).parent.parent / "benchmarks" / "data"


@pytest.mark.parametrize("text, value", [
    ("50", 50), ("fifty", 50), ("twenty-five", 25), ("a", 1), ("twice", 2),
    ("one hundred", 100), ("a hundred and twenty", 120), ("1,000", 1000), ("lots", None)])
def test_numbers_in_words_and_digits(text, value):
    assert number(text) == value


@pytest.mark.parametrize("before, after, value, expected", [
    ("under", None, 50, ("at_most", 49)), ("fewer than", None, 3, ("at_most", 2)),
    ("more than", None, 3, ("at_least", 4)), ("no shorter than", None, 100, ("at_least", 100)),
    (None, "or fewer", 40, ("at_most", 40)), (None, "or more", 2, ("at_least", 2)),
    ("exactly", None, 3, ("exactly", 3)), (None, None, 3, ("exactly", 3))])
def test_strict_bounds_become_inclusive(before, after, value, expected):
    assert relation(before, after, value) == expected


@pytest.mark.parametrize("instruction, expected", [
    ("Describe a volcano in under 50 words.",
     [{"type": "word_count", "relation": "at_most", "value": 49}]),
    ("Keep it to fifty words or fewer.",
     [{"type": "word_count", "relation": "at_most", "value": 50}]),
    ("Answer in exactly three sentences, all in lowercase.",
     [{"type": "sentence_count", "relation": "exactly", "value": 3}, {"type": "lowercase"}]),
    ("Don't use the words 'money' or 'bank'.",
     [{"type": "forbidden_words", "words": ["money", "bank"]}]),
    ("Use capital letters only, and end with 'LET'S GO!'",
     [{"type": "uppercase"}, {"type": "ends_with", "phrase": "LET'S GO!"}]),
    ("Use at least 2 words in ALL CAPS and the letter 'z' at least six times.",
     [{"type": "capital_word_frequency", "relation": "at_least", "value": 2},
      {"type": "letter_frequency", "letter": "z", "relation": "at_least", "value": 6}]),
    ("Write 3 paragraphs; the second paragraph must start with the word 'Later'.",
     [{"type": "nth_paragraph_first_word", "paragraphs": 3, "n": 2, "word": "Later"}]),
    ('Answer with one of: "My answer is yes.", "My answer is no." Include "cage".',
     [{"type": "constrained_response", "options": ["My answer is yes.", "My answer is no."]},
      {"type": "include_keywords", "keywords": ["cage"]}]),
    ("Write two different slogans, separated by ******.",
     [{"type": "two_responses", "separator": "******"}]),
    ("Write two different tweet-style teasers for a bake sale, separated by ******.",
     [{"type": "two_responses", "separator": "******"}]),
    ("Split it into 2 sections labelled SECTION 1 and SECTION 2.",
     [{"type": "numbered_sections", "marker": "SECTION", "value": 2}]),
    ("Add a title in double angular brackets, like <<title>>, and end with a P.P.S",
     [{"type": "title"}, {"type": "postscript", "marker": "P.P.S"}]),
    ("Then add a postscript beginning with P.P.S explaining it.",
     [{"type": "postscript", "marker": "P.P.S"}]),
    ("Respond in French, with no commas, in JSON format.",
     [{"type": "response_language", "language": "fr"}, {"type": "no_commas"},
      {"type": "json_format"}]),
    ("Wrap your entire response in double quotation marks.", [{"type": "quotation"}]),
    ("First repeat the request word for word without change, then give your answer: "
     '"Explain tides."',
     [{"type": "repeat_request", "request": "Explain tides."}]),
    ("Include at least 3 placeholders in square brackets, such as [address], and "
     "highlight at least 2 sections with markdown.",
     [{"type": "placeholders", "value": 3}, {"type": "highlighted_sections", "value": 2}]),
    ("Keep it shorter than 150 characters and use 4 bullet points.",
     [{"type": "character_count", "relation": "at_most", "value": 149},
      {"type": "bullet_count", "value": 4}]),
    ("Tell me about the moon.", []),
])
def test_common_phrasings(instruction, expected):
    assert read_constraints(instruction) == expected


def test_every_training_instruction_is_divided_exactly():
    """The rules were written against the training split; this keeps them there."""
    rows = [json.loads(line) for line in (DATA / "dvr_train.jsonl").open()]
    for row in rows:
        found = divide(row["instruction"]).constraints
        assert found == [parse_constraint(c) for c in row["constraints"]] or \
            sorted(map(repr, found)) == sorted(repr(parse_constraint(c))
                                               for c in row["constraints"]), row["id"]
