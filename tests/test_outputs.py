"""Output constraints without a model: schema closing, validation, coercion, parsing, keys."""

from typing import Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field, field_validator

from chorus.errors import InvalidOutputError, UnsupportedSchemaError
from chorus.runtime import Choice, JsonSchema, Regex, as_output
from chorus.runtime.outputs import close_objects


class Person(BaseModel):
    name: str = Field(max_length=20)
    age: int = Field(ge=0, le=150)
    nickname: str | None = None


class Pet(BaseModel):
    species: Literal["cat", "dog"]
    owner: Person


class EvenOnly(BaseModel):
    n: int

    @field_validator("n")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("n must be even")
        return value


# close_objects -----------------------------------------------------------------------------


def test_close_objects_closes_a_flat_object():
    closed = close_objects({"type": "object", "properties": {"a": {"type": "string"}}})
    assert closed["additionalProperties"] is False
    assert closed["properties"] == {"a": {"type": "string"}}


def test_close_objects_treats_properties_without_type_as_an_object():
    closed = close_objects({"properties": {"a": {"type": "integer"}}})
    assert closed["additionalProperties"] is False


def test_close_objects_recurses_into_nested_objects_arrays_defs_and_anyof():
    schema = {
        "type": "object",
        "properties": {
            "inner": {"type": "object", "properties": {"deep": {"type": "object"}}},
            "rows": {"type": "array", "items": {"type": "object", "properties": {"x": {}}}},
            "either": {"anyOf": [{"type": "object", "properties": {"y": {}}},
                                 {"type": "null"}]},
            "ref": {"$ref": "#/$defs/Thing"},
        },
        "$defs": {"Thing": {"type": "object", "properties": {"z": {"type": "string"}}}},
    }
    closed = close_objects(schema)
    props = closed["properties"]
    assert closed["additionalProperties"] is False
    assert props["inner"]["additionalProperties"] is False
    assert props["inner"]["properties"]["deep"]["additionalProperties"] is False
    assert props["rows"]["items"]["additionalProperties"] is False
    assert "additionalProperties" not in props["rows"]  # an array is not an object
    assert props["either"]["anyOf"][0]["additionalProperties"] is False
    assert props["either"]["anyOf"][1] == {"type": "null"}
    assert props["ref"] == {"$ref": "#/$defs/Thing"}
    assert closed["$defs"]["Thing"]["additionalProperties"] is False


def test_close_objects_does_not_mutate_its_input():
    schema = {"type": "object", "properties": {"inner": {"type": "object"}}}
    close_objects(schema)
    assert schema == {"type": "object", "properties": {"inner": {"type": "object"}}}


@pytest.mark.parametrize("explicit", [True, {"type": "integer"}])
def test_close_objects_keeps_an_explicit_additional_properties(explicit):
    schema = {"type": "object", "properties": {"a": {"type": "string"}},
              "additionalProperties": explicit}
    assert close_objects(schema)["additionalProperties"] == explicit


def test_close_objects_closes_an_object_schema_given_as_additional_properties():
    schema = {"type": "object",
              "additionalProperties": {"type": "object", "properties": {"v": {}}}}
    closed = close_objects(schema)
    assert closed["additionalProperties"] == {
        "type": "object", "properties": {"v": {}}, "additionalProperties": False}


def test_close_objects_leaves_non_objects_alone():
    for schema in ({"type": "string"}, {"enum": [1, 2]}, {"type": "array"}, True):
        assert close_objects(schema) == schema


def test_json_schema_constraint_stores_the_closed_schema():
    constraint = JsonSchema({"type": "object", "properties": {"a": {"type": "integer"}}})
    assert constraint.schema["additionalProperties"] is False
    with pytest.raises(InvalidOutputError, match="Additional properties"):
        constraint.parse('{"a": 1, "b": 2}')


def test_close_objects_keeps_allof_composition_satisfiable():
    schema = {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}},
                        {"type": "object", "properties": {"b": {"type": "integer"}}}]}
    jsonschema.validate({"a": 1, "b": 2}, schema)  # the schema as the user wrote it accepts it
    assert JsonSchema(schema).parse('{"a": 1, "b": 2}') == {"a": 1, "b": 2}


def test_close_objects_keeps_if_then_semantics():
    schema = {"type": "object",
              "properties": {"kind": {"enum": ["x", "y"]}, "n": {"type": "integer"},
                             "m": {"type": "integer"}},
              "required": ["kind"],
              "if": {"properties": {"kind": {"const": "x"}}}, "then": {"required": ["n"]}}
    with pytest.raises(jsonschema.ValidationError):  # the user's schema needs n when kind is x
        jsonschema.validate({"kind": "x", "m": 1}, schema)
    with pytest.raises(InvalidOutputError):
        JsonSchema(schema).parse('{"kind": "x", "m": 1}')


# invalid schemas ---------------------------------------------------------------------------


def test_invalid_schema_raises_unsupported_schema_error_at_the_root_keyword():
    with pytest.raises(UnsupportedSchemaError, match="type") as caught:
        JsonSchema({"type": "nope"})
    assert "Not a valid JSON Schema" in str(caught.value)
    assert "nope" in str(caught.value)


def test_invalid_schema_error_names_the_nested_location():
    schema = {"type": "object", "properties": {"age": {"type": "integer", "minimum": "x"}}}
    with pytest.raises(UnsupportedSchemaError, match="properties/age/minimum"):
        JsonSchema(schema)


def test_invalid_schema_in_array_items_names_the_location():
    with pytest.raises(UnsupportedSchemaError, match="items/required"):
        as_output({"type": "array", "items": {"type": "object", "required": "name"}})


def test_invalid_regex_raises_unsupported_schema_error():
    with pytest.raises(UnsupportedSchemaError, match="Invalid regex"):
        Regex("[unclosed")


@pytest.mark.parametrize("options", [(), ("ok", ""), ("ok", 3)])
def test_choice_needs_non_empty_string_options(options):
    with pytest.raises(UnsupportedSchemaError, match="at least one non-empty string"):
        Choice(options)


# as_output -----------------------------------------------------------------------------


def test_as_constraint_accepts_a_schema_dict():
    constraint = as_output({"type": "object", "properties": {"a": {"type": "string"}}})
    assert isinstance(constraint, JsonSchema)
    assert constraint.model is None
    assert constraint.schema["additionalProperties"] is False


def test_as_constraint_accepts_a_pydantic_model_class():
    constraint = as_output(Person)
    assert isinstance(constraint, JsonSchema)
    assert constraint.model is Person
    assert set(constraint.schema["properties"]) == {"name", "age", "nickname"}
    assert constraint.schema["required"] == ["name", "age"]
    assert constraint.schema["additionalProperties"] is False


def test_as_constraint_closes_pydantic_defs():
    constraint = as_output(Pet)
    assert constraint.schema["$defs"]["Person"]["additionalProperties"] is False


def test_as_constraint_accepts_a_list_or_tuple_of_strings_as_a_choice():
    assert as_output(["yes", "no"]) == Choice(("yes", "no"))
    assert as_output(("yes", "no")) == Choice(("yes", "no"))
    assert isinstance(as_output(["yes"]).options, tuple)


def test_as_constraint_accepts_a_literal_as_a_choice():
    assert as_output(Literal["red", "green"]) == Choice(("red", "green"))


def test_as_constraint_passes_constraint_objects_through():
    for constraint in (Regex(r"\d+"), Choice(("a",)), JsonSchema({"type": "string"})):
        assert as_output(constraint) is constraint


@pytest.mark.parametrize("output", [42, "a string", 3.5, object(), int])
def test_as_constraint_rejects_other_values(output):
    with pytest.raises(UnsupportedSchemaError, match="Cannot constrain output"):
        as_output(output)


# parse -------------------------------------------------------------------------------------


BOUNDED = {
    "type": "object",
    "properties": {
        "count": {"type": "integer", "minimum": 0, "maximum": 10},
        "user": {"type": "object",
                 "properties": {"age": {"type": "integer", "minimum": 0}},
                 "required": ["age"]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
    },
    "required": ["count", "user"],
}


def test_json_schema_parse_returns_the_value():
    value = JsonSchema(BOUNDED).parse('{"count": 3, "user": {"age": 30}, "tags": ["a"]}')
    assert value == {"count": 3, "user": {"age": 30}, "tags": ["a"]}


@pytest.mark.parametrize("text, where, what", [
    ('{"count": 11, "user": {"age": 1}}', "count", "maximum"),
    ('{"count": -1, "user": {"age": 1}}', "count", "minimum"),
    ('{"count": 1, "user": {"age": -5}}', "user/age", "minimum"),
    ('{"count": 1, "user": {}}', "user", "'age' is a required property"),
    ('{"user": {"age": 1}}', "(root)", "'count' is a required property"),
    ('{"count": 1, "user": {"age": 1}, "tags": ["a", "b", "c"]}', "tags", "too long"),
    ('{"count": "3", "user": {"age": 1}}', "count", "not of type 'integer'"),
])
def test_json_schema_parse_names_the_failing_field(text, where, what):
    with pytest.raises(InvalidOutputError) as caught:
        JsonSchema(BOUNDED).parse(text)
    message = str(caught.value)
    assert f"at {where}:" in message
    assert what in message


@pytest.mark.parametrize("text", ['{"count": 1', "not json", "", "{'count': 1}"])
def test_json_schema_parse_rejects_bad_json(text):
    with pytest.raises(InvalidOutputError, match="not JSON"):
        JsonSchema(BOUNDED).parse(text)


def test_pydantic_parse_returns_a_model_instance():
    value = as_output(Pet).parse('{"species": "cat", "owner": {"name": "Ann", "age": 40}}')
    assert isinstance(value, Pet)
    assert isinstance(value.owner, Person)
    assert value.owner.name == "Ann"
    assert value.owner.nickname is None


def test_pydantic_parse_checks_the_schema_first():
    with pytest.raises(InvalidOutputError, match="owner/age"):
        as_output(Pet).parse('{"species": "cat", "owner": {"name": "Ann", "age": 200}}')


def test_pydantic_parse_runs_model_validators():
    constraint = as_output(EvenOnly)
    assert constraint.parse('{"n": 4}') == EvenOnly(n=4)
    with pytest.raises(InvalidOutputError, match="EvenOnly"):
        constraint.parse('{"n": 3}')


def test_choice_parse():
    choice = Choice(("yes", "no"))
    assert choice.parse("yes") == "yes"
    for text in ("maybe", "Yes", "yes ", ""):
        with pytest.raises(InvalidOutputError, match="not one of"):
            choice.parse(text)


def test_regex_parse_needs_a_full_match():
    regex = Regex(r"[0-9]{3}-[a-z]{2}")
    assert regex.parse("123-ab") == "123-ab"
    for text in ("123-abc", "x123-ab", "12-ab", ""):
        with pytest.raises(InvalidOutputError, match="does not match"):
            regex.parse(text)


# keys --------------------------------------------------------------------------------------


def test_equal_schemas_in_a_different_key_order_have_the_same_key():
    one = JsonSchema({"type": "object", "properties": {"a": {"type": "string"},
                                                       "b": {"type": "integer"}}})
    two = JsonSchema({"properties": {"b": {"type": "integer"}, "a": {"type": "string"}},
                      "type": "object"})
    assert one.key == two.key
    assert one == two


def test_different_schemas_have_different_keys():
    base = {"type": "object", "properties": {"a": {"type": "string"}}}
    keys = {
        JsonSchema(base).key,
        JsonSchema({"type": "object", "properties": {"a": {"type": "integer"}}}).key,
        JsonSchema(dict(base, required=["a"])).key,
        JsonSchema(dict(base, additionalProperties=True)).key,
    }
    assert len(keys) == 4


def test_a_pydantic_constraint_has_the_key_of_its_schema():
    assert as_output(Person).key == JsonSchema(Person.model_json_schema()).key


def test_keys_differ_between_constraint_kinds_and_options():
    keys = {Regex("yes|no").key, Choice(("yes", "no")).key, Choice(("no", "yes")).key,
            Regex("yes").key, Choice(("yes",)).key}
    assert len(keys) == 5
    assert Regex("a+").key == Regex("a+").key
    assert Choice(("a", "b")).key == as_output(["a", "b"]).key
