"""Values built from JSON schemas: what tool arguments and json_schema answers are made of."""

from __future__ import annotations

import json

from chatq.simulator.schemas import value_for
from chatq.simulator.words import VOCABULARY
from hypothesis import given
from hypothesis import strategies as st

DIGEST = bytes(range(64))
WEATHER = {
    "type": "object",
    "properties": {
        "location": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "note": {"type": "string"},
    },
    "required": ["location", "unit", "days"],
}


def test_required_properties_in_order_the_first_string_verbatim_enum_first_value():
    value = value_for(WEATHER, "Weather in Paris?", DIGEST)
    assert list(value) == ["location", "unit", "days"]
    assert value["location"] == "Weather in Paris?"
    assert value["unit"] == "celsius"
    assert 1 <= value["days"] <= 7 and type(value["days"]) is int


def test_all_properties_when_required_is_absent_and_later_strings_are_words():
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
    value = value_for(schema, "text", DIGEST)
    assert value["a"] == "text" and value["b"] in VOCABULARY


def test_booleans_arrays_nested_objects_and_nullable_types():
    schema = {
        "type": "object",
        "properties": {
            "flag": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "integer"}},
            "where": {"type": "object", "properties": {"city": {"type": ["string", "null"]}}},
            "score": {"type": "number"},
            "nothing": {"type": "null"},
        },
    }
    value = value_for(schema, "x", DIGEST)
    assert value["flag"] is True
    assert len(value["tags"]) == 1 and type(value["tags"][0]) is int
    assert value["where"] == {"city": "x"}  # the first string, depth first
    assert isinstance(value["score"], int) and value["nothing"] is None


def test_refs_and_any_of_as_pydantic_writes_them():
    schema = {
        "type": "object",
        "properties": {
            "owner": {"$ref": "#/$defs/Person"},
            "backup": {"anyOf": [{"$ref": "#/$defs/Person"}, {"type": "null"}]},
            "kind": {"const": "fixed"},
        },
        "required": ["owner", "backup", "kind"],
        "$defs": {"Person": {"type": "object", "properties": {"name": {"type": "string"}}}},
    }
    value = value_for(schema, "Ada", DIGEST)
    assert value["owner"] == {"name": "Ada"}
    assert value["backup"]["name"] in VOCABULARY
    assert value["kind"] == "fixed"


def test_formats_and_bounds_give_valid_values():
    schema = {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date-time"},
            "mail": {"type": "string", "format": "email"},
            "low": {"type": "integer", "exclusiveMinimum": 10, "maximum": 11},
            "neg": {"type": "integer", "maximum": -5},
        },
    }
    value = value_for(schema, "text", DIGEST)
    assert value["when"] == "2024-01-01T00:00:00Z" and value["mail"].endswith("@example.com")
    assert value["low"] == 11 and value["neg"] == -5


def test_no_schema_is_an_empty_object_and_a_recursive_one_ends():
    assert value_for(None, "x", DIGEST) == {} == value_for({}, "x", DIGEST)
    tree = {"$ref": "#/$defs/Node"}
    tree["$defs"] = {"Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}}
    assert json.dumps(value_for(tree, "x", DIGEST))  # finite


def test_same_digest_same_value_other_digest_other_words():
    schema = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(6)}}
    one = value_for(schema, "t", DIGEST)
    assert one == value_for(schema, "t", DIGEST)
    assert one != value_for(schema, "t", bytes(64))


@given(text=st.text(max_size=30))
def test_user_text_round_trips_through_json(text):
    value = value_for(WEATHER, text, DIGEST)
    assert json.loads(json.dumps(value, ensure_ascii=False))["location"] == text
