"""kubectl's server-side printing: meta.k8s.io/v1 Tables with a CRD's printer columns."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import kmock

from .kinds import Kind
from .requests import header
from .selectors import field_text

_JSON_PATH_STEP: Final = re.compile(
    r"\.(?P<field>[\w-]+)|\[(?P<index>-?\d+)\]"
    r"|\[\?\(@\.(?P<key>[\w.-]+)\s*==\s*['\"](?P<value>[^'\"]*)['\"]\)\]"
)


def wants_table(request: kmock.Request) -> bool:
    return "as=Table" in header(request, "Accept")


def table(kind: Kind, objects: Sequence[Any], *, revision: int) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table, as kubectl asks for: NAME, the CRD's printer columns, AGE."""
    columns: list[Mapping[str, Any]] = [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "description": "Name of the object",
            "priority": 0,
        }
    ]
    printer = list(kind.printer_columns)
    columns += [
        {
            "name": c.get("name", ""),
            "type": c.get("type", "string"),
            "format": c.get("format", ""),
            "description": c.get("description", ""),
            "priority": c.get("priority", 0),
        }
        for c in printer
    ]
    has_age = any(c.get("jsonPath") == ".metadata.creationTimestamp" for c in printer)
    if not has_age:
        columns.append(
            {
                "name": "Age",
                "type": "string",
                "format": "",
                "priority": 0,
                "description": "Time since the object was created",
            }
        )
    rows = []
    for obj in objects:
        meta = obj.get("metadata", {})
        cells: list[Any] = [meta.get("name", "")]
        for column in printer:
            value = _json_path(obj, str(column.get("jsonPath", "")))
            if column.get("type") == "date" and isinstance(value, str):
                value = _age(value)
            cells.append("<none>" if value is None else value)
        if not has_age:
            cells.append(_age(meta.get("creationTimestamp")))
        rows.append(
            {
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                },
            }
        )
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(revision)},
        "columnDefinitions": columns,
        "rows": rows,
    }


def _json_path(obj: Any, path: str) -> Any:
    """The subset of JSONPath printer columns use: .a.b, [0], [?(@.type=="Ready")]."""
    value = obj
    for step in _JSON_PATH_STEP.finditer(path.strip().removeprefix("$")):
        if step["field"] is not None:
            value = value.get(step["field"]) if isinstance(value, Mapping) else None
        elif step["index"] is not None:
            index = int(step["index"])
            value = (
                value[index]
                if isinstance(value, list) and -len(value) <= index < len(value)
                else None
            )
        elif isinstance(value, list):
            value = next(
                (
                    item
                    for item in value
                    if isinstance(item, Mapping) and field_text(item, step["key"]) == step["value"]
                ),
                None,
            )
        else:
            value = None
        if value is None:
            return None
    return value


def _age(timestamp: Any) -> str:
    try:
        then = datetime.datetime.strptime(str(timestamp), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return "<unknown>"
    seconds = int(
        (datetime.datetime.now(datetime.UTC) - then.replace(tzinfo=datetime.UTC)).total_seconds()
    )
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * 2 or (unit == "m" and seconds >= size):
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"
