"""Read constraints from common English phrasings ("in under 50 words", "no commas", ...).

Deterministic, and far more reliable than a 135M model for the phrasings it knows: the DVR
divider uses it first. The reader works in three passes:
1. quoted strings become placeholders ⟦n⟧, so apostrophes and punctuation inside them never
   confuse the clause splitting ("don't use 'LET'S GO!'" has one quoted string);
2. whole-instruction forms are read first and removed: answer options, the request to
   repeat, the paragraph rule "N paragraphs ... the second starting with 'X'";
3. the rest is split into clauses (at . ; , and "and"), and each clause is matched against the
   patterns of each type, specific ones first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_UNITS = {"zero": 0, "no": 0, "one": 1, "a": 1, "an": 1, "single": 1, "two": 2, "three": 3,
          "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
          "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
          "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}
_TIMES = {"once": 1, "twice": 2, "thrice": 3}
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
             "last": -1}

_SMALL = "|".join(sorted((k for k in _UNITS if k not in ("no", "a", "an")), key=len,
                         reverse=True))
_TEN = "|".join(_TENS)
NUMBER = (rf"(?:\d[\d,]*|(?:(?:{_SMALL}|a) hundred(?:[- ](?:and )?(?:{_TEN}|{_SMALL})"
          rf"(?:-(?:{_SMALL}))?)?)|(?:{_TEN})(?:-(?:{_SMALL}))?|{_SMALL}|a|an|once|twice|"
          rf"thrice)")
Q = r"⟦(\d+)⟧"  # a quoted string, after masking

_AT_MOST = (r"at most|no more than|not more than|up to|a maximum of|maximum of|max|"
            r"no longer than|not longer than|within|not (?:to )?exceed(?:ing)?|limit(?:ed)? "
            r"(?:it |yourself |the \w+ )?to|keep it (?:to|at)|cap(?:ped)? (?:it )?at|"
            r"no more|a max of")
_BELOW = r"fewer than|less than|under|below|shorter than"
_AT_LEAST = (r"at least|no fewer than|no less than|not fewer than|not less than|a minimum of|"
             r"minimum of|min|no shorter than|not shorter than")
_ABOVE = r"more than|over|longer than|above"
_EXACTLY = r"exactly|precisely|just"
RELATION = rf"(?:{_AT_MOST}|{_BELOW}|{_AT_LEAST}|{_ABOVE}|{_EXACTLY})"
_AFTER_MOST = r"or (?:fewer|less|under|shorter)|max(?:imum)?|at most|at the most|tops"
_AFTER_LEAST = r"or (?:more|longer|above)|minimum|at least|at the least|plus|or so"
AFTER = rf"(?:{_AFTER_MOST}|{_AFTER_LEAST})"

LANGUAGE_NAMES = {"english": "en", "french": "fr", "german": "de", "spanish": "es",
                  "italian": "it", "portuguese": "pt", "dutch": "nl", "russian": "ru",
                  "chinese": "zh", "mandarin": "zh", "japanese": "ja", "korean": "ko",
                  "arabic": "ar", "hindi": "hi", "greek": "el"}
_QUOTE = re.compile(r"(?<![\w])([\"“‘'])(.+?)([\"”’'])(?![\w])")


def number(text: str) -> int | None:
    """'50' -> 50, 'fifty' -> 50, 'twenty-five' -> 25, 'a' -> 1, 'twice' -> 2."""
    text = text.lower().strip().replace(",", "")
    if text.isdigit():
        return int(text)
    if text in _TIMES:
        return _TIMES[text]
    total = 0
    for part in re.split(r"[\s-]+(?:and\s+)?", text):
        if part in _UNITS:
            total += _UNITS[part]
        elif part in _TENS:
            total += _TENS[part]
        elif part == "hundred":
            total = max(total, 1) * 100
        else:
            return None
    return total


def relation(before: str | None, after: str | None, value: int) -> tuple[str, int]:
    """('under', 50) -> ('at_most', 49): strict bounds become inclusive ones."""
    before = re.sub(r"\s+", " ", (before or "").lower()).strip()
    after = re.sub(r"\s+", " ", (after or "").lower()).strip()
    if re.fullmatch(_BELOW, before):
        return "at_most", value - 1
    if re.fullmatch(_ABOVE, before):
        return "at_least", value + 1
    if re.fullmatch(_AT_MOST, before) or re.fullmatch(_AFTER_MOST, after):
        return "at_most", value
    if re.fullmatch(_AT_LEAST, before) or re.fullmatch(_AFTER_LEAST, after):
        return "at_least", value
    return "exactly", value


class _Reader:
    """One instruction: its masked text, its quoted strings, and what was found so far."""

    def __init__(self, instruction: str):
        self.quotes: list[str] = []

        def mask(match: re.Match) -> str:
            self.quotes.append(match[2].strip())
            return f"⟦{len(self.quotes) - 1}⟧"

        self.text = _QUOTE.sub(mask, instruction)
        self.found: list[dict[str, Any]] = []

    def quote(self, placeholder_index: str) -> str:
        return self.quotes[int(placeholder_index)]

    def quoted_in(self, text: str) -> list[str]:
        return [self.quote(i) for i in re.findall(Q, text)]

    def add(self, constraint: dict[str, Any]) -> None:
        if constraint not in self.found:
            self.found.append(constraint)

    def remove(self, *matches: re.Match | None) -> None:
        """Blank whole-instruction forms out, so no clause reads them again."""
        spans = sorted(m.span() for m in matches if m is not None)
        merged: list[list[int]] = []
        for start, end in spans:  # one form may lie inside another
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        for start, end in reversed(merged):
            self.text = self.text[:start] + " . " + self.text[end:]


def _search(pattern: str, text: str) -> re.Match | None:
    return re.search(pattern, text, flags=re.IGNORECASE)


def _count(match: re.Match, name: str = "n") -> int | None:
    return number(match[name]) if match[name] else None


# Whole-instruction forms ---------------------------------------------------------------

def _options(reader: _Reader) -> None:
    match = _search(rf"(?:one of(?: the following| these)?(?: options| answers| choices)?|"
                    rf"choose from|pick from)\s*:?\s*({Q}(?:\s*,?\s*(?:or\s+)?{Q})+)",
                    reader.text)
    if match:
        reader.add({"type": "constrained_response", "options": reader.quoted_in(match[1])})
        reader.remove(match)


def _repeat(reader: _Reader) -> None:
    match = _search(r"repeat(?:ing)? (?:the|my|this|your) (?:request|question|prompt|"
                    r"instruction)[^.⟦\n]*", reader.text)
    if match is None:
        return
    quoted = _search(rf"^\W*(?:request\s*:\s*)?{Q}", reader.text[match.end():])
    labelled = _search(r"request\s*:\s*(.+)$", reader.text[match.end():])
    if quoted:
        request = reader.quote(quoted[1])
    elif labelled:  # "... Request: Explain tides."
        request = labelled[1]
        reader.text = reader.text[:match.end() + labelled.start()]
    else:  # the first sentence not about repeating; its own constraints still count
        sentences = re.split(r"(?<=[.!?])\s+", reader.text)
        request = next((s for s in sentences if "repeat" not in s.lower()), "")
    request = re.sub(Q, lambda m: reader.quote(m[1]), request).strip()
    reader.remove(match)
    if request:
        reader.add({"type": "repeat_request", "request": request})


def _nth_paragraph(reader: _Reader) -> None:
    ordinal = "|".join(_ORDINALS)
    first_word = (rf"(?:(?P<ord>{ordinal}|\d+(?:st|nd|rd|th))(?: paragraph)?|paragraph "
                  rf"(?P<num>\d+))[^.;⟦]{{0,40}}?(?:start|begin|open)\w*\s+with\s+"
                  rf"(?:the\s+)?(?:word\s+)?{Q}")
    match = _search(first_word, reader.text)
    total = _search(rf"(?:{RELATION}\s+)?(?P<n>{NUMBER})\s+paragraphs", reader.text)
    if match is None or total is None:
        return
    ordinal_text = (match["ord"] or match["num"]).lower()
    n = _ORDINALS.get(ordinal_text) or int(re.sub(r"\D", "", ordinal_text))
    paragraphs = _count(total)
    if paragraphs:
        reader.add({"type": "nth_paragraph_first_word", "paragraphs": paragraphs,
                    "n": paragraphs if n == -1 else n,
                    "word": reader.quote(match[match.lastindex]).strip(" .,!?")})
        reader.remove(match, total)


def _two_responses(reader: _Reader) -> None:
    # up to two words before the noun: "two different one-line slogans"
    match = _search(r"(?:two|2) (?:different |distinct |separate |alternative )?"
                    r"(?:\w+[- ]){0,2}(?:responses|answers|versions|replies|\w+s)\b[^.]*?separated"
                    r" by[^.]*?(?P<sep>\*{3,}|-{3,}|={3,}|#{3,}|~{3,})|give two (?:different )?"
                    r"(?:responses|answers)", reader.text)
    if match:
        reader.add({"type": "two_responses", "separator": match["sep"] or "******"})
        reader.remove(match)


def _sections(reader: _Reader) -> None:
    match = _search(rf"(?P<n>{NUMBER})\s+(?:numbered\s+|separate\s+|distinct\s+)?(?:sections|"
                    rf"parts)\b[^.]*?\b(?:with|using|as|labell?ed|marked|called|titled)\s+"
                    rf"(?:{Q}|(?P<marker>[A-Za-z]+)\s+(?:X|N|1|#|\d))", reader.text)
    if match is None or not (value := _count(match)):
        return
    marker = match["marker"] or re.sub(r"\s*\S*\d+$|\s+[XN#]$", "", reader.quote(match[2]))
    reader.add({"type": "numbered_sections", "marker": marker, "value": value})
    reader.remove(match)


# Clause patterns -------------------------------------------------------------------------

def _counted(unit: str, kind: str) -> Callable[[_Reader, str], bool]:
    pattern = (rf"(?:(?P<before>{RELATION})\s+(?:of\s+)?)?(?P<n>{NUMBER})\s+(?:\w+\s+)?"
               rf"(?:{unit})\b(?:\s+(?:long\s+|in total\s+|total\s+)?(?P<after>{AFTER}))?|"
               rf"(?:{unit})\s*(?:count\s*)?(?:of\s+|:\s*)?(?P<before2>{RELATION})\s+(?P<n2>"
               rf"{NUMBER})|(?P<one>a single|one|only one) (?:{unit})\b")

    def read(reader: _Reader, clause: str) -> bool:
        match = _search(pattern, clause)
        if match is None:
            return False
        if match["one"]:
            rel, value = "exactly", 1
        else:
            value = _count(match) if match["n"] else _count(match, "n2")
            if value is None:
                return False
            rel, value = relation(match["before"] or match["before2"], match["after"], value)
        reader.add({"type": kind, "relation": rel, "value": value})
        return True

    return read


_CAPS = (r"(?:in )?(?:all[- ]caps|all[- ]capitals?(?: letters)?|(?:fully |entirely |completely )"
         r"?(?:capitali[sz]ed|in capital letters|in capitals|uppercase|upper-case|in caps))")


def _capital_words(reader: _Reader, clause: str) -> bool:
    match = (_search(rf"(?:(?P<before>{RELATION})\s+)?(?P<n>{NUMBER})\s+(?:\w+\s+)?"
                     rf"(?:words?|terms?)\s+(?:\w+\s+)?{_CAPS}(?:\s+(?P<after>{AFTER}))?", clause)
             or _search(rf"(?:(?P<before>{RELATION})\s+)?(?P<n>{NUMBER})\s+(?:{_CAPS}|"
                        rf"all-caps|caps)\s+words?(?:\s+(?P<after>{AFTER}))?", clause)
             or _search(rf"(?:words?) {_CAPS}[^⟦]{{0,30}}?(?:(?P<before>{RELATION})\s+)?"
                        rf"(?P<n>{NUMBER})(?: times?)?(?:\s+(?P<after>{AFTER}))?", clause))
    if match is None or (value := _count(match)) is None:
        return False
    rel, value = relation(match["before"], match["after"], value)
    reader.add({"type": "capital_word_frequency", "relation": rel, "value": value})
    return True


def _frequency(reader: _Reader, clause: str) -> bool:
    times = (rf"(?:(?P<before>{RELATION})\s+)?(?P<n>{NUMBER})(?:\s+times?)?"
             rf"(?:\s+(?P<after>{AFTER}))?")
    if not _search(r"\btimes?\b|\bonce\b|\btwice\b|\bthrice\b", clause):
        return False
    letter = _search(rf"letter\s+(?:{Q}|(?P<bare>[a-z])\b)[^⟦]*?{times}", clause)
    if letter and (value := _count(letter)) is not None:
        rel, value = relation(letter["before"], letter["after"], value)
        char = reader.quote(letter[1]) if letter[1] else letter["bare"]
        reader.add({"type": "letter_frequency", "letter": char.lower(), "relation": rel,
                    "value": value})
        return True
    keyword = _search(rf"{Q}[^⟦]*?{times}", clause)
    if keyword and (value := _count(keyword)) is not None:
        rel, value = relation(keyword["before"], keyword["after"], value)
        reader.add({"type": "keyword_frequency", "keyword": reader.quote(keyword[1]),
                    "relation": rel, "value": value})
        return True
    return False


def _bullets(reader: _Reader, clause: str) -> bool:
    match = (_search(rf"(?P<n>{NUMBER})\s+(?:markdown\s+)?(?:bullet(?:ed)?(?:[- ]points?)?|"
                     rf"bullets|bulleted (?:items|points|tips|lines))\b", clause)
             or _search(rf"bullet(?:ed)? (?:points?|list|form)\b.*?(?:exactly |just )?"
                        rf"(?P<n>{NUMBER})\s+(?:of them|items|points|entries|bullets|tips)?",
                        clause)
             or _search(rf"(?:exactly|just) (?P<n>{NUMBER})\s+(?:\w+\s+){{0,2}}(?:as |in )"
                        rf"(?:markdown )?bullet", clause))
    if match is None or (value := _count(match)) is None:
        return False
    reader.add({"type": "bullet_count", "value": value})
    return True


def _highlights(reader: _Reader, clause: str) -> bool:
    match = (_search(rf"(?:highlight|emphasi[sz]|bold)\w*\b.*?(?:(?P<before>{RELATION})\s+)?"
                     rf"(?P<n>{NUMBER})\b", clause)
             or _search(rf"(?:(?P<before>{RELATION})\s+)?(?P<n>{NUMBER})\s+(?:\w+\s+)?"
                        rf"(?:highlighted|emphasi[sz]ed|bold(?:ed)?)", clause))
    if match is None or (value := _count(match)) is None:
        return False
    reader.add({"type": "highlighted_sections", "value": value})
    return True


def _placeholders(reader: _Reader, clause: str) -> bool:
    match = (_search(rf"(?P<n>{NUMBER})\s+(?:\w+\s+)?placeholders?", clause)
             or _search(rf"placeholders?\b.*?(?P<n>{NUMBER})", clause))
    if match is None or (value := _count(match)) is None:
        return False
    reader.add({"type": "placeholders", "value": value})
    return True


_THE_RESPONSE = (r"(?:(?:it|the (?:whole |entire )?(?:thing|response|answer|reply|text)|your "
                 r"(?:\w+\s+)?(?:response|answer|reply|message|note|text|email|post|poem|"
                 r"story|output|letter|caption|speech|toast|review))\s+)?")


def _start_end(reader: _Reader, clause: str) -> bool:
    phrase = rf"(?:with|by saying|by writing)\s+(?:the\s+)?(?:exact\s+)?(?:phrase|words?|" \
             rf"sentence|line|question)?\s*:?\s*{Q}"
    start = _search(rf"\b(?:start|begin|open)\w*\s+{_THE_RESPONSE}{phrase}", clause)
    if start:
        reader.add({"type": "starts_with", "phrase": reader.quote(start[1])})
        return True
    end = _search(rf"\b(?:end|finish|conclude|close|sign off|wrap up)\w*\s+(?:off\s+)?"
                  rf"{_THE_RESPONSE}{phrase}", clause)
    if end:
        reader.add({"type": "ends_with", "phrase": reader.quote(end[1])})
        return True
    return False


_FORBID = (r"(?:do not|don't|dont|never|must not|mustn't|should not|shouldn't|without|can't|"
           r"cannot|not allowed to)\s+(?:\w+\s+){0,2}?(?:use|using|say|saying|mention|"
           r"mentioning|include|including|write|writing)|\bavoid\w*|forbidden|banned|"
           r"exclud\w*|leave out|steer clear of|no mention of|keep out")
_INCLUDE = (r"includ\w*|\buse\b|\busing\b|mention\w*|contain\w*|featur\w*|incorporat\w*|"
            r"work in|appear\w*|\bhave\b|keyword|\bwords?\b|somewhere|be sure|make sure|"
            r"\bin there\b")


def _keywords(reader: _Reader, clause: str) -> bool:
    words = reader.quoted_in(clause)
    if not words:
        return False
    if _search(_FORBID, clause):
        reader.add({"type": "forbidden_words", "words": words})
        return True
    if _search(_INCLUDE, clause):
        reader.add({"type": "include_keywords", "keywords": words})
        return True
    return False


def _flag(kind: str, pattern: str) -> Callable[[_Reader, str], bool]:
    def read(reader: _Reader, clause: str) -> bool:
        if _search(pattern, clause) is None:
            return False
        reader.add({"type": kind})
        return True

    return read


_LOWERCASE = (r"lower[- ]?case|no (?:capital|uppercase|upper-case) letters|without (?:any )?"
              r"(?:capital|uppercase) letters|not? (?:use )?(?:any )?capital letters")
_UPPERCASE = (r"(?:only|all|entirely|completely|every\w*)\s+(?:in\s+)?(?:upper[- ]?case|caps|"
              r"capital letters|capitals)|(?:upper[- ]?case|capital letters|all[- ]caps|"
              r"capitals)\s+(?:only|throughout)|in all[- ]caps|(?:use|using|write|written)\s+"
              r"(?:in\s+|with\s+)?(?:only\s+)?(?:upper[- ]?case|capital letters|all[- ]caps)")
_NO_COMMAS = (r"(?:no|without|zero|avoid|not? (?:use )?any|don't use|do not use|refrain from "
              r"using|never use|skip|free of)\s+(?:\w+\s+){0,2}commas?\b|comma[- ]free|"
              r"without (?:using )?a single comma")


def _postscript(reader: _Reader, clause: str) -> bool:
    # The marker wherever the clause names it: "a postscript beginning with P.P.S".
    named = _search(r"P\.\s?P\.\s?S\.?(?![\w])|P\.\s?S\.?(?![\w])", clause)
    if named is None and _search(r"post-?script", clause) is None:
        return False
    marker = re.sub(r"\s", "", named[0]) if named else "P.S."
    quoted = reader.quoted_in(clause)
    if not named and quoted and quoted[0].upper().startswith("P"):
        marker = quoted[0]
    reader.add({"type": "postscript", "marker": marker})
    return True


def _language(reader: _Reader, clause: str) -> bool:
    names = "|".join(LANGUAGE_NAMES)
    match = _search(rf"\b(?:in|into)\s+(?P<name>{names})\b(?!\s+(?:words?|terms?|food|"
                    rf"style|history))", clause)
    if match is None:
        return False
    reader.add({"type": "response_language", "language": LANGUAGE_NAMES[match["name"].lower()]})
    return True


# Most specific first: the first pattern that reads a clause claims it. Case and comma rules
# are read in every clause besides ("a note in all lowercase with a P.S." holds two).
_CLAUSE_READERS: list[Callable[[_Reader, str], bool]] = [
    _frequency, _bullets, _highlights, _placeholders, _postscript, _start_end,
    _counted(r"words?", "word_count"), _counted(r"sentences?", "sentence_count"),
    _counted(r"paragraphs?", "paragraph_count"),
    _counted(r"characters?|chars|letters", "character_count"),
    _flag("title", r"<<[^>]*>>|double angular brackets|double angle brackets|\btitle\b"),
    _flag("quotation", r"(?:wrap|enclose|surround|put|inside|in)\w*[^⟦]{0,40}?(?:double )?"
                       r"(?:quotation marks|quotes)"),
    _flag("json_format", r"\bjson\b"),
    _language, _keywords,
]
_ALSO: list[Callable[[_Reader, str], bool]] = [
    _flag("lowercase", _LOWERCASE), _flag("uppercase", _UPPERCASE),
    _flag("no_commas", _NO_COMMAS)]


def _clauses(text: str) -> list[str]:
    parts = re.split(r"(?<=[.;!?:])\s+|[;\n]|,\s+|\s+-+\s+|\s+—\s+|\s+\band\b\s+|\s+\bthen\b\s+"
                     r"|\(|\)", text)
    clauses: list[str] = []
    for part in (re.sub(r"^(?:and|then|also|but)\s+", "", p.strip()) for p in parts):
        if not part:
            continue
        if clauses and re.fullmatch(rf"(?:or\s+|and\s+)?{Q}(?:\s*[.,]?)?", part):
            clauses[-1] += f", {part}"  # "include 'a', 'b' and 'c'": one list
        else:
            clauses.append(part)
    return clauses


def read_constraints(instruction: str) -> list[dict[str, Any]]:
    """The constraints the instruction states, as dicts, in the order they appear."""
    reader = _Reader(instruction)
    for read_whole in (_options, _repeat, _nth_paragraph, _two_responses, _sections):
        read_whole(reader)
    for clause in _clauses(reader.text):
        if _capital_words(reader, clause):  # before "all caps" can be read as uppercase
            continue
        for read in _ALSO:
            read(reader, clause)
        for read in _CLAUSE_READERS:
            if read(reader, clause):
                break
    return reader.found
