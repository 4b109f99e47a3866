"""Request bodies in Kubernetes' protobuf encoding, decoded into the JSON a client would send.

kubectl's typed generators (``kubectl create namespace``, ``create secret``, ``create
configmap``) send their object as ``application/vnd.kubernetes.protobuf`` and do not fall back
to JSON when refused. The envelope is ``k8s\\x00`` followed by a ``runtime.Unknown`` message
whose ``raw`` field holds the object. The kinds those generators make that the emulator serves
are decoded here, with the field numbers of k8s.io/api's generated.proto; the empty values that
protobuf writes out (and JSON's ``omitempty`` leaves out) are dropped. Any other kind is refused
with 415, as before: kubectl's ``apply -f`` and ``create -f`` send JSON.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterator, Mapping
from typing import Any, Final

from .errors import error

MAGIC: Final = b"k8s\x00"
_MAX_VARINT_BYTES: Final = 10
_MAX_DEPTH: Final = 16

# A schema maps a field number to (JSON name, type). A type is a scalar name ("string",
# "bytes": base64 in JSON, "raw": bytes kept, "int", "bool", "time"), a nested schema, or
# ("map", value type) / ("list", item type).
Schema = Mapping[int, tuple[str, Any]]

_TIME: Final[Schema] = {1: ("seconds", "int"), 2: ("nanos", "int")}
_OWNER_REFERENCE: Final[Schema] = {
    1: ("kind", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
    6: ("controller", "bool"),
    7: ("blockOwnerDeletion", "bool"),
}
_OBJECT_META: Final[Schema] = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
    4: ("selfLink", "string"),
    5: ("uid", "string"),
    6: ("resourceVersion", "string"),
    7: ("generation", "int"),
    8: ("creationTimestamp", "time"),
    9: ("deletionTimestamp", "time"),
    10: ("deletionGracePeriodSeconds", "int"),
    11: ("labels", ("map", "string")),
    12: ("annotations", ("map", "string")),
    13: ("ownerReferences", ("list", _OWNER_REFERENCE)),
    14: ("finalizers", ("list", "string")),
    # 17: managedFields, which the server sets itself: skipped like any unknown field.
}
_KINDS: Final[Mapping[tuple[str, str], Schema]] = {
    ("v1", "Namespace"): {
        1: ("metadata", _OBJECT_META),
        2: ("spec", {1: ("finalizers", ("list", "string"))}),
        3: ("status", {1: ("phase", "string")}),
    },
    ("v1", "Secret"): {
        1: ("metadata", _OBJECT_META),
        2: ("data", ("map", "bytes")),
        3: ("type", "string"),
        4: ("stringData", ("map", "string")),
        5: ("immutable", "bool"),
    },
    ("v1", "ConfigMap"): {
        1: ("metadata", _OBJECT_META),
        2: ("data", ("map", "string")),
        3: ("binaryData", ("map", "bytes")),
        4: ("immutable", "bool"),
    },
}
_TYPE_META: Final[Schema] = {1: ("apiVersion", "string"), 2: ("kind", "string")}
_UNKNOWN: Final[Schema] = {
    1: ("typeMeta", _TYPE_META),
    2: ("raw", "raw"),
    3: ("contentEncoding", "string"),
    4: ("contentType", "string"),
}


def decode(data: bytes) -> dict[str, Any]:
    """The object of a protobuf request body, as JSON would carry it; 400 or 415 if it cannot be."""
    if not data.startswith(MAGIC):
        raise error(400, "BadRequest", "a protobuf body must start with the k8s envelope")
    envelope = _message(data[len(MAGIC) :], _UNKNOWN, 0)
    type_meta = envelope.get("typeMeta") or {}
    api_version, kind = str(type_meta.get("apiVersion", "")), str(type_meta.get("kind", ""))
    schema = _KINDS.get((api_version, kind))
    if schema is None:
        served = ", ".join(k for _, k in _KINDS)
        raise error(
            415,
            "UnsupportedMediaType",
            f"protobuf bodies are decoded for {served} only, not {api_version}/{kind}: send JSON",
        )
    if envelope.get("contentEncoding"):
        raise error(415, "UnsupportedMediaType", "encoded protobuf bodies are not served")
    obj = _message(bytes(envelope.get("raw") or b""), schema, 0)
    return {"apiVersion": api_version, "kind": kind, **obj}


def _message(data: bytes, schema: Schema, depth: int) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise error(400, "BadRequest", "protobuf body nested too deeply")
    out: dict[str, Any] = {}
    for number, wire, value in _fields(data):
        if number not in schema:
            continue
        name, kind = schema[number]
        if isinstance(kind, tuple) and kind[0] == "map":
            entry = _entry(_length_delimited(value, wire), kind[1], depth)
            out.setdefault(name, {}).update(entry)
        elif isinstance(kind, tuple) and kind[0] == "list":
            out.setdefault(name, []).append(_value(value, wire, kind[1], depth, keep_empty=True))
        else:
            out[name] = _value(value, wire, kind, depth, keep_empty=False)
    return {key: value for key, value in out.items() if not _empty(value)}


def _entry(data: bytes, value_type: Any, depth: int) -> dict[str, Any]:
    key, value = "", _value(b"", 2, value_type, depth, keep_empty=True)
    for number, wire, raw in _fields(data):
        if number == 1:
            key = _length_delimited(raw, wire).decode("utf-8")
        elif number == 2:
            value = _value(raw, wire, value_type, depth, keep_empty=True)
    return {key: value}


def _value(raw: Any, wire: int, kind: Any, depth: int, *, keep_empty: bool) -> Any:
    if isinstance(kind, Mapping):
        return _message(_length_delimited(raw, wire), kind, depth + 1)
    if kind == "time":
        parts = _message(_length_delimited(raw, wire), _TIME, depth + 1)
        if not parts and not keep_empty:
            return None
        moment = datetime.datetime.fromtimestamp(int(parts.get("seconds", 0)), datetime.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind in ("int", "bool"):
        if wire != 0:
            raise error(400, "BadRequest", "protobuf body: a number field is not a varint")
        number = int(raw)
        if kind == "bool":
            return number != 0
        return number - (1 << 64) if number >= 1 << 63 else number  # int64, two's complement
    data = _length_delimited(raw, wire)
    if kind == "string":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise error(400, "BadRequest", "protobuf body: a string is not UTF-8") from None
    if kind == "bytes":
        return base64.b64encode(data).decode("ascii")
    return data  # "raw"


def _length_delimited(raw: Any, wire: int) -> bytes:
    if wire != 2 or not isinstance(raw, bytes):
        raise error(400, "BadRequest", "protobuf body: a message or string field is not one")
    return raw


def _empty(value: Any) -> bool:
    """What JSON's ``omitempty`` leaves out (a map's or list's items are kept as they are)."""
    if isinstance(value, dict | list | str):
        return not value
    return value is None or value is False or (type(value) is int and value == 0)


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field of a protobuf message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise error(400, "BadRequest", "protobuf body: truncated")
            value, pos = data[pos : pos + length], pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(data):
                raise error(400, "BadRequest", "protobuf body: truncated")
            value, pos = data[pos : pos + size], pos + size
        else:
            raise error(400, "BadRequest", f"protobuf body: wire type {wire} is not served")
        yield number, wire, value


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    for shift in range(_MAX_VARINT_BYTES):
        if pos >= len(data):
            raise error(400, "BadRequest", "protobuf body: truncated")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << (7 * shift)
        if not byte & 0x80:
            return result, pos
    raise error(400, "BadRequest", "protobuf body: a varint is too long")
