"""The object store: kmock's objects, written with the API server's semantics.

kmock merges every write into what it holds and keeps no metadata. Here a write through the
API (create, patch, replace, delete) or from a fixture sets uid, creationTimestamp,
resourceVersion and generation, keeps status behind its subresource, respects finalizers, makes
up generateName suffixes, registers CRDs and collects garbage, as the API server does.
"""

from __future__ import annotations

import asyncio
import copy
import random
import uuid
from typing import Any, Final

import aiohttp.web
import attrs
import kmock

from . import objects, patches, requests, validation
from .errors import error, not_found
from .garbage import Collector
from .kinds import CRDS, Kind, Registry
from .objects import Key, set_or_pop, spec_of

_NAME_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"  # the API server's generateName alphabet


class Store(kmock.KubernetesEmulator):
    """kmock's emulator with the API server's rules for writes."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.kinds = Registry(self.resources)
        self._revision = 0
        # kmock applies each write under its own lock, but a patch must read and write as one
        # step, so every write here is serialised by this lock (reads do not take it).
        self._write_lock = asyncio.Lock()
        self._garbage = Collector()

    # --- fixtures' operations ---------------------------------------------------------------

    async def read_object(self, key: Key) -> dict[str, Any] | None:
        return self._live(key)

    async def read_objects(
        self, resource: kmock.resource, namespace: str | None
    ) -> list[dict[str, Any]]:
        return objects.sorted_objects(
            [
                copy.deepcopy(obj.raw)
                for (res, ns, _), obj in self.objects.items()
                if res == resource and not obj.deleted and (namespace is None or ns == namespace)
            ]
        )

    async def store_object(self, obj: dict[str, Any]) -> None:
        kind = self.kinds.of_object(obj)
        meta = obj.setdefault("metadata", {})
        namespace = (meta.get("namespace") or "default") if kind.namespaced else None
        name = meta.get("name")
        if not name:
            raise ValueError("apply() needs metadata.name")
        key: Key = (kind.resource, namespace, name)
        async with self._write_lock:
            current = self._live(key)
            old_meta = current["metadata"] if current is not None else {}
            meta.setdefault("uid", old_meta.get("uid") or str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", old_meta.get("creationTimestamp") or objects.now())
            set_or_pop(meta, "namespace", namespace)
            set_or_pop(meta, "resourceVersion", old_meta.get("resourceVersion"))
            obj = objects.normalize(kind, obj)
            if "generation" not in meta:
                generation = int(old_meta.get("generation", 0))
                changed = current is None or spec_of(obj) != spec_of(current)
                meta["generation"] = generation + 1 if changed else generation
            request = _internal_request(kmock.method.POST, kmock.action.CREATE, key)
            if current is None:
                await self._insert(request, kind, obj)
            else:
                await self._store(request, kind, key, current, obj)
        await self._collect_garbage()

    async def remove_object(self, key: Key) -> bool:
        kind = self.kinds.get(key[0])
        async with self._write_lock:
            current = self._live(key)
            if current is None or kind is None:
                return False
            await self._delete_object(_deletion(key), kind, key, current)
        await self._collect_garbage()
        return True

    # --- writes through the API -------------------------------------------------------------

    async def _write(self, request: kmock.Request, kind: Kind) -> aiohttp.web.StreamResponse:
        method = str(request.method.value).upper()
        async with self._write_lock:
            if method == "POST" and request.name is None and not request.subresource:
                response = await self._create(request, kind)
            elif method == "PATCH" and request.name is not None:
                response = await self._patch(request, kind)
            elif method == "PUT" and request.name is not None:
                response = await self._replace(request, kind)
            elif method == "DELETE" and request.name is not None and not request.subresource:
                response = await self._delete_object(
                    request, kind, self._key(kind, request), self._require(kind, request)
                )
            else:
                raise error(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )
        await self._collect_garbage()
        return response

    async def _create(
        self, request: kmock.Request, kind: Kind, body: dict[str, Any] | None = None
    ) -> aiohttp.web.StreamResponse:
        obj = requests.body_object(request) if body is None else body
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise error(400, "BadRequest", "metadata must be an object")
        namespace = None
        if kind.namespaced:
            namespace = request.namespace or meta.get("namespace") or "default"
            if meta.get("namespace") not in (None, "", namespace):
                raise error(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not "
                    "match the namespace sent on the request",
                )
        name = meta.get("name") or self._generate_name(kind, namespace, meta.get("generateName"))
        if self._live((kind.resource, namespace, name)) is not None:
            raise error(
                409,
                "AlreadyExists",
                f'{kind.qualified} "{name}" already exists',
                name=name,
                group=kind.group,
                kind=kind.plural,
            )
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            meta.pop(field, None)
        meta.update(name=name, uid=str(uuid.uuid4()), creationTimestamp=objects.now(), generation=1)
        set_or_pop(meta, "namespace", namespace)
        if "status" in kind.subresources:
            obj.pop("status", None)  # set only through the status subresource
        response = await self._insert(request, kind, obj)
        if response.status == 200:
            response.set_status(201)
        return response

    async def _patch(self, request: kmock.Request, kind: Kind) -> aiohttp.web.StreamResponse:
        key = self._key(kind, request)
        content_type = requests.header(request, "Content-Type").split(";")[0].strip().lower()
        patch = requests.body(request)
        if (
            content_type == patches.APPLY_PATCH
            and self._live(key) is None
            and isinstance(patch, dict)
        ):
            # Server-side apply creates what does not exist yet.
            patch.setdefault("metadata", {})["name"] = request.name
            creation = attrs.evolve(request, method=kmock.method.POST, name=None, subresource=None)
            return await self._create(creation, kind, patch)
        current = self._require(kind, request)
        new = patches.patched(current, patch, content_type=content_type, kind=kind)
        return await self._update(request, kind, current, new)

    async def _replace(self, request: kmock.Request, kind: Kind) -> aiohttp.web.StreamResponse:
        current = self._require(kind, request)
        new = requests.body_object(request)
        patches.check_resource_version(new, current)
        return await self._update(request, kind, current, new)

    async def _update(
        self, request: kmock.Request, kind: Kind, current: dict[str, Any], new: Any
    ) -> aiohttp.web.StreamResponse:
        if not isinstance(new, dict) or not isinstance(new.setdefault("metadata", {}), dict):
            raise error(422, "Invalid", "the object must be a JSON object with metadata")
        # The status subresource changes only status; the main resource never changes status.
        if request.subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(current)
            set_or_pop(new, "status", status)
        elif "status" in kind.subresources:
            set_or_pop(new, "status", copy.deepcopy(current.get("status")))
        meta, old_meta = new["metadata"], current["metadata"]
        for field in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ):
            set_or_pop(meta, field, old_meta.get(field))
        new = objects.normalize(kind, new)
        validation.admit(kind, new)
        if spec_of(new) != spec_of(current):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        return await self._store(request, kind, self._key(kind, request), current, new)

    # --- storage ----------------------------------------------------------------------------

    async def _insert(
        self, request: kmock.Request, kind: Kind, obj: dict[str, Any]
    ) -> aiohttp.web.StreamResponse:
        obj = objects.normalize(kind, obj)
        validation.admit(kind, obj)
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        namespace = obj["metadata"].get("namespace") if kind.namespaced else None
        self._garbage.created(kind, obj)
        create = attrs.evolve(request, action=kmock.action.CREATE, namespace=namespace, data=obj)
        response = await self._kmock_handle(create)
        if kind is CRDS:
            self.kinds.add_crd(obj)
        return response

    async def _store(
        self,
        request: kmock.Request,
        kind: Kind,
        key: Key,
        current: dict[str, Any],
        new: dict[str, Any],
    ) -> aiohttp.web.StreamResponse:
        if new == current:  # as a real server does: no new version, no watch event
            return aiohttp.web.json_response(current)
        self._revision += 1
        new["metadata"]["resourceVersion"] = str(self._revision)
        # kmock merges a dict patch (it cannot drop keys or shorten lists); a root "replace" in
        # JSON-patch form makes it store exactly this object and tell the watchers.
        update = attrs.evolve(
            request,
            action=kmock.action.UPDATE,
            namespace=key[1],
            name=key[2],
            data=[{"op": "replace", "path": "", "value": new}],
        )
        response = await self._kmock_handle(update)
        if self._live(key) is None:  # deletionTimestamp set, last finalizer gone: kmock deleted it
            self._note_deletion(kind, key, new)
        elif kind is CRDS:
            self.kinds.add_crd(new)
        return response

    async def _delete_object(
        self, request: kmock.Request, kind: Kind, key: Key, current: dict[str, Any]
    ) -> aiohttp.web.StreamResponse:
        meta = current["metadata"]
        if meta.get("deletionTimestamp"):
            return aiohttp.web.json_response(current)
        if meta.get("finalizers"):  # marked for deletion; deleted when the finalizers are gone
            new = copy.deepcopy(current)
            new["metadata"].update(deletionTimestamp=objects.now(), deletionGracePeriodSeconds=0)
            new["metadata"]["generation"] = int(meta.get("generation", 1)) + 1
            return await self._store(request, kind, key, current, new)
        response = await self._kmock_handle(
            attrs.evolve(request, method=kmock.method.DELETE, action=kmock.action.DELETE)
        )
        self._note_deletion(kind, key, current)
        return response

    def _note_deletion(self, kind: Kind, key: Key, last: dict[str, Any]) -> None:
        if kind is CRDS:
            self.kinds.remove_crd(last)
        self._garbage.deleted(kind, key, last)

    async def _collect_garbage(self) -> None:
        # Deleting an orphan may orphan others (its dependents), hence the loop.
        while self._garbage.pending:
            async with self._write_lock:
                for key, current in self._garbage.orphans(self.objects):
                    kind = self.kinds.get(key[0])
                    if kind is not None:
                        await self._delete_object(_deletion(key), kind, key, current)

    async def _kmock_handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # kmock's reactions match only requests found (by identity) in its request log, and
        # scan the whole log each time. Matching is synchronous and nothing here reads the log
        # afterwards, so it holds just the request being served: rewritten and made-up requests
        # match, and long demos do not slow down or grow.
        self._requests[:] = [request]
        response: aiohttp.web.StreamResponse = await super()._handle(request)
        self._trim(request)
        return response

    def _trim(self, request: kmock.Request) -> None:
        """kmock keeps every version of an object; the API server keeps the current one. Two
        are kept here (a deletion marker needs the last state before it), so a demo left
        running for days holds what it serves, not its history."""
        if request.resource is None or request.name is None:
            return
        found = self.objects._objects.get((request.resource, request.namespace, request.name))
        if found is not None and len(found.history) > 2:
            del found.history[:-2]

    def _KubernetesEmulator__get_objs(  # kmock's private lookup, by its mangled name
        self, request: kmock.Request, strict: bool
    ) -> list[Any]:
        """kmock finds an object by scanning every object of every kind: at 10,000 routes the
        emulator spent more CPU on that than the operator did. A request naming its object is
        a dict lookup here; lists and watches still scan (they read many objects anyway)."""
        if request.name is not None and request.resource is not None and strict:
            found = self.objects._objects.get((request.resource, request.namespace, request.name))
            return [] if found is None else [found]
        scan: list[Any] = super()._KubernetesEmulator__get_objs(request, strict)  # type: ignore[misc]
        return scan

    # --- small helpers ----------------------------------------------------------------------

    def _key(self, kind: Kind, request: kmock.Request) -> Key:
        return (kind.resource, request.namespace if kind.namespaced else None, request.name or "")

    def _live(self, key: Key) -> dict[str, Any] | None:
        if key not in self.objects:
            return None
        obj = self.objects[key]
        return None if obj.deleted else copy.deepcopy(obj.raw)

    def _require(self, kind: Kind, request: kmock.Request) -> dict[str, Any]:
        current = self._live(self._key(kind, request))
        if current is None:
            raise not_found(kind, request.name or "")
        return current

    def _generate_name(self, kind: Kind, namespace: str | None, prefix: Any) -> str:
        if not prefix or not isinstance(prefix, str):
            raise error(422, "Invalid", "name or generateName is required")
        while True:
            name = prefix + "".join(random.choices(_NAME_ALPHABET, k=5))
            if self._live((kind.resource, namespace, name)) is None:
                return name


def _internal_request(method: kmock.method, action: kmock.action, key: Key) -> kmock.Request:
    """A request made up for a write that came from a fixture or the garbage collector."""
    resource, namespace, name = key
    return kmock.Request(
        method=method, action=action, resource=resource, namespace=namespace, name=name
    )


def _deletion(key: Key) -> kmock.Request:
    return _internal_request(kmock.method.DELETE, kmock.action.DELETE, key)
