"""Label and field selectors, which kmock ignores, for lists and watches."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import kmock

_SET_TERM: Final = re.compile(
    r"\s*(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)\s*"
)
_TERM_SPLIT: Final = re.compile(r",(?![^()]*\))")


@dataclasses.dataclass(frozen=True)
class Selector:
    """A request's labelSelector and fieldSelector."""

    labels: tuple[Callable[[Mapping[str, Any]], bool], ...] = ()
    fields: tuple[tuple[str, str, bool], ...] = ()  # (dotted path, value, equal?)

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> Selector:
        labels = tuple(
            _label_term(term)
            for term in _TERM_SPLIT.split(params.get("labelSelector", ""))
            if term.strip()
        )
        fields = []
        for term in params.get("fieldSelector", "").split(","):
            if not term.strip():
                continue
            equal = "!=" not in term
            path, _, value = term.partition("!=" if not equal else "==" if "==" in term else "=")
            fields.append((path.strip(), value.strip(), equal))
        return cls(labels, tuple(fields))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if not all(term(labels) for term in self.labels):
            return False
        return all((field_text(obj, path) == value) == equal for path, value, equal in self.fields)


def in_scope(request: kmock.Request, obj: Mapping[str, Any], selector: Selector) -> bool:
    """Whether a watch event's object is one the request asked for."""
    meta = obj.get("metadata") or {}
    return (
        (request.namespace is None or meta.get("namespace") == request.namespace)
        and (request.name is None or meta.get("name") == request.name)
        and selector.matches(obj)
    )


def _label_term(term: str) -> Callable[[Mapping[str, Any]], bool]:
    if match := _SET_TERM.fullmatch(term):
        key, values = match["key"], {v.strip() for v in match["values"].split(",") if v.strip()}
        if match["op"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    for op in ("!=", "==", "="):
        if op in term:
            key, _, value = (part.strip() for part in term.partition(op))
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    key = term.strip()
    if key.startswith("!"):
        return lambda labels: key[1:].strip() not in labels
    return lambda labels: key in labels


def field_text(obj: Mapping[str, Any], path: str) -> str:
    """A field's value at a dotted path, as text the way field selectors compare it."""
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
