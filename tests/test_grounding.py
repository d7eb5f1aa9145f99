"""Grounded arguments: optional values the request does not support are left out."""

import json
from pathlib import Path

import pytest

from chorus.agents.grounding import (
    adds_to,
    asks_more,
    ground_calls,
    invented,
    released,
    undone,
    unshared,
    with_named_options,
)
from chorus.tools import Tool, ToolRegistry, calculator

DEPARTURES = Tool.from_openai({
    "name": "get_train_departures", "description": "Train departures from a station.",
    "parameters": {"type": "object", "required": ["station"], "properties": {
        "station": {"type": "string", "description": "Station name."},
        "destination": {"type": "string", "description": "Only trains to this place."},
        "date": {"type": "string", "description": "YYYY-MM-DD."},
        "limit": {"type": "integer", "default": 5, "description": "How many."},
        "unit": {"type": "string", "enum": ["km", "mi"], "default": "km"},
        "accessible_only": {"type": "boolean", "description": "Step-free trains only."}}}})
TOOLS = ToolRegistry([DEPARTURES])


def _tool(name: str, description: str, **properties: dict) -> Tool:
    """A tool whose first parameter is its only required one."""
    return Tool.from_openai({"name": name, "description": description, "parameters": {
        "type": "object", "required": [next(iter(properties))], "properties": properties}})
ROOT = Path(__file__).resolve().parents[1]


def _arguments(arguments: dict, request: str) -> dict:
    [call] = ground_calls([{"name": "get_train_departures", "arguments": arguments}], TOOLS,
                          request)
    return call["arguments"]


def test_invented_optional_values_are_left_out():
    request = "Trains from Milano Centrale?"
    invented = {"station": "Milano Centrale", "destination": "Roma", "date": "2025-07-19",
                "limit": 5, "unit": "km", "accessible_only": True}
    assert _arguments(invented, request) == {"station": "Milano Centrale"}


def test_values_the_request_gives_are_kept():
    request = "Show 3 accessible trains from Berlin Hbf to Hamburg on 2025-07-19, in km."
    given = {"station": "Berlin Hbf", "destination": "Hamburg", "date": "2025-07-19",
             "limit": 3, "unit": "km", "accessible_only": True}
    assert _arguments(given, request) == given


def test_numbers_in_words_and_enum_codes_count_as_given():
    two = _arguments({"station": "Oslo S", "limit": 2}, "Next two trains from Oslo S")
    assert two["limit"] == 2
    # An enum value is a code the request may only paraphrase ("miles" -> "mi"): kept unless
    # it is the default the request never names.
    assert _arguments({"station": "York", "unit": "mi"}, "Trains from York, in miles")["unit"] \
        == "mi"


def test_an_optional_text_inside_another_arguments_value_is_that_value_again():
    assert _arguments({"station": "Toronto Union", "destination": "Toronto"},
                      "Trains from Toronto Union") == {"station": "Toronto Union"}
    assert _arguments({"station": "Toronto Union", "destination": "Toronto"},
                      "Trains from Toronto Union to Toronto") == {
        "station": "Toronto Union", "destination": "Toronto"}


def test_marks_the_model_put_around_a_given_name_or_code_go():
    # "budget.xlsx" copied as "/budget.xlsx": the request has it only inside a longer path
    assert _arguments({"station": "/Oslo-S"}, "Trains from Oslo-S to /maps/Oslo-S") == \
        {"station": "Oslo-S"}
    assert _arguments({"station": "/maps/Oslo-S"}, "Trains from Oslo-S to /maps/Oslo-S") \
        == {"station": "/maps/Oslo-S"}
    # a plain word is not a name the model marked: "/home" may mean a path
    assert _arguments({"station": "/home"}, "Trains from my home town") == \
        {"station": "/home"}


def test_an_optional_code_the_request_never_names_is_left_out():
    # Each part of a code must begin a word of the request; the model's own pick goes.
    assert _arguments({"station": "York", "unit": "mi"}, "Trains from York") == \
        {"station": "York"}
    assert _arguments({"station": "York", "unit": "mi"}, "Trains from York, distances in MI") \
        == {"station": "York", "unit": "mi"}


def test_an_optional_text_must_be_copied_not_worded_by_the_model():
    request = "Trains from Utrecht Centraal to Den Haag Centraal, please."
    assert _arguments({"station": "Utrecht Centraal", "destination": "Den Haag"}, request) == \
        {"station": "Utrecht Centraal", "destination": "Den Haag"}
    # most of its words are in the request, but the model wrote it
    assert _arguments({"station": "Utrecht Centraal", "destination": "Centraal to Utrecht"},
                      request) == {"station": "Utrecht Centraal"}


def test_a_value_fills_as_many_arguments_as_the_request_gives_it():
    assert _arguments({"station": "Dover", "destination": "Dover"}, "Ferries from Dover") == \
        {"station": "Dover"}
    assert _arguments({"station": "Dover", "destination": "Dover"},
                      "Trains from Dover back to Dover") == {"station": "Dover",
                                                              "destination": "Dover"}
    # a number too: the first argument written keeps it
    assert _arguments({"station": "Bern", "limit": 3, "destination": "3"},
                      "Bern, 3 at most") == {"station": "Bern", "limit": 3}
    assert _arguments({"station": "Bern 3", "limit": 3}, "Bern 3, 3 trains") == \
        {"station": "Bern 3", "limit": 3}


def test_required_arguments_are_never_dropped():
    assert _arguments({"station": "Nowhere Junction"}, "trains please") == \
        {"station": "Nowhere Junction"}


def test_identical_calls_are_made_once_and_unknown_tools_pass_through():
    call = {"name": "get_train_departures", "arguments": {"station": "Bern"}}
    other = {"name": "not_a_tool", "arguments": {"x": 1}}
    assert ground_calls([call, dict(call), other], TOOLS, "Trains from Bern") == [call, other]


def _call(**arguments) -> dict:
    return {"name": "get_train_departures", "arguments": arguments}


def test_a_call_the_model_was_made_to_add_must_do_more_of_the_request():
    request = "Departures from Amsterdam Centraal and from Utrecht Centraal, in km or mi."
    first = [_call(station="Amsterdam Centraal", unit="km")]
    assert adds_to(_call(station="Utrecht Centraal"), first, TOOLS, request)
    assert not adds_to(_call(station="Amsterdam Centraal"), first, TOOLS, request)  # again
    assert not adds_to(_call(station="Rotterdam"), first, TOOLS, request)  # not asked for
    assert not adds_to(_call(station="Amsterdam"), first, TOOLS, request)  # part of a value
    # an enum code counts only as a word of the request: "mi" is one here, "km" is used
    assert adds_to(_call(station="Amsterdam Centraal", unit="mi"), first, TOOLS, request)
    assert not adds_to(_call(station="Amsterdam Centraal", unit="mi"), first, TOOLS,
                       "Departures from Amsterdam Centraal, in km")
    assert not adds_to({"name": "book_taxi", "arguments": {}}, first, TOOLS, request)


def test_another_tool_on_the_same_value_is_added_when_the_request_speaks_of_it():
    rhymes = _tool("find_rhymes", "Words that rhyme.", word={"type": "string"})
    tools = ToolRegistry([DEPARTURES, rhymes])
    first = [_call(station="Oslo S")]
    assert adds_to({"name": "find_rhymes", "arguments": {"word": "Oslo S"}}, first, tools,
                   "Trains from Oslo S, and what rhymes with it?")
    assert not adds_to({"name": "find_rhymes", "arguments": {"word": "Oslo S"}}, first, tools,
                       "Trains from Oslo S")


def test_a_call_with_numbers_or_only_values_the_request_does_not_give_is_invented():
    request = "Trains from Milano Centrale to Roma on 2025-07-19, the next three."
    assert not invented(_call(station="Milano Centrale", date="2025-07-19", limit=3),
                        TOOLS, request)
    assert invented(_call(station="Milano Centrale", date="2023-04-15"), TOOLS, request)
    assert invented(_call(station="Milano Centrale", limit=10), TOOLS, request)
    # words may become codes, as long as some value comes from the request
    assert not invented(_call(station="MILANO C.LE", destination="Roma"), TOOLS, request)
    assert invented(_call(station="Paris"), TOOLS, "Hi there! How's it going?")


@pytest.mark.parametrize(("expression", "request_text", "made_up"), [
    ("3 * 3600", "How many seconds are there in 3 hours?", False),  # a constant of its own
    ("80 * 15 / 100", "What is 15% of 80?", False),
    ("(3 + 4) * 5", "Calculate (3 + 4) * 5.", False),
    ("2*(3+4)", "Hi there!", True),  # none of its numbers is given
    ("10 + 5", "Play some jazz music.", True),
    ("7 * 12", "What is 12 times 8?", False),  # one given number is enough in a formula
])
def test_a_formula_needs_one_number_of_the_request_not_all(expression, request_text, made_up):
    assert invented({"name": "calculator", "arguments": {"expression": expression}},
                    ToolRegistry([calculator]), request_text) is made_up


def test_a_date_or_a_code_is_not_a_formula():
    request = "Trains from Milano Centrale on 2025-07-19."
    assert invented(_call(station="Milano Centrale", date="2025-07-20"), TOOLS, request)
    assert invented(_call(station="INV-1201"), TOOLS, "Void invoice INV-1200.")


def test_a_call_with_only_codes_is_invented_unless_the_request_speaks_of_its_tool():
    balance = Tool.from_openai({
        "name": "get_account_balance", "description": "Balance of one of your bank accounts.",
        "parameters": {"type": "object", "properties": {
            "account": {"type": "string", "enum": ["checking", "savings"]}}}})
    tools = ToolRegistry([balance])
    checking = {"name": "get_account_balance", "arguments": {"account": "checking"}}
    assert invented(checking, tools, "Thanks a lot, that's all I needed.")
    assert not invented(checking, tools, "How much money is in my bank account?")
    assert not invented(checking, tools, "And for checking?")  # the code is a word of it
    assert invented({"name": "get_account_balance", "arguments": {}}, tools, "Hi there!")


GOLD_SETS = {  # (tools, requests with their gold calls, the request's field)
    "suite": ("benchmarks/data/suite_tools.json", ["benchmarks/data/suite_cases.jsonl"],
              "request"),
    "first round": ("benchmarks/data/tools.json", ["benchmarks/data/tool_calls.jsonl"],
                    "request"),
    "training episodes": ("data/roles/tools.json", ["data/roles/train/episodes.jsonl",
                                                    "data/roles/eval/episodes.jsonl"], "task"),
}


@pytest.mark.parametrize("name", GOLD_SETS)
def test_no_gold_call_is_changed_refused_or_called_invented(name):
    """The checks read words, so they can be too strict: every right call of the benchmark
    suites and the training episodes must pass them as it is."""
    tools_file, case_files, field = GOLD_SETS[name]
    tools = ToolRegistry.from_openai_file(ROOT / tools_file)
    cases = [json.loads(line) for path in case_files
             for line in (ROOT / path).read_text().splitlines() if line.strip()]
    flagged = []
    for case in cases:
        calls, request = case.get("calls") or [], case[field]
        for position, call in enumerate(calls):
            if invented(call, tools, request) or ground_calls([call], tools, request) != [call] \
                    or position and not adds_to(call, calls[:position], tools, request) \
                    or any(released(made, call, tools) != made for made in calls[:position]) \
                    or unshared(call, calls[:position], tools, request) != call \
                    or with_named_options(call, tools, request) != call:
                flagged.append((request, call))
    assert sum(len(case.get("calls") or []) for case in cases) > 100
    assert flagged == []


@pytest.mark.parametrize("name", GOLD_SETS)
def test_an_option_a_gold_call_takes_is_put_back_where_the_model_left_it_out(name):
    """Where a right call holds an optional enum code, the call without it gets it back
    from the request's words for nearly all (those that name two codes of it stay out)."""
    tools_file, case_files, field = GOLD_SETS[name]
    tools = ToolRegistry.from_openai_file(ROOT / tools_file)
    restored, options = 0, 0
    for path in case_files:
        for line in (ROOT / path).read_text().splitlines():
            case = json.loads(line) if line.strip() else {}
            for call in case.get("calls") or []:
                parameters = tools.get(call["name"]).parameters
                for option, value in call["arguments"].items():
                    spec = parameters["properties"][option]
                    if option in parameters.get("required", []) or "enum" not in spec \
                            or value == spec.get("default"):
                        continue
                    left_out = {**call, "arguments": {
                        k: v for k, v in call["arguments"].items() if k != option}}
                    options += 1
                    restored += with_named_options(left_out, tools, case[field]) == call
    assert options >= 10
    assert restored >= options - 2


def test_a_default_number_stays_only_where_the_request_says_it_of_that_parameter():
    area = _tool("rectangle_area", "Area of a rectangle.", width={"type": "number"},
                 precision={"type": "integer", "default": 2,
                            "description": "Number of decimal places in the result."})
    call = {"name": "rectangle_area", "arguments": {"width": 3, "precision": 2}}
    tools = ToolRegistry([area])
    assert ground_calls([call], tools, "Two rectangles, 3 wide: their areas?")[0][
        "arguments"] == {"width": 3}
    assert ground_calls([call], tools, "Area of a 3 wide square to two decimal places")[0][
        "arguments"] == {"width": 3, "precision": 2}

def test_an_option_the_request_names_is_filled_in_once_and_only_when_unambiguous():
    correlation = _tool("compute_correlation", "Correlation of two series.",
                        x={"type": "array", "items": {"type": "number"}},
                        method={"type": "string", "enum": ["pearson", "spearman", "kendall"],
                                "default": "pearson"})
    tools = ToolRegistry([correlation])
    call = {"name": "compute_correlation", "arguments": {"x": [1, 2, 3]}}
    spearman = {"name": "compute_correlation",
                "arguments": {"x": [1, 2, 3], "method": "spearman"}}
    assert with_named_options(call, tools, "Spearman correlation of 1, 2, 3") == spearman
    assert with_named_options(call, tools, "Correlation of 1, 2, 3") == call
    # the default, two codes named, or a code the model already placed: nothing added
    assert with_named_options(call, tools, "Pearson correlation of 1, 2, 3") == call
    assert with_named_options(call, tools, "Spearman or Kendall for 1, 2, 3?") == call
    assert with_named_options(spearman, tools, "Kendall, then Spearman") == spearman
    # a short code counts only as a word of its own: "mi" is not the start of "miles"
    units = DEPARTURES.parameters["properties"]["unit"]
    assert units["enum"] == ["km", "mi"]
    trains = {"name": "get_train_departures", "arguments": {"station": "York"}}
    assert with_named_options(trains, TOOLS, "Trains from York, miles away") == trains
    assert with_named_options(trains, TOOLS, "Trains from York in mi")["arguments"] == {
        "station": "York", "unit": "mi"}

    # a label the model wrote into a text is the option it names
    catalog = _tool("search_library_catalog", "Search the library.", query={"type": "string"},
                    search_by={"type": "string", "enum": ["title", "author"],
                               "default": "title"})
    labelled = {"name": "search_library_catalog",
                "arguments": {"query": "author: Ursula K. Le Guin"}}
    assert with_named_options(labelled, ToolRegistry([catalog]),
                              "Books by the author Ursula K. Le Guin")["arguments"] == {
        "query": "Ursula K. Le Guin", "search_by": "author"}
    fetch = _tool("fetch", "Fetch a page.", url={"type": "string"},
                  scheme={"type": "string", "enum": ["http", "https"], "default": "https"})
    page = {"name": "fetch", "arguments": {"url": "http://example.org"}}
    assert with_named_options(page, ToolRegistry([fetch]), "Fetch http://example.org") == page


def test_a_text_option_saying_what_a_flag_says_goes():
    recipes = _tool("find_recipes", "Recipes that use ingredients.",
                    ingredients={"type": "array", "items": {"type": "string"}},
                    cuisine={"type": "string", "description": "e.g. 'Italian'."},
                    vegetarian={"type": "boolean", "default": False})
    call = {"name": "find_recipes", "arguments": {
        "ingredients": ["spinach"], "cuisine": "vegetarian", "vegetarian": True}}
    assert ground_calls([call], ToolRegistry([recipes]), "Vegetarian recipes with spinach?"
                        )[0]["arguments"] == {"ingredients": ["spinach"], "vegetarian": True}


@pytest.mark.parametrize("name", GOLD_SETS)
def test_a_request_asks_for_more_wherever_its_gold_calls_go_on(name):
    """`asks_more` decides whether the model is asked for one call more: after any proper
    prefix of a request's right calls it must say more (else a call is lost); after all of
    them it may say no more, and must for many (else it saves nothing)."""
    tools_file, case_files, field = GOLD_SETS[name]
    tools = ToolRegistry.from_openai_file(ROOT / tools_file)
    cases = [json.loads(line) for path in case_files
             for line in (ROOT / path).read_text().splitlines() if line.strip()]
    stopped_early, finished = [], 0
    for case in cases:
        calls, request = case.get("calls") or [], case[field]
        shown = ToolRegistry([tools.get(n) for n in case["tools"]]) if "tools" in case \
            else tools
        stopped_early += [(request, position) for position in range(1, len(calls))
                          if not asks_more(request, calls[:position], shown)]
        finished += bool(calls) and not asks_more(request, calls, shown)
    assert stopped_early == []
    assert finished > sum(bool(case.get("calls")) for case in cases) / 4


def test_more_is_asked_for_a_clause_number_name_or_tool_the_calls_leave_out():
    weather = _tool("get_weather", "Current weather in a city.",
                    city={"type": "string"})
    rhymes = _tool("find_rhymes", "Words that rhyme with a word.", word={"type": "string"})
    origin = _tool("get_etymology", "Where a word comes from, its origin.",
                   word={"type": "string"})
    tools = ToolRegistry([weather, rhymes, origin])
    paris = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    assert not asks_more("What's the weather in Paris?", paris, tools)
    assert asks_more("What's the weather in Paris and in London?", paris, tools)  # a clause
    assert asks_more("Weather for Paris or Lyon", paris, tools)  # a name no call holds
    assert asks_more("Weather in Paris at 5 pm", paris, tools)  # a number
    heart = [{"name": "find_rhymes", "arguments": {"word": "heart"}}]
    assert asks_more("Rhymes for 'heart', and where does the word 'heart' come from?",
                     heart, tools)  # another tool's words
    assert not asks_more("Give me rhymes for 'heart'", heart, tools)


def test_an_object_arguments_fields_are_grounded_by_the_same_rules():
    quote = Tool.from_openai({
        "name": "get_shipping_quote", "description": "Price to ship a package.",
        "parameters": {"type": "object", "required": ["package"], "properties": {
            "package": {"type": "object", "required": ["weight_kg"], "properties": {
                "weight_kg": {"type": "number"},
                "fragile": {"type": "boolean", "default": False},
                "note": {"type": "string"}}}}}})
    call = {"name": "get_shipping_quote", "arguments": {"package": {
        "weight_kg": 2.5, "fragile": True, "note": "handle with care"}}}
    assert ground_calls([call], ToolRegistry([quote]), "Ship a 2.5 kg parcel") == [
        {"name": "get_shipping_quote", "arguments": {"package": {"weight_kg": 2.5}}}]
    assert ground_calls([call], ToolRegistry([quote]), "Ship a fragile 2.5 kg parcel")[0][
        "arguments"]["package"] == {"weight_kg": 2.5, "fragile": True}


def test_a_word_naming_an_earlier_calls_tool_is_not_a_value_for_another_tool():
    void = _tool("void_invoice", "Void an invoice.", invoice_id={"type": "string"})
    rhymes = _tool("find_rhymes", "Words that rhyme.", word={"type": "string"})
    tools = ToolRegistry([void, rhymes])
    first = [{"name": "void_invoice", "arguments": {"invoice_id": "INV-2048"}}]
    assert not adds_to({"name": "find_rhymes", "arguments": {"word": "void"}}, first, tools,
                       "Void invoice INV-2048.")
    assert adds_to({"name": "find_rhymes", "arguments": {"word": "void"}}, first, tools,
                   "Void invoice INV-2048, and what rhymes with void?")


def test_a_value_the_first_call_took_as_an_option_goes_to_the_added_call():
    request = "Show me train departures from Amsterdam Centraal and from Utrecht Centraal."
    first = _call(station="Amsterdam Centraal", destination="Utrecht Centraal")
    utrecht = _call(station="Utrecht Centraal")
    assert adds_to(utrecht, [first], TOOLS, request)
    assert released(first, utrecht, TOOLS) == _call(station="Amsterdam Centraal")
    # a value both calls hold under the same parameter stays in both
    same_date = _call(station="Bern", date="2025-07-19")
    assert released(same_date, _call(station="Basel", date="2025-07-19"), TOOLS) == same_date
    # a call of another tool may not take a value to seem new
    rhymes = _tool("find_rhymes", "Words that rhyme.", word={"type": "string"})
    tools = ToolRegistry([DEPARTURES, rhymes])
    assert not adds_to({"name": "find_rhymes", "arguments": {"word": "Utrecht Centraal"}},
                       [first], tools, request)


def test_a_value_is_written_as_the_request_spells_it():
    assert _arguments({"station": "milano centrale"}, "Trains from Milano Centrale") == \
        {"station": "Milano Centrale"}
    assert _arguments({"station": "Pasta"}, "A pasta timer? Call it Pasta.") == \
        {"station": "Pasta"}  # spelled so in the request already
    assert _arguments({"station": "EUR"}, "Convert 250 euros") == {"station": "EUR"}  # a code


def test_what_the_calls_leave_undone_is_the_clauses_holding_none_of_their_values():
    request = ("Departures from Amsterdam Centraal on 2025-05-02, then book a taxi to "
               "'Dam Square' for 4 people.")
    first = [{"name": "get_train_departures",
              "arguments": {"station": "Amsterdam Centraal", "date": "2025-05-02"}}]
    assert undone(request, first, TOOLS) == "book a taxi to for 4 people"  # quotes are values
    assert undone(request, [], TOOLS) == ("Departures from Amsterdam Centraal on 2025-05-02 "
                                          "book a taxi to for 4 people")
    everything = [*first, {"name": "get_train_departures",
                           "arguments": {"station": "Dam Square", "limit": 4}}]
    assert undone(request, everything, TOOLS) == ""


def test_a_clause_naming_a_code_of_the_calls_is_done_and_initials_end_no_clause():
    coded = [{"name": "get_train_departures", "arguments": {"station": "Leeds", "unit": "mi"}}]
    assert undone("Trains from Leeds, with distances in mi", coded, TOOLS) == ""
    first = [{"name": "get_train_departures", "arguments": {"station": "J. Smith Station"}}]
    assert undone("Trains from J. Smith Station, and then from York.", first, TOOLS) == \
        "from York"
    york = [{"name": "get_train_departures", "arguments": {"station": "York"}}]
    assert undone("Trains from York, then open /maps/York.pdf", york, TOOLS) == \
        "open /maps/York.pdf"  # a value inside a path is not given again


VET = Tool.from_openai({
    "name": "book_vet_appointment", "description": "Book a vet appointment for a pet.",
    "parameters": {"type": "object", "required": ["pet_name", "date"], "properties": {
        "pet_name": {"type": "string"}, "date": {"type": "string"},
        "reason": {"type": "string", "description": "Why the visit."},
        "cc_emails": {"type": "array", "items": {"type": "string"}}}}})


def test_a_note_holding_another_arguments_value_is_the_request_copied_not_a_value():
    request = "Book Luna a vet appointment on 2025-04-12 for a limp."
    call = {"name": "book_vet_appointment", "arguments": {
        "pet_name": "Luna", "date": "2025-04-12",
        "reason": "Book Luna a vet appointment on 2025-04-12"}}
    assert ground_calls([call], ToolRegistry([VET]), request)[0]["arguments"] == {
        "pet_name": "Luna", "date": "2025-04-12"}
    call["arguments"]["reason"] = "a limp"
    assert ground_calls([call], ToolRegistry([VET]), request)[0]["arguments"]["reason"] \
        == "a limp"


def test_an_optional_list_may_not_repeat_a_value_given_once():
    call = {"name": "book_vet_appointment", "arguments": {
        "pet_name": "Luna", "date": "2025-04-12", "cc_emails": ["Luna", "vet@example.com"]}}
    request = "Book Luna in on 2025-04-12 and copy vet@example.com"
    assert "cc_emails" not in ground_calls([call], ToolRegistry([VET]), request)[0]["arguments"]


def test_an_added_call_made_of_earlier_values_or_their_parameter_words_is_not_new():
    rhymes = _tool("find_rhymes", "Words that rhyme with a word.", word={"type": "string"},
                   max_results={"type": "integer"})
    tools = ToolRegistry([VET, rhymes])
    first = [{"name": "book_vet_appointment",
              "arguments": {"pet_name": "Max", "date": "2025-04-12"}}]
    request = "Book Max at the vet on 2025-04-12, pet name Max"
    for word in ["Max 2025-04-12", "pet"]:  # values held already; a word of pet_name
        assert not adds_to({"name": "find_rhymes", "arguments": {"word": word}}, first,
                           tools, request)
    # "Max" is a word of max_results, a parameter: not enough to speak of find_rhymes
    assert tools.mentioned_in(request) == {"book_vet_appointment"}
    assert adds_to({"name": "find_rhymes", "arguments": {"word": "Max"}}, first, tools,
                   request + ", and what rhymes with Max?")


def test_an_added_call_copying_what_earlier_calls_do_is_not_new_but_codes_of_words_are():
    search = _tool("search_web", "Search the web.", query={"type": "string"})
    convert = _tool("convert_currency", "Convert money.", amount={"type": "number"},
                    source={"type": "string"}, target={"type": "string"})
    tools = ToolRegistry([DEPARTURES, search, convert])
    first = [{"name": "get_train_departures", "arguments": {"station": "Oslo S"}}]
    request = "Trains from Oslo S? Then convert 250 euros to US dollars."
    assert not adds_to({"name": "search_web", "arguments": {"query": request}}, first, tools,
                       request)  # the whole request copied into a query
    assert adds_to({"name": "search_web", "arguments": {"query": "convert 250 euros"}},
                   first, tools, request)
    # capitals codes spelled by the request's words: "USD" for "US dollars"
    assert adds_to({"name": "convert_currency", "arguments": {
        "amount": 250, "source": "EUR", "target": "USD"}}, first, tools, request)
    assert not adds_to({"name": "convert_currency", "arguments": {
        "amount": 250, "source": "EUR", "target": "CHF"}}, first, tools, request)


def test_another_tool_without_new_values_needs_a_word_the_earlier_tools_names_lack():
    invoice_id = {"type": "string"}
    tools = ToolRegistry([_tool("send_invoice", "Email an invoice to a customer.",
                                invoice_id=invoice_id),
                          _tool("void_invoice", "Cancel an invoice.", invoice_id=invoice_id)])
    sent = [{"name": "send_invoice", "arguments": {"invoice_id": "INV-7781"}}]
    void = {"name": "void_invoice", "arguments": {"invoice_id": "INV-7781"}}
    assert not adds_to(void, sent, tools, "Send invoice INV-7781 to the customer.")
    assert adds_to(void, sent, tools, "Send invoice INV-7781, then cancel it.")


def test_an_optional_list_of_every_code_the_request_never_names_goes():
    sprinkler = Tool.from_openai({
        "name": "set_sprinkler_schedule", "description": "Water a zone on a schedule.",
        "parameters": {"type": "object", "required": ["zone"], "properties": {
            "zone": {"type": "integer"},
            "days": {"type": "array", "items": {"type": "string", "enum": [
                "mon", "tue", "wed", "thu", "fri", "sat", "sun"]}}}}})
    tools = ToolRegistry([sprinkler])
    call = {"name": "set_sprinkler_schedule", "arguments": {
        "zone": 2, "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}}
    assert ground_calls([call], tools, "Water zone 2.")[0]["arguments"] == {"zone": 2}
    call["arguments"]["days"] = ["mon", "thu"]
    assert ground_calls([call], tools, "Water zone 2 on Mondays and Thursdays.")[0][
        "arguments"]["days"] == ["mon", "thu"]
    call["arguments"]["days"] = ["sat", "sun"]  # codes may be words mapped to them
    assert ground_calls([call], tools, "Water zone 2 at the weekend.")[0][
        "arguments"]["days"] == ["sat", "sun"]


def test_an_added_call_of_another_tool_does_not_share_a_value_given_once():
    score = _tool("get_match_score", "The score of a game.", team={"type": "string"},
                  date={"type": "string"})
    tools = ToolRegistry([score, DEPARTURES])
    first = [{"name": "get_match_score", "arguments": {"team": "Leafs", "date": "2025-03-08"}}]
    trains = {"name": "get_train_departures",
              "arguments": {"station": "Toronto Union", "date": "2025-03-08"}}
    request = "What was the Leafs score on 2025-03-08? And list departures from Toronto Union."
    assert unshared(trains, first, tools, request)["arguments"] == {"station": "Toronto Union"}
    twice = "The Leafs score on 2025-03-08, and departures from Toronto Union on 2025-03-08."
    assert unshared(trains, first, tools, twice) == trains
    again = {"name": "get_match_score", "arguments": {"team": "Oilers", "date": "2025-03-08"}}
    assert unshared(again, first, tools, "Leafs and Oilers scores on 2025-03-08") == again


def test_a_path_is_copied_whole_never_put_together_from_the_requests_words():
    delete = _tool("delete_file", "Delete a file.", path={"type": "string"})
    copy = _tool("copy_file", "Copy a file.", source_path={"type": "string"},
                 destination_path={"type": "string"})
    tools = ToolRegistry([delete, copy])
    request = "Permanently delete /var/log/old.log, don't just send it to the trash."
    first = [{"name": "delete_file", "arguments": {"path": "/var/log/old.log"}}]
    made_up = {"name": "copy_file", "arguments": {"source_path": "/var/log/old.log",
                                                  "destination_path": "/var/log/new.log"}}
    assert not adds_to(made_up, first, tools, request)  # "var", "log", "log" are given
    asked = "Copy /var/log/old.log to /backup/old.log"
    copied = {"name": "copy_file", "arguments": {"source_path": "/var/log/old.log",
                                                 "destination_path": "/backup/old.log"}}
    assert ground_calls([copied], tools, asked) == [copied] and not invented(copied, tools, asked)
