"""The emulator's HTTP side: routing requests to the store, reads, watches, discovery, OpenAPI."""

from __future__ import annotations

import asyncio
import collections
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import kmock

from . import openapi, requests
from .errors import error, not_found, unknown_resource
from .kinds import Kind
from .objects import sorted_objects
from .selectors import Selector, in_scope
from .store import Store
from .tables import table, wants_table


@dataclass
class Fault:
    """Answer requests matching `method` and the `path` regex with an error, `times` times."""

    method: str
    path: str
    status: int
    times: int

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and method == self.method and re.search(self.path, path) is not None


class Emulator(Store):
    """kmock's emulator with the API-server behaviour that kopf, kubectl and clients rely on."""

    log: collections.deque[tuple[str, str]]  # (HTTP method, path) of requests, oldest first
    faults: list[Fault]  # API-fault injection for tests: errors instead of answers

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.log = collections.deque()
        self.faults = []

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        self.log.append((raw_request.method, raw_request.path))
        fault = next(
            (f for f in self.faults if f.matches(raw_request.method, raw_request.path)), None
        )
        if fault is not None:
            fault.times -= 1
            failure = error(fault.status, "InternalError", "injected fault")
            return await self._render_error(failure)
        request = await requests.namespace_request(raw_request)
        if request is None:
            response: aiohttp.web.StreamResponse = await super().__call__(raw_request)
            return response
        try:
            return await self._handle(request)
        except Exception as exc:  # rendered as a Kubernetes Status, as kmock does elsewhere
            rendered: aiohttp.web.StreamResponse = await self._render_error(exc)
            return rendered

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.url.path.startswith("/openapi/"):
            return self._openapi(request.url.path.rstrip("/"))
        if request.resource is None or request.resource.plural is None:  # discovery and such
            return await self._kmock_handle(request)
        kind = self.kinds.get(request.resource)
        if kind is None or (request.subresource and request.subresource not in kind.subresources):
            raise unknown_resource()
        if str(request.method.value).upper() != "GET":
            return await self._write(request, kind)
        if requests.is_true(request.params.get("watch")):
            return await self._watch(request, kind)
        return await self._kmock_handle(request)

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
        kind = self._kind_of(request)
        try:
            obj = await super()._serve_fetch(request)
        except kmock.KubernetesObjectNotFoundError:
            raise not_found(kind, request.name or "") from None
        if wants_table(request):
            return table(kind, [obj], revision=self._revision)
        return obj

    async def _serve_list(self, request: kmock.Request) -> kmock.Payload:
        kind = self._kind_of(request)
        payload = await super()._serve_list(request)
        items = payload.get("items", []) if isinstance(payload, Mapping) else []
        selector = Selector.from_params(request.params)
        items = sorted_objects([item for item in items if selector.matches(item)])
        if wants_table(request):
            return table(kind, items, revision=self._revision)
        return {  # kmock's lists have no kind, which kubectl needs to decode them
            "apiVersion": kind.api_version,
            "kind": kind.list_kind,
            "metadata": {"resourceVersion": str(self._revision)},
            "items": items,
        }

    def _kind_of(self, request: kmock.Request) -> Kind:
        kind = self.kinds.get(request.resource)
        if kind is None:
            raise unknown_resource()
        return kind

    # --- watches ----------------------------------------------------------------------------

    async def _watch(self, request: kmock.Request, kind: Kind) -> aiohttp.web.StreamResponse:
        # kmock streams watches as application/octet-stream (kubectl refuses it), takes its
        # snapshot before it subscribes (a write in between is lost) and ignores resourceVersion,
        # selectors and timeoutSeconds; so watches are served here. A watch from a resourceVersion
        # replays what changed since (latest state, as ADDED); deletions in that gap are not.
        raw_request = request._raw_request
        if raw_request is None:
            raise error(400, "BadRequest", "a watch needs an HTTP connection")
        selector = Selector.from_params(request.params)
        since = requests.int_or_none(request.params.get("resourceVersion"))
        timeout = requests.int_or_none(request.params.get("timeoutSeconds"))
        as_table = wants_table(request)
        bus = self._buses[kind.resource]
        async with self._lock:  # kmock publishes under this lock: no event is missed or doubled
            mark = await bus.mark()
            snapshot = await self.read_objects(kind.resource, request.namespace)
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        try:
            await response.prepare(raw_request)
            async with asyncio.timeout(timeout or None):
                for obj in snapshot:
                    changed = requests.int_or_none(obj["metadata"].get("resourceVersion")) or 0
                    if (not since or changed > since) and in_scope(request, obj, selector):
                        await self._send(response, kind, "ADDED", obj, as_table=as_table)
                async for event in bus.stream(since=mark):
                    obj = event.get("object") or {}
                    if in_scope(request, obj, selector):
                        await self._send(response, kind, event.get("type"), obj, as_table=as_table)
        except (TimeoutError, ConnectionResetError):
            pass
        finally:
            await bus.unmark(mark)
        return response

    async def _send(
        self,
        response: aiohttp.web.StreamResponse,
        kind: Kind,
        event_type: Any,
        obj: Mapping[str, Any],
        *,
        as_table: bool,
    ) -> None:
        shown = table(kind, [obj], revision=self._revision) if as_table else obj
        line = json.dumps({"type": event_type, "object": shown}, separators=(",", ":"))
        await response.write(line.encode() + b"\n")

    # --- OpenAPI ----------------------------------------------------------------------------

    def _openapi(self, path: str) -> aiohttp.web.StreamResponse:
        if path == "/openapi/v3":
            return aiohttp.web.json_response(openapi.discovery(self.kinds))
        document = openapi.document(self.kinds, path.removeprefix("/openapi/v3/"))
        if document is None:
            raise unknown_resource()
        return aiohttp.web.json_response(document)
