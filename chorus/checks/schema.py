"""The JSON Schema of a constraint list, for constrained decoding by the divider.

Built from the constraint models so the two never drift apart, then made easy for a grammar
engine and for a small model: every `$ref` inlined (no `$defs`), every object closed
(`additionalProperties: false`) with all its properties required (the model writes defaults
out rather than choosing which to skip), every free string (not a const or enum), integer
and list bounded so that decoding always terminates. A model may accept more than the schema
(a request longer than 60 characters): the schema bounds what the divider may generate, while
`parse_constraint` decides what is valid.
"""

from __future__ import annotations

from typing import Any

from chorus.checks.registry import CONSTRAINT_TYPES

MAX_STRING = 60
MAX_INTEGER = 1000
MAX_LIST = 5
# Defaults go: every property is required.
_DROPPED = ("$defs", "title", "discriminator", "default")


def _decodable(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        node = {**defs[node["$ref"].rsplit("/", 1)[-1]],
                **{key: value for key, value in node.items() if key != "$ref"}}
    out = {key: value for key, value in node.items() if key not in _DROPPED}
    if "oneOf" in out:  # the same choice; anyOf is what grammar engines handle best
        out["anyOf"] = out.pop("oneOf")
    if "anyOf" in out:
        out["anyOf"] = [_decodable(option, defs) for option in out["anyOf"]]
    if isinstance(out.get("items"), dict):
        out["items"] = _decodable(out["items"], defs)
    if "properties" in out:
        out["properties"] = {name: _decodable(sub, defs)
                             for name, sub in out["properties"].items()}
        out.update(type="object", required=list(out["properties"]), additionalProperties=False)
    kind = out.get("type")
    if kind == "string" and "const" not in out and "enum" not in out:  # free strings only
        out["maxLength"] = min(out.get("maxLength", MAX_STRING), MAX_STRING)
    elif kind == "integer":
        out["minimum"] = max(out.get("minimum", 0), 0)
        out["maximum"] = min(out.get("maximum", MAX_INTEGER), MAX_INTEGER)
    elif kind == "array":
        out["maxItems"] = min(out.get("maxItems", MAX_LIST), MAX_LIST)
    return out


def constraints_schema(max_items: int = 6) -> dict[str, Any]:
    """JSON Schema of `{"constraints": [constraint, ...]}` with at most `max_items` items."""
    variants = []
    for model in CONSTRAINT_TYPES.values():
        schema = model.model_json_schema()
        variants.append(_decodable(schema, schema.get("$defs", {})))
    return {
        "type": "object",
        "properties": {"constraints": {"type": "array", "items": {"anyOf": variants},
                                       "maxItems": max_items}},
        "required": ["constraints"],
        "additionalProperties": False,
    }
