"""JSON values built from a JSON schema: tool-call arguments and ``json_schema`` answers.

Deterministic: the words and numbers come from a digest. The first plain string gets the
caller's ``text`` verbatim, so a test can see the user's data flow into the arguments.
Objects hold the ``required`` properties (all of them when ``required`` is absent); ``enum``
and ``const`` give their first value, ``anyOf``/``oneOf`` their first non-null option, and
local ``$ref``s (``#/$defs/...``, as pydantic writes them) are followed.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

from chatq.simulator.words import VOCABULARY

MAX_DEPTH = 12  # a recursive schema stops growing here
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def value_for(schema: Any, text: str, digest: bytes) -> Any:
    """A value that ``schema`` accepts; a missing or empty schema gives an empty object."""
    if not isinstance(schema, Mapping) or not schema:
        return {}
    return _Builder(schema, text, digest).value(schema, 0)


class _Builder:
    def __init__(self, root: Mapping[str, Any], text: str, digest: bytes):
        self.root = root
        self.text: str | None = text  # None once given to the first string
        self.digest = digest
        self.draws = 0

    def draw(self) -> int:
        """The next deterministic number in 0..2**32-1."""
        self.draws += 1
        material = self.digest + self.draws.to_bytes(4, "big")
        return int.from_bytes(hashlib.blake2b(material, digest_size=4).digest())

    def value(self, schema: Any, depth: int) -> Any:
        schema = self.resolve(schema, depth)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[0]
        if depth >= MAX_DEPTH:
            return None
        kind = _kind(schema)
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, depth)
        if kind in ("integer", "number"):
            return self.number(schema)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self.string(schema)

    def resolve(self, schema: Any, depth: int) -> Mapping[str, Any]:
        """``schema`` with ``$ref``, ``allOf``, ``anyOf`` and ``oneOf`` taken apart."""
        for _ in range(MAX_DEPTH):
            if not isinstance(schema, Mapping):
                return {}
            ref = schema.get("$ref")
            if isinstance(ref, str):
                schema = {**_pointer(self.root, ref), **_without(schema, "$ref")}
                continue
            for key in ("anyOf", "oneOf"):
                options = schema.get(key)
                if isinstance(options, list) and options:
                    typed = [o for o in options if not (isinstance(o, Mapping) and _is_null(o))]
                    schema = {**_without(schema, key), **_mapping((typed or options)[0])}
                    break
            else:
                parts = schema.get("allOf")
                if not isinstance(parts, list):
                    return schema
                merged = dict(_without(schema, "allOf"))
                for part in parts:
                    merged.update(_mapping(part))
                schema = merged
        return {}

    def object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = _mapping(schema.get("properties"))
        required = schema.get("required")
        names = required if isinstance(required, list) else list(properties)
        return {
            str(name): self.value(properties.get(name, {}), depth + 1)
            for name in names
            if isinstance(name, str)
        }

    def array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        items = schema.get("items", {})
        if isinstance(items, list):  # a tuple of positions
            return [self.value(item, depth + 1) for item in items]
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list) and prefix:
            return [self.value(item, depth + 1) for item in prefix]
        least = schema.get("minItems")
        count = min(least, 8) if type(least) is int and least > 1 else 1
        return [self.value(items, depth + 1) for _ in range(count)]

    def number(self, schema: Mapping[str, Any]) -> int:
        """A small integer (1..100 unless the schema's bounds say otherwise)."""
        low = _number(schema, "minimum")
        if low is None:
            above = _number(schema, "exclusiveMinimum")
            low = None if above is None else math.floor(above) + 1
        else:
            low = math.ceil(low)
        high = _number(schema, "maximum")
        if high is None:
            below = _number(schema, "exclusiveMaximum")
            high = None if below is None else math.ceil(below) - 1
        else:
            high = math.floor(high)
        if low is None:
            low = 1 if high is None or high >= 1 else high
        high = low + 99 if high is None else max(low, high)
        return low + self.draw() % (high - low + 1)

    def string(self, schema: Mapping[str, Any]) -> str:
        form = schema.get("format")
        if self.text is not None and form is None and "pattern" not in schema:
            text, self.text = self.text, None
            return text
        word = VOCABULARY[self.draw() % len(VOCABULARY)]
        if form == "email":
            return f"{word}@example.com"
        if form in ("uri", "url"):
            return f"https://example.com/{word}"
        return _FORMATS.get(str(form), word)


def _kind(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if kinds else "null"
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    return "array" if "items" in schema else "string"


def _is_null(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "null"


def _number(schema: Mapping[str, Any], key: str) -> float | None:
    value = schema.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return value


def _pointer(root: Mapping[str, Any], ref: str) -> Mapping[str, Any]:
    """What a local JSON pointer (``#/$defs/Name``) points at, or {} when it is not local."""
    if not ref.startswith("#"):
        return {}
    node: Any = root
    for part in ref[1:].split("/")[1:]:
        node = _mapping(node).get(part.replace("~1", "/").replace("~0", "~"))
    return _mapping(node)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _without(schema: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != key}
