"""Issue 14 through the route controller, with a fake cluster, fake probes, fake signals and a
fake clock: a traffic signal probes at once and a failing probe while it fires ejects at once;
`trust: Signal` ejects on traffic alone (TrafficErrors); a Prometheus that cannot be asked is
reported and changes nothing; a reset time holds a provider out; providers behind the next in
line are probed at the backup interval and become active only after a fresh probe."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from fakes import FakeClock, FakeCluster, FakeProbes
from llm_failover.catalog import default_catalog
from llm_failover.controller import RouteController, Services
from llm_failover.kube import RouteRef
from llm_failover.metrics import Metrics
from llm_failover.prober import Wake
from llm_failover.secretcache import SecretCache
from llm_failover.settings import Settings
from llm_failover.signals import Query, Reading, SignalSource, Source
from llm_failover.state import ProviderState as S

NS, ROUTE = "shop", "chat"
URLS = {"glm": "http://glm.test/v4", "qwen": "http://qwen.test/v1", "kimi": "http://kimi.test/v1"}
REF = RouteRef(NS, ROUTE, "uid-1")
QUERY = 'errors{host="${host}", model="${model}"}'


class FakeSignals(SignalSource):
    """What the signals say, set by the test; the queries routes asked for, kept."""

    def __init__(self) -> None:
        self.queries: dict[str, Mapping[str, Query]] = {}
        self.now: dict[str, Reading] = {}

    def watch(self, subscriber: str, queries: Mapping[str, Query], wake: Wake) -> None:
        self.queries[subscriber] = dict(queries)

    def unwatch(self, subscriber: str) -> None:
        self.queries.pop(subscriber, None)

    def readings(self, subscriber: str, active: str | None) -> dict[str, Reading]:
        return dict(self.now)


def provider(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "baseURL": URLS[name],
        "model": f"{name}-model",
        "apiKeySecretRef": {"name": "keys", "key": name},
        **extra,
    }


def body(*, signal: dict[str, Any] | None = None, **check: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "providers": [provider("glm"), provider("qwen"), provider("kimi")],
        "healthCheck": {
            "intervalSeconds": 10,
            "failureThreshold": 3,
            "successThreshold": 2,
            **check,
        },
    }
    if signal is not None:
        spec["signal"] = signal
    return {
        "metadata": {"name": ROUTE, "namespace": NS, "uid": "uid-1", "generation": 1},
        "spec": spec,
    }


class World:
    def __init__(self) -> None:
        self.cluster = FakeCluster()
        self.cluster.add_secret(NS, "keys", {name: f"sk-{name}" for name in URLS})
        self.probes = FakeProbes()
        self.signals = FakeSignals()
        self.clock = FakeClock()
        self.registry = CollectorRegistry()
        self.secrets = SecretCache(
            self.cluster.read_secret, read_revision=self.cluster.read_secret_revision
        )
        self.controller = RouteController(
            ref=REF,
            services=Services(
                kube=self.cluster,
                prober=self.probes,
                catalog=default_catalog(),
                clock=self.clock,
                settings=Settings(),
                metrics=Metrics(self.registry),
                signals=self.signals,
                secrets=self.secrets,
            ),
        )

    async def start(self, route: dict[str, Any]) -> None:
        self.controller.update(route)
        await self.controller.reconcile()
        await self.step()  # everyone healthy: routed to glm
        await self.step()
        assert self.active() == "glm"

    async def step(self, seconds: float = 10, **states: S) -> None:
        """One probe interval: the providers named answer (the others healthy), then the
        controller reconciles."""
        sent = self.clock.advance(seconds)
        for name, url in URLS.items():
            self.probes.answer(url, states.get(name, S.HEALTHY), at=sent)
        self.clock.advance(0.5)
        await self.controller.reconcile()

    async def answer(self, name: str, state: S, **extra: Any) -> None:
        """One provider answers (a reprobe), then the controller reconciles."""
        sent = self.clock.advance(0.5)
        self.probes.answer(URLS[name], state, at=sent, **extra)
        self.clock.advance(0.2)
        await self.controller.reconcile()

    def active(self) -> str | None:
        data = self.cluster.data("ConfigMap", NS, "chat-llm")
        return data["LLM_PROVIDER"] if data else None

    def entry(self, name: str) -> dict[str, Any]:
        return next(p for p in self.cluster.status["providers"] if p["name"] == name)

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.cluster.events]


def firing(value: float = 0.5, *, may_eject: bool = True) -> Reading:
    return Reading(True, Source.PROMETHEUS, value, 0.2, may_eject=may_eject)


async def test_the_route_signal_is_asked_for_the_active_provider_with_its_values() -> None:
    w = World()
    await w.start(body(signal={"prometheus": {"query": QUERY, "threshold": 0.2}}))
    asked = w.signals.queries[f"{NS}/{ROUTE}"]
    assert asked == {"glm": Query('errors{host="glm.test", model="glm-model"}', 0.2)}


async def test_a_provider_signal_is_asked_whether_active_or_not() -> None:
    w = World()
    route = body()
    route["spec"]["providers"][2]["signal"] = {"prometheus": {"query": QUERY, "threshold": 1}}
    await w.start(route)
    assert set(w.signals.queries[f"{NS}/{ROUTE}"]) == {"kimi"}


async def test_a_firing_signal_probes_at_once_and_a_failing_probe_then_ejects_at_once() -> None:
    w = World()
    await w.start(body(signal={"prometheus": {"query": QUERY, "threshold": 0.2}}))
    w.signals.now = {"glm": firing()}
    await w.controller.reconcile()  # woken by the signal
    assert w.probes.reprobed == [URLS["glm"]]
    assert "SignalFiring" in w.reasons()
    assert w.entry("glm")["signal"] == {
        "firing": True,
        "source": "Prometheus",
        "value": 0.5,
        "threshold": 0.2,
    }
    assert w.active() == "glm", "a signal alone never switches the route"
    # One soft failure (failureThreshold is 3) confirms what traffic says: out at once.
    await w.answer("glm", S.SERVER_ERROR)
    assert w.active() == "qwen"
    assert w.cluster.status["lastFailover"]["reason"] == "ServerError"
    assert (
        w.registry.get_sample_value(
            "llmfailover_provider_signal_firing",
            {"namespace": NS, "route": ROUTE, "provider": "glm"},
        )
        == 1
    )


async def test_passing_probes_keep_a_provider_whose_signal_fires_by_default() -> None:
    w = World()
    await w.start(body(signal={"prometheus": {"query": QUERY, "threshold": 0.2}}))
    w.signals.now = {"glm": firing()}
    for _ in range(3):
        await w.step()
    assert w.active() == "glm"
    assert w.entry("glm")["eligible"] is True
    w.signals.now = {}
    await w.step()
    assert "SignalResolved" in w.reasons()
    assert "signal" not in w.entry("glm")


async def test_trust_signal_ejects_on_traffic_alone_and_needs_healthy_probes_after() -> None:
    w = World()
    await w.start(
        body(signal={"prometheus": {"query": QUERY, "threshold": 0.2}, "trust": "Signal"})
    )
    w.signals.now = {"glm": firing()}
    await w.controller.reconcile()
    assert w.active() == "qwen"
    assert w.cluster.status["lastFailover"]["reason"] == "TrafficErrors"
    assert w.entry("glm")["trafficErrors"] is True
    assert w.entry("glm")["state"] == "Healthy"
    failed_over = next(c for c in w.cluster.status["conditions"] if c["type"] == "FailedOver")
    assert failed_over["reason"] == "TrafficErrors"
    ejected = [m for _, r, m in w.cluster.events if r == "ProviderEjected"]
    assert ejected
    assert "TrafficErrors" in ejected[-1]
    # Healthy probes while it fires do not count; once it stops, successThreshold of them do.
    await w.step()
    await w.step()
    assert w.active() == "qwen"
    w.signals.now = {}
    await w.step()
    assert w.active() == "qwen"
    await w.step()
    assert w.active() == "glm"
    assert "trafficErrors" not in w.entry("glm")


async def test_an_unauthenticated_alert_only_probes_even_with_trust_signal() -> None:
    w = World()
    await w.start(body(signal={"trust": "Signal"}))
    w.signals.now = {"glm": Reading(True, Source.ALERTMANAGER, may_eject=False)}
    await w.controller.reconcile()
    assert w.probes.reprobed == [URLS["glm"]]
    assert w.active() == "glm"
    # Nor does it confirm anything: a soft failure counts towards the threshold as usual.
    await w.answer("glm", S.SERVER_ERROR)
    assert w.active() == "glm"


async def test_a_prometheus_that_cannot_be_asked_is_reported_and_changes_nothing() -> None:
    w = World()
    await w.start(body(signal={"prometheus": {"query": QUERY, "threshold": 0.2}}))
    problem = "Prometheus unreachable: ConnectError: connection refused"
    w.signals.now = {"glm": Reading(False, Source.PROMETHEUS, threshold=0.2, problem=problem)}
    await w.step()
    await w.step()
    assert w.active() == "glm"
    assert w.entry("glm")["signal"]["message"] == problem
    assert w.reasons().count("SignalUnavailable") == 1
    assert w.probes.reprobed == []


async def test_a_reset_time_ejects_a_rate_limited_provider_at_once_until_then() -> None:
    w = World()
    await w.start(body())
    until = w.clock.now + timedelta(minutes=30)
    await w.answer("glm", S.RATE_LIMITED, retry_at=until)
    assert w.active() == "qwen"
    entry = w.entry("glm")
    assert entry["retryAfter"] == until.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert entry["ejected"] is True
    ejected = [m for _, r, m in w.cluster.events if r == "ProviderEjected"]
    assert "as the provider says" in ejected[-1]


async def test_a_reset_time_within_the_interval_is_an_ordinary_soft_failure() -> None:
    w = World()
    await w.start(body())
    await w.answer("glm", S.RATE_LIMITED, retry_at=w.clock.now + timedelta(seconds=3))
    assert w.active() == "glm"
    assert "retryAfter" not in w.entry("glm")


async def test_providers_behind_the_next_in_line_are_probed_at_the_backup_interval() -> None:
    w = World()
    await w.start(body(backupIntervalSeconds=60))
    schedules = {e.base_url: s for e, s in w.probes.subscribed[f"{NS}/{ROUTE}"].items()}
    assert schedules[URLS["glm"]].backup_seconds is None
    assert schedules[URLS["qwen"]].backup_seconds is None  # the next in line
    assert schedules[URLS["kimi"]].backup_seconds == 60
    # glm out: qwen active, kimi becomes the next in line and is probed at the full rate.
    await w.answer("glm", S.UNAUTHORIZED)
    assert w.active() == "qwen"
    schedules = {e.base_url: s for e, s in w.probes.subscribed[f"{NS}/{ROUTE}"].items()}
    assert schedules[URLS["kimi"]].backup_seconds is None
    assert schedules[URLS["glm"]].backup_seconds is None  # before the active: a failback


async def test_a_stale_provider_becomes_active_only_after_a_fresh_probe() -> None:
    w = World()
    await w.start(body(backupIntervalSeconds=300))
    # kimi was last probed at the start; glm and qwen go on being probed.
    for _ in range(4):
        sent = w.clock.advance(10)
        w.probes.answer(URLS["glm"], S.HEALTHY, at=sent)
        w.probes.answer(URLS["qwen"], S.HEALTHY, at=sent)
        await w.controller.reconcile()
    await w.answer("qwen", S.UNAUTHORIZED)  # the next in line out: kimi is next
    await w.answer("glm", S.UNAUTHORIZED)  # and the active one: kimi is stale
    assert w.active() == "glm", "no switch to a provider not probed lately"
    ready = next(c for c in w.cluster.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Probing")
    assert "confirming kimi" in ready["message"]
    assert URLS["kimi"] in w.probes.reprobed
    await w.answer("kimi", S.HEALTHY)
    assert w.active() == "kimi"


async def test_a_touched_key_secret_reprobes_its_providers_at_once() -> None:
    w = World()
    await w.start(body())
    await w.answer("glm", S.QUOTA_EXHAUSTED)
    assert w.active() == "qwen"
    same = {n: f"sk-{n}".encode() for n in URLS}
    # The watch shows the Secret as it was read: nothing to do.
    w.secrets.observed(NS, "keys", same, revision="1")
    await w.controller.reconcile()
    assert w.probes.reprobed == []
    # A top-up: the key is the same; the Secret is touched (`kubectl annotate`: a new
    # resourceVersion, the first change since it was read).
    w.secrets.observed(NS, "keys", same, revision="7")
    await w.controller.reconcile()
    assert set(w.probes.reprobed) == set(URLS.values())


@pytest.mark.parametrize("value", [None, 0.1])
async def test_a_signal_that_does_not_fire_neither_probes_nor_announces(
    value: float | None,
) -> None:
    w = World()
    await w.start(body(signal={"prometheus": {"query": QUERY, "threshold": 0.2}}))
    w.signals.now = {"glm": Reading(False, Source.PROMETHEUS, value, 0.2)}
    await w.step()
    assert w.probes.reprobed == []
    assert not {"SignalFiring", "SignalUnavailable"} & set(w.reasons())


async def test_an_infinite_value_fires_and_the_status_stays_valid_json() -> None:
    import json
    import math

    w = World()
    await w.start(body(signal={"prometheus": {"query": QUERY, "threshold": 0.2}}))
    w.signals.now = {"glm": Reading(True, Source.PROMETHEUS, math.inf, 0.2)}
    await w.step()
    assert w.entry("glm")["signal"] == {"firing": True, "source": "Prometheus", "threshold": 0.2}
    json.dumps(w.cluster.status, allow_nan=False)  # what the API server accepts
