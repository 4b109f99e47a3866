"""What the API server does to every object it stores: kind-specific fields, pruning, defaults."""

from __future__ import annotations

import base64
import copy
import datetime
from collections.abc import Iterable, Mapping
from typing import Any

import kmock

from .kinds import CRDS, NAMESPACES, SECRETS, Kind

Key = tuple[kmock.resource, str | None, str]  # how kmock files an object: resource, namespace, name


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def spec_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What generation counts: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def set_or_pop(mapping: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        mapping.pop(key, None)
    else:
        mapping[key] = value


def sorted_objects(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """In the order a real server lists them: by namespace, then name."""

    def key(obj: Mapping[str, Any]) -> tuple[str, str]:
        meta = obj.get("metadata", {})
        return (meta.get("namespace") or "", meta.get("name") or "")

    return sorted(items, key=key)


def normalize(kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the API server would store it (``obj`` may be changed in place)."""
    obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
    if kind is SECRETS:  # the API server folds stringData into data, base64-encoded
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = dict(obj.get("data") or {})
            for name, value in string_data.items():
                data[name] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data
        obj.setdefault("type", "Opaque")
    elif kind is NAMESPACES:
        terminating = obj["metadata"].get("deletionTimestamp")
        obj["status"] = {"phase": "Terminating" if terminating else "Active"}
    elif kind is CRDS:  # established at once; conditions keep their transition times
        conditions = (obj.get("status") or {}).get("conditions")
        obj["status"] = _crd_status(obj)
        obj["status"]["conditions"] = conditions or obj["status"]["conditions"]
    if kind.schema is not None:
        pruned = _structural(obj, kind.schema, root=True)
        assert isinstance(pruned, dict)
        obj = pruned
    return obj


def _crd_status(crd: Mapping[str, Any]) -> dict[str, Any]:
    spec = crd.get("spec") or {}
    timestamp = now()
    return {
        "acceptedNames": copy.deepcopy(spec.get("names") or {}),
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": timestamp,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": timestamp,
            },
        ],
        "storedVersions": [v["name"] for v in spec.get("versions") or () if v.get("storage")],
    }


def _structural(value: Any, schema: Mapping[str, Any], *, root: bool = False) -> Any:
    """Prune unknown fields and fill defaults, as the API server does for a structural schema."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        embedded = root or schema.get("x-kubernetes-embedded-resource") is True
        result: dict[str, Any] = {}
        for key, item in value.items():
            if embedded and key in ("apiVersion", "kind", "metadata"):
                result[key] = item  # object metadata is never pruned by the schema
            elif key in properties:
                result[key] = _structural(item, properties[key])
            elif isinstance(additional, Mapping):
                result[key] = _structural(item, additional)
            elif preserve or additional is True:
                result[key] = item
        for key, sub in properties.items():
            if key not in result and isinstance(sub, Mapping) and "default" in sub:
                result[key] = _structural(copy.deepcopy(sub["default"]), sub)
        return result
    items = schema.get("items")
    if isinstance(value, list) and isinstance(items, Mapping):
        return [_structural(item, items) for item in value]
    return value
