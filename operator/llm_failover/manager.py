"""Starts one supervised route controller per LLMRoute on first sight, stops it when it is gone.

A controller's loop that crashes is restarted with backoff (and says so on its route); one that
ends because its route no longer exists is forgotten here, as if the watch had seen the deletion.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from llm_failover.controller import RouteController, Services
from llm_failover.kube import KIND, RouteRef, object_data
from llm_failover.supervision import supervise

log = logging.getLogger(__name__)

CLOSE_SECONDS = 5.0
"""How long shutdown waits for the route loops it cancelled."""


class RouteManager:
    """Owns the route controllers; kopf's handlers only tell it what the watches saw."""

    def __init__(self, services: Services) -> None:
        self._routes: dict[str, tuple[RouteController, asyncio.Task[None]]] = {}
        self._services = replace(services, routes=lambda: len(self._routes))
        self._by_uid: dict[str, RouteController] = {}

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
            metrics = self._services.metrics
            task = asyncio.create_task(
                supervise(
                    f"route controller {key}",
                    controller.run,
                    on_crash=controller.report_crash,
                    count=lambda: metrics.internal_error(task="route"),
                ),
                name=f"route {key}",
            )
            task.add_done_callback(lambda done: self._ended(controller, done))
            known = self._routes[key] = (controller, task)
            self._by_uid[ref.uid] = controller
        known[0].update(body)

    def forget(self, namespace: str, name: str) -> None:
        known = self._routes.pop(f"{namespace}/{name}", None)
        if known is not None:
            controller, task = known
            self._by_uid.pop(controller.ref.uid, None)
            controller.stop()
            task.cancel()
            self._services.metrics.route_removed(namespace=namespace, route=name)

    def owned_changed(self, kind: str, body: Mapping[str, Any], *, deleted: bool) -> None:
        """A ConfigMap or Secret carrying our label changed: tell the route that owns it."""
        meta = body.get("metadata") or {}
        for owner in meta.get("ownerReferences") or []:
            if not isinstance(owner, Mapping) or owner.get("kind") != KIND:
                continue
            controller = self._by_uid.get(str(owner.get("uid")))
            # An owner in another namespace is not an owner (and not a lever on another tenant).
            if controller is not None and meta.get("namespace") == controller.ref.namespace:
                data = None if deleted else object_data(body, kind)
                controller.target_changed(kind, str(meta.get("name", "")), data)

    def leadership_changed(self) -> None:
        """This replica became the leader or stopped being it: every route looks again (a new
        leader writes what differs from the last leader's word; a standby stops writing)."""
        for controller, _ in self._routes.values():
            controller.wake()

    async def close(self) -> None:
        routes = list(self._routes.values())
        self._routes.clear()
        self._by_uid.clear()
        for controller, task in routes:
            controller.stop()
            task.cancel()
        if not routes:
            return
        # Bounded: a loop that ignores its cancellation must not hold up the shutdown (and the
        # Lease's release) for ever.
        _, pending = await asyncio.wait([task for _, task in routes], timeout=CLOSE_SECONDS)
        for controller, task in routes:
            if task in pending:
                log.error("%s: its loop did not stop within %gs", controller.key, CLOSE_SECONDS)

    def _ended(self, controller: RouteController, task: asyncio.Task[None]) -> None:
        """The controller's loop returned (its route is gone) or, unexpectedly, died."""
        if task.cancelled():
            return
        if task.exception() is not None:  # supervise() only lets cancellation through
            log.error("%s: supervisor died", controller.key, exc_info=task.exception())
        current = self._routes.get(controller.key)
        if current is not None and current[0] is controller:
            self.forget(controller.ref.namespace, controller.ref.name)
