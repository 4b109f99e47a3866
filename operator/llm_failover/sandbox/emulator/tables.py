"""kubectl's server-side printing: meta.k8s.io/v1 Tables with a CRD's printer columns."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping, Sequence
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
    """A meta.k8s.io/v1 Table, as kubectl asks for: the API server's columns for the built-in
    kinds it prints (Events: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE, ...), else NAME, the
    CRD's printer columns and AGE."""
    printer = _BUILTIN_PRINTERS.get((kind.group, kind.plural))
    if printer is not None:
        columns, cells_of = printer
        return _table(columns, [(obj, cells_of(obj)) for obj in objects], revision)
    return _custom_table(kind, objects, revision=revision)


def _table(
    columns: Sequence[Mapping[str, Any]],
    rows: Sequence[tuple[Mapping[str, Any], list[Any]]],
    revision: int,
) -> dict[str, Any]:
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(revision)},
        "columnDefinitions": list(columns),
        "rows": [
            {
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.get("metadata", {}),
                },
            }
            for obj, cells in rows
        ],
    }


def _custom_table(kind: Kind, objects: Sequence[Any], *, revision: int) -> dict[str, Any]:
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
        rows.append((obj, cells))
    return _table(columns, rows, revision)


# --- the API server's own printers for built-in kinds (k8s.io/kubernetes/pkg/printers) -------


def _column(
    name: str, description: str, type_: str = "string", *, priority: int = 0, format_: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "type": type_,
        "format": format_,
        "description": description,
        "priority": priority,
    }


_NAME: Final = _column("Name", "Name of the object", format_="name")
_AGE: Final = _column("Age", "Time since the object was created")


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _created(obj: Mapping[str, Any]) -> str:
    return _age((obj.get("metadata") or {}).get("creationTimestamp"))


def _event_cells(obj: Mapping[str, Any]) -> list[Any]:
    """printEvent, wide (the server always sends every column; kubectl hides priority 1)."""
    # events.k8s.io/v1 names the fields of core/v1 differently; the server prints both alike.
    involved = obj.get("involvedObject") or obj.get("regarding") or {}
    first = obj.get("firstTimestamp") or obj.get("deprecatedFirstTimestamp")
    last = obj.get("lastTimestamp") or obj.get("deprecatedLastTimestamp")
    count = obj.get("count") or obj.get("deprecatedCount") or 0
    first_seen = _age(first) if first else _age(obj.get("eventTime"))
    last_seen = _age(last) if last else first_seen
    series = obj.get("series")
    if isinstance(series, Mapping):
        last_seen = _age(series.get("lastObservedTime"))
        count = series.get("count") or 0
    source = obj.get("source") or obj.get("deprecatedSource") or {}
    component = source.get("component") or obj.get("reportingComponent") or ""
    if not component:  # events.k8s.io/v1
        component = obj.get("reportingController") or ""
    instance = source.get("host") or obj.get("reportingInstance") or ""
    involved_kind = str(involved.get("kind", "")).lower()
    name = involved.get("name")
    return [
        last_seen,
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{involved_kind}/{name}" if name else involved_kind,
        involved.get("fieldPath", ""),
        f"{component}, {instance}" if component and instance else component,
        str(obj.get("message") or obj.get("note") or "").strip(),
        first_seen,
        int(count) or 1,  # singleton events of the new API have no count
        _name(obj),
    ]


_EVENT_COLUMNS: Final = (
    _column("Last Seen", "Time when the event was last seen"),
    _column("Type", "Type of this event (Normal, Warning)"),
    _column("Reason", "A short, machine understandable string for the transition"),
    _column("Object", "The object that this event is about"),
    _column("Subobject", "The field of the object the event is about", priority=1),
    _column("Source", "The component reporting this event", priority=1),
    _column("Message", "A human-readable description of the status of this operation"),
    _column("First Seen", "Time when the event was first recorded", priority=1),
    _column("Count", "The number of times this event has occurred", priority=1),
    _column("Name", "Name of the object", priority=1, format_="name"),
)


def _data_count(obj: Mapping[str, Any]) -> int:
    return len(obj.get("data") or {}) + len(obj.get("binaryData") or {})


def _lease_holder(obj: Mapping[str, Any]) -> str:
    return str((obj.get("spec") or {}).get("holderIdentity") or "")


def _crd_created(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("creationTimestamp") or "")


_Printer = tuple[Sequence[Mapping[str, Any]], Callable[[Mapping[str, Any]], list[Any]]]
_BUILTIN_PRINTERS: Final[Mapping[tuple[str, str], _Printer]] = {
    ("", "events"): (_EVENT_COLUMNS, _event_cells),
    ("events.k8s.io", "events"): (_EVENT_COLUMNS, _event_cells),
    ("", "configmaps"): (
        (_NAME, _column("Data", "Number of data entries", "integer"), _AGE),
        lambda obj: [_name(obj), _data_count(obj), _created(obj)],
    ),
    ("", "secrets"): (
        (
            _NAME,
            _column("Type", "The type of the secret"),
            _column("Data", "Number of data entries", "integer"),
            _AGE,
        ),
        lambda obj: [_name(obj), obj.get("type", ""), _data_count(obj), _created(obj)],
    ),
    ("", "namespaces"): (
        (_NAME, _column("Status", "The status of the namespace"), _AGE),
        lambda obj: [_name(obj), (obj.get("status") or {}).get("phase", ""), _created(obj)],
    ),
    ("coordination.k8s.io", "leases"): (
        (_NAME, _column("Holder", "The holder of the lease"), _AGE),
        lambda obj: [_name(obj), _lease_holder(obj), _created(obj)],
    ),
    ("apiextensions.k8s.io", "customresourcedefinitions"): (
        (_NAME, _column("Created At", "When the object was created", "date")),
        lambda obj: [_name(obj), _crd_created(obj)],
    ),
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
    """Time since `timestamp`, as the API server prints it (apimachinery's HumanDuration)."""
    try:
        then = datetime.datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    if then.tzinfo is None:
        then = then.replace(tzinfo=datetime.UTC)
    return human_duration((datetime.datetime.now(datetime.UTC) - then).total_seconds())


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration: 45s, 3m20s, 15m, 5h10m, 3d4h, 2y146d."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        return f"{minutes}m{whole % 60}s" if whole % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"
