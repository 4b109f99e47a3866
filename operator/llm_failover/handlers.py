"""kopf handlers: thin glue from the watches to the route manager; no business rules here.

Three watches: LLMRoutes; the ConfigMaps the operator wrote (selected on the server by their
`app.kubernetes.io/managed-by` label) and Secrets, so an edited or deleted routing output is
restored within seconds, and a changed key Secret is used within seconds (only the Secrets routes
refer to are kept). The liveness endpoint fails when a supervised loop stops making progress.
Every replica watches and probes; only the one holding the Lease writes (`leader`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import kopf

from llm_failover import __version__, kubeconfig
from llm_failover.catalog import default_catalog
from llm_failover.controller import Services
from llm_failover.kube import (
    GROUP,
    MANAGED_BY,
    PLURAL,
    VERSION,
    KubeClient,
    LeaseClient,
    load_api_client,
    secret_bytes,
)
from llm_failover.leader import Change, ElectionThread, Leadership, LeaseElector, Timings
from llm_failover.manager import RouteManager
from llm_failover.metrics import Metrics
from llm_failover.prober import ProbeGate, Prober, Wake, utc_now
from llm_failover.probethread import ProbeThread
from llm_failover.redact import Redactor
from llm_failover.secretcache import SecretCache
from llm_failover.settings import Settings
from llm_failover.signals import Signals
from llm_failover.supervision import LoopLag, Stalled, Watchdog, supervise

OWNED = (("v1", "configmaps", "ConfigMap"), ("v1", "secrets", "Secret"))
"""What the operator writes and watches: (version, plural, kind) in the core group."""
SELECTED = {("v1", "configmaps")}
"""Watched with the label selector: only the operator's own objects leave the API server.
Secrets are watched whole: the key Secrets routes refer to are the users' own."""


class RetryForever:
    """kopf's request backoffs (seconds), without an end: kopf counts its attempts only when it
    can take the length, and re-iterates this object for every request."""

    START = (1.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0)
    THEN = 30.0

    def __iter__(self) -> Iterator[float]:
        return itertools.chain(self.START, itertools.repeat(self.THEN))


def build_registry() -> kopf.OperatorRegistry:
    """A registry of its own, so that the CLI, the demo and tests each run a fresh operator."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo | None:
        # The cluster `run` was given (--kubeconfig, --context), else KUBECONFIG, the pod's
        # service account, ~/.kube/config: the same as the kubernetes client's (`load_api_client`).
        config: Settings = memo.settings
        try:
            info: kopf.ConnectionInfo = kubeconfig.connection_info(
                config.cluster or kubeconfig.locate()
            )
        except kubeconfig.ClusterConfigError as exc:
            raise kopf.LoginError(str(exc)) from None
        return info

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        config: Settings = memo.settings
        # The operator posts its own Events, only on transitions; kopf's per-handler Events would
        # be noise (and need more RBAC). Replicas elect their writer on a Lease (`leader`):
        # kopf's peering (which pauses whole operators, not writes) is not used.
        settings.posting.enabled = False
        settings.peering.standalone = True
        # kopf gives up on a refused or failing request after eight retries, and a watch that
        # gives up is never started again: a missing RBAC grant granted a minute later, or an
        # API server down for longer, would leave that watch dead until a restart. Retry for
        # ever (each attempt logged), so the operator recovers by itself.
        settings.networking.error_backoffs = RetryForever()
        settings.watching.server_timeout = config.watch_timeout_seconds
        settings.watching.client_timeout = config.watch_timeout_seconds + 10
        selector = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())
        for version, plural in SELECTED:
            settings.watching.label_selectors[version, plural] = selector
        redactor: Redactor = memo.redactor
        metrics: Metrics = memo.metrics

        def count(verb: str, resource: str, code: str) -> None:
            metrics.api_request(verb=verb, resource=resource, code=code)

        # Writes wait for the Lease (`leader`); without election this process always writes.
        leadership = memo.leadership = Leadership(
            elected=config.leader_elect,
            margin_seconds=config.lease_seconds - config.renew_deadline_seconds,
        )
        metrics.leadership(leading=leadership.leading)
        leadership.listen(
            lambda leading, change: metrics.leadership(leading=leading, change=change)
        )
        identity = f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
        agent = f"llm-failover/{__version__} ({identity})"  # names the replica in audit logs
        memo.kube = KubeClient(
            load_api_client(user_agent=agent, source=config.cluster),
            redact=redactor,
            count=count,
            leadership=leadership,
        )
        gate = ProbeGate(
            total=config.probe_concurrency, per_tenant=config.probe_concurrency_per_namespace
        )
        watchdog = memo.watchdog = Watchdog()
        memo.secrets = SecretCache(
            memo.kube.read_secret, read_revision=memo.kube.read_secret_revision
        )

        def http() -> httpx.AsyncClient:
            return httpx.AsyncClient(
                timeout=httpx.Timeout(30.0),
                # As many connections as probes may run at once (the gate's total): a probe
                # that holds a slot never waits for a connection.
                limits=httpx.Limits(
                    max_connections=gate.total, max_keepalive_connections=min(gate.total, 64)
                ),
                trust_env=True,  # HTTPS_PROXY: how many teams reach providers from inside China
            )

        def prober(client: httpx.AsyncClient, deliver: Callable[[list[Wake]], None]) -> Prober:
            return Prober(
                client=client,
                clock=utc_now,
                max_body_bytes=config.max_body_bytes,
                on_report=lambda endpoint, report: metrics.probed(
                    endpoint=endpoint.host,
                    state=report.classification.state,
                    seconds=report.latency_milliseconds / 1000,
                ),
                on_error=lambda task: metrics.internal_error(task=task),
                on_saved=lambda why, probes: metrics.probes_saved.labels(why.value).inc(probes),
                redactor=redactor,
                gate=gate,
                watchdog=watchdog,
                deliver=deliver,
                backoff_max_seconds=config.probe_backoff_max_seconds,
            )

        # Probes on a loop of their own: reconciles never delay them (`probethread`).
        memo.prober = ProbeThread(prober, http)
        # Traffic signals on this loop (a query is one small request every few seconds).
        signals: Signals = memo.get("signals") or Signals()
        memo.signals = signals
        signals.client = httpx.AsyncClient(timeout=httpx.Timeout(30.0), trust_env=True)
        signals.watchdog = watchdog
        memo.routes = RouteManager(
            Services(
                kube=memo.kube,
                prober=memo.prober,
                catalog=default_catalog(),
                clock=utc_now,
                settings=config,
                metrics=metrics,
                redactor=redactor,
                watchdog=watchdog,
                secrets=memo.secrets,
                leadership=leadership,
                signals=signals,
            )
        )
        loop = asyncio.get_running_loop()

        def wake_routes(leading: bool, change: Change) -> None:  # from the elector's thread
            loop.call_soon_threadsafe(memo.routes.leadership_changed)

        leadership.listen(wake_routes)
        memo.election = None
        if config.leader_elect:
            assert config.lease_namespace is not None  # the CLI sees to it
            leases = LeaseClient(
                load_api_client(pool=2, user_agent=agent, retry=False, source=config.cluster),
                count=count,
            )
            elector = LeaseElector(
                api=leases,
                leadership=leadership,
                identity=identity,
                namespace=config.lease_namespace,
                name=config.lease_name,
                timings=Timings(
                    config.lease_seconds, config.renew_deadline_seconds, config.retry_period_seconds
                ),
                watchdog=watchdog,
                on_error=lambda: metrics.internal_error(task="leader_election"),
            )
            memo.election = ElectionThread(elector, close=leases.close)
            memo.election.start()
            logging.getLogger(__name__).info("%s: electing a leader as %s", elector.where, identity)
        memo.resync = asyncio.create_task(
            supervise(
                "key Secret resync",
                lambda: memo.secrets.resync(config.secret_resync_seconds),
                count=lambda: metrics.internal_error(task="secret_resync"),
            ),
            name="key Secret resync",
        )
        memo.signal_task = asyncio.create_task(
            supervise(
                "traffic signals",
                signals.run,
                count=lambda: metrics.internal_error(task="signals"),
            ),
            name="traffic signals",
        )
        lag = LoopLag()
        memo.lag = asyncio.create_task(
            supervise("event loop lag monitor", lambda: lag.run(metrics.loop_lag.set, watchdog)),
            name="event loop lag monitor",
        )

    @kopf.on.probe(id="loops", errors=kopf.ErrorsMode.PERMANENT, registry=registry)
    def loops(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
        """Liveness: every supervised loop has shown progress when it promised to (kopf answers
        /healthz with 500 when a probe handler fails)."""
        watchdog: Watchdog = memo.watchdog
        try:
            return {"loops": watchdog.check()}
        except Stalled as exc:
            logging.getLogger(__name__).error("liveness: %s", exc)
            raise kopf.PermanentError(str(exc)) from None

    @kopf.on.probe(id="leader", registry=registry)
    def leader(memo: kopf.Memo, **_: Any) -> bool:
        """Whether this replica writes: readiness stays true on a standby (it is ready to take
        over), and /healthz says which one leads."""
        leadership: Leadership = memo.leadership
        return leadership.leading

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def on_route(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        routes: RouteManager = memo.routes
        with _contained(memo, body):
            if event.get("type") == "DELETED":
                routes.forget(body.metadata.namespace or "", body.metadata.name or "")
            else:
                routes.observe(_plain(body))

    for version, plural, kind in OWNED:

        @kopf.on.event(version, plural, id=f"owned-{plural}", param=kind, registry=registry)
        async def on_owned(
            event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, param: Any = None, **_: Any
        ) -> None:
            routes: RouteManager = memo.routes
            with _contained(memo, body):
                deleted = event.get("type") == "DELETED"
                if param == "Secret":
                    secrets: SecretCache = memo.secrets
                    meta = body.metadata
                    data = None if deleted else secret_bytes(body)
                    revision = (body.get("metadata") or {}).get("resourceVersion")
                    secrets.observed(
                        meta.namespace or "",
                        meta.name or "",
                        data,
                        revision=revision if isinstance(revision, str) else None,
                    )
                    if not MANAGED_BY.items() <= dict(meta.labels or {}).items():
                        return  # not one the operator wrote
                routes.owned_changed(str(param), _plain(body), deleted=deleted)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(
        memo: kopf.Memo, logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any
    ) -> None:
        config: Settings = memo.settings
        leadership: Leadership = memo.leadership
        leadership.resign()  # no write is sent from here on
        for task in (memo.lag, memo.resync, memo.signal_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await memo.routes.close()
        await memo.prober.close()
        signals: Signals = memo.signals
        if signals.client is not None:
            await signals.client.aclose()
        election: ElectionThread | None = memo.election
        if election is not None:
            # Released only once no write of ours is in flight: until then the elector goes on
            # renewing, so that no other replica writes at the same time.
            drained = await asyncio.to_thread(memo.kube.drained, within=config.lease_seconds)
            released = await asyncio.to_thread(
                election.stop, release=drained, within=config.renew_deadline_seconds
            )
            if not released and election.elector.held:
                logger.warning("%s: not released: it lapses by itself", election.elector.where)
        memo.kube.close()
        logger.info("stopped")

    return registry


@contextlib.contextmanager
def _contained(memo: kopf.Memo, body: kopf.Body) -> Iterator[None]:
    """A watch event that cannot be handled is logged and counted; the watch goes on."""
    try:
        yield
    except Exception:
        name = f"{body.metadata.namespace}/{body.metadata.name}"
        logging.getLogger(__name__).exception("could not handle a watch event for %s", name)
        metrics: Metrics = memo.metrics
        metrics.internal_error(task="watch")


def _plain(body: kopf.Body) -> dict[str, Any]:
    """A detached copy: the controller reads it later, after kopf has moved on. Without the
    server's `managedFields` (a real API server adds kilobytes of them to every object, and a
    copy is kept per route)."""
    metadata = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    return {
        "metadata": _copy(metadata),
        "spec": _copy(body.get("spec")),
        "status": _copy(body.get("status")),
        "data": _copy(body.get("data")),
    }


def _copy(value: Any) -> Any:
    if isinstance(value, dict | kopf.Spec | kopf.Status) or hasattr(value, "items"):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
