"""Output types: what a constrained generation must produce, and how to check it.

The output type is the interface (as in outlines). Each one
knows its llguidance grammar, a stable key for caching that grammar, and how to parse and
validate the generated text; validation runs on every output even though decoding already
enforced the grammar, so nothing unchecked is ever returned.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
import typing
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from pydantic import BaseModel, ValidationError

from chorus.errors import InvalidOutputError, UnsupportedSchemaError
from chorus.runtime.nudging import Nudge

# Keywords under which a JSON Schema nests schemas that stand alone, so closing them keeps
# their meaning. Under allOf, if/then/else, not or contains a schema is combined with
# others, and closing it would change what the whole accepts: those are left as written.
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_LISTS = ("anyOf", "oneOf", "prefixItems")
_SCHEMA_SINGLE = ("items", "additionalProperties")
# An object whose properties may also come from these keywords is not closed either.
_OPEN_BY_COMPOSITION = ("allOf", "if", "then", "else", "dependentSchemas", "$ref",
                        "unevaluatedProperties")


# JSON layouts a grammar writes: compact (fewest tokens), or spaced as Python's json.dumps
# writes it, which is how a model trained on tool calls saw JSON in its template.
COMPACT = (",", ":")
SPACED = (", ", ": ")


def json_layout(separators: tuple[str, str]) -> dict[str, Any]:
    """llguidance's `x-guidance` options for JSON written with `separators`, no other
    whitespace."""
    return {"whitespace_flexible": False, "item_separator": separators[0],
            "key_separator": separators[1]}


def _key(kind: str, spec: str) -> str:
    return hashlib.sha256(f"{kind}\0{spec}".encode()).hexdigest()


def close_objects(schema: Any) -> Any:
    """Copy of `schema` where every object forbids properties it does not declare.

    Without `additionalProperties: false` a small model happily invents extra fields.
    An explicit `additionalProperties` is kept as written, and so are schemas combined with
    others (allOf, if/then/else, not, $ref), where closing would change their meaning.
    """
    if isinstance(schema, list):
        return [close_objects(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = dict(schema)
    for keyword in _SCHEMA_MAPS:
        if isinstance(closed.get(keyword), dict):
            closed[keyword] = {name: close_objects(sub) for name, sub in closed[keyword].items()}
    for keyword in _SCHEMA_LISTS + _SCHEMA_SINGLE:
        if isinstance(closed.get(keyword), dict | list):
            closed[keyword] = close_objects(closed[keyword])
    is_object = closed.get("type") == "object" or "properties" in closed
    composed = any(keyword in closed for keyword in _OPEN_BY_COMPOSITION)
    if is_object and not composed and "additionalProperties" not in closed:
        closed["additionalProperties"] = False
    return closed


@functools.cache
def _metaschema_validator(validator: type) -> Any:
    """What `check_schema` builds on every call; kept, it checks a schema 25% faster (a
    catalogue of 2,000 tools is checked before anything runs)."""
    meta = jsonschema.validators.validator_for(validator.META_SCHEMA, default=validator)
    return meta(validator.META_SCHEMA, format_checker=validator.FORMAT_CHECKER)


def schema_problem(schema: Any) -> str | None:
    """Why `schema` is not valid JSON Schema ("at properties/a/type: ..."), or None."""
    checker = _metaschema_validator(jsonschema.validators.validator_for(schema))
    error = jsonschema.exceptions.best_match(checker.iter_errors(schema))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.path) or "(root)"
    return f"at {where}: {error.message}"


# Numbers in tool arguments without bounds of their own get these: a small model can write
# "2000000..." until its budget ends; with a range the grammar stops the digits (the
# fraction stays free). 10**15 is below 2**53, the last integer every JSON reader keeps.
MAX_MAGNITUDE = 10**15


def bound_values(schema: Any, max_length: int) -> Any:
    """Copy of `schema` where every free string has a `maxLength` and every unbounded
    number a range of +-MAX_MAGNITUDE.

    A small model that never closes a string, or never ends a number, would otherwise spend
    its whole token budget inside it; with bounds the grammar closes the value and the
    object stays valid.
    """
    if isinstance(schema, list):
        return [bound_values(item, max_length) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bounded = {key: bound_values(value, max_length) if key != "default" else value
               for key, value in schema.items()}
    free = not any(key in schema for key in ("maxLength", "enum", "const", "format"))
    if schema.get("type") == "string" and free:
        bounded["maxLength"] = max_length
    if schema.get("type") in ("number", "integer") and "enum" not in schema \
            and "const" not in schema:
        if not {"maximum", "exclusiveMaximum"} & schema.keys():
            bounded["maximum"] = MAX_MAGNITUDE
        if not {"minimum", "exclusiveMinimum"} & schema.keys():
            bounded["minimum"] = -MAX_MAGNITUDE
    return bounded


@dataclass(frozen=True)
class JsonSchema:
    """Output must be JSON valid against `schema` (a dict, or a pydantic model's), written
    with `separators` and no other whitespace."""

    schema: dict[str, Any]
    model: type[BaseModel] | None = field(default=None, compare=False)
    separators: tuple[str, str] = COMPACT

    @classmethod
    def from_model(cls, model: type[BaseModel]) -> JsonSchema:
        return cls(model.model_json_schema(), model)

    def laid_out(self, separators: tuple[str, str]) -> JsonSchema:
        """This output written with `separators`. The schema, checked and closed already, is
        not checked again: `dataclasses.replace` would, about 2 ms on every request."""
        if separators == self.separators:
            return self
        copied = copy.copy(self)
        object.__setattr__(copied, "separators", separators)
        return copied

    def __post_init__(self) -> None:
        problem = schema_problem(self.schema)
        if problem:
            raise UnsupportedSchemaError(f"Not a valid JSON Schema {problem}")
        object.__setattr__(self, "schema", close_objects(self.schema))

    @property
    def spec(self) -> str:
        return json.dumps(self.schema, sort_keys=True, separators=(",", ":"))

    @property
    def key(self) -> str:
        return _key("json_schema", self.spec + json.dumps(self.separators))

    def grammar(self) -> str:
        import llguidance

        # One layout: flexible whitespace wastes tokens and lets the model wander.
        guided = dict(self.schema, **{"x-guidance": json_layout(self.separators)})
        return llguidance.grammar_from("json_schema", json.dumps(guided))

    def parse(self, text: str) -> Any:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidOutputError(f"Output is not JSON ({error}): {text!r}") from error
        errors = sorted(jsonschema.Draft202012Validator(self.schema).iter_errors(value),
                        key=lambda e: list(e.path))
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.path) or "(root)"
            raise InvalidOutputError(f"Output fails its schema at {where}: {first.message}")
        if self.model is None:
            return value
        try:
            return self.model.model_validate(value)
        except ValidationError as error:
            raise InvalidOutputError(f"Output fails {self.model.__name__}: {error}") from error


@dataclass(frozen=True)
class Regex:
    """Output must match `pattern` in full."""

    pattern: str

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as error:
            raise UnsupportedSchemaError(f"Invalid regex {self.pattern!r}: {error}") from error

    @property
    def key(self) -> str:
        return _key("regex", self.pattern)

    def grammar(self) -> str:
        import llguidance

        return llguidance.grammar_from("regex", self.pattern)

    def parse(self, text: str) -> str:
        if re.fullmatch(self.pattern, text) is None:
            raise InvalidOutputError(f"Output {text!r} does not match /{self.pattern}/")
        return text


@dataclass(frozen=True)
class Choice:
    """Output must be exactly one of `options`."""

    options: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.options or not all(isinstance(o, str) and o for o in self.options):
            raise UnsupportedSchemaError("A choice needs at least one non-empty string option")
        object.__setattr__(self, "options", tuple(self.options))

    @property
    def key(self) -> str:
        return _key("choice", json.dumps(self.options))

    @property
    def pattern(self) -> str:
        """The options as one regex, longest first, so none is shadowed by a prefix of it."""
        alternatives = sorted(self.options, key=len, reverse=True)
        return "|".join(re.escape(option) for option in alternatives)

    def grammar(self) -> str:
        import llguidance

        return llguidance.grammar_from("regex", self.pattern)

    def parse(self, text: str) -> str:
        if text not in self.options:
            raise InvalidOutputError(f"Output {text!r} is not one of {list(self.options)}")
        return text


@dataclass(frozen=True)
class Lark:
    """Output must match a grammar in llguidance's lark syntax (which adds `&` and `~` to
    token definitions: chorus compiles response constraints to such grammars).

    `closings`: texts a local backend writes where the model would end before the grammar
    is complete, the first one the grammar accepts whole ("\n\nP.S." for a postscript the
    model never starts). A grammar that needs something written holds the model until its
    budget runs out otherwise. `fallback`: what to decode under instead when this one
    fails all the same (the budget ended first): a grammar, or a `Lark` with its own
    closings and fallback; None for free text. `word_limit`, `sentence_limit`: the most
    words, sentences the grammar allows, where it bounds them: the closings then come while
    words and sentences are left for what they lead into, not only when the token budget
    runs low. `nudges`: words the text still needs, favoured by a small bias on the logits
    until it holds them, or barred once it holds as many as allowed (chorus.runtime.nudging),
    whether the grammar requires them or not.
    `endings`: texts the reply stops at where they complete the grammar (an "ends with"
    phrase: the grammar would let the model write on past it)."""

    source: str
    closings: tuple[str, ...] = ()
    fallback: str | Lark | None = None
    word_limit: int | None = None
    sentence_limit: int | None = None
    nudges: tuple[Nudge, ...] = ()
    endings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from chorus.runtime.guidance import grammar_problem

        for source in (self.source, self.fallback):
            problem = grammar_problem(source) if isinstance(source, str) else ""
            if problem:
                raise UnsupportedSchemaError(f"Grammar cannot be used: {problem}")
        object.__setattr__(self, "closings", tuple(self.closings))
        object.__setattr__(self, "nudges", tuple(self.nudges))
        object.__setattr__(self, "endings", tuple(self.endings))

    @property
    def key(self) -> str:
        # The matcher is the grammar's alone: closings, endings, fallback and nudges do not
        # change it.
        return _key("lark", self.source)

    def fallback_output(self) -> Lark | None:
        """What to decode under where this grammar failed (None: free text)."""
        if isinstance(self.fallback, str):
            return Lark(self.fallback, nudges=self.nudges)
        return self.fallback

    def grammar(self) -> str:
        return self.source

    def parse(self, text: str) -> str:
        from chorus.runtime.guidance import accepts

        if not accepts(self.source, text):
            raise InvalidOutputError(f"Output does not match its grammar: {text[:200]!r}")
        return text


@dataclass(frozen=True)
class ToolCalls:
    """Output is a list of `min_calls` to `max_calls` tool calls, each valid against
    `call_schema` (a union with a branch per tool, as `ToolRegistry.call_schema` makes it).

    Its portable form is a JSON list of `{"name", "arguments"}` objects. A backend whose
    chat template has a call syntax of its own decodes `tagged()` instead, the same calls
    in the format the model was trained on (chorus.runtime.chat_format.reply_output)."""

    call_schema: dict[str, Any]
    min_calls: int = 0
    max_calls: int = 3
    # Calls (as JSON texts) the reply starts with: `after()` makes a model that wrote them
    # write one more. The tagged form forces them as text.
    written: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.min_calls <= self.max_calls or self.max_calls < 1 \
                or len(self.written) > self.min_calls:
            raise UnsupportedSchemaError(
                f"Calls must number 0 <= min <= max, max >= 1, with no more written than "
                f"min (got {self.min_calls}..{self.max_calls}, {len(self.written)} written)")
        object.__setattr__(self, "call_schema", self.call.schema)

    @functools.cached_property
    def call(self) -> JsonSchema:
        return JsonSchema(self.call_schema)

    @functools.cached_property
    def listing(self) -> JsonSchema:
        call = dict(self.call_schema)
        definitions = call.pop("$defs", None)  # the list is the root now: refs point there
        return JsonSchema({"type": "array", "items": call, "minItems": self.min_calls,
                           "maxItems": self.max_calls,
                           **({"$defs": definitions} if definitions else {})})

    @property
    def key(self) -> str:
        return _key("calls", json.dumps([self.listing.key, self.written])) \
            if self.written else self.listing.key

    def grammar(self) -> str:
        return self.listing.grammar()

    def after(self, calls: list[dict[str, Any]]) -> ToolCalls:
        """Exactly one call more than `calls`, which the reply repeats first."""
        written = tuple(json.dumps(call, ensure_ascii=False) for call in calls)
        return ToolCalls(self.call_schema, len(written) + 1, len(written) + 1, written)

    def parse(self, text: str) -> list[dict[str, Any]]:
        return self.listing.parse(text)

    def tagged(self, open_tag: str, close_tag: str, *, special: bool) -> TaggedCalls:
        return TaggedCalls(self, open_tag, close_tag, special)


def tagged_call(call: str, open_tag: str, close_tag: str) -> str:
    """One call (a JSON text) as a tagged reply writes it."""
    return f"{open_tag}\n{call}\n{close_tag}\n"


@dataclass(frozen=True)
class TaggedCalls:
    """`calls` written as chat templates like Qwen2.5's and Hermes' ask: each call a JSON
    object on its own line between `open_tag` and `close_tag`. Parsed, it is the same list
    of calls as the JSON form. `special`: the tags are special tokens of the vocabulary."""

    calls: ToolCalls
    open_tag: str
    close_tag: str
    special: bool

    @property
    def key(self) -> str:
        return _key("tagged", json.dumps([self.calls.key, self.open_tag, self.close_tag,
                                          self.special]))

    @property
    def prefix(self) -> str:
        """The text every reply starts with: the calls already written."""
        return "".join(tagged_call(call, self.open_tag, self.close_tag)
                       for call in self.calls.written)

    def grammar(self) -> str:
        def tag(text: str) -> str:
            return text if self.special else json.dumps(text)

        # The separators the model saw in its template's examples (Python's json.dumps).
        schema = json.dumps(dict(self.calls.call_schema, **{"x-guidance": json_layout(SPACED)}))
        done = len(self.calls.written)
        counts = [" ".join(["call"] * count) for count in
                  range(max(self.calls.min_calls - done, 1), self.calls.max_calls - done + 1)]
        if done:
            written = " ".join(f'{tag(self.open_tag)} {json.dumps(chr(10) + text + chr(10))} '
                               f'{tag(self.close_tag)} "\\n"' for text in self.calls.written)
            counts = [f"{written} {count}" for count in counts]
        # No call is an answer in words, as the template has it. Not an empty reply: a
        # model that means to call but would open with "{" or a code fence then ends at
        # once (masked, the end token beats the tag); not those openings either: they are
        # calls in another syntax.
        answer = " | ANSWER\nANSWER: /[^<{\\[`\\s](.|\\n)*/" if self.calls.min_calls == 0 else ""
        return (f"%llguidance {{}}\nstart: {' | '.join(counts)}{answer}\n"
                f'call: {tag(self.open_tag)} "\\n" %json {schema} "\\n" '
                f'{tag(self.close_tag)} "\\n"?\n')

    def parse(self, text: str) -> list[dict[str, Any]]:
        blocks = re.compile(f"{re.escape(self.open_tag)}(.*?){re.escape(self.close_tag)}",
                            re.S)
        if self.calls.min_calls == 0 and not blocks.search(text):
            return []  # an answer in words
        if blocks.sub("", text).strip():
            raise InvalidOutputError(f"Output has text outside its calls: {text[:200]!r}")
        calls = [self.calls.call.parse(block.strip()) for block in blocks.findall(text)]
        if not self.calls.min_calls <= len(calls) <= self.calls.max_calls:
            raise InvalidOutputError(f"Output has {len(calls)} calls, not "
                                     f"{self.calls.min_calls} to {self.calls.max_calls}")
        return calls


OutputType = JsonSchema | Regex | Choice | Lark | ToolCalls | TaggedCalls


def reply_prefix(output: OutputType | None) -> str:
    """The text a reply in `output` starts with whatever the model does (the calls an
    added call follows). The transformers backend feeds it to the model with the prompt, in
    one batched pass, instead of decoding it token by token (about 1.5 s a call on two
    cores); the llama.cpp backend feeds whatever a grammar forces that way, this included."""
    return output.prefix if isinstance(output, TaggedCalls) else ""


def as_output(output: Any) -> OutputType:
    """Accept the forms users write: a JSON Schema dict, a pydantic model class, a list of
    strings or a `Literal[...]` (a choice), or an output type object."""
    if isinstance(output, OutputType):
        return output
    if isinstance(output, dict):
        return JsonSchema(output)
    if isinstance(output, type) and issubclass(output, BaseModel):
        return JsonSchema.from_model(output)
    if isinstance(output, list | tuple):
        return Choice(tuple(output))
    if typing.get_origin(output) is typing.Literal:
        return Choice(tuple(str(option) for option in typing.get_args(output)))
    raise UnsupportedSchemaError(
        f"Cannot constrain output to {output!r}: use a JSON Schema dict, a pydantic model, "
        "a list of strings, Literal[...], chorus.runtime.Regex(pattern) or "
        "chorus.runtime.Lark(grammar)"
    )
