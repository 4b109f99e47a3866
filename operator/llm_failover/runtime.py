"""Runs the operator: kopf's machinery with our handlers, settings and liveness endpoint.

`llm-failover run` and `llm-failover demo` both come here, so the demo exercises the real path.
"""

from __future__ import annotations

import asyncio

import kopf
from prometheus_client import CollectorRegistry, start_http_server

from llm_failover.handlers import build_registry
from llm_failover.metrics import Metrics
from llm_failover.redact import Redactor, install_log_redaction
from llm_failover.settings import Settings


async def serve(
    settings: Settings,
    *,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    registry: CollectorRegistry | None = None,
) -> None:
    """Run until `stop_flag` is set (or kopf stops); metrics on `settings.metrics_port`.

    Every log record of the process passes the redactor while the operator runs.
    """
    metrics = Metrics(registry or CollectorRegistry())
    redactor = Redactor()
    undo = install_log_redaction(redactor)
    server, thread = start_http_server(settings.metrics_port, registry=metrics.registry)
    try:
        await kopf.operator(
            registry=build_registry(),
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=list(settings.namespaces),
            liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
            memo=kopf.Memo(settings=settings, metrics=metrics, redactor=redactor),
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        server.shutdown()
        thread.join(timeout=5)
        undo()
