"""Format constraints: markdown structure (bullets, numbered sections, highlights), markers
(placeholders, title, postscript, separators), how the response starts and ends, and whole-
response shapes (quotation, JSON, no commas, one of given options)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, field_validator

from chorus.checks import patterns
from chorus.checks.base import (
    BaseConstraint,
    count_problem,
    excerpt,
    listing,
    normalize,
    phrase_pattern,
    quantity,
    quoted,
)


def _one_line(text: str) -> str:
    if len(text.splitlines()) > 1:
        raise ValueError("must fit on one line, without line breaks")
    return text


Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
# Markers and separators are matched line by line, so one may not contain a line break.
Marker = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1),
                   AfterValidator(_one_line)]

_BULLET = re.compile(r"^[ \t]*[*-][ \t]+(?=\S)", re.MULTILINE)
_RULE = re.compile(r"^[ \t]*(?:[*-][ \t]*){3,}$", re.MULTILINE)  # "***", "- - -": no bullet
_HIGHLIGHT = re.compile(r"\*\*(?=\S)[^\n]*?(?<=\S)\*\*|\*(?=[^\s*])[^*\n]*?(?<=[^\s*])\*")
_PLACEHOLDER = re.compile(r"\[[^\[\]\n]*[^\s\[\]][^\[\]\n]*\](?!\()")  # not a [link](url)
_TITLE = re.compile(r"<<[^<>\n]*[^\s<>][^<>\n]*>>")
_FENCE = re.compile(r"^```(?:json)?[ \t]*\n(?P<body>.*?)\n?```$", re.DOTALL | re.IGNORECASE)
COMMAS = ",，、﹐،"  # ASCII, fullwidth, ideographic, small, Arabic


def _joined(left: str, right: str) -> bool:
    """Whether two adjacent characters belong to one word."""
    return bool(re.match(r"\w\w", left + right))


def _bullet_lines(text: str) -> list[str]:
    return [line for line in text.splitlines()
            if _BULLET.match(line) and not _RULE.match(line)]


def _end_of_word(alphabet: patterns.Alphabet, phrase: str) -> str:
    """What may follow `phrase` so that its last word does not run on ("Dear John" is not
    the start of "Dear Johnny", nor "no" of "no'w"): anything after a character that is
    neither a word character nor ' ’ -; after a phrase ending in punctuation, anything."""
    if not patterns.is_word(phrase[-1]):
        return alphabet.text()
    return f"(?:{alphabet.word_end}{alphabet.text()})?"


def _start_of_word(alphabet: patterns.Alphabet, phrase: str) -> str:
    if not patterns.is_word(phrase[0]):
        return alphabet.text()
    return f"(?:{alphabet.text()}{alphabet.nonword})?"


class BulletCount(BaseConstraint):
    type: Literal["bullet_count"] = "bullet_count"
    value: int = Field(ge=0)

    def problem(self, text: str) -> str:
        return count_problem(len(_bullet_lines(text)), "exactly", self.value, "bullet point",
                             cut="remove", note="a bullet point is a line starting with '* '")

    def needs_content(self) -> bool:
        return self.value > 0

    def closings(self) -> list[str]:
        # With the space: once the count is reached the grammar refuses "* " at a line's
        # start, so the closing is passed over (a bare "\n*" was still accepted there, and
        # Qwen2.5 0.5B went on "*PS." where the P.S.'s own closing was due).
        return ["\n* "] if self.value else []

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        line = alphabet.line_char
        # A bullet's text starts with neither '*' nor '-', so it is never a rule ("* * *").
        text_start = alphabet.where("nonspace nonbullet",
                                    lambda c: not c.isspace() and c not in "*-")
        bullet = f"[ \\t]*[*\\-][ \\t]+{text_start}{line}*"
        plain_start = alphabet.where("line not bullet", lambda c: c not in " \t*-\n")
        solid = alphabet.nonspace
        # A marker opens another line only directly before its text ("**Note:**", "---"):
        # never before spaces, which Qwen2.5 0.5B wrote to its budget's end after "-".
        other = f"[ \\t]*(?:{plain_start}{line}*|[*\\-]{solid}{line}*)?"
        return [patterns.token(patterns.tally(other, bullet, self.value))]

    def describe(self) -> str:
        if self.value == 0:
            return "Do not use any markdown bullet points."
        return (f"Use exactly {quantity(self.value, 'markdown bullet point')}, each on its own "
                "line starting with '* '.")


class NumberedSections(BaseConstraint):
    type: Literal["numbered_sections"] = "numbered_sections"
    marker: Marker = "SECTION"
    value: int = Field(ge=0)

    def numbers(self, text: str) -> list[int]:
        """The numbers of the section lines, in order ("## SECTION 2" and "**SECTION 2**"
        count too; the marker is matched case-insensitively)."""
        line = re.compile(rf"^[ \t]*(?:#{{1,6}}[ \t]*)?\**[ \t]*{re.escape(self.marker)}"
                          r"[ \t]+(\d+)\b", re.MULTILINE | re.IGNORECASE)
        return [int(number) for number in line.findall(text)]

    def problem(self, text: str) -> str:
        found = self.numbers(text)
        expected = list(range(1, self.value + 1))
        if found == expected:
            return ""
        if len(found) == self.value:
            shown = ", ".join(str(number) for number in found)
            return (f"The sections are numbered {shown}; number them {self.marker} 1 to "
                    f"{self.marker} {self.value}, in order.")
        head = f"{quantity(len(found), 'section')} marked {quoted(self.marker + ' N')}"
        missing = [f"{self.marker} {number}" for number in expected if number not in found]
        notes = [f"missing {listing(missing)}"] if found and missing else []
        notes.append(f"each section starts with a line such as {quoted(self.marker + ' 1')}")
        return count_problem(len(found), "exactly", self.value, "section", head=head,
                             cut="remove", note="; ".join(notes))

    def needs_content(self) -> bool:
        return self.value > 0

    def closings(self) -> list[str]:
        # One per section, numbered: the grammar accepts only the next section's, and none
        # once the last is written, so the closer passes on to another constraint's closing.
        # (A bare "\n\nSECTION " was also the start of a line such as "SECTION  Conclusion",
        # and Qwen2.5 0.5B was led into it again and again where a bullet or a P.S. was due.)
        return [f"\n\n{self.marker} {number}" for number in range(1, self.value + 1)]

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        line = alphabet.line_char
        after_number = alphabet.where("line nonword",
                                      lambda c: not patterns.is_word(c) and c != "\n")
        marker = patterns.literal(self.marker)

        def header(number: int) -> str:
            return (f"[ \\t]*(?:#{{1,6}}[ \\t]*)?\\**[ \\t]*{marker}[ \\t]+{number}"
                    f"(?:{after_number}{line}*)?")

        other = self._other_line(alphabet)
        if not self.value:
            return [patterns.token(patterns.tally(other, "", 0))]
        sections = "\\n".join(f"{header(number)}(?:\\n{other})*"
                                for number in range(1, self.value + 1))
        return [patterns.token(f"(?:{other}\\n)*{sections}")]

    def _other_line(self, alphabet: patterns.Alphabet) -> str:
        """A line that is no section line: after its leading spaces, '#' and '*' it departs
        from the marker (in any case) before a number can follow it. Stricter than the
        checker ("SECTION 1a" is refused too), and regular without a complement."""
        line = alphabet.line_char
        no_blank = alphabet.where("line not blank", lambda c: c not in " \t\n")
        no_number = alphabet.where("line not blank digit",
                                   lambda c: c not in " \t\n" and not c.isdigit())
        rest = f"(?:|{no_blank}{line}*|[ \\t]+(?:|{no_number}{line}*))"
        for index in reversed(range(len(self.marker))):
            char = self.marker[index]
            matches = re.compile(re.escape(char), re.IGNORECASE).fullmatch
            skipped = " \t#*\n" if index == 0 else "\n"
            differs = alphabet.where(f"line differs from {char!r} after {skipped!r}",
                                     lambda c, m=matches, s=skipped: c not in s and not m(c))
            rest = f"(?:|{differs}{line}*|{alphabet.ignorecase(char)}{rest})"
        return f"[ \\t#*]*{rest}"

    def describe(self) -> str:
        if self.value == 0:
            return f"Do not divide the response into sections marked {quoted(self.marker)}."
        if self.value == 1:
            return f"Write exactly 1 section, starting with the line {quoted(self.marker + ' 1')}."
        return (f"Divide the response into exactly {self.value} sections, each starting with a "
                f"line {quoted(self.marker + ' 1')}, {quoted(self.marker + ' 2')} and so on, "
                "in order.")


class HighlightedSections(BaseConstraint):
    type: Literal["highlighted_sections"] = "highlighted_sections"
    value: int = Field(ge=0)

    def problem(self, text: str) -> str:
        without_bullets = _BULLET.sub("", _RULE.sub("", text))
        found = len(_HIGHLIGHT.findall(without_bullets))
        return count_problem(found, "at_least", self.value, "highlighted section",
                             note="mark each with asterisks, e.g. *highlighted section*")

    def needs_content(self) -> bool:
        return self.value > 0

    def closings(self) -> list[str]:
        # A bold lead-in on a line of its own ("**In short**: ..."), where the model would
        # end with too few highlights.
        return ["\n\n**"] if self.value else []

    def closings_stay_open(self) -> bool:
        return True

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        # '*' appears only in highlights, so the checker pairs them as the grammar does.
        # '- ' bullets stay possible; '* ' bullets are not.
        inner = alphabet.where("line nonstar", lambda c: c not in "*\n")
        edge = alphabet.where("nonspace nonstar", lambda c: not c.isspace() and c != "*")
        content = f"{edge}(?:{inner}*{edge})?"
        highlight = f"(?:\\*{content}\\*|\\*\\*{content}\\*\\*)"
        plain = alphabet.but("*")
        return [patterns.token(f"{patterns.counted(f'{plain}*{highlight}', 'at_least', self.value)}"
                               f"{plain}*")]

    def describe(self) -> str:
        return (f"Highlight at least {quantity(self.value, 'section')} with markdown, "
                "e.g. *highlighted section*.")


class Placeholders(BaseConstraint):
    type: Literal["placeholders"] = "placeholders"
    value: int = Field(ge=0)

    def problem(self, text: str) -> str:
        found = len(_PLACEHOLDER.findall(text))
        return count_problem(found, "at_least", self.value, "placeholder",
                             note="in square brackets, such as [address]")

    def needs_content(self) -> bool:
        return self.value > 0

    def closings(self) -> list[str]:
        # A line opening with a placeholder, as a letter's "[Your Name]".
        return ["\n["] if self.value else []

    def closings_stay_open(self) -> bool:
        return True

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        # Brackets appear only around placeholders, and none is followed by '(' (a link).
        inner = alphabet.where("line nonbracket", lambda c: c not in "[]\n")
        solid = alphabet.where("nonspace nonbracket", lambda c: not c.isspace() and c not in "[]")
        placeholder = f"\\[{inner}*{solid}{inner}*\\]"
        plain = alphabet.but("[]")
        after = alphabet.but("[](")
        item = f"{placeholder}(?:{after}{plain}*)?"
        return [patterns.token(f"{plain}*{patterns.counted(item, 'at_least', self.value)}")]

    def describe(self) -> str:
        return (f"Include at least {quantity(self.value, 'placeholder')} in square brackets, "
                "such as [address].")


class Title(BaseConstraint):
    type: Literal["title"] = "title"

    def problem(self, text: str) -> str:
        if _TITLE.search(text):
            return ""
        return ("No title found - add a title wrapped in double angular brackets, such as "
                "<<My Title>>.")

    def describe(self) -> str:
        return "Include a title wrapped in double angular brackets, such as <<poem of joy>>."

    def closings(self) -> list[str]:
        # Where another constraint opens the response ("Definitely not."), the title goes
        # elsewhere: a heading of its own where the model would end without one.
        return ["\n\n<<"]

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        inner = alphabet.where("line nonangle", lambda c: c not in "<>\n")
        solid = alphabet.where("nonspace nonangle", lambda c: not c.isspace() and c not in "<>")
        title = f"<<{inner}*{solid}{inner}*>>"
        # One title and no '<' beside it, so that the closing is refused once it is written.
        # First choice: the title opens the response, as titles do; else anywhere.
        rest = f"{alphabet.but('<')}*"
        return [patterns.token(f"{alphabet.space}*{title}{rest}"),
                patterns.token(f"{rest}{title}{rest}")]


class StartsWith(BaseConstraint):
    type: Literal["starts_with"] = "starts_with"
    phrase: Phrase

    def problem(self, text: str) -> str:
        stripped = text.strip()
        folded, phrase = stripped.casefold(), self.phrase.casefold()
        # "Dear John" is not the start of "Dear Johnny": a word may not run on past the phrase.
        if folded.startswith(phrase) and not _joined(phrase[-1:], folded[len(phrase):][:1]):
            return ""
        if not stripped:
            return f"The response is empty - start it with {quoted(self.phrase)}."
        start = excerpt(stripped, len(self.phrase) + 10)
        return (f"The response starts with {quoted(start)} - it must start with exactly "
                f"{quoted(self.phrase)}.")

    def describe(self) -> str:
        return f"Start your response with the exact phrase {quoted(self.phrase)}."

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        return [patterns.token(f"{alphabet.space}*{patterns.literal(self.phrase)}"
                               f"{_end_of_word(alphabet, self.phrase)}")]


class EndsWith(BaseConstraint):
    type: Literal["ends_with"] = "ends_with"
    phrase: Phrase

    def problem(self, text: str) -> str:
        stripped = text.strip()
        folded, phrase = stripped.casefold(), self.phrase.casefold()
        start = len(folded) - len(phrase)
        if folded.endswith(phrase) and not _joined(folded[start - 1:start] if start else "",
                                                   phrase[:1]):
            return ""
        if not stripped:
            return f"The response is empty - end it with {quoted(self.phrase)}."
        flat = " ".join(stripped.split())
        end = flat[-(len(self.phrase) + 10):]
        return (f"The response ends with {quoted(('…' if end != flat else '') + end)} - it must "
                f"end with exactly {quoted(self.phrase)}, with nothing after it.")

    def describe(self) -> str:
        return (f"End your response with the exact phrase {quoted(self.phrase)}, with no other "
                "words after it.")

    def needs_content(self) -> bool:
        return True

    def closings(self) -> list[str]:
        return [f"\n\n{self.phrase}", f" {self.phrase}"]

    def endings(self) -> list[str]:
        return [self.phrase]

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        return [patterns.token(f"{_start_of_word(alphabet, self.phrase)}"
                               f"{patterns.literal(self.phrase)}{alphabet.space}*")]


class Quotation(BaseConstraint):
    type: Literal["quotation"] = "quotation"

    def problem(self, text: str) -> str:
        stripped = text.strip()
        missing = [side for side, ok in (("start", stripped.startswith('"')),
                                         ("end", stripped.endswith('"') and len(stripped) > 1))
                   if not ok]
        if not missing:
            return ""
        where = " and ".join(missing)
        return (f"The response does not {where} with a double quote - wrap the whole response "
                'in double quotes, like "...".')

    def describe(self) -> str:
        return 'Wrap your entire response in double quotation marks, like "...".'

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        space = alphabet.space
        return [patterns.token(f'{space}*"{alphabet.text()}"{space}*')]


class NoCommas(BaseConstraint):
    type: Literal["no_commas"] = "no_commas"

    def problem(self, text: str) -> str:
        count = sum(text.count(comma) for comma in COMMAS)
        if not count:
            return ""
        return (f"{quantity(count, 'comma')} found - remove every comma; rephrase or use other "
                "punctuation instead.")

    def describe(self) -> str:
        return "Do not use any commas in your response."

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        return [patterns.token(f"{alphabet.but(COMMAS)}*")]


class JsonFormat(BaseConstraint):
    type: Literal["json_format"] = "json_format"

    def problem(self, text: str) -> str:
        stripped = text.strip()
        fenced = _FENCE.match(stripped)
        body = fenced["body"] if fenced else stripped
        try:
            json.loads(body)
        except json.JSONDecodeError as error:
            return (f"The response is not valid JSON ({error.msg} at line {error.lineno}, "
                    f"column {error.colno}) - output only the JSON, optionally inside a "
                    "```json fence, with no text before or after it.")
        return ""

    def describe(self) -> str:
        return ("Format your entire output as JSON, with no text before or after it "
                "(a ```json fence is allowed).")

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        # Stricter than the check, which also takes a fence or a lone value: an object or
        # an array with something in it, nested a few levels at most (a regular
        # expression cannot count brackets), shallower where the deeper one cannot join.
        return [patterns.token(json_text(depth)) for depth in JSON_DEPTHS]


JSON_DEPTHS = (4, 3, 2)  # containers inside each other, the preferred first
_JSON_SPACE = "[ \\t\\n]{0,24}"  # enough to indent four levels; never a run to loop in
_JSON_STRING = '"(?:[^"\\\\\\x00-\\x1F]|\\\\(?:["\\\\/bfnrt]|u[0-9a-fA-F]{4}))*"'
_JSON_SCALAR = (f"(?:{_JSON_STRING}|-?(?:0|[1-9][0-9]{{0,15}})(?:\\.[0-9]{{1,15}})?"
                "(?:[eE][+-]?[0-9]{1,3})?|true|false|null)")


def json_text(depth: int) -> str:
    """A regex of JSON texts whose top value is an object or an array that holds
    something, with containers nested at most `depth` deep."""
    space = _JSON_SPACE

    def items(item: str) -> str:  # one or more, comma-separated
        return f"{space}{item}{space}(?:,{space}{item}{space})*"

    def containers(value: str, *, filled: bool = False) -> str:
        members, elements = items(f"{_JSON_STRING}{space}:{space}{value}"), items(value)
        empty = "" if filled else "?"
        return (f"\\{{(?:{members}){empty}{space}\\}}|"
                f"\\[(?:{elements}){empty}{space}\\]")

    value = _JSON_SCALAR
    for _ in range(depth - 1):
        value = f"(?:{_JSON_SCALAR}|{containers(value)})"
    return f"{space}(?:{containers(value, filled=True)}){space}"


class Postscript(BaseConstraint):
    type: Literal["postscript"] = "postscript"
    marker: Marker = "P.S."

    def problem(self, text: str) -> str:
        # The marker may be bold or italic ("**P.S.** ..."); the note must be on its line.
        line = re.compile(rf"^[ \t]*[*_]{{0,2}}{re.escape(self.marker)}[*_]{{0,2}}(?P<note>.*)$",
                          re.MULTILINE | re.IGNORECASE)
        found = [match["note"] for match in line.finditer(text)]
        if any(re.search(r"\w", note) for note in found):
            return ""
        if found:
            return (f"The {quoted(self.marker)} line has no text after the marker - write the "
                    f"postscript on the same line, after {quoted(self.marker)}.")
        return (f"No postscript found - end with a line starting with {quoted(self.marker)} "
                "followed by a short note.")

    def needs_content(self) -> bool:
        return True

    def closings(self) -> list[str]:
        return [f"\n\n{self.marker}"]

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        line, text = alphabet.line_char, alphabet.text()
        marker = patterns.literal(self.marker)
        note = f"[ \\t]*{marker}[ \\t]+{line}*{alphabet.word}{line}*"
        # No line of the marker alone: after the closing "P.S." the note follows on its line
        # (Qwen2.5 0.5B broke the line and wrote "P.S." again).
        bare = patterns.complement(f"(?:{text}\\n)?[ \\t]*{marker}[ \\t]*(?:\\n{text})?")
        # First choice: the postscript ends the response, as postscripts do; else anywhere.
        at_end = patterns.token(f"(?:{text}\\n)?{note}{alphabet.space}*")
        anywhere = patterns.token(f"(?:{text}\\n)?{note}(?:\\n{text})?")
        return [f"{at_end} & {bare}", f"{anywhere} & {bare}"]

    def describe(self) -> str:
        return (f"At the end of your response, add a postscript: a line starting with "
                f"{quoted(self.marker)} followed by a short note.")


class TwoResponses(BaseConstraint):
    type: Literal["two_responses"] = "two_responses"
    separator: Marker = "******"

    def problem(self, text: str) -> str:
        lines = text.splitlines()
        cuts = [i for i, line in enumerate(lines) if line.strip() == self.separator]
        fix = (f"write two different responses separated by a line containing only "
               f"{quoted(self.separator)}")
        if len(cuts) != 1:
            return (f"{quantity(len(cuts), 'separator line')} {quoted(self.separator)} found; "
                    f"exactly 1 is required - {fix}.")
        first = "\n".join(lines[:cuts[0]]).strip()
        second = "\n".join(lines[cuts[0] + 1:]).strip()
        empty = [name for name, part in (("first", first), ("second", second)) if not part]
        if empty:
            return f"The {' and '.join(empty)} response is empty - {fix}."
        if normalize(first) == normalize(second):
            return "The two responses are identical - make them different from each other."
        return ""

    def needs_content(self) -> bool:
        return True

    def closings(self) -> list[str]:
        return [f"\n{self.separator}\n"]

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        # The separator line once, a non-blank response on each side. That the two differ
        # is left to the checker: no regular language says it.
        divider = f"{alphabet.line_space}*{patterns.literal(self.separator)}{alphabet.line_space}*"
        return [option for option in (self._runs_grammar(alphabet, divider),
                                      self._general_grammar(alphabet, divider)) if option]

    def _runs_grammar(self, alphabet: patterns.Alphabet, divider: str) -> str | None:
        """Where the separator is one character repeated ("******", "---"): responses whose
        runs of it are shorter, so that the separator line can only be the one between them.
        One plain regex: the general form's complement, intersected with a word count and
        the casing, passes the check over bytes, but building its matcher over Qwen's 152k
        tokens ran out of lexer fuel after 20 s, and the answer lost its grammar."""
        if len(set(self.separator)) != 1:
            return None
        char = self.separator[0]
        mark, shorter = patterns.literal(char), len(self.separator) - 1
        other = alphabet.but(char)
        solid = alphabet.where(f"nonspace but {char!r}", lambda c: not c.isspace() and c != char)
        if not shorter:  # a one-character separator: the responses never write it
            part = f"{alphabet.space}*{solid}{other}*"
        else:
            runs = f"{mark}{{1,{shorter}}}"
            rest = f"(?:{other}|{runs}{other})*{mark}{{0,{shorter}}}"
            part = f"{alphabet.space}*(?:{solid}{rest}|{runs}(?:{other}{rest})?)"
        return patterns.token(f"{part}\\n{divider}\\n{part}")

    def _general_grammar(self, alphabet: patterns.Alphabet, divider: str) -> str:
        anything, solid = alphabet.text(), alphabet.nonspace
        part = f"{anything}{solid}{anything}"
        twice = f"(?:{anything}\\n)?{divider}\\n(?:{anything}\\n)?{divider}(?:\\n{anything})?"
        both = patterns.token(f"{part}\\n{divider}\\n{part}")
        return f"{both} & {patterns.complement(twice)}"

    def describe(self) -> str:
        return (f"Give two different responses, with a line containing only {self.separator} "
                "between them.")


class RepeatRequest(BaseConstraint):
    type: Literal["repeat_request"] = "repeat_request"
    request: Phrase

    def problem(self, text: str) -> str:
        request, response = normalize(self.request), normalize(text)
        if response.startswith(request) and not re.match(r"\w", response[len(request):]):
            return ""
        asked, said = self.request.split(), text.split()
        # The first word that differs; the default only guards a case the prefix test excludes.
        index = next((i for i, word in enumerate(asked)
                      if i >= len(said) or said[i].casefold() != word.casefold()),
                     len(asked) - 1)
        if index >= len(said):
            where = f"the response stops after word {index}"
        else:
            where = f"word {index + 1} is {quoted(said[index])} instead of {quoted(asked[index])}"
        return (f"The response must begin by repeating the request word for word, but {where} "
                f"- start with {quoted(self.request)}, then answer.")

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        return [patterns.token(f"{alphabet.space}*{alphabet.folded(self.request)}"
                               f"{_end_of_word(alphabet, self.request)}")]

    def describe(self) -> str:
        return (f"First repeat the request {quoted(self.request)} word for word without change, "
                "then give your answer.")


class ConstrainedResponse(BaseConstraint):
    type: Literal["constrained_response"] = "constrained_response"
    options: list[Phrase] = Field(min_length=2, max_length=4)

    @field_validator("options")
    @classmethod
    def _distinct(cls, options: list[str]) -> list[str]:
        if len({normalize(option) for option in options}) != len(options):
            raise ValueError("options must be different from each other")
        return options

    def present(self, text: str) -> list[str]:
        """Options found in `text`; an option found only inside a longer one ("yes" inside
        "yes, definitely") does not count as found."""
        spans = {option: [m.span() for m in phrase_pattern(option).finditer(text)]
                 for option in self.options}

        def inside_longer(option: str, span: tuple[int, int]) -> bool:
            return any(len(other) > len(option) and start <= span[0] and span[1] <= end
                       for other in self.options for start, end in spans[other])

        return [option for option in self.options
                if any(not inside_longer(option, span) for span in spans[option])]

    def problem(self, text: str) -> str:
        found = self.present(text)
        if len(found) == 1:
            return ""
        choices = listing(self.options, "or")
        if not found:
            return f"None of the options appears - answer with exactly one of {choices}."
        return (f"{len(found)} options appear ({listing(found)}) - keep exactly one of "
                f"{choices} and remove the others.")

    def describe(self) -> str:
        return (f"Answer with exactly one of the options {listing(self.options, 'or')}, "
                "word for word.")

    def grammars(self, alphabet: patterns.Alphabet) -> list[str]:
        space = alphabet.space
        exact = "|".join(patterns.literal(option)
                         for option in sorted(self.options, key=len, reverse=True))
        only_an_option = patterns.token(f"{space}*(?:{exact}){space}*")
        folded = [normalize(option) for option in self.options]
        if any(a != b and a in b for a in folded for b in folded):
            return [only_an_option]  # one option inside another: the exact answer only
        # First choice: an option, then any explanation that names no other option.
        choices = []
        for option in self.options:
            others = [patterns.complement(patterns.occurrences(alphabet, other, 1, strict=False))
                      for other in self.options if other != option]
            opening = patterns.token(f"{space}*{patterns.literal(option)}"
                                     f"{_end_of_word(alphabet, option)}")
            choices.append("(" + " & ".join([opening, *others]) + ")")
        return [" | ".join(choices), only_an_option]

