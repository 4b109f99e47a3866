"""The route controller step by step, with a fake cluster, fake probe results and a fake clock:
routing output, status, Events and every route metric's exact value through one scenario."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from fakes import FakeClock, FakeCluster, FakeProbes
from llm_failover import __version__
from llm_failover.catalog import AuthScheme, ProbeMethod, default_catalog
from llm_failover.controller import RouteController, Services
from llm_failover.kube import RouteRef
from llm_failover.manager import RouteManager
from llm_failover.metrics import Metrics
from llm_failover.prober import Credential, Endpoint, Prober, Schedule
from llm_failover.sandbox.providers import Behaviour, StandInProvider
from llm_failover.settings import Settings
from llm_failover.state import ProviderState as S
from llm_failover.status import timestamp

NS, ROUTE = "shop", "chat"
OPENAI, QWEN = "http://openai.test/v1", "http://qwen.test/v1"
REF = RouteRef(NS, ROUTE, "uid-1")


def body(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": ROUTE, "namespace": NS, "uid": "uid-1", "generation": 1},
        "spec": {
            "providers": [
                {
                    "name": "openai",
                    "baseURL": OPENAI,
                    "model": "gpt-4o",
                    "apiKeySecretRef": {"name": "keys", "key": "openai"},
                },
                {
                    "name": "qwen",
                    "baseURL": QWEN,
                    "model": "qwen-max",
                    "apiKeySecretRef": {"name": "keys", "key": "qwen"},
                },
            ],
            "healthCheck": {"intervalSeconds": 10, "failureThreshold": 2, "successThreshold": 2},
            **spec,
        },
    }


class World:
    def __init__(self) -> None:
        self.cluster = FakeCluster()
        self.cluster.add_secret(NS, "keys", {"openai": "sk-openai", "qwen": "sk-qwen"})
        self.probes = FakeProbes()
        self.clock = FakeClock()
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        services = self.services(self.metrics)
        self.manager = RouteManager(services)
        self.controller = RouteController(ref=REF, services=services)

    def services(self, metrics: Metrics) -> Services:
        """What a controller of this world shares: its fake cluster, probes and clock."""
        return Services(
            kube=self.cluster,
            prober=self.probes,
            catalog=default_catalog(),
            clock=self.clock,
            settings=Settings(),
            metrics=metrics,
        )

    async def step(self, openai: S, qwen: S = S.HEALTHY, *, seconds: float = 10) -> None:
        """One probe interval: both providers answer, then the controller reconciles."""
        sent = self.clock.advance(seconds)
        self.probes.answer(OPENAI, openai, at=sent)
        self.probes.answer(QWEN, qwen, at=sent)
        self.clock.advance(0.5)  # the probes' round trip
        await self.controller.reconcile()

    def sample(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def route(self, name: str, **labels: str) -> float | None:
        return self.sample(name, namespace=NS, route=ROUTE, **labels)

    def provider(self) -> str | None:
        data = self.cluster.data("ConfigMap", NS, "chat-llm")
        return data["LLM_PROVIDER"] if data else None


@pytest.fixture
async def world() -> World:
    w = World()
    w.controller.update(body())
    await w.controller.reconcile()  # subscribes; nothing probed yet
    return w


async def test_nothing_is_written_before_the_first_probes(world: World) -> None:
    assert world.provider() is None
    assert world.cluster.status["conditions"][0]["reason"] == "Probing"
    assert f"{NS}/{ROUTE}" in world.probes.subscribed
    assert world.route("llmfailover_route_active_provider", provider="openai") is None


async def test_a_failover_scenario_step_by_step(world: World) -> None:
    w = world
    await w.step(S.HEALTHY)
    assert w.provider() == "openai"
    assert w.route("llmfailover_provider_up", provider="openai") == 1
    assert w.route("llmfailover_provider_state", provider="openai", state="Healthy") == 1
    assert (
        w.route("llmfailover_provider_state", provider="openai", state="ServerError") is None
    )  # one series: the current state
    assert w.route("llmfailover_route_active_provider", provider="openai") == 1
    assert w.route("llmfailover_route_active_provider", provider="qwen") == 0
    assert w.route("llmfailover_configmap_writes_total") == 1
    assert w.sample("llmfailover_routes") == 1
    assert w.route("llmfailover_route_failed_over") == 0
    assert w.sample("llmfailover_build_info", version=__version__) == 1

    # A 5xx streak (failureThreshold 2): its first failing probe is sent at 20.5 s.
    await w.step(S.SERVER_ERROR)
    first_failure = w.clock.now.timestamp() - 0.5
    assert w.provider() == "openai"
    assert w.route("llmfailover_provider_up", provider="openai") == 1  # not ejected yet
    assert w.route("llmfailover_provider_state", provider="openai", state="ServerError") == 1
    # route.json changes with eligibility or order only: a failure below the threshold is not
    # written (it is in the status and the metrics).
    assert w.route("llmfailover_configmap_writes_total") == 1
    await w.step(S.SERVER_ERROR)
    assert w.provider() == "qwen"
    labels = {"from_provider": "openai", "to_provider": "qwen", "reason": "ServerError"}
    assert w.route("llmfailover_failovers_total", **labels) == 1
    assert w.route("llmfailover_last_failover_timestamp_seconds") == w.clock.now.timestamp()
    assert w.route("llmfailover_failover_duration_seconds_count") == 1
    assert (
        w.route("llmfailover_failover_duration_seconds_sum")
        == w.clock.now.timestamp() - first_failure
        == 11.0  # sent at 20.5 s, switched at 31.5 s
    )
    assert w.route("llmfailover_failover_duration_seconds_bucket", le="10.0") == 0
    assert w.route("llmfailover_failover_duration_seconds_bucket", le="20.0") == 1
    assert w.route("llmfailover_provider_up", provider="openai") == 0
    assert w.route("llmfailover_route_active_provider", provider="qwen") == 1
    assert w.route("llmfailover_route_failed_over") == 1
    assert w.route("llmfailover_configmap_writes_total") == 2
    assert ("Warning", "FailedOver", "openai → qwen (ServerError)") in w.cluster.events
    assert w.cluster.status["lastFailover"]["reason"] == "ServerError"
    assert w.cluster.status["providers"][0]["failingSince"] == "2026-11-21T09:00:20Z"

    # Recovery: two healthy probes in a row, then failback (no failing probe: no duration).
    await w.step(S.HEALTHY)
    assert w.provider() == "qwen"
    await w.step(S.HEALTHY)
    assert w.provider() == "openai"
    assert (
        w.route(
            "llmfailover_failovers_total",
            from_provider="qwen",
            to_provider="openai",
            reason="Failback",
        )
        == 1
    )
    assert w.route("llmfailover_failover_duration_seconds_count") == 1
    assert [e[1] for e in w.cluster.events] == [
        "ProviderEjected",
        "FailedOver",
        "ProviderRecovered",
        "FailedBack",
    ]
    assert w.cluster.status["failoverCount"] == 2

    # A steady state writes nothing more.
    writes = len(w.cluster.writes)
    await w.step(S.HEALTHY)
    await w.step(S.HEALTHY)
    assert len(w.cluster.writes) == writes
    assert w.route("llmfailover_configmap_writes_total") == 3


async def test_a_geo_block_switches_within_the_probe(world: World) -> None:
    w = world
    await w.step(S.HEALTHY)
    await w.step(S.GEO_BLOCKED)
    assert w.provider() == "qwen"
    # From the probe that saw the geo-block to the write: its round trip, nothing more.
    assert w.route("llmfailover_failover_duration_seconds_sum") == 0.5
    assert w.route("llmfailover_provider_state", provider="openai", state="GeoBlocked") == 1


async def test_no_healthy_provider_keeps_the_output(world: World) -> None:
    w = world
    await w.step(S.HEALTHY)
    await w.step(S.GEO_BLOCKED, S.QUOTA_EXHAUSTED)
    assert w.provider() == "openai"  # kept, never emptied
    ready = w.cluster.status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "NoHealthyProvider")
    assert w.route("llmfailover_provider_up", provider="openai") == 0
    assert w.route("llmfailover_provider_up", provider="qwen") == 0
    await w.step(S.GEO_BLOCKED, S.QUOTA_EXHAUSTED)
    assert [e[1] for e in w.cluster.events].count("NoHealthyProvider") == 1


async def test_the_key_secret_goes_first_and_holds_the_active_key() -> None:
    w = World()
    w.controller.update(body(target={"secretName": "chat-llm-key"}))
    await w.controller.reconcile()
    await w.step(S.HEALTHY)
    assert w.cluster.writes[:2] == [("Secret", "chat-llm-key"), ("ConfigMap", "chat-llm")]
    await w.step(S.UNAUTHORIZED)
    assert w.cluster.writes[2:] == [("Secret", "chat-llm-key"), ("ConfigMap", "chat-llm")]
    secret = await w.cluster.read_secret(NS, "chat-llm-key")
    assert secret == {"LLM_API_KEY": b"sk-qwen", "OPENAI_API_KEY": b"sk-qwen"}


async def test_removing_a_provider_and_deleting_the_route_remove_their_series() -> None:
    w = World()
    w.manager.observe(body())
    controller, _ = w.manager._routes[f"{NS}/{ROUTE}"]
    w.controller = controller
    await w.step(S.HEALTHY)
    await w.step(S.GEO_BLOCKED)
    assert w.route("llmfailover_provider_up", provider="openai") == 0
    only_qwen = body()
    only_qwen["spec"]["providers"] = only_qwen["spec"]["providers"][1:]
    only_qwen["metadata"]["generation"] = 2
    controller.update(only_qwen)
    await controller.reconcile()
    assert w.route("llmfailover_provider_up", provider="openai") is None
    assert w.route("llmfailover_provider_state", provider="openai", state="GeoBlocked") is None
    assert w.route("llmfailover_provider_up", provider="qwen") == 1

    w.manager.forget(NS, ROUTE)
    await asyncio.sleep(0)
    families = {m.name: m.samples for m in w.registry.collect()}
    leftover = [
        s for samples in families.values() for s in samples if s.labels.get("route") == ROUTE
    ]
    assert leftover == []
    assert w.sample("llmfailover_routes") == 0
    await w.manager.close()


async def test_probe_metrics_from_the_real_prober() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    with StandInProvider("openai") as stand_in:
        endpoint = Endpoint.for_provider(
            base_url=stand_in.base_url,
            method=ProbeMethod.MODELS,
            model="m",
            credential=Credential.of(None),
            auth=AuthScheme(),
            errors=default_catalog().common,
        )

        def record(e: Endpoint, report: Any) -> None:
            metrics.probed(
                endpoint=e.host,
                state=report.classification.state,
                seconds=report.latency_milliseconds / 1000,
            )

        async with httpx.AsyncClient() as client:
            prober = Prober(client=client, on_report=record)
            wake = asyncio.Event()
            prober.subscribe("a/b", {endpoint: Schedule(1, 1)}, wake)
            await asyncio.wait_for(wake.wait(), 5)
            stand_in.set(Behaviour.GEO_BLOCKED)
            wake.clear()
            await asyncio.wait_for(wake.wait(), 5)
            await prober.close()
    assert (
        registry.get_sample_value(
            "llmfailover_probes_total", {"endpoint": "127.0.0.1", "state": "Healthy"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "llmfailover_probes_total", {"endpoint": "127.0.0.1", "state": "GeoBlocked"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "llmfailover_probe_duration_seconds_count", {"endpoint": "127.0.0.1"}
        )
        == 2
    )


async def test_restart_targets_are_stamped_only_when_the_routing_changes() -> None:
    w = World()
    for namespace in (NS, "elsewhere"):
        w.cluster.objects[("Deployment", namespace, "api")] = {
            "metadata": {"name": "api"},
            "spec": {"template": {}},
        }
    w.controller.update(
        body(
            target={
                "restart": [
                    {"kind": "Deployment", "name": "api"},
                    {"kind": "StatefulSet", "name": "worker"},
                ]
            }
        )
    )
    await w.controller.reconcile()

    def stamp(namespace: str = NS) -> str | None:
        template = w.cluster.objects[("Deployment", namespace, "api")]["spec"]["template"]
        return (
            template.get("metadata", {})
            .get("annotations", {})
            .get("llmfailover.dev/route-revision")
        )

    await w.step(S.HEALTHY)
    first = stamp()
    assert first is not None
    assert [e for e in w.cluster.events if e[1] == "RestartTargetMissing"] == [
        (
            "Warning",
            "RestartTargetMissing",
            f"StatefulSet {NS}/worker not found: not restarted (the operator never creates it)",
        )
    ]
    assert ("StatefulSet", NS, "worker") not in w.cluster.objects  # never created
    await w.step(S.HEALTHY)
    await w.step(S.SERVER_ERROR)  # a failure below the threshold changes no routing output
    assert w.cluster.writes.count(("Deployment", "api")) == 1
    await w.step(S.GEO_BLOCKED)
    assert w.provider() == "qwen"
    assert stamp() not in (None, first)
    assert w.cluster.writes.count(("Deployment", "api")) == 2
    assert [e[1] for e in w.cluster.events].count("RestartTargetMissing") == 1
    assert stamp("elsewhere") is None  # a route touches its own namespace only


async def test_a_restarted_operator_does_not_restamp() -> None:
    w = World()
    w.cluster.objects[("Deployment", NS, "api")] = {
        "metadata": {"name": "api"},
        "spec": {"template": {}},
    }
    spec = body(target={"restart": [{"kind": "Deployment", "name": "api"}]})
    w.controller.update(spec)
    await w.controller.reconcile()
    await w.step(S.HEALTHY)
    writes = len(w.cluster.writes)
    # A new process: same cluster, same probe answers, status as the old one left it.
    restarted = RouteController(ref=REF, services=w.manager._services)
    restarted.update({**spec, "status": w.cluster.status})
    w.controller = restarted
    await w.step(S.HEALTHY)
    assert len(w.cluster.writes) == writes  # neither the ConfigMap nor the Deployment


# --- what is worth a status write (issue 12) ----------------------------------------------------


async def test_a_probe_that_changes_nothing_writes_nothing_until_the_heartbeat() -> None:
    w = World()
    w.controller.update(body())
    for _ in range(3):
        await w.step(S.HEALTHY)
    writes = w.cluster.status_writes
    for _ in range(10):
        await w.step(S.HEALTHY)  # new probe times, latencies and streaks: metrics, not status
    assert w.cluster.status_writes == writes
    w.controller._heartbeat_from -= Settings().status_heartbeat_seconds  # heartbeat due
    await w.step(S.HEALTHY)
    assert w.cluster.status_writes == writes + 1
    entry = next(p for p in w.cluster.status["providers"] if p["name"] == "openai")
    assert entry["consecutiveSuccesses"] == 14  # the per-probe facts, brought up to date
    await w.step(S.HEALTHY)
    assert w.cluster.status_writes == writes + 1


def test_the_heartbeat_stretches_with_the_routes() -> None:
    """All routes' heartbeat writes together stay under a few a second: at 10,000 routes one
    route's per-probe facts reach its status every half hour or so, not every 5 minutes; and
    the count that decides is the one when the heartbeat is due, not the one at the route's
    start (while the operator is still finding the other routes)."""
    w = World()
    count = [1]
    controller = RouteController(
        ref=REF, services=replace(w.services(w.metrics), routes=lambda: count[0])
    )
    for routes, heartbeat in ((10, 300), (10_000, 2000)):
        count[0] = routes
        first = controller._heartbeat_in()
        assert heartbeat * 0.5 - 1 <= first <= heartbeat  # a restart is no reason for a write
        due = []
        for _ in range(200):
            controller._restart_heartbeat()
            due.append(controller._heartbeat_in())
        assert heartbeat * 0.75 - 1 <= min(due)
        assert max(due) <= heartbeat
        controller._heartbeat_from = time.monotonic()
        controller._heartbeat_part = 0.5


async def test_a_threshold_crossing_writes_once() -> None:
    w = World()
    w.controller.update(body())  # failureThreshold 2
    for _ in range(3):
        await w.step(S.HEALTHY)
    writes = w.cluster.status_writes
    await w.step(S.SERVER_ERROR)  # the state changes: written
    assert w.cluster.status_writes == writes + 1
    assert w.provider() == "openai"
    await w.step(S.SERVER_ERROR)  # the threshold: ejected, failed over, written once
    assert w.cluster.status_writes == writes + 2
    assert w.provider() == "qwen"
    await w.step(S.SERVER_ERROR)  # a longer streak: nothing new
    await w.step(S.SERVER_ERROR)
    assert w.cluster.status_writes == writes + 2


def attended(w: World) -> set[str]:
    """The base URLs whose every answer wakes the route."""
    return {e.base_url for e in w.probes.eager.get(f"{NS}/{ROUTE}", frozenset())}


async def test_a_route_attends_to_every_answer_only_while_a_provider_counts_towards_a_threshold() -> (
    None
):
    w = World()
    w.controller.update(body())  # failureThreshold 2, successThreshold 2
    await w.controller.reconcile()
    assert attended(w) == {OPENAI, QWEN}  # never probed: the first answers count
    await w.step(S.HEALTHY)
    assert attended(w) == set()  # both trusted and healthy: only a new state matters
    await w.step(S.SERVER_ERROR)
    assert attended(w) == {OPENAI}  # one failure of two: the next one decides
    await w.step(S.SERVER_ERROR)
    assert w.provider() == "qwen"
    assert attended(w) == set()
    await w.step(S.HEALTHY)
    assert attended(w) == {OPENAI}  # one success of two towards trust
    await w.step(S.HEALTHY)
    assert w.provider() == "openai"
    assert attended(w) == set()


async def test_answers_a_route_slept_through_are_all_counted_when_it_wakes() -> None:
    w = World()
    w.controller.update(body())
    await w.step(S.HEALTHY)
    for _ in range(20):  # answers like the last: the prober does not wake the route for these
        sent = w.clock.advance(10)
        w.probes.answer(OPENAI, S.HEALTHY, at=sent)
        w.probes.answer(QWEN, S.HEALTHY, at=sent)
    for _ in range(2):  # then a new state, which wakes it: a run of two soft failures
        sent = w.clock.advance(10)
        w.probes.answer(OPENAI, S.SERVER_ERROR, at=sent)
    await w.controller.reconcile()
    openai, qwen = w.cluster.status["providers"]
    assert (openai["consecutiveFailures"], openai["ejected"]) == (2, True)  # both counted
    assert openai["failingSince"] == timestamp(sent - timedelta(seconds=10))  # the run's first
    assert qwen["consecutiveSuccesses"] == 21
    assert w.provider() == "qwen"


async def test_a_rotated_key_is_probed_as_soon_as_the_watch_reports_it() -> None:
    w = World()
    w.controller.update(body())
    await w.step(S.HEALTHY)
    reads = w.cluster.calls.count("read_secret")
    w.controller._wake.clear()
    rotated = {"openai": b"sk-rotated", "qwen": b"sk-qwen"}
    w.controller._secrets.observed(NS, "keys", rotated)  # the watch of Secrets
    assert w.controller._wake.is_set()
    await w.controller.reconcile()
    keys = {e.base_url: e.credential.value for e in w.probes.subscribed[f"{NS}/{ROUTE}"]}
    assert keys == {OPENAI: "sk-rotated", QWEN: "sk-qwen"}
    assert w.cluster.calls.count("read_secret") == reads  # the watch's value: no API read


async def test_a_route_has_a_handful_of_series_whatever_its_providers_went_through() -> None:
    """/metrics must stay cheap at 10,000 routes: per provider one state series (the current
    state's), eligibility and active; per route the failed-over flag and the write counter, plus
    the failover counters and histogram of the switches that happened."""
    w = World()
    w.controller.update(body())
    for state in (S.HEALTHY, S.SERVER_ERROR, S.RATE_LIMITED, S.TIMEOUT, S.HEALTHY, S.HEALTHY):
        await w.step(state)

    def series(name: str) -> list[dict[str, str]]:
        return [
            sample.labels
            for metric in w.registry.collect()
            for sample in metric.samples
            if sample.name == name and sample.labels.get("route") == ROUTE
        ]

    assert len(series("llmfailover_provider_state")) == 2  # one per provider
    assert len(series("llmfailover_provider_up")) == 2
    assert len(series("llmfailover_route_active_provider")) == 2
    assert not any(m.name.endswith("_created") for m in w.registry.collect() for m in m.samples)


async def test_a_switch_costs_one_write_of_the_configmap_and_no_read() -> None:
    w = World()
    w.controller.update(body())
    await w.step(S.HEALTHY)
    w.cluster.calls.clear()
    await w.step(S.GEO_BLOCKED)
    assert w.provider() == "qwen"
    assert "read_config_map" not in w.cluster.calls
    assert w.cluster.calls.count("patch_config_map") == 1


async def test_a_configmap_gone_behind_the_watchs_back_is_created_again() -> None:
    w = World()
    w.controller.update(body())
    await w.step(S.HEALTHY)
    del w.cluster.objects[("ConfigMap", NS, "chat-llm")]  # the watch never said so
    await w.step(S.GEO_BLOCKED)
    assert w.provider() == "qwen"
    assert "create_config_map" in w.cluster.calls


async def test_our_own_status_coming_back_through_the_watch_wakes_nothing() -> None:
    w = World()
    route = body()
    w.controller.update(route)
    await w.step(S.HEALTHY)
    w.controller._wake.clear()
    w.controller.update({**route, "status": w.cluster.status})
    assert not w.controller._wake.is_set()
    w.controller.update({**route, "status": {**w.cluster.status, "failoverCount": 7}})
    assert w.controller._wake.is_set()  # someone else's write: looked at again
    w.controller._wake.clear()
    edited = body(failback="Manual")
    w.controller.update({**edited, "status": w.controller._status})
    assert w.controller._wake.is_set()  # a spec change


async def test_a_loop_woken_as_it_is_cancelled_stops(world: World) -> None:
    """Python 3.11's asyncio.wait_for swallowed a cancellation that landed as the wake was
    set: the route's loop went on after its route was forgotten, and shutdown waited for it."""
    task = asyncio.create_task(world.controller.run())
    for _ in range(5):
        await asyncio.sleep(0)  # the loop reconciles, then waits for its wake
    world.controller.wake()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), 5)
    assert task.cancelled()


async def test_closing_the_routes_is_bounded(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    done = False

    async def stubborn() -> None:
        for _ in range(100):  # ignores cancellation, for 5 s at most
            if done:
                return
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.05)

    monkeypatch.setattr("llm_failover.manager.CLOSE_SECONDS", 0.2)
    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)  # running: a task cancelled before its start just ends
    world.manager._routes["shop/stuck"] = (world.controller, task)
    started = time.monotonic()
    await world.manager.close()
    assert time.monotonic() - started < 2
    assert "did not stop within" in caplog.text
    done = True
    await task
