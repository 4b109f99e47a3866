"""The operator's only client of the Kubernetes API (kopf's own watching aside).

The official `kubernetes` client is synchronous; its calls run in worker threads. Every write is a
create or a JSON merge patch, never a replace, and reads happen right before the write they guard.
Every message written into a status or an Event passes the redactor first: whatever a provider
or an error said, no key reaches the API server through this client.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import queue
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import kubernetes
import urllib3

from llm_failover import kubeconfig
from llm_failover.kubeconfig import ClusterSource
from llm_failover.leader import Leadership, LeaseConflict

GROUP = "llmfailover.dev"
VERSION = "v1alpha1"
PLURAL = "llmroutes"
KIND = "LLMRoute"
COMPONENT = "llm-failover"
MANAGED_BY = {"app.kubernetes.io/managed-by": COMPONENT}
"""The label on every object the operator writes: its watches select on it."""
ROUTE_LABEL = f"{GROUP}/route"
REQUEST_TIMEOUT = (5, 30)
"""Seconds to connect and to read: a hung API call must not hold a worker thread (or shutdown)."""


@dataclass(frozen=True)
class RouteRef:
    namespace: str
    name: str
    uid: str

    def owner_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def owns(self, obj: Mapping[str, Any]) -> bool:
        refs = obj.get("metadata", {}).get("ownerReferences") or []
        return any(r.get("uid") == self.uid and r.get("kind") == KIND for r in refs)


class ClusterApi(Protocol):
    """What the route controller needs from the Kubernetes API (tests provide a fake)."""

    async def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None: ...
    async def read_secret_object(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def create_config_map(
        self, route: RouteRef, name: str, data: Mapping[str, str]
    ) -> None: ...
    async def patch_config_map(
        self, namespace: str, name: str, data: Mapping[str, str]
    ) -> bool: ...
    async def create_secret(self, route: RouteRef, name: str, data: Mapping[str, str]) -> None: ...
    async def patch_secret(self, namespace: str, name: str, data: Mapping[str, str]) -> bool: ...
    async def patch_route_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None: ...
    async def read_workload(
        self, namespace: str, kind: str, name: str
    ) -> dict[str, Any] | None: ...
    async def annotate_pod_template(
        self, namespace: str, kind: str, name: str, annotations: Mapping[str, str]
    ) -> None: ...
    async def post_event(
        self, route: RouteRef, *, type: str, reason: str, message: str, now: datetime
    ) -> None: ...


_WORKLOADS = {"Deployment": "deployment", "StatefulSet": "stateful_set", "DaemonSet": "daemon_set"}


def _verb_and_resource(method: Any) -> tuple[str, str]:
    """("patch", "config_map") for the client's patch_namespaced_config_map, and so on."""
    name = str(getattr(method, "__name__", "call"))
    verb, _, rest = name.partition("_")
    rest = rest.removeprefix("namespaced_")
    return verb, rest or "unknown"


class KubeError(RuntimeError):
    """An API call failed for a reason other than "not found"."""


class Forbidden(KubeError):
    """The API server refused the call (403): the operator's RBAC lacks a grant, or the
    namespace is being deleted. The message is the server's, naming the verb and resource."""


class RouteGone(KubeError):
    """The LLMRoute itself no longer exists (its status cannot be written): the end of it."""


class NotLeader(KubeError):
    """The write was not sent: this replica does not hold the Lease (or no longer in time)."""


API_CONCURRENCY = 32
"""API calls in flight at once (threads, and pooled connections to the API server). The
default executor has cpu_count + 4 threads (6 on 2 cores): a failover that rewrites a thousand
ConfigMaps waited in that queue for many seconds."""


def load_api_client(
    *,
    pool: int = API_CONCURRENCY,
    user_agent: str | None = None,
    retry: bool = True,
    source: ClusterSource | None = None,
) -> kubernetes.client.ApiClient:
    """A client of the cluster `source` names (`llm-failover run`'s --kubeconfig and --context),
    else the first of KUBECONFIG, the pod's service account, ~/.kube/config (`kubeconfig.locate`;
    its note says why HTTPS_PROXY is not used for the API). `user_agent` names the replica in the
    API server's audit log. Without `retry`, a call is tried once (urllib3 would send an
    idempotent PUT up to three more times after its timeout: a Lease renewal must not outlive
    its deadline)."""
    configuration = kubeconfig.configuration(source or kubeconfig.locate(), pool=pool, retry=retry)
    client = kubernetes.client.ApiClient(configuration)
    if user_agent is not None:
        client.user_agent = user_agent
    return client


class _Lanes:
    """Threads for the blocking client's calls, urgent ones first: when one probe answer
    switches a thousand routes, their routing ConfigMaps and Secrets are written before the
    statuses and Events of the same switches (and before anything routine)."""

    def __init__(self, workers: int) -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, Callable[[], Any] | None, Any]] = (
            queue.PriorityQueue()
        )
        self._order = itertools.count()
        self._threads = [
            threading.Thread(target=self._work, name=f"kube-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def run(self, call: Callable[[], Any], *, urgent: bool) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put((0 if urgent else 1, next(self._order), call, (loop, future)))
        return future

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put((2, next(self._order), None, None))

    def _work(self) -> None:
        while True:
            _, _, call, where = self._queue.get()
            if call is None:
                return
            loop, future = where
            try:
                result = call()
            except BaseException as exc:  # handed to the awaiting coroutine
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


_WRITES = frozenset({"create", "patch", "replace", "delete"})

_URGENT = frozenset({("create", "config_map"), ("patch", "config_map"), ("create", "secret"),
                     ("patch", "secret")})  # fmt: skip
"""The routing output: what apps read."""


class KubeClient:
    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        redact: Callable[[str], str] = lambda text: text,
        count: Callable[[str, str, str], None] = lambda verb, resource, code: None,
        leadership: Leadership | None = None,
    ) -> None:
        self._api = api_client
        self._redact = redact
        self._count = count  # (verb, resource, answer class) of every call
        self._leadership = leadership or Leadership.single()
        self._writing = 0  # writes sent and not answered yet
        self._writing_changed = threading.Condition()
        self._core = kubernetes.client.CoreV1Api(api_client)
        self._custom = kubernetes.client.CustomObjectsApi(api_client)
        self._apps = kubernetes.client.AppsV1Api(api_client)
        self._lanes = _Lanes(API_CONCURRENCY)

    def close(self) -> None:
        self._lanes.close()
        self._api.close()

    def drained(self, *, within: float) -> bool:
        """Whether every write sent is answered (or given up) within `within` seconds, waiting
        for it (blocking): the Lease may be released only then."""
        with self._writing_changed:
            return self._writing_changed.wait_for(lambda: not self._writing, timeout=within)

    async def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """The Secret's data as bytes (what they mean is the reader's business); None if there
        is no such Secret."""
        obj = await self._call(self._core.read_namespaced_secret, name, namespace)
        if obj is None:
            return None
        return secret_bytes(obj)

    async def read_secret_revision(
        self, namespace: str, name: str
    ) -> tuple[dict[str, bytes] | None, str | None]:
        """`read_secret`, with the Secret's resourceVersion (None with no such Secret)."""
        obj = await self._call(self._core.read_namespaced_secret, name, namespace)
        if obj is None:
            return None, None
        revision = (obj.get("metadata") or {}).get("resourceVersion")
        return secret_bytes(obj), revision if isinstance(revision, str) else None

    async def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._call(self._core.read_namespaced_config_map, name, namespace)

    async def read_secret_object(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._call(self._core.read_namespaced_secret, name, namespace)

    async def create_config_map(self, route: RouteRef, name: str, data: Mapping[str, str]) -> None:
        body = {"metadata": self._owned_metadata(route, name), "data": dict(data)}
        await self._call(self._core.create_namespaced_config_map, route.namespace, body)

    async def patch_config_map(self, namespace: str, name: str, data: Mapping[str, str]) -> bool:
        """False when there is no such ConfigMap (nothing written)."""
        patched = await self._call(
            self._core.patch_namespaced_config_map, name, namespace, {"data": dict(data)}
        )
        return patched is not None

    async def create_secret(self, route: RouteRef, name: str, data: Mapping[str, str]) -> None:
        body = {
            "metadata": self._owned_metadata(route, name),
            "type": "Opaque",
            "data": _encode(data),
        }
        await self._call(self._core.create_namespaced_secret, route.namespace, body)

    async def patch_secret(self, namespace: str, name: str, data: Mapping[str, str]) -> bool:
        """False when there is no such Secret (nothing written)."""
        patched = await self._call(
            self._core.patch_namespaced_secret, name, namespace, {"data": _encode(data)}
        )
        return patched is not None

    async def patch_route_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        """Raises `RouteGone` when the route no longer exists."""
        await self._call(
            self._custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": self._redacted(dict(status))},
            missing=RouteGone,
        )

    async def post_event(
        self, route: RouteRef, *, type: str, reason: str, message: str, now: datetime
    ) -> None:
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "metadata": {
                "name": f"{route.name}.{uuid.uuid4().hex[:12]}",
                "namespace": route.namespace,
            },
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": route.name,
                "namespace": route.namespace,
                "uid": route.uid,
            },
            "type": type,
            "reason": reason,
            "message": self._redact(message)[:1024],
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
        }
        await self._call(self._core.create_namespaced_event, route.namespace, body)

    async def read_workload(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        read = getattr(self._apps, f"read_namespaced_{_WORKLOADS[kind]}")
        return await self._call(read, name, namespace)

    async def annotate_pod_template(
        self, namespace: str, kind: str, name: str, annotations: Mapping[str, str]
    ) -> None:
        """Change the pod template's annotations: the workload rolls its pods, as `kubectl
        rollout restart` does."""
        patch = getattr(self._apps, f"patch_namespaced_{_WORKLOADS[kind]}")
        body = {"spec": {"template": {"metadata": {"annotations": dict(annotations)}}}}
        await self._call(patch, name, namespace, body)

    @staticmethod
    def _owned_metadata(route: RouteRef, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": route.namespace,
            "labels": {**MANAGED_BY, ROUTE_LABEL: route.name},
            "ownerReferences": [route.owner_reference()],
        }

    async def _call(
        self, method: Any, *args: Any, missing: type[KubeError] | None = None
    ) -> dict[str, Any] | None:
        """Run one client call in a thread. A 404 is None (or `missing` raised, when given);
        any other failure, the server's or the connection's, a KubeError."""

        verb, resource = _verb_and_resource(method)
        gated = verb in _WRITES

        def call() -> Any:
            if not gated:
                return send(REQUEST_TIMEOUT)
            # Asked here, in the thread, right before sending: a write may have waited in the
            # lanes' queue while the Lease ran out.
            if not self._leadership.may_write():
                raise NotLeader("not sent: this replica is not the leader")
            seconds = self._leadership.write_seconds()  # more than the margin, as it may write
            with self._writing_changed:
                self._writing += 1
            try:
                timeout = REQUEST_TIMEOUT if seconds is None else min(seconds, REQUEST_TIMEOUT[1])
                return send(timeout)
            finally:
                with self._writing_changed:
                    self._writing -= 1
                    self._writing_changed.notify_all()

        def send(timeout: Any) -> Any:
            return _raw(method, *args, timeout=timeout)

        try:
            result = await self._lanes.run(call, urgent=(verb, resource) in _URGENT)
        except kubernetes.client.ApiException as exc:
            self._count(verb, resource, _answer_class(exc))
            if exc.status in (404, 410):
                if missing is not None:
                    raise missing(f"{exc.status} {exc.reason}") from None
                return None
            raise _refusal(exc) from None
        except NotLeader:
            raise
        except _CONNECTION_ERRORS as exc:
            self._count(verb, resource, "none")
            raise KubeError(f"{type(exc).__name__}: {exc}") from None
        self._count(verb, resource, "2xx")
        return result if isinstance(result, dict) else None

    def _redacted(self, value: Any) -> Any:
        """Every string of a status (messages are where provider text lands), redacted."""
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, Mapping):
            return {k: self._redacted(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._redacted(v) for v in value]
        return value


def secret_bytes(obj: Mapping[str, Any]) -> dict[str, bytes]:
    """A Secret object's `data`, base64-decoded; an undecodable entry is left out."""
    decoded = {}
    for key, value in (obj.get("data") or {}).items():
        try:
            decoded[str(key)] = base64.b64decode(value, validate=True)
        except (TypeError, ValueError):
            continue
    return decoded


def object_data(obj: Mapping[str, Any], kind: str) -> dict[str, str]:
    """A ConfigMap's or Secret's data as text, the form the routing output is written in (a
    Secret's decoded; bytes that are not UTF-8 replaced, so they compare as different)."""
    if kind == "Secret":
        return {k: v.decode("utf-8", errors="replace") for k, v in secret_bytes(obj).items()}
    return {str(k): str(v) for k, v in (obj.get("data") or {}).items()}


def _encode(data: Mapping[str, str]) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}


_CONNECTION_ERRORS = (OSError, urllib3.exceptions.HTTPError, ValueError)
"""What the client raises when no answer came (or none that parses)."""


def _raw(method: Any, *args: Any, timeout: Any) -> Any:
    """One call of the client, answered as plain JSON instead of the client's models (plain
    dicts, and no model deserialisation)."""
    response = method(*args, _preload_content=False, _request_timeout=timeout)
    return response.json() if response.data else None


def _answer_class(exc: kubernetes.client.ApiException) -> str:
    return f"{exc.status // 100}xx" if exc.status else "none"


def _refusal(exc: kubernetes.client.ApiException) -> KubeError:
    """The API server's refusal as the operator raises it: Forbidden for a 403 (RBAC)."""
    error = Forbidden if exc.status == 403 else KubeError
    return error(f"{exc.status} {exc.reason}: {_api_message(exc)}")


def _api_message(exc: kubernetes.client.ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message", ""))[:300]
    except (TypeError, ValueError, AttributeError):
        return ""


class LeaseClient:
    """Leases for the elector (`leader.LeaseApi`): blocking calls from its own thread, on a
    connection of its own, never queued behind other calls and never gated (they are how the
    gate opens)."""

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        count: Callable[[str, str, str], None] = lambda verb, resource, code: None,
    ) -> None:
        self._api = api_client
        self._leases = kubernetes.client.CoordinationV1Api(api_client)
        self._count = count

    def close(self) -> None:
        self._api.close()

    def get_lease(self, namespace: str, name: str, *, timeout: float) -> dict[str, Any] | None:
        read = self._leases.read_namespaced_lease
        return self._call("get", read, name, namespace, timeout=timeout)

    def create_lease(
        self, namespace: str, body: Mapping[str, Any], *, timeout: float
    ) -> dict[str, Any]:
        created = self._call(
            "create", self._leases.create_namespaced_lease, namespace, dict(body), timeout=timeout
        )
        if created is None:
            raise KubeError("creating the Lease answered nothing")
        return created

    def replace_lease(
        self, namespace: str, name: str, body: Mapping[str, Any], *, timeout: float
    ) -> dict[str, Any]:
        replaced = self._call(
            "replace",
            self._leases.replace_namespaced_lease,
            name,
            namespace,
            dict(body),
            timeout=timeout,
        )
        if replaced is None:  # deleted meanwhile: created again by the next attempt
            raise LeaseConflict("the Lease is gone")
        return replaced

    def _call(self, verb: str, method: Any, *args: Any, timeout: float) -> dict[str, Any] | None:
        try:
            result = _raw(method, *args, timeout=timeout)
        except kubernetes.client.ApiException as exc:
            self._count(verb, "lease", _answer_class(exc))
            if exc.status == 404:
                return None
            if exc.status in (409, 422):
                raise LeaseConflict(f"{exc.status} {exc.reason}") from None
            raise _refusal(exc) from None
        except _CONNECTION_ERRORS as exc:
            self._count(verb, "lease", "none")
            raise KubeError(f"{type(exc).__name__}: {exc}") from None
        self._count(verb, "lease", "2xx")
        return result if isinstance(result, dict) else None
