"""In-memory stand-ins for the controller's two collaborators: the cluster and the probe results."""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from llm_failover.classifier import Classification
from llm_failover.kube import Forbidden, KubeError, RouteGone, RouteRef
from llm_failover.prober import Endpoint, Report, Schedule, in_run
from llm_failover.state import ProviderState


@dataclass
class FakeCluster:
    """ConfigMaps, Secrets, a route status and Events, as plain dicts; every write is logged."""

    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    writes: list[tuple[str, str]] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    """Method name → how many of its next calls raise KubeError (API-fault injection)."""
    status_writes: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    """Method name → how many of its next calls the server refuses (403, as RBAC would)."""
    gone: bool = False
    """The route was deleted: its status cannot be written (RouteGone)."""
    calls: list[str] = field(default_factory=list)
    """Every call, by method name, in order."""
    revision: int = 0
    """The last resourceVersion given (a Secret added gets the next)."""

    def _fault(self, method: str) -> None:
        self.calls.append(method)
        if self.failures.get(method, 0) > 0:
            self.failures[method] -= 1
            raise KubeError(f"500 injected: {method}")
        if self.refusals.get(method, 0) > 0:
            self.refusals[method] -= 1
            raise Forbidden(f"403 Forbidden: injected: cannot {method}")

    def add_secret(self, namespace: str, name: str, data: Mapping[str, str | bytes]) -> None:
        encoded = {
            k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()
            for k, v in data.items()
        }
        self.revision += 1
        self.objects[("Secret", namespace, name)] = {
            "metadata": {"name": name, "resourceVersion": str(self.revision)},
            "data": encoded,
        }

    def data(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        obj = self.objects.get((kind, namespace, name))
        return None if obj is None else dict(obj["data"])

    async def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        self._fault("read_secret")
        obj = self.objects.get(("Secret", namespace, name))
        if obj is None:
            return None
        return {k: base64.b64decode(v) for k, v in obj["data"].items()}

    async def read_secret_revision(
        self, namespace: str, name: str
    ) -> tuple[dict[str, bytes] | None, str | None]:
        data = await self.read_secret(namespace, name)
        obj = self.objects.get(("Secret", namespace, name)) or {}
        return data, (obj.get("metadata") or {}).get("resourceVersion")

    async def read_secret_object(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._fault("read_secret_object")
        return copy.deepcopy(self.objects.get(("Secret", namespace, name)))

    async def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._fault("read_config_map")
        return copy.deepcopy(self.objects.get(("ConfigMap", namespace, name)))

    async def create_config_map(self, route: RouteRef, name: str, data: Mapping[str, str]) -> None:
        self._fault("create_config_map")
        self._put("ConfigMap", route, name, dict(data))

    async def patch_config_map(self, namespace: str, name: str, data: Mapping[str, str]) -> bool:
        self._fault("patch_config_map")
        found = self.objects.get(("ConfigMap", namespace, name))
        if found is None:
            return False
        found["data"].update(data)
        self.writes.append(("ConfigMap", name))
        return True

    async def create_secret(self, route: RouteRef, name: str, data: Mapping[str, str]) -> None:
        self._fault("create_secret")
        self._put(
            "Secret",
            route,
            name,
            {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        )

    async def patch_secret(self, namespace: str, name: str, data: Mapping[str, str]) -> bool:
        self._fault("patch_secret")
        found = self.objects.get(("Secret", namespace, name))
        if found is None:
            return False
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        found["data"].update(encoded)
        self.writes.append(("Secret", name))
        return True

    async def patch_route_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        self._fault("patch_route_status")
        if self.gone:
            raise RouteGone(f"LLMRoute {namespace}/{name} not found")
        self.status = copy.deepcopy(dict(status))
        self.status_writes += 1

    async def post_event(
        self, route: RouteRef, *, type: str, reason: str, message: str, now: datetime
    ) -> None:
        self._fault("post_event")
        self.events.append((type, reason, message))

    async def read_workload(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        self._fault("read_workload")
        return copy.deepcopy(self.objects.get((kind, namespace, name)))

    async def annotate_pod_template(
        self, namespace: str, kind: str, name: str, annotations: Mapping[str, str]
    ) -> None:
        self._fault("annotate_pod_template")
        template = (
            self.objects[(kind, namespace, name)].setdefault("spec", {}).setdefault("template", {})
        )
        template.setdefault("metadata", {}).setdefault("annotations", {}).update(annotations)
        self.writes.append((kind, name))

    def _put(self, kind: str, route: RouteRef, name: str, data: dict[str, str]) -> None:
        meta = {"name": name, "ownerReferences": [route.owner_reference()]}
        self.objects[(kind, route.namespace, name)] = {"metadata": meta, "data": data}
        self.writes.append((kind, name))


@dataclass
class FakeProbes:
    """Probe results the test sets per base URL; the controller reads them as it would the prober's."""

    subscribed: dict[str, Mapping[Endpoint, Schedule]] = field(default_factory=dict)
    tenants: dict[str, str] = field(default_factory=dict)
    results: dict[str, Report] = field(default_factory=dict)
    eager: dict[str, frozenset[Endpoint]] = field(default_factory=dict)
    reprobed: list[str] = field(default_factory=list)  # base URLs, in the order asked

    def subscribe(
        self,
        subscriber: str,
        endpoints: Mapping[Endpoint, Schedule],
        wake: asyncio.Event,
        *,
        tenant: str = "",
    ) -> None:
        self.subscribed[subscriber] = endpoints
        self.tenants[subscriber] = tenant
        self.eager[subscriber] = self.eager.get(subscriber, frozenset()) & endpoints.keys()

    def unsubscribe(self, subscriber: str) -> None:
        self.subscribed.pop(subscriber, None)
        self.eager.pop(subscriber, None)

    def attend(self, subscriber: str, endpoints: Iterable[Endpoint]) -> None:
        self.eager[subscriber] = frozenset(endpoints)

    def reprobe(self, endpoints: Iterable[Endpoint]) -> None:
        self.reprobed.extend(endpoint.base_url for endpoint in endpoints)

    def latest(self, endpoint: Endpoint) -> Report | None:
        return self.results.get(endpoint.base_url)

    def answer(
        self,
        base_url: str,
        state: ProviderState,
        *,
        at: datetime,
        status: int = 0,
        latency: int = 20,
        retry_at: datetime | None = None,
    ) -> None:
        """One more answer of `base_url`, numbered and placed in its run as the prober does."""
        message = "" if state is ProviderState.HEALTHY else f"{state} from {base_url}"
        report = Report(
            1, at, Classification(state, message, status or None), latency, retry_at=retry_at
        )
        self.results[base_url] = in_run(self.results.get(base_url), report)


@dataclass
class FakeClock:
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 21, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now
