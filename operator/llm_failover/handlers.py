"""kopf handlers: thin glue from the LLMRoute watch to the route manager; no business rules here."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import kopf

from llm_failover.catalog import default_catalog
from llm_failover.controller import Services
from llm_failover.kube import GROUP, PLURAL, VERSION, KubeClient, load_api_client
from llm_failover.manager import RouteManager
from llm_failover.metrics import Metrics
from llm_failover.prober import Prober, utc_now
from llm_failover.settings import Settings


def build_registry() -> kopf.OperatorRegistry:
    """A registry of its own, so that the CLI, the demo and tests each run a fresh operator."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In a pod, the service account; elsewhere KUBECONFIG, read when the operator starts.
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        config: Settings = memo.settings
        # The operator posts its own Events, only on transitions; kopf's per-handler Events would
        # be noise (and need more RBAC). One replica (strategy Recreate) needs no peering.
        settings.posting.enabled = False
        settings.peering.standalone = True
        settings.watching.server_timeout = config.watch_timeout_seconds
        settings.watching.client_timeout = config.watch_timeout_seconds + 10
        memo.kube = KubeClient(load_api_client())
        memo.http = httpx.AsyncClient(
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            trust_env=True,  # HTTPS_PROXY: how many teams reach providers from inside China
        )
        metrics: Metrics = memo.metrics
        memo.prober = Prober(
            client=memo.http,
            clock=utc_now,
            max_body_bytes=config.max_body_bytes,
            on_report=lambda endpoint, report: metrics.probed(
                endpoint=endpoint.host,
                state=report.classification.state,
                seconds=report.latency_milliseconds / 1000,
            ),
        )
        memo.routes = RouteManager(
            Services(
                kube=memo.kube,
                prober=memo.prober,
                catalog=default_catalog(),
                clock=utc_now,
                settings=config,
                metrics=metrics,
            )
        )

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def on_route(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        routes: RouteManager = memo.routes
        if event.get("type") == "DELETED":
            routes.forget(body.metadata.namespace or "", body.metadata.name or "")
        else:
            routes.observe(_plain(body))

    @kopf.on.cleanup(registry=registry)
    async def cleanup(
        memo: kopf.Memo, logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any
    ) -> None:
        await memo.routes.close()
        await memo.prober.close()
        await memo.http.aclose()
        memo.kube.close()
        logger.info("stopped")

    return registry


def _plain(body: kopf.Body) -> dict[str, Any]:
    """A detached copy: the controller reads it later, after kopf has moved on."""
    return {
        "metadata": dict(body.metadata),
        "spec": _copy(body.get("spec")),
        "status": _copy(body.get("status")),
    }


def _copy(value: Any) -> Any:
    if isinstance(value, dict | kopf.Spec | kopf.Status) or hasattr(value, "items"):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
