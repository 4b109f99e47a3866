"""Starts one route controller (and its task) per LLMRoute on first sight, stops it on deletion."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from llm_failover.controller import RouteController, Services
from llm_failover.kube import RouteRef

log = logging.getLogger(__name__)


class RouteManager:
    """Owns the route controllers; kopf's handlers only tell it what the watch saw."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._routes: dict[str, tuple[RouteController, asyncio.Task[None]]] = {}

    def observe(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata", {})
        ref = RouteRef(meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", ""))
        key = f"{ref.namespace}/{ref.name}"
        known = self._routes.get(key)
        if known is not None and known[0].ref.uid != ref.uid:  # deleted and re-created meanwhile
            self.forget(ref.namespace, ref.name)
            known = None
        if known is None:
            controller = RouteController(ref=ref, services=self._services)
            task = asyncio.create_task(controller.run(), name=f"route {key}")
            task.add_done_callback(_log_crash)
            known = self._routes[key] = (controller, task)
        known[0].update(body)

    def forget(self, namespace: str, name: str) -> None:
        known = self._routes.pop(f"{namespace}/{name}", None)
        if known is not None:
            known[0].stop()
            known[1].cancel()
            self._services.metrics.route_removed(namespace=namespace, route=name)

    async def close(self) -> None:
        routes = list(self._routes.values())
        self._routes.clear()
        for controller, task in routes:
            controller.stop()
            task.cancel()
        for _, task in routes:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s crashed", task.get_name(), exc_info=task.exception())
