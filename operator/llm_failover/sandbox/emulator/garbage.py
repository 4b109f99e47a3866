"""Garbage collection: which objects go once their owners, or their namespace, are deleted.

kmock keeps no such rules. A real cluster collects in the background soon after a deletion;
the store asks for the orphans before it answers the deleting request, which keeps tests
deterministic.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import kmock

from .kinds import NAMESPACES, Kind
from .objects import Key


class Collector:
    """Remembers deleted owners (by uid) and namespaces, and finds what depended on them."""

    def __init__(self) -> None:
        self._deleted_uids: set[str] = set()
        self._deleted_namespaces: set[str] = set()
        self._pending = False

    @property
    def pending(self) -> bool:
        """Whether something was deleted since the orphans were last looked for."""
        return self._pending

    def created(self, kind: Kind, obj: Mapping[str, Any]) -> None:
        if kind is NAMESPACES:  # a namespace made anew holds nothing of its namesake
            self._deleted_namespaces.discard(obj["metadata"]["name"])

    def deleted(self, kind: Kind, key: Key, last: Mapping[str, Any]) -> None:
        uid = last.get("metadata", {}).get("uid")
        if uid:
            self._deleted_uids.add(uid)
        if kind is NAMESPACES:
            self._deleted_namespaces.add(key[2])
        self._pending = True

    def orphans(self, objects: kmock.ObjectsArray) -> list[tuple[Key, dict[str, Any]]]:
        """Copies of the stored objects to delete now: their owners or namespace are gone."""
        self._pending = False
        live = [(key, obj.raw) for key, obj in objects.items() if not obj.deleted]
        live_uids = {raw.get("metadata", {}).get("uid") for _, raw in live}
        return [
            (key, copy.deepcopy(raw)) for key, raw in live if self._orphaned(key, raw, live_uids)
        ]

    def _orphaned(self, key: Key, obj: Mapping[str, Any], live_uids: set[Any]) -> bool:
        meta = obj.get("metadata", {})
        if meta.get("deletionTimestamp"):
            return False
        if key[1] is not None and key[1] in self._deleted_namespaces:
            return True
        owners = {ref.get("uid") for ref in meta.get("ownerReferences") or ()}
        return bool(owners) and not owners & live_uids and bool(owners & self._deleted_uids)
