"""A custom resource checked against its OpenAPI schema on every write, as the API server does
once it has pruned and defaulted it (`objects.normalize`): types, required fields, enums,
patterns, lengths, item counts, bounds, date-times. Refused: 422 Invalid, one cause per field, in
the server's words ("spec.providers[0].name: Invalid value: …").

What it does not do: CEL rules (`x-kubernetes-validations`), which need a CEL interpreter; the
operator's own spec parser applies the same rules and reports them as `InvalidSpec`. Patterns are
Python regular expressions here and RE2 on a real server: the CRD's patterns use their common
subset (tests/test_spec_properties.py holds them to it).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import kmock

from .errors import error
from .kinds import Kind

_SERVER_FIELDS = frozenset({"apiVersion", "kind", "metadata"})
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def admit(kind: Kind, obj: Mapping[str, Any]) -> None:
    """Raise 422 unless `obj` (pruned and defaulted) is valid for its kind's schema."""
    schema = kind.schema
    if not kind.custom or not schema:
        return
    causes: list[tuple[str, str]] = []
    properties = schema.get("properties") or {}
    for name, value in obj.items():
        if name not in _SERVER_FIELDS and name in properties:
            _check(properties[name], value, name, causes)
    for name in schema.get("required") or []:
        if name not in obj and name not in _SERVER_FIELDS:
            causes.append((name, "Required value"))
    if causes:
        name = (obj.get("metadata") or {}).get("name", "")
        raise _invalid(kind, str(name), causes)


def _check(schema: Mapping[str, Any], value: Any, path: str, causes: list[tuple[str, str]]) -> None:
    """Append what is wrong with `value` at `path` to `causes`."""
    if value is None:
        if not schema.get("nullable"):
            causes.append((path, f"Invalid value: \"null\": {path} in body must be of type "
                                 f"{schema.get('type', 'object')}: \"null\""))  # fmt: skip
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            causes.append((path, f"Invalid value: {_shown(value)}: must be an integer or a string"))
        return
    wanted = schema.get("type")
    if wanted in _TYPES and not _is(value, wanted):
        causes.append(
            (path, f"Invalid value: \"{_json_type(value)}\": {path} in body must be of type "
                   f"{wanted}: \"{_json_type(value)}\"")
        )  # fmt: skip
    elif isinstance(value, dict):
        properties: Mapping[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            sub = properties.get(name, extra)
            if isinstance(sub, Mapping):
                _check(sub, item, f"{path}.{name}", causes)
        for name in schema.get("required") or []:
            if name not in value:
                causes.append((f"{path}.{name}", "Required value"))
    elif isinstance(value, list):
        _check_array(schema, value, path, causes)
    else:
        _check_scalar(schema, value, path, causes)


def _check_array(
    schema: Mapping[str, Any], value: list[Any], path: str, causes: list[tuple[str, str]]
) -> None:
    items = schema.get("items")
    if isinstance(items, Mapping):
        for i, item in enumerate(value):
            _check(items, item, f"{path}[{i}]", causes)
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        causes.append(
            (path, f"Too many: {len(value)}: must have at most {schema['maxItems']} items")
        )
    if "minItems" in schema and len(value) < schema["minItems"]:
        causes.append(
            (path, f"Invalid value: {len(value)}: {path} in body should have at least "
                   f"{schema['minItems']} items")
        )  # fmt: skip


def _check_scalar(
    schema: Mapping[str, Any], value: Any, path: str, causes: list[tuple[str, str]]
) -> None:
    shown = _shown(value)
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        supported = ", ".join(_shown(v) for v in enum)
        causes.append((path, f"Unsupported value: {shown}: supported values: {supported}"))
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            causes.append((path, f"Too long: may not be more than {schema['maxLength']} bytes"))
        if "minLength" in schema and len(value) < schema["minLength"]:
            causes.append(
                (path, f"Invalid value: {shown}: {path} in body should be at least "
                       f"{schema['minLength']} chars long")
            )  # fmt: skip
        pattern = schema.get("pattern")
        if pattern is not None and _re2(pattern).search(value) is None:
            causes.append(
                (path, f"Invalid value: {shown}: {path} in body should match '{pattern}'")
            )
        if schema.get("format") == "date-time" and not _is_date_time(value):
            causes.append(
                (path, f"Invalid value: {shown}: {path} in body must be of type date-time: "
                       f"{shown}")
            )  # fmt: skip
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if "maximum" in schema and value > schema["maximum"]:
            causes.append(
                (path, f"Invalid value: {shown}: {path} in body should be less than or equal "
                       f"to {schema['maximum']}")
            )  # fmt: skip
        if "minimum" in schema and value < schema["minimum"]:
            causes.append(
                (path, f"Invalid value: {shown}: {path} in body should be greater than or equal "
                       f"to {schema['minimum']}")
            )  # fmt: skip


def _is(value: Any, wanted: str) -> bool:
    if isinstance(value, bool):
        return wanted == "boolean"
    if wanted == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES[wanted])


def _json_type(value: Any) -> str:
    for name in ("boolean", "integer", "number", "string", "array", "object"):
        if _is(value, name):
            return name
    return "unknown"


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@functools.cache
def _re2(pattern: str) -> re.Pattern[str]:
    """`pattern` with RE2's meaning of `$` (the end of the text; Python's also matches before a
    final newline, which would let "https://x/v1\\n" through a pattern the server rejects it by)."""
    out, in_class, escaped = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            char = r"\Z"
        out.append(char)
    return re.compile("".join(out))


_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _is_date_time(value: str) -> bool:
    if _DATE_TIME.fullmatch(value) is None:
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


def _invalid(kind: Kind, name: str, causes: list[tuple[str, str]]) -> kmock.KubernetesError:
    text = ", ".join(f"{field}: {message}" for field, message in causes)
    return error(
        422,
        "Invalid",
        f'{kind.kind}.{kind.group} "{name}" is invalid: [{text}]'
        if len(causes) > 1
        else f'{kind.kind}.{kind.group} "{name}" is invalid: {text}',
        name=name,
        group=kind.group,
        kind=kind.kind,
        causes=[
            {"reason": "FieldValueInvalid", "message": message, "field": field}
            for field, message in causes
        ],
    )
