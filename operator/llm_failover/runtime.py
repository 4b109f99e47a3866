"""Runs the operator: kopf's machinery with our handlers, settings and liveness endpoint.

`llm-failover run` and `llm-failover demo` both come here, so the demo exercises the real path.
"""

from __future__ import annotations

import asyncio

import kopf

from llm_failover.handlers import build_registry
from llm_failover.settings import Settings


async def serve(
    settings: Settings,
    *,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
) -> None:
    await kopf.operator(
        registry=build_registry(),
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=list(settings.namespaces),
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
        memo=kopf.Memo(settings=settings),
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )
