"""Grounded arguments: an optional argument stays in a call only if the request supports it.

Small models fill optional parameters with plausible inventions (a precision of 2, a date,
`covered_only: true`) though the prompt asks them not to; the grammar cannot tell an invented
value from a given one, so the check runs after decoding, on the request's own words:
- an optional argument equal to its declared default goes (the call means the same without
  it) unless the request spells that value out (a number beside a word of that parameter);
- an optional number stays only if the request contains that number;
- an optional free string stays only if it is the request's text or a run of its words;
- an optional flag stays only if the request names it (a word of the parameter's name);
- an optional enum code stays only if the request names it (each part of the code begins a
  word of the request: "express" in "with express service", "sms" in "by SMS");
- an optional value that other arguments already hold (or hold inside theirs) as often as
  the request gives it goes;
- an optional list of every code of its enum stays only if the request names one of them
  (every weekday for a request that names no day means no choice was made);
- an optional text that only says what a flag set true says goes;
- a free string the request holds in another case is written as the request spells it.
The other way (`with_named_options`), an optional enum the model left out is filled in where
the request names exactly one of its codes.
Required arguments (a required code is often a word mapped to a code: "pounds" -> "lb")
and arrays are left as the model wrote them; an object argument's fields follow the same
rules.
Identical calls are made once.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterator
from typing import Any

from chorus.agents.scoring import unique_calls
from chorus.tools.registry import ToolRegistry

_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[^\W_]+")
_DIGITS = re.compile(r"\d+")
_PATH_MARK = re.compile(r"[/\\]")  # a value with one of these is a path or an address
_SPACE = re.compile(r"\s")
# An arithmetic formula ("3 * 3600", "(3 + 4) * 5"): an operator between numbers; a minus
# only with spaces round it, so that dates and codes ("2025-03-08", "INV-1200") are not.
_FORMULA = re.compile(r"[\d)]\s*[+*/^%]\s*[\d(]|[\d)]\s+-\s+[\d(]")
_NUMBER_WORDS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
                 "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
                 "a dozen": 12, "twenty": 20, "fifty": 50, "hundred": 100}


def ground_calls(calls: list[dict[str, Any]], tools: ToolRegistry, request: str
                 ) -> list[dict[str, Any]]:
    """`calls` with the optional arguments `request` does not support left out."""
    grounded = []
    for call in calls:
        if call.get("name") not in tools:
            grounded.append(call)
            continue
        arguments = _grounded_object(call.get("arguments", {}),
                                     tools.get(call["name"]).parameters, request)
        grounded.append({**call, "arguments": arguments})
    return unique_calls(grounded)


def _grounded_object(values: dict[str, Any], schema: dict[str, Any], request: str
                     ) -> dict[str, Any]:
    """The arguments (or an object argument's fields, by the same rules) that stay."""
    required = set(schema.get("required", []))
    properties = schema.get("properties", {})
    kept = {}
    for name, value in values.items():
        spec = properties.get(name, {})
        if isinstance(value, dict) and isinstance(spec.get("properties"), dict):
            value = _grounded_object(value, spec, request)
        if isinstance(value, str) and "enum" not in spec:
            value = _as_spelled(value, request)
        if name in required or _supported(name, value, spec, request):
            kept[name] = value
    for name in list(_repeats(kept, required, request)):
        del kept[name]
    # an optional text saying only what a flag set true says (`cuisine="vegetarian"`
    # beside `vegetarian: true`) says it twice
    flags = {name for name, value in kept.items() if value is True}
    for name, value in list(kept.items()):
        if name not in required and isinstance(value, str) and "enum" not in \
                properties.get(name, {}) and "_".join(_WORD.findall(value.lower())) in flags:
            del kept[name]
    return kept


def grounded(call: dict[str, Any], tools: ToolRegistry, request: str) -> bool:
    """Whether every value of `call` comes from `request` (enum codes and flags aside): the
    bar for a call a model adds after its first ones, which may just vary them."""
    if call.get("name") not in tools:
        return False
    properties = _properties(call, tools)
    text = request.lower()
    for name, value in call.get("arguments", {}).items():
        spec = properties.get(name, {})
        values, spec = (value, spec.get("items", {})) if isinstance(value, list) \
            else ([value], spec)
        for item in values:
            if "enum" in spec or isinstance(item, bool | dict):
                continue
            if not _spelled_out(item, text) and not _abbreviates(item, text):
                return False
    return True


_CODE = re.compile(r"[A-Z]{2,5}")


def _abbreviates(value: Any, text: str) -> bool:
    """Whether `value` is a capitals code of words of `text`: its letters, in order, from
    the first letter of a word through at most three words ("USD" for "US dollars", "JPY"
    for "Japanese yen")."""
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        return False
    code = value.lower()
    words = _WORD.findall(text)
    for start, word in enumerate(words):
        if word[0] != code[0]:
            continue
        letters = iter("".join(words[start:start + 3]))
        if all(letter in letters for letter in code):
            return True
    return False


def invented(call: dict[str, Any], tools: ToolRegistry, request: str) -> bool:
    """Whether `call` is made up rather than asked for: it holds a number the request does
    not give, or none of its values (enum codes and flags aside) comes from the request.
    A model that has no tool for "Hi there!" still writes a call, with a date or a city of
    its own; words may be translated into values ("US dollars" -> "USD"), but not all.
    A call with no such values (only codes, or no arguments) is made up when the request
    speaks neither of its tool nor of one of its codes ("Thanks a lot" ->
    `get_account_balance(account="checking")`)."""
    values = _given_values(call, tools)
    text = request.lower()
    if _invents_numbers(call, tools, request):
        return True
    if values:
        return not any(_spelled_out(value, text) for value in values)
    return not _speaks_of(request, call, tools) and not any(
        _as_word(code, text) for code in _codes(call, tools))


def with_named_options(call: dict[str, Any], tools: ToolRegistry, request: str
                       ) -> dict[str, Any]:
    """`call` with the optional enum arguments it leaves out that `request` names: where
    the request names exactly one code of such a parameter other than its default (a
    word of 3 letters or more that a word of the request begins with, or a shorter one
    standing as a word: "mi", not the "m" of "miles"), and no other value of the call
    holds it. A small model leaves out options the user asked for ("the Spearman
    correlation" without `method="spearman"`, "with express service"); the prompt's
    "leave out what the request does not give" makes it do so more. Over the gold calls
    of the benchmarks and the training episodes this adds nothing a gold call lacks."""
    if call.get("name") not in tools:
        return call
    parameters = tools.get(call["name"]).parameters
    required = set(parameters.get("required", []))
    options = {name: spec for name, spec in parameters.get("properties", {}).items()
               if name not in required and isinstance(spec.get("enum"), list)}
    text = request.lower()
    arguments = _labels_as_options(call.get("arguments", {}), options, text)
    held = " ".join(str(value).lower() for value in _leaves(arguments)
                    if isinstance(value, str))
    added = {}
    for name, spec in options.items():
        if name in arguments:
            continue
        named = [code for code in spec["enum"] if isinstance(code, str)
                 and code != spec.get("default") and _named_option(code.lower(), text)
                 and not re.search(_whole(code.lower()), held)]
        if len(named) == 1:
            added[name] = named[0]
    arguments = {**arguments, **added}
    return {**call, "arguments": arguments} if arguments != call.get("arguments", {}) else call


# "author: Ursula K. Le Guin": a text led by a label (a space after the colon: not
# "http://..." nor "10:30")
_LABELLED = re.compile(r"\s*([^\W_]+)\s*:\s+(\S.*)", re.DOTALL)


def _labels_as_options(arguments: dict[str, Any], options: dict[str, Any], text: str
                       ) -> dict[str, Any]:
    """`arguments` where a text is led by a code of an option left out, which the request
    names ("author: Ursula K. Le Guin" as the query, with `search_by` unset, for "books by
    the author Ursula K. Le Guin"): the code is that option's value, the rest of the text
    is the text's."""
    labelled = dict(arguments)
    for name, value in arguments.items():
        found = _LABELLED.fullmatch(value) if isinstance(value, str) else None
        if not found:
            continue
        label = found.group(1).lower()
        for option, spec in options.items():
            codes = [code for code in spec["enum"]
                     if isinstance(code, str) and code.lower() == label]
            if option not in labelled and codes and _named_option(label, text):
                labelled[name], labelled[option] = found.group(2).strip(), codes[0]
                break
    return labelled


def _named_option(code: str, text: str) -> bool:
    """`_names_code` for a code the model did not write: short codes only as words."""
    parts = _WORD.findall(code)
    return bool(parts) and all(
        _begins_word(part, text) if len(part) >= 3 else re.search(_whole(part), text)
        for part in parts)


def _invents_numbers(call: dict[str, Any], tools: ToolRegistry, request: str) -> bool:
    """Whether `call` holds a number the request does not give: an amount, a radius, or the
    digits of a date or a code (enum values aside). Digits are copied or made up."""
    properties = _properties(call, tools)
    given = _numbers(request)
    digits = set(_DIGITS.findall(request))
    for name, value in call.get("arguments", {}).items():
        if _coded(properties.get(name, {})):
            continue
        for item in _leaves(value):
            if isinstance(item, int | float) and not isinstance(item, bool) \
                    and item not in given:
                return True
            if isinstance(item, str) and _made_up_digits(item, digits):
                return True
    return False


def _made_up_digits(value: str, given: set[str]) -> bool:
    """Whether `value` holds digits the request does not give. A formula may bring constants
    of its own ("3 * 3600" for the seconds in 3 hours), so it needs only one given number
    ("2*(3+4)" for "Hi there!" gives none)."""
    found = set(_DIGITS.findall(value))
    if _FORMULA.search(value):
        return bool(found) and not found & given
    return not found <= given


def adds_to(call: dict[str, Any], earlier: list[dict[str, Any]], tools: ToolRegistry,
            request: str) -> bool:
    """Whether `call`, which the model was made to write after `earlier`, does more of
    `request`. It must be new and take every value from the request, and then either use a
    value of the request that no earlier call holds (not "report" beside "report.pdf"; an
    enum code counts only as a word of the request: "m" is in any text), or call another
    tool that the request speaks of (a word of its name or description, not one of the
    earlier calls' tool names: "rhymes for 'heart'" and then where the word comes from). A
    value an earlier call of the same tool holds only as an optional argument of another
    name is free to take (`released`)."""
    if call in earlier or not grounded(call, tools, request):
        return False
    # another tool may not take a value the first call was asked for (a date), to seem new
    earlier = [released(made, call, tools) if made.get("name") == call["name"] else made
               for made in earlier]
    used = [str(value).lower() for made in earlier for value in _given_values(made, tools)]
    used += [str(value).lower() for made in earlier for value in _codes(made, tools)]
    used_words = {word for value in used for word in _WORD.findall(value)}
    text = request.lower()
    # A value is new when it is not inside one an earlier call holds, nor made of such
    # values only ("2, 4, 4, 5" as a search query beside the numbers [2, 4, 4, 5]), nor
    # a copy of a part of the request that earlier calls do (the whole request as a query).
    done = [clause.strip().lower() for clause, by_earlier in _clauses(request, earlier, tools)
            if by_earlier and _WORD.search(clause)]
    fresh = [value for value in _given_values(call, tools)
             if not any(str(value).lower() in other for other in used)
             and not set(_WORD.findall(str(value).lower())) <= used_words
             and not any(clause in str(value).lower() for clause in done)]
    fresh += [code for code in _codes(call, tools) if str(code).lower() not in used
              and _as_word(code, text)]
    # A word naming what an earlier call does or takes is not a value for another tool
    # ("Void invoice INV-2048" -> find_rhymes(word="void"); "pay for plate 7ABC123" ->
    # get_etymology(word="plate") beside license_plate="7ABC123").
    named = {word for made in earlier
             for name in [made.get("name", ""), *made.get("arguments", {})]
             for word in str(name).lower().split("_")}
    fresh = [value for value in fresh if str(value).lower() not in named]
    if fresh:
        return True
    called = {made.get("name") for made in earlier}
    return call["name"] not in called and call["name"] in tools.mentioned_in(request, called)


def released(made: dict[str, Any], added: dict[str, Any], tools: ToolRegistry
             ) -> dict[str, Any]:
    """`made`, an earlier call, without its optional arguments that hold a value `added`
    holds under another parameter: a small model puts the next call's value into the first
    one ("from Amsterdam Centraal and from Utrecht Centraal" -> station Amsterdam
    Centraal, destination Utrecht Centraal; the moon phase "in Madrid" when Madrid is
    where Venus is to be seen), and the added call is where it belongs."""
    if made.get("name") not in tools:
        return made
    required = set(tools.get(made["name"]).parameters.get("required", []))
    holders = {_value_key(value): name for name, value in added.get("arguments", {}).items()
               if _is_value(value)}
    arguments = {name: value for name, value in made.get("arguments", {}).items()
                 if name in required or not _is_value(value)
                 or holders.get(_value_key(value), name) == name}
    return {**made, "arguments": arguments}


# Where a request moves on to its next part: punctuation (not the dot of an initial: "Ursula
# K. Le Guin"), and the words that join two asks.
_CLAUSE_BREAK = re.compile(r"[,;?!]|(?<!\b\w)\.(?:\s|$)|\b(?:and|then|also|plus)\b",
                           re.IGNORECASE)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|\u201c[^\u201d]*\u201d")


def undone(request: str, calls: list[dict[str, Any]], tools: ToolRegistry) -> str:
    """The parts of `request` that `calls` leave undone (`_clauses`), quoted text left out
    (a value to use, not a thing to do); "" when every clause is done. "Quote shipping from
    94103 to 10001, and schedule a pickup at 500 Howard St" after the quote -> "schedule a
    pickup at 500 Howard St"."""
    left = [clause for clause, done in _clauses(request, calls, tools) if not done]
    return " ".join(_QUOTED.sub(" ", " ".join(left)).split())


# A name in a request: a capitalised word inside a sentence, or an abbreviation ("USD").
_NAMED = re.compile(r"(?<=\w )[A-Z][\w-]+|\b[A-Z]{2,}[\w-]*")


def asks_more(request: str, calls: list[dict[str, Any]], tools: ToolRegistry) -> bool:
    """Whether `request` may ask for more than `calls` do: a clause none of them does
    (`_clauses`), a number or a name none of their values holds, or a tool it speaks of
    that none of them calls. Where it asks for nothing more, a small model need not be
    asked for one call more (a whole call's decoding, refused in the end); over every
    prefix of the benchmarks' gold calls this says "more" wherever more were due."""
    if not all(done for clause, done in _clauses(request, calls, tools) if clause.strip()):
        return True
    held = " ".join(str(value) for call in calls
                    for value in _leaves(call.get("arguments", {})) if _is_value(value))
    if _numbers(request) - _numbers(held):
        return True
    if any(name.lower() not in held.lower() for name in _NAMED.findall(request)):
        return True
    return bool(tools.mentioned_in(request, besides={call["name"] for call in calls}))


def _clauses(request: str, calls: list[dict[str, Any]], tools: ToolRegistry
             ) -> list[tuple[str, bool]]:
    """The clauses of `request` (split at punctuation and at "and", "then", "also", "plus"),
    each with whether `calls` do it: it holds one of their values, or an enum code of theirs
    as a word that no clause before it named ("Start the dishwasher on the eco program" is
    done by `program="eco"`; "convert 100 F to Celsius, and 300 K to Celsius" is not done
    by `to_scale="celsius"` twice)."""
    values = [value for call in calls for value in _given_values(call, tools)]
    codes = {str(code).lower() for call in calls for code in _codes(call, tools)}
    clauses, spent = [], set()
    for clause in _CLAUSE_BREAK.split(request):
        text = clause.lower()
        named = {code for code in codes if _as_word(code, text)}
        clauses.append((clause, any(_stands_in(value, text) for value in values)
                        or bool(named - spent)))
        spent |= named
    return clauses


def _stands_in(value: Any, clause: str) -> bool:
    """Whether `clause` holds `value` as a value of its own: not inside a path, a file name
    or an address ("move /invoices/INV-5150.pdf" does not hold INV-5150)."""
    if isinstance(value, str) and " " not in value.strip():
        return bool(re.search(_standalone(value.lower()), clause))
    return _spelled_out(value, clause)


def _standalone(value: str) -> str:
    """A pattern for `value` standing on its own, not inside a path, a file name or an
    address (stricter than `_whole`: "INV-5150" is whole in "/invoices/INV-5150.pdf")."""
    return rf"(?<![\w/\\@.-]){re.escape(value)}(?![\w/\\@-]|\.\w)"


def unshared(added: dict[str, Any], earlier: list[dict[str, Any]], tools: ToolRegistry,
             request: str) -> dict[str, Any]:
    """`added` without its optional arguments whose value calls of other tools already hold
    as often as the request gives it: a value fills one parameter ("the score on 2025-03-08?
    And list train departures from Toronto Union": the date is the score's, not the
    trains'). Calls of the same tool share values ("departures from A and from B on
    2025-05-02": both trains on that day)."""
    if added.get("name") not in tools:
        return added
    required = set(tools.get(added["name"]).parameters.get("required", []))
    held = Counter(_value_key(value) for made in earlier if made.get("name") != added["name"]
                   for value in _leaves(made.get("arguments", {})) if _is_value(value))
    text = request.lower()
    arguments = {name: value for name, value in added.get("arguments", {}).items()
                 if name in required or not _is_value(value)
                 or held[_value_key(value)] < _times_given(value, text)}
    return {**added, "arguments": arguments}


def _is_value(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _speaks_of(request: str, call: dict[str, Any], tools: ToolRegistry) -> bool:
    """Whether the request has a word of the called tool's name or description (stemmed, as
    tool retrieval matches them: `ToolRegistry.mentioned_in`)."""
    return call["name"] in tools.mentioned_in(request)


def _as_word(value: Any, text: str) -> bool:
    """Whether `value` is a word (or run of words) of `text`: "m" is in any text."""
    return bool(re.search(rf"\b{re.escape(str(value).lower())}\b", text))


def _codes(call: dict[str, Any], tools: ToolRegistry) -> list[Any]:
    """The enum codes among a call's arguments."""
    properties = _properties(call, tools)
    return [item for name, value in call.get("arguments", {}).items()
            if _coded(properties.get(name, {})) for item in _leaves(value)
            if not isinstance(item, bool)]


def _given_values(call: dict[str, Any], tools: ToolRegistry) -> list[Any]:
    """The numbers and free strings of a call's arguments (inside lists and objects too)."""
    properties = _properties(call, tools)
    return [item for name, value in call.get("arguments", {}).items()
            if not _coded(properties.get(name, {}))
            for item in _leaves(value) if _is_value(item)]


def _properties(call: dict[str, Any], tools: ToolRegistry) -> dict[str, Any]:
    """The parameter schemas of the called tool (none for a tool that is not there)."""
    return tools.get(call["name"]).parameters.get("properties", {}) \
        if call.get("name") in tools else {}


def _coded(spec: dict[str, Any]) -> bool:
    """Whether a parameter takes enum codes (itself, or as the items of its list)."""
    return "enum" in spec or isinstance(spec.get("items"), dict) and "enum" in spec["items"]


def _leaves(value: Any) -> list[Any]:
    """The values inside lists and objects, or the value itself."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def _supported(name: str, value: Any, spec: dict[str, Any], request: str) -> bool:
    text = request.lower()
    if "default" in spec and value == spec["default"]:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _said_of(value, name, spec, text)
        return _spelled_out(value, text)
    if isinstance(value, bool):
        words = [w for w in name.lower().split("_") if len(w) >= 2]
        return any(_begins_word(word, text) for word in words)
    if isinstance(value, str) and "enum" not in spec:
        return _copied(value, text)
    if isinstance(value, str):
        return _names_code(value, text)
    if isinstance(value, int | float):
        return _spelled_out(value, text)
    if isinstance(value, list) and _coded(spec) and len(value) > 1 \
            and set(value) >= set(spec.get("items", spec).get("enum", [])):
        return any(_begins_word(str(code).lower(), text) for code in value)
    return True


_TOKEN = re.compile(r"-?\d+(?:\.\d+)?|[^\W_]+")


def _said_of(value: float, name: str, spec: dict[str, Any], text: str) -> bool:
    """Whether `text` gives the number `value` within three words of a word of what the
    parameter is (its name or description, first four letters alike): "to 2 decimal
    places" sets a precision's default; "two rectangles" does not, and the call means the
    same without it."""
    about = {word[:4] for word in _WORD.findall(f"{name.replace('_', ' ')} "
                                                f"{spec.get('description', '')}".lower())
             if len(word) >= 4}
    words = _TOKEN.findall(text)
    return any(
        (_number(word) if word[-1].isdigit() else _NUMBER_WORDS.get(word)) == value
        and any(len(near) >= 4 and near[:4] in about
                for near in words[max(0, at - 3):at + 4])
        for at, word in enumerate(words))


def _names_code(code: str, text: str) -> bool:
    """Whether `text` names the enum code: each of its parts begins a word ("express" in
    "express service", "step_free" in "step-free trams"). Optional codes the request never
    names are the model's own choice (a "temperate" climate for a monstera, "groceries" for
    recent transactions)."""
    return all(_begins_word(part, text) for part in _WORD.findall(code.lower()))


def _begins_word(start: str, text: str) -> bool:
    """Whether a word of `text` begins with `start` ("express" in "expressly", "sun" in
    "Sundays")."""
    return bool(re.search(rf"\b{re.escape(start)}", text))


def _as_spelled(value: str, request: str) -> str:
    """`value` as the request spells it, where the model changed only its case ("cairo"
    for "Cairo") or put marks around a name or a code ("/budget.xlsx" for "Copy
    budget.xlsx"): values are copied as given. Only whole words count: "EUR" is a code, not
    the start of "euros"; and only a name or a code standing on its own in the request, not
    inside a path ("budget.xlsx" in "/shared/budget.xlsx"), nor a plain word ("/home" stays
    for "my home folder")."""
    if value in request and re.search(_standalone(value), request):
        return value
    found = re.search(_whole(value), request, re.IGNORECASE)
    if found:
        return found.group(0)
    bare = value.strip(string.punctuation + " ")
    if bare and bare != value and not bare.isalpha() and re.search(_standalone(bare), request):
        return bare
    return value


def _whole(value: str) -> str:
    """A pattern for `value` standing on its own: not inside a longer word ("EUR" in
    "euros"), wherever its own edges are letters or not ("/a.pdf")."""
    return rf"(?<!\w){re.escape(value)}(?!\w)"


def _copied(value: str, text: str) -> bool:
    """Whether `value` is in `text` as written, or as a run of its words ("Le Guin" in "by
    Ursula K. Le Guin"): an optional note or reason the model words itself ("I need to book
    a vet appointment for Luna.") is not copied, though most of its words are in the text."""
    words = _WORD.findall(value.lower())
    found = _WORD.findall(text)
    return value.lower() in text or bool(words) and any(
        found[start:start + len(words)] == words for start in range(len(found)))


def _repeats(arguments: dict[str, Any], required: set[str], request: str) -> Iterator[str]:
    """The optional arguments that repeat a value (a text or a number) of other arguments
    more often than the request gives it: each value the request gives fills one parameter
    (not a ferry from Dover to Dover, an end date equal to the start date, "3 at most" as
    both the number of results and their syllables, or trains from Toronto Union to
    Toronto: a value inside another's is used again). Required arguments use a value first,
    then the optional ones in the order they were written."""
    text = request.lower()
    used: Counter = Counter()
    texts: list[str] = []  # the strings used so far, a value inside one is used again
    for name in sorted(arguments, key=lambda name: name not in required):
        value = arguments[name]
        values = [item for item in _leaves(value) if _is_value(item)]
        inside = Counter(_value_key(item) for item in values if isinstance(item, str)
                         for held in texts if held != item.lower()
                         and re.search(_whole(item.lower()), held))
        used.update(_value_key(item) for item in values)
        texts += [item.lower() for item in values if isinstance(item, str)]
        if name not in required and any(
                used[_value_key(item)] + inside[_value_key(item)] > _times_given(item, text)
                for item in values):
            yield name
        elif name not in required and isinstance(value, str) and _holds_another_value(
                name, value, arguments, text):
            yield name


def _holds_another_value(name: str, value: str, arguments: dict[str, Any], text: str
                         ) -> bool:
    """Whether the text `value` has inside it a value of another argument that the
    request gives only once: the request's own words copied into a note or a reason
    ("Coco ate 60 grams of wet food and book my rabbit Coco a vet appointment on
    2025-04-12" as the reason, beside the date 2025-04-12)."""
    inside = value.lower()
    return any(
        other != name and _is_value(held) and str(held).lower() != inside
        and re.search(_whole(str(held).lower()), inside)
        and _times_given(held, text) == 1
        for other, argument in arguments.items() for held in _leaves(argument))


def _value_key(value: str | int | float) -> str:
    """The same key for 3, 3.0 and "3"."""
    number = _number(value) if isinstance(value, str) else float(value)
    return value.lower() if number is None else str(number)


def _times_given(value: str | int | float, text: str) -> int:
    """How many times the request gives `value` (at least once: an argument kept so far is
    supported by the request)."""
    if isinstance(value, str):
        return max(1, text.count(value.lower()))
    return max(1, sum(1 for match in _NUMBER.findall(text)
                      if _number(match) == float(value)))


def _spelled_out(value: Any, text: str) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value in _numbers(text)
    if not isinstance(value, str):
        return False
    wanted = value.lower()
    if wanted in text:
        return True
    if _FORMULA.search(wanted):  # worked out from the text's numbers, not copied
        return bool(set(_DIGITS.findall(wanted)) & set(_DIGITS.findall(text)))
    if _PATH_MARK.search(wanted) and not _SPACE.search(wanted):
        return False  # a path is copied whole, never put together from the request's words
    words = [w for w in _WORD.findall(wanted) if len(w) >= 2]
    present = set(_WORD.findall(text))
    return bool(words) and sum(w in present for w in words) * 2 > len(words)


def _number(match: str) -> float | None:
    try:
        return float(match.replace(",", ""))
    except ValueError:
        return None


def _numbers(text: str) -> set[float]:
    found = {number for number in map(_number, _NUMBER.findall(text)) if number is not None}
    found.update(float(n) for word, n in _NUMBER_WORDS.items()
                 if re.search(rf"\b{word}\b", text))
    return found
