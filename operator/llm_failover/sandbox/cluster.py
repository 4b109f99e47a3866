"""An in-process Kubernetes API on loopback, built on kmock's emulator, for tests and the demo.

kmock's ``KubernetesEmulator`` stores objects and serves discovery, lists, watches and merge
patches. The subclass below fills in what clients (the ``kubernetes`` package, kubectl, kopf)
rely on and kmock does not do (each gap is named where it is closed): namespaces as a resource,
``kind`` on lists, PUT, JSON and strategic-merge patches, resourceVersion and generation, uid and
creationTimestamp, generateName, the status subresource, label and field selectors, Secret
``stringData``, CRD registration, pruning and defaulting, owner-reference garbage collection, and
kubectl's server-side table printing.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import copy
import dataclasses
import datetime
import json
import random
import re
import socket
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import aiohttp.web
import attrs
import jsonpatch
import jsonpointer
import kmock
import yaml

__all__ = ["EmulatedCluster"]

_T = TypeVar("_T")
_Key = tuple[kmock.resource, str | None, str]

_VERBS: Final = ("create", "delete", "get", "list", "patch", "update", "watch")
_NAME_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"  # the API server's generateName alphabet
_CALL_TIMEOUT_SECONDS: Final = 30.0
_START_TIMEOUT_SECONDS: Final = 30.0

# kmock parses /api/v1/namespaces/NAME as "namespace NAME, no resource", so these paths are
# recognised here and turned into requests for the cluster-scoped resource v1/namespaces.
_NAMESPACE_PATH: Final = re.compile(
    r"/api/v1/namespaces(?:/(?P<name>[^/]+)(?:/(?P<sub>status))?)?/?"
)

_JSON_PATCH: Final = "application/json-patch+json"
_MERGE_PATCH: Final = "application/merge-patch+json"
_STRATEGIC_PATCH: Final = "application/strategic-merge-patch+json"
_APPLY_PATCH: Final = "application/apply-patch+yaml"


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Kind:
    """What the emulator knows of one served resource (one group/version/plural)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    list_kind: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    printer_columns: tuple[Mapping[str, Any], ...] = ()
    schema: Mapping[str, Any] | None = None
    custom: bool = False  # served from a CRD: the API server refuses strategic-merge patches

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> kmock.resource:
        return kmock.resource(self.group, self.version, self.plural)

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _builtin(
    api_version: str, plural: str, kind: str, short: str = "", *, scope: str = "ns", sub: str = ""
) -> _Kind:
    group, _, version = api_version.rpartition("/")
    return _Kind(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=scope == "ns",
        short_names=tuple(short.split()),
        categories=("all",) if group == "apps" else (),
        subresources=tuple(sub.split()),
    )


_NAMESPACES: Final = _builtin("v1", "namespaces", "Namespace", "ns", scope="cluster", sub="status")
_SECRETS: Final = _builtin("v1", "secrets", "Secret")
_CRDS: Final = _builtin(
    "apiextensions.k8s.io/v1",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    "crd crds",
    scope="cluster",
    sub="status",
)
_BUILTIN_KINDS: Final = (
    _NAMESPACES,
    _SECRETS,
    _CRDS,
    _builtin("v1", "configmaps", "ConfigMap", "cm"),
    _builtin("v1", "events", "Event", "ev"),
    _builtin("events.k8s.io/v1", "events", "Event", "ev"),
    _builtin("apps/v1", "deployments", "Deployment", "deploy", sub="status"),
    _builtin("apps/v1", "statefulsets", "StatefulSet", "sts", sub="status"),
    _builtin("apps/v1", "daemonsets", "DaemonSet", "ds", sub="status"),
    _builtin("coordination.k8s.io/v1", "leases", "Lease"),
)


class EmulatedCluster:
    """An in-process Kubernetes API (kmock) on loopback, for tests and the demo.

    The API is served from a thread of its own with its own event loop, so synchronous tests,
    a synchronous CLI and code on any other event loop can all talk to it over HTTP. The helper
    methods are thread-safe; each blocks only for one in-memory operation (do not call them from
    the cluster's own thread). Objects written with the helpers are seen by watchers exactly as
    if they had been written through the API.
    """

    def __init__(self, *, crd_paths: Sequence[Path] = ()) -> None:
        self._crd_paths = tuple(Path(path) for path in crd_paths)
        self._log: list[tuple[str, str]] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._emulator: _Emulator | None = None
        self._stopping: asyncio.Event | None = None
        self._url: str | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start serving; returns once the API answers. CRD files are read here, so errors raise."""
        if self._thread is not None:
            raise RuntimeError("The emulated cluster is already running.")
        crds = [doc for path in self._crd_paths for doc in _read_crds(path)]
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        thread = threading.Thread(
            target=asyncio.run,
            args=(self._serve(crds, started),),
            name="emulated-cluster",
            daemon=True,
        )
        self._thread = thread
        thread.start()
        try:
            started.result(timeout=_START_TIMEOUT_SECONDS)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop serving and close open watch streams. Stored objects are dropped."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=_START_TIMEOUT_SECONDS)
        self._thread = self._loop = self._emulator = self._stopping = None
        self._url = None

    @property
    def url(self) -> str:
        """The API's base URL, e.g. ``http://127.0.0.1:40123``."""
        if self._url is None:
            raise RuntimeError("The emulated cluster is not running.")
        return self._url

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(HTTP method, path) of every API request received so far, oldest first."""
        return list(self._log)

    def write_kubeconfig(self, path: Path, *, namespace: str = "default") -> Path:
        """Write a kubeconfig pointing at this API (context ``emulated``) and return its path."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulated", "cluster": {"server": self.url}}],
            # Some clients refuse to run without credentials; the emulator ignores them.
            "users": [{"name": "emulated", "user": {"token": "emulated"}}],
            "contexts": [
                {
                    "name": "emulated",
                    "context": {"cluster": "emulated", "user": "emulated", "namespace": namespace},
                }
            ],
            "current-context": "emulated",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    def add_namespace(self, name: str) -> None:
        """Create a namespace (no-op if it exists)."""
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def get(
        self,
        *,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
    ) -> dict[str, Any] | None:
        """The stored object (a copy), or None if absent. ``namespace=None`` for cluster scope."""
        key = (kmock.resource(group, version, plural), namespace, name)
        return self._call(lambda emulator: emulator.read_object(key))

    def objects(
        self,
        *,
        group: str,
        version: str,
        plural: str,
        namespace: str | None = None,
    ) -> list[dict[str, Any]]:
        """Copies of the stored objects of a resource, in one namespace or (None) in all."""
        resource = kmock.resource(group, version, plural)
        return self._call(lambda emulator: emulator.read_objects(resource, namespace))

    def apply(self, obj: Mapping[str, Any]) -> None:
        """Create or replace an object as given, ``status`` included (for fixtures).

        Unlike a write through the API, ``status`` is taken as given whatever the subresources;
        uid and creationTimestamp are kept from the stored object or the given one, else made up.
        Watchers see ADDED or MODIFIED as for an API write; an identical object changes nothing.
        """
        body = copy.deepcopy(dict(obj))
        self._call(lambda emulator: emulator.store_object(body))

    def delete(
        self,
        *,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
    ) -> bool:
        """Delete as the API would (finalizers respected, dependents collected); False if absent."""
        key = (kmock.resource(group, version, plural), namespace, name)
        return self._call(lambda emulator: emulator.remove_object(key))

    def _call(self, fn: Callable[[_Emulator], Coroutine[Any, Any, _T]]) -> _T:
        loop, emulator = self._loop, self._emulator
        if loop is None or emulator is None:
            raise RuntimeError("The emulated cluster is not running.")
        if threading.current_thread() is self._thread:
            raise RuntimeError("Blocking helpers cannot be called from the cluster's own thread.")
        future = asyncio.run_coroutine_threadsafe(fn(emulator), loop)
        return future.result(timeout=_CALL_TIMEOUT_SECONDS)

    async def _serve(
        self,
        crds: Sequence[Mapping[str, Any]],
        started: concurrent.futures.Future[None],
    ) -> None:
        try:
            emulator = _Emulator()
            emulator.log = self._log
            stopping = asyncio.Event()
            async with emulator:
                for name in ("default", "kube-system"):
                    await emulator.store_object(
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                    )
                for crd in crds:
                    await emulator.store_object(copy.deepcopy(dict(crd)))
                # handler_cancellation: a client that hangs up ends its watch stream at once.
                server = aiohttp.web.Server(emulator, handler_cancellation=True, access_log=None)
                runner = aiohttp.web.ServerRunner(server, shutdown_timeout=0.5)
                await runner.setup()
                try:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.bind(("127.0.0.1", 0))
                    await aiohttp.web.SockSite(runner, sock).start()
                    port = sock.getsockname()[1]
                    self._loop, self._emulator, self._stopping = (
                        asyncio.get_running_loop(),
                        emulator,
                        stopping,
                    )
                    self._url = f"http://127.0.0.1:{port}"
                    started.set_result(None)
                    await stopping.wait()
                finally:
                    await runner.cleanup()
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
                return
            raise


class _Emulator(kmock.KubernetesEmulator):
    """kmock's emulator with the API-server behaviour that kopf, kubectl and clients rely on."""

    log: list[tuple[str, str]]

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.log = []
        self.kinds: dict[tuple[str, str, str], _Kind] = {}
        self._revision = 0
        # kmock applies each write under its own lock, but a patch must read and write as one
        # step, so every write here is serialised by this lock (reads do not take it).
        self._write_lock = asyncio.Lock()
        self._deleted_uids: set[str] = set()
        self._deleted_namespaces: set[str] = set()
        self._gc_pending = False
        for kind in _BUILTIN_KINDS:
            self._register(kind)

    # --- entry points -----------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        self.log.append((raw_request.method, raw_request.path))
        match = _NAMESPACE_PATH.fullmatch(raw_request.path)
        if match is None:
            response: aiohttp.web.StreamResponse = await super().__call__(raw_request)
            return response
        request = await _namespace_request(raw_request, name=match["name"], sub=match["sub"])
        try:
            return await self._handle(request)
        except Exception as exc:  # rendered as a Kubernetes Status, as kmock does elsewhere
            error: aiohttp.web.StreamResponse = await self._render_error(exc)
            return error

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        resource = request.resource
        if request.url.path.startswith("/openapi/"):
            return self._openapi(request.url.path.rstrip("/"))
        if resource is None or resource.plural is None:  # not an API object path: discovery etc.
            return await self._kmock_handle(request)
        kind = self.kinds.get(_kind_key(resource))
        if kind is None or (request.subresource and request.subresource not in kind.subresources):
            raise _error(404, "NotFound", "the server could not find the requested resource")
        method = str(request.method.value).upper()
        if method == "GET":
            if _is_true(request.params.get("watch")):
                return await self._watch(request, kind)
            return await self._kmock_handle(request)
        async with self._write_lock:
            if method == "POST" and request.name is None and not request.subresource:
                response = await self._create(request, kind)
            elif method == "PATCH" and request.name is not None:
                response = await self._patch(request, kind)
            elif method == "PUT" and request.name is not None:
                response = await self._replace(request, kind)
            elif method == "DELETE" and request.name is not None and not request.subresource:
                response = await self._delete(request, kind)
            else:
                raise _error(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )
        await self._collect_garbage()
        return response

    async def _kmock_handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # kmock's reactions match only requests found (by identity) in its request log, and
        # scan the whole log each time. Matching is synchronous and nothing here reads the log
        # afterwards, so it holds just the request being served: rewritten and made-up requests
        # match, and long demos do not slow down or grow.
        self._requests[:] = [request]
        response: aiohttp.web.StreamResponse = await super()._handle(request)
        return response

    # --- helpers' operations (run on the emulator's loop) -------------------------------------

    async def read_object(self, key: _Key) -> dict[str, Any] | None:
        return self._live(key)

    async def read_objects(
        self, resource: kmock.resource, namespace: str | None
    ) -> list[dict[str, Any]]:
        return _sorted(
            [
                copy.deepcopy(obj.raw)
                for (res, ns, _), obj in self.objects.items()
                if res == resource and not obj.deleted and (namespace is None or ns == namespace)
            ]
        )

    async def store_object(self, obj: dict[str, Any]) -> None:
        kind = self._kind_of_object(obj)
        meta = obj.setdefault("metadata", {})
        namespace = (meta.get("namespace") or "default") if kind.namespaced else None
        name = meta.get("name")
        if not name:
            raise ValueError("apply() needs metadata.name")
        key: _Key = (kind.resource, namespace, name)
        async with self._write_lock:
            current = self._live(key)
            old_meta = current["metadata"] if current is not None else {}
            meta.setdefault("uid", old_meta.get("uid") or str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", old_meta.get("creationTimestamp") or _now())
            _set_or_pop(meta, "namespace", namespace)
            _set_or_pop(meta, "resourceVersion", old_meta.get("resourceVersion"))
            obj = self._normalize(kind, obj)
            if "generation" not in meta:
                generation = int(old_meta.get("generation", 0))
                changed = current is None or _spec_of(obj) != _spec_of(current)
                meta["generation"] = generation + 1 if changed else generation
            synthetic = kmock.Request(
                method=kmock.method.POST,
                action=kmock.action.CREATE,
                resource=kind.resource,
                namespace=namespace,
                name=name,
            )
            if current is None:
                await self._insert(synthetic, kind, obj)
            else:
                await self._store(synthetic, kind, key, current, obj)
        await self._collect_garbage()

    async def remove_object(self, key: _Key) -> bool:
        resource, namespace, name = key
        kind = self.kinds.get(_kind_key(resource))
        async with self._write_lock:
            current = self._live(key)
            if current is None or kind is None:
                return False
            synthetic = kmock.Request(
                method=kmock.method.DELETE,
                action=kmock.action.DELETE,
                resource=resource,
                namespace=namespace,
                name=name,
            )
            await self._delete_object(synthetic, kind, key, current)
        await self._collect_garbage()
        return True

    # --- writes through the API -------------------------------------------------------------

    async def _create(
        self, request: kmock.Request, kind: _Kind, body: dict[str, Any] | None = None
    ) -> aiohttp.web.StreamResponse:
        obj = _body_object(request) if body is None else body
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise _error(400, "BadRequest", "metadata must be an object")
        namespace = None
        if kind.namespaced:
            namespace = request.namespace or meta.get("namespace") or "default"
            if meta.get("namespace") not in (None, "", namespace):
                raise _error(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not "
                    "match the namespace sent on the request",
                )
        name = meta.get("name") or self._generate_name(kind, namespace, meta.get("generateName"))
        if self._live((kind.resource, namespace, name)) is not None:
            raise _error(
                409,
                "AlreadyExists",
                f'{kind.qualified} "{name}" already exists',
                name=name,
                group=kind.group,
                kind=kind.plural,
            )
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            meta.pop(field, None)
        meta.update(name=name, uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        _set_or_pop(meta, "namespace", namespace)
        if "status" in kind.subresources:
            obj.pop("status", None)  # set only through the status subresource
        response = await self._insert(request, kind, obj)
        if response.status == 200:
            response.set_status(201)
        return response

    async def _patch(self, request: kmock.Request, kind: _Kind) -> aiohttp.web.StreamResponse:
        key = self._key(kind, request)
        content_type = _header(request, "Content-Type").split(";")[0].strip().lower()
        patch = _body(request)
        if content_type == _APPLY_PATCH and self._live(key) is None and isinstance(patch, dict):
            # Server-side apply creates what does not exist yet.
            patch.setdefault("metadata", {})["name"] = request.name
            creation = attrs.evolve(request, method=kmock.method.POST, name=None, subresource=None)
            return await self._create(creation, kind, patch)
        current = self._require(kind, key)
        if content_type == _JSON_PATCH:
            if not isinstance(patch, list):
                raise _error(400, "BadRequest", "a JSON patch must be a list of operations")
            try:
                new = jsonpatch.apply_patch(current, patch)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
                # kopf expects 422 when its resourceVersion "test" fails, as a real server says.
                raise _error(422, "Invalid", f"the JSON patch could not be applied: {exc}") from exc
        elif content_type in (_MERGE_PATCH, _STRATEGIC_PATCH, _APPLY_PATCH):
            if content_type == _STRATEGIC_PATCH and kind.custom:
                raise _error(
                    415,
                    "UnsupportedMediaType",
                    "strategic merge patch is not supported for custom resources",
                )
            if not isinstance(patch, dict):
                raise _error(400, "BadRequest", "a merge patch must be an object")
            _check_resource_version(patch, current)
            new = _merge(current, patch, strategic=content_type == _STRATEGIC_PATCH)
        else:
            raise _error(415, "UnsupportedMediaType", f"unsupported patch type {content_type!r}")
        return await self._update(request, kind, key, current, new)

    async def _replace(self, request: kmock.Request, kind: _Kind) -> aiohttp.web.StreamResponse:
        key = self._key(kind, request)
        current = self._require(kind, key)
        new = _body_object(request)
        _check_resource_version(new, current)
        return await self._update(request, kind, key, current, new)

    async def _delete(self, request: kmock.Request, kind: _Kind) -> aiohttp.web.StreamResponse:
        key = self._key(kind, request)
        current = self._require(kind, key)
        return await self._delete_object(request, kind, key, current)

    async def _update(
        self,
        request: kmock.Request,
        kind: _Kind,
        key: _Key,
        current: dict[str, Any],
        new: Any,
    ) -> aiohttp.web.StreamResponse:
        if not isinstance(new, dict) or not isinstance(new.setdefault("metadata", {}), dict):
            raise _error(422, "Invalid", "the object must be a JSON object with metadata")
        # The status subresource changes only status; the main resource never changes status.
        if request.subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(current)
            _set_or_pop(new, "status", status)
        elif "status" in kind.subresources:
            _set_or_pop(new, "status", copy.deepcopy(current.get("status")))
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
            _set_or_pop(meta, field, old_meta.get(field))
        new = self._normalize(kind, new)
        if _spec_of(new) != _spec_of(current):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        return await self._store(request, kind, key, current, new)

    async def _delete_object(
        self,
        request: kmock.Request,
        kind: _Kind,
        key: _Key,
        current: dict[str, Any],
    ) -> aiohttp.web.StreamResponse:
        meta = current["metadata"]
        if meta.get("deletionTimestamp"):
            return aiohttp.web.json_response(current)
        if meta.get("finalizers"):  # marked for deletion; deleted when the finalizers are gone
            new = copy.deepcopy(current)
            new["metadata"].update(deletionTimestamp=_now(), deletionGracePeriodSeconds=0)
            new["metadata"]["generation"] = int(meta.get("generation", 1)) + 1
            return await self._store(request, kind, key, current, new)
        response = await self._kmock_handle(
            attrs.evolve(request, method=kmock.method.DELETE, action=kmock.action.DELETE)
        )
        self._note_deletion(kind, key, current)
        return response

    # --- storage ----------------------------------------------------------------------------

    async def _insert(
        self,
        request: kmock.Request,
        kind: _Kind,
        obj: dict[str, Any],
    ) -> aiohttp.web.StreamResponse:
        obj = self._normalize(kind, obj)
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        namespace = obj["metadata"].get("namespace") if kind.namespaced else None
        if kind is _NAMESPACES:
            self._deleted_namespaces.discard(obj["metadata"]["name"])
        create = attrs.evolve(request, action=kmock.action.CREATE, namespace=namespace, data=obj)
        response = await self._kmock_handle(create)
        if kind is _CRDS:
            self._register_crd(obj)
        return response

    async def _store(
        self,
        request: kmock.Request,
        kind: _Kind,
        key: _Key,
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
        elif kind is _CRDS:
            self._register_crd(new)
        return response

    def _normalize(self, kind: _Kind, obj: dict[str, Any]) -> dict[str, Any]:
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        if kind is _SECRETS:  # the API server folds stringData into data, base64-encoded
            string_data = obj.pop("stringData", None) or {}
            if string_data:
                data = dict(obj.get("data") or {})
                for name, value in string_data.items():
                    data[name] = base64.b64encode(str(value).encode()).decode()
                obj["data"] = data
            obj.setdefault("type", "Opaque")
        elif kind is _NAMESPACES:
            terminating = obj["metadata"].get("deletionTimestamp")
            obj["status"] = {"phase": "Terminating" if terminating else "Active"}
        elif kind is _CRDS:  # established at once; conditions keep their transition times
            conditions = (obj.get("status") or {}).get("conditions")
            obj["status"] = _crd_status(obj)
            obj["status"]["conditions"] = conditions or obj["status"]["conditions"]
        if kind.schema is not None:
            pruned = _structural(obj, kind.schema, root=True)
            assert isinstance(pruned, dict)
            obj = pruned
        return obj

    def _note_deletion(self, kind: _Kind, key: _Key, last: Mapping[str, Any]) -> None:
        uid = last.get("metadata", {}).get("uid")
        if uid:
            self._deleted_uids.add(uid)
        if kind is _NAMESPACES:
            self._deleted_namespaces.add(key[2])
        if kind is _CRDS:
            for crd_kind in _kinds_of_crd(last):
                self._unregister(crd_kind)
        self._gc_pending = True

    async def _collect_garbage(self) -> None:
        """Delete dependents whose owners are all gone, and the contents of deleted namespaces.

        A real cluster does this in the background soon after; here it is done before the
        response to the deleting request, which keeps tests deterministic.
        """
        while self._gc_pending:
            self._gc_pending = False
            async with self._write_lock:
                live_uids = {
                    obj.raw.get("metadata", {}).get("uid")
                    for obj in self.objects.values()
                    if not obj.deleted
                }
                victims = [
                    (key, copy.deepcopy(obj.raw))
                    for key, obj in self.objects.items()
                    if not obj.deleted and self._orphaned(key, obj.raw, live_uids)
                ]
                for (resource, namespace, name), current in victims:
                    kind = self.kinds.get(_kind_key(resource))
                    if kind is None:
                        continue
                    synthetic = kmock.Request(
                        method=kmock.method.DELETE,
                        action=kmock.action.DELETE,
                        resource=resource,
                        namespace=namespace,
                        name=name,
                    )
                    await self._delete_object(synthetic, kind, (resource, namespace, name), current)

    def _orphaned(self, key: _Key, obj: Mapping[str, Any], live_uids: set[Any]) -> bool:
        meta = obj.get("metadata", {})
        if meta.get("deletionTimestamp"):
            return False
        if key[1] is not None and key[1] in self._deleted_namespaces:
            return True
        owners = {ref.get("uid") for ref in meta.get("ownerReferences") or ()}
        return bool(owners) and not owners & live_uids and bool(owners & self._deleted_uids)

    # --- reads (kmock's fallbacks, extended) ------------------------------------------------

    async def _serve_version(self, request: kmock.Request) -> kmock.Payload:
        # kmock describes a subresource (llmroutes/status) like its resource, short names and
        # all, so kubectl resolves "llmr" or "ns" ambiguously; a real server lists none for it.
        # And it names the core group version "/v1", which kubectl rejects along with all of it.
        payload = await super()._serve_version(request)
        if isinstance(payload, dict) and str(payload.get("groupVersion", "")).startswith("/"):
            payload["groupVersion"] = payload["groupVersion"][1:]
        for entry in payload.get("resources", []) if isinstance(payload, Mapping) else []:
            if "/" in entry.get("name", ""):
                entry.update(
                    singularName="", shortNames=[], categories=[], verbs=["get", "patch", "update"]
                )
        return payload

    async def _serve_fetch(self, request: kmock.Request) -> kmock.Payload:
        kind = self._kind_of_request(request)
        try:
            obj = await super()._serve_fetch(request)
        except kmock.KubernetesObjectNotFoundError:
            raise _not_found(kind, request.name or "") from None
        if _wants_table(request):
            return _table(kind, [obj], revision=self._revision)
        return obj

    async def _serve_list(self, request: kmock.Request) -> kmock.Payload:
        kind = self._kind_of_request(request)
        payload = await super()._serve_list(request)
        items = payload.get("items", []) if isinstance(payload, Mapping) else []
        selector = _Selector.from_params(request.params)
        items = _sorted([item for item in items if selector.matches(item)])
        if _wants_table(request):
            return _table(kind, items, revision=self._revision)
        return {  # kmock's lists have no kind, which kubectl needs to decode them
            "apiVersion": kind.api_version,
            "kind": kind.list_kind or f"{kind.kind}List",
            "metadata": {"resourceVersion": str(self._revision)},
            "items": items,
        }

    async def _watch(self, request: kmock.Request, kind: _Kind) -> aiohttp.web.StreamResponse:
        # kmock streams watches as application/octet-stream (kubectl refuses it), takes its
        # snapshot before it subscribes (a write in between is lost) and ignores resourceVersion,
        # selectors and timeoutSeconds; so watches are served here. A watch from a resourceVersion
        # replays what changed since (latest state, as ADDED); deletions in that gap are not.
        raw_request = request._raw_request
        if raw_request is None:
            raise _error(400, "BadRequest", "a watch needs an HTTP connection")
        selector = _Selector.from_params(request.params)
        since = _int_or_none(request.params.get("resourceVersion"))
        timeout = _int_or_none(request.params.get("timeoutSeconds"))
        table = _wants_table(request)
        bus = self._buses[kind.resource]
        async with self._lock:  # kmock publishes under this lock: no event is missed or doubled
            mark = await bus.mark()
            snapshot = await self.read_objects(kind.resource, request.namespace)
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        try:
            await response.prepare(raw_request)
            async with asyncio.timeout(timeout or None):
                for obj in snapshot:
                    changed = _int_or_none(obj["metadata"].get("resourceVersion")) or 0
                    if (not since or changed > since) and _in_scope(request, obj, selector):
                        await self._send(response, kind, "ADDED", obj, table=table)
                async for event in bus.stream(since=mark):
                    obj = event.get("object") or {}
                    if _in_scope(request, obj, selector):
                        await self._send(response, kind, event.get("type"), obj, table=table)
        except (TimeoutError, ConnectionResetError):
            pass
        finally:
            await bus.unmark(mark)
        return response

    async def _send(
        self,
        response: aiohttp.web.StreamResponse,
        kind: _Kind,
        event_type: Any,
        obj: Mapping[str, Any],
        *,
        table: bool,
    ) -> None:
        shown = _table(kind, [obj], revision=self._revision) if table else obj
        line = json.dumps({"type": event_type, "object": shown}, separators=(",", ":"))
        await response.write(line.encode() + b"\n")

    def _openapi(self, path: str) -> aiohttp.web.StreamResponse:
        """Just enough OpenAPI v3 for kubectl to validate on the server side (which is a no-op).

        kubectl looks for the fieldValidation parameter on each resource's PATCH operation; found,
        it sends ?fieldValidation=Strict instead of validating against schemas it would download
        (v2 only as protobuf, which is not served). Without it, kubectl apply/create need
        --validate=false.
        """
        versions = {_group_version_path(kind): kind for kind in self.kinds.values()}
        if path == "/openapi/v3":
            return aiohttp.web.json_response(
                {
                    "paths": {
                        gv: {"serverRelativeURL": f"/openapi/v3/{gv}"} for gv in sorted(versions)
                    }
                }
            )
        gv = path.removeprefix("/openapi/v3/")
        if gv not in versions:
            raise _error(404, "NotFound", "the server could not find the requested resource")
        paths: dict[str, Any] = {}
        for kind in self.kinds.values():
            if _group_version_path(kind) != gv:
                continue
            scope = "/namespaces/{namespace}" if kind.namespaced else ""
            operation = {
                "x-kubernetes-group-version-kind": {
                    "group": kind.group,
                    "version": kind.version,
                    "kind": kind.kind,
                },
                "parameters": [
                    {
                        "name": "fieldValidation",
                        "in": "query",
                        "schema": {"type": "string", "uniqueItems": True},
                    }
                ],
                "responses": {"200": {"description": "OK"}},
            }
            paths[f"/{gv}{scope}/{kind.plural}"] = {"post": operation}
            paths[f"/{gv}{scope}/{kind.plural}/{{name}}"] = {"patch": operation, "put": operation}
        return aiohttp.web.json_response(
            {
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": "v1.26.4"},
                "paths": paths,
                "components": {"schemas": {}},
            }
        )

    # --- resource registry ------------------------------------------------------------------

    def _register(self, kind: _Kind) -> None:
        self.kinds[(kind.group, kind.version, kind.plural)] = kind
        self.resources[kind.resource] = kmock.ResourceInfo(
            kind=kind.kind,
            namespaced=kind.namespaced,
            singular=kind.singular or kind.kind.lower(),
            verbs=set(_VERBS),
            shortnames=set(kind.short_names),
            categories=set(kind.categories),
            subresources=set(kind.subresources),
        )

    def _unregister(self, kind: _Kind) -> None:
        self.kinds.pop((kind.group, kind.version, kind.plural), None)
        if kind.resource in self.resources:
            del self.resources[kind.resource]

    def _register_crd(self, crd: Mapping[str, Any]) -> None:
        for kind in _kinds_of_crd(crd):
            self._register(kind)

    def _kind_of_request(self, request: kmock.Request) -> _Kind:
        resource = request.resource
        kind = None if resource is None else self.kinds.get(_kind_key(resource))
        if kind is None:
            raise _error(404, "NotFound", "the server could not find the requested resource")
        return kind

    def _kind_of_object(self, obj: Mapping[str, Any]) -> _Kind:
        for kind in self.kinds.values():
            if kind.api_version == obj.get("apiVersion") and kind.kind == obj.get("kind"):
                return kind
        raise ValueError(f"No resource is registered for {obj.get('apiVersion')}/{obj.get('kind')}")

    # --- small helpers ----------------------------------------------------------------------

    def _key(self, kind: _Kind, request: kmock.Request) -> _Key:
        return (kind.resource, request.namespace if kind.namespaced else None, request.name or "")

    def _live(self, key: _Key) -> dict[str, Any] | None:
        if key not in self.objects:
            return None
        obj = self.objects[key]
        return None if obj.deleted else copy.deepcopy(obj.raw)

    def _require(self, kind: _Kind, key: _Key) -> dict[str, Any]:
        current = self._live(key)
        if current is None:
            raise _not_found(kind, key[2])
        return current

    def _generate_name(self, kind: _Kind, namespace: str | None, prefix: Any) -> str:
        if not prefix or not isinstance(prefix, str):
            raise _error(422, "Invalid", "name or generateName is required")
        while True:
            name = prefix + "".join(random.choices(_NAME_ALPHABET, k=5))
            if self._live((kind.resource, namespace, name)) is None:
                return name


def _group_version_path(kind: _Kind) -> str:
    return f"apis/{kind.group}/{kind.version}" if kind.group else f"api/{kind.version}"


def _kind_key(resource: kmock.resource) -> tuple[str, str, str]:
    return (resource.group or "", resource.version or "", resource.plural or "")


# --- request parsing ------------------------------------------------------------------------


async def _namespace_request(
    raw_request: aiohttp.web.BaseRequest,
    *,
    name: str | None,
    sub: str | None,
) -> kmock.Request:
    body = await raw_request.read()
    text = body.decode("utf-8", errors="replace")
    method = raw_request.method.upper()
    params = dict(raw_request.query)
    action: kmock.action | None = None
    if method == "GET" and _is_true(params.get("watch")):
        action = kmock.action.WATCH
    elif name is None:
        action = {"GET": kmock.action.LIST, "POST": kmock.action.CREATE}.get(method)
    else:
        action = {
            "GET": kmock.action.FETCH,
            "PATCH": kmock.action.UPDATE,
            "DELETE": kmock.action.DELETE,
        }.get(method)
    return kmock.Request(
        method=kmock.method(method),
        url=raw_request.url,
        params=params,
        headers=dict(raw_request.headers),
        cookies=dict(raw_request.cookies),
        body=body,
        text=text,
        data=_parse_text(text),
        action=action,
        resource=_NAMESPACES.resource,
        namespace=None,
        name=name,
        subresource=sub,
        raw_request=raw_request,
    )


def _parse_text(text: str) -> Any:
    if not text.strip():
        return None
    try:
        return yaml.safe_load(text)  # JSON is YAML; server-side apply sends YAML
    except yaml.YAMLError:
        return None


def _body(request: kmock.Request) -> Any:
    if "protobuf" in _header(request, "Content-Type"):
        raise _error(415, "UnsupportedMediaType", "protobuf is not served; send JSON")
    if isinstance(request.data, dict | list):
        return copy.deepcopy(request.data)
    return _parse_text(request.text)


def _body_object(request: kmock.Request) -> dict[str, Any]:
    body = _body(request)
    if not isinstance(body, dict):
        raise _error(400, "BadRequest", "the request body must be a JSON object")
    return body


def _header(request: kmock.Request, name: str) -> str:
    for key, value in request.headers.items():
        if key.lower() == name.lower():
            return str(value)
    return ""


def _is_true(value: str | None) -> bool:
    return (value or "").lower() in {"true", "1"}


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _wants_table(request: kmock.Request) -> bool:
    return "as=Table" in _header(request, "Accept")


def _in_scope(request: kmock.Request, obj: Mapping[str, Any], selector: _Selector) -> bool:
    meta = obj.get("metadata") or {}
    return (
        (request.namespace is None or meta.get("namespace") == request.namespace)
        and (request.name is None or meta.get("name") == request.name)
        and selector.matches(obj)
    )


# --- errors -----------------------------------------------------------------------------------


def _error(code: int, reason: str, message: str, **details: Any) -> kmock.KubernetesError:
    error: kmock.KubernetesError = kmock.KubernetesError(
        status=code, reason=reason, message=message, details=details or {"causes": []}
    )
    return error


def _not_found(kind: _Kind, name: str) -> kmock.KubernetesError:
    return _error(
        404,
        "NotFound",
        f'{kind.qualified} "{name}" not found',
        name=name,
        group=kind.group,
        kind=kind.plural,
    )


def _check_resource_version(body: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    meta = body.get("metadata")
    wanted = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
    if wanted and wanted != current["metadata"].get("resourceVersion"):
        raise _error(
            409,
            "Conflict",
            "the object has been modified; please apply your changes "
            "to the latest version and try again",
        )


# --- object semantics -------------------------------------------------------------------------


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What generation counts: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _set_or_pop(mapping: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        mapping.pop(key, None)
    else:
        mapping[key] = value


def _sorted(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    def key(obj: Mapping[str, Any]) -> tuple[str, str]:
        meta = obj.get("metadata", {})
        return (meta.get("namespace") or "", meta.get("name") or "")

    return sorted(items, key=key)


def _merge(target: Any, patch: Any, *, strategic: bool) -> Any:
    """RFC 7386 merge patch; with ``strategic``, a rough strategic merge (see below)."""
    if isinstance(patch, dict):
        result = copy.deepcopy(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if strategic and key.startswith("$"):  # directives such as $setElementOrder
                continue
            if value is None:
                result.pop(key, None)
            else:
                result[key] = _merge(result.get(key), value, strategic=strategic)
        return result
    if strategic and _named_items(patch) and _named_items(target):
        # Lists of named items (containers, env, volumes...) merge by name; others are replaced.
        patches = {item["name"]: item for item in patch}
        merged = []
        for item in target:
            change = patches.pop(item["name"], None)
            if change is None:
                merged.append(copy.deepcopy(item))
            elif change.get("$patch") != "delete":
                merged.append(_merge(item, change, strategic=True))
        merged.extend(
            _merge({}, item, strategic=True)
            for item in patches.values()
            if item.get("$patch") != "delete"
        )
        return merged
    return copy.deepcopy(patch)


def _named_items(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, dict) and "name" in i for i in value)


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


# --- CRDs ---------------------------------------------------------------------------------------


def _read_crds(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as stream:
        docs = list(yaml.safe_load_all(stream))
    crds = [
        doc
        for doc in docs
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"
    ]
    if not crds:
        raise ValueError(f"{path} holds no CustomResourceDefinition")
    return crds


def _kinds_of_crd(crd: Mapping[str, Any]) -> list[_Kind]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    kinds = []
    for version in spec.get("versions") or ():
        if not version.get("served", True):
            continue
        kinds.append(
            _Kind(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular") or names["kind"].lower(),
                list_kind=names.get("listKind") or f"{names['kind']}List",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=tuple(
                    key for key in (version.get("subresources") or {}) if key == "status"
                ),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                custom=True,
            )
        )
    return kinds


def _crd_status(crd: Mapping[str, Any]) -> dict[str, Any]:
    spec = crd.get("spec") or {}
    now = _now()
    return {
        "acceptedNames": copy.deepcopy(spec.get("names") or {}),
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": now,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": now,
            },
        ],
        "storedVersions": [v["name"] for v in spec.get("versions") or () if v.get("storage")],
    }


# --- selectors ----------------------------------------------------------------------------------

_SET_TERM: Final = re.compile(
    r"\s*(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)\s*"
)
_TERM_SPLIT: Final = re.compile(r",(?![^()]*\))")


@dataclasses.dataclass(frozen=True)
class _Selector:
    """labelSelector and fieldSelector (kmock ignores both)."""

    labels: tuple[Callable[[Mapping[str, Any]], bool], ...] = ()
    fields: tuple[tuple[str, str, bool], ...] = ()  # (dotted path, value, equal?)

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> _Selector:
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
        return all((_field_text(obj, path) == value) == equal for path, value, equal in self.fields)


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


def _field_text(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- kubectl's server-side printing -------------------------------------------------------------


def _table(kind: _Kind, objects: Sequence[Any], *, revision: int) -> dict[str, Any]:
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


_JSON_PATH_STEP: Final = re.compile(
    r"\.(?P<field>[\w-]+)|\[(?P<index>-?\d+)\]"
    r"|\[\?\(@\.(?P<key>[\w.-]+)\s*==\s*['\"](?P<value>[^'\"]*)['\"]\)\]"
)


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
                    if isinstance(item, Mapping) and _field_text(item, step["key"]) == step["value"]
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
