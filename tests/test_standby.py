"""A route's controller on a standby replica and across a change of leader, with a fake cluster,
fake probes and a fake clock: the standby writes nothing, follows the leader's status, and
taking over writes only what the standby's fresher probes change."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from fakes import FakeClock, FakeCluster, FakeProbes
from llm_failover.catalog import default_catalog
from llm_failover.controller import RouteController, Services
from llm_failover.kube import KubeError
from llm_failover.leader import Leadership
from llm_failover.metrics import Metrics
from llm_failover.settings import Settings
from llm_failover.state import ProviderState as S
from test_controller import NS, OPENAI, QWEN, REF, body

FOREVER = float("inf")


class Replica:
    """One operator process's controller of the route: its own probes and leadership."""

    def __init__(self, cluster: FakeCluster, clock: FakeClock, *, leading: bool) -> None:
        self.probes = FakeProbes()
        self.leadership = Leadership()
        if leading:
            self.leadership.hold(until=FOREVER)
        self.registry = CollectorRegistry()
        self.controller = RouteController(
            ref=REF,
            services=Services(
                kube=cluster,
                prober=self.probes,
                catalog=default_catalog(),
                clock=clock,
                settings=Settings(),
                metrics=Metrics(self.registry),
                leadership=self.leadership,
            ),
        )

    def answer(self, openai: S, qwen: S, clock: FakeClock) -> None:
        self.probes.answer(OPENAI, openai, at=clock.now)
        self.probes.answer(QWEN, qwen, at=clock.now)

    def route_series(self) -> list[str]:
        """The names of the metrics with a series per route."""
        return sorted(
            {m.name for m in self.registry.collect() for x in m.samples if "route" in x.labels}
        )


class Pair:
    def __init__(self) -> None:
        self.cluster = FakeCluster()
        self.cluster.add_secret(NS, "keys", {"openai": "sk-openai", "qwen": "sk-qwen"})
        self.clock = FakeClock()
        self.leader = Replica(self.cluster, self.clock, leading=True)
        self.standby = Replica(self.cluster, self.clock, leading=False)

    def watched(self) -> dict[str, Any]:
        """The route as both watches show it: the spec, and the status last written."""
        return {**body(), "status": dict(self.cluster.status)}

    def deliver(self) -> None:
        """What the watches bring the standby: the route, and the ConfigMap the leader wrote."""
        self.standby.controller.update(self.watched())
        data = self.cluster.data("ConfigMap", NS, "chat-llm")
        self.standby.controller.target_changed("ConfigMap", "chat-llm", data)

    async def interval(self, openai: S, qwen: S = S.HEALTHY, *, standby_sees: S | None = None):
        """Both probe, the leader reconciles and writes, the standby follows."""
        self.clock.advance(10)
        self.leader.answer(openai, qwen, self.clock)
        self.standby.answer(standby_sees or openai, qwen, self.clock)
        await self.leader.controller.reconcile()
        self.deliver()
        await self.standby.controller.reconcile()

    def provider(self) -> str | None:
        data = self.cluster.data("ConfigMap", NS, "chat-llm")
        return data["LLM_PROVIDER"] if data else None


async def started() -> Pair:
    pair = Pair()
    for replica in (pair.leader, pair.standby):
        replica.controller.update(body())
        await replica.controller.reconcile()
    for _ in range(2):
        await pair.interval(S.HEALTHY)
    assert pair.provider() == "openai"
    return pair


async def test_a_standby_probes_and_follows_but_writes_nothing() -> None:
    pair = Pair()
    standby = pair.standby
    standby.controller.update(body())
    for _ in range(3):
        pair.clock.advance(10)
        standby.answer(S.GEO_BLOCKED, S.HEALTHY, pair.clock)
        await standby.controller.reconcile()
    assert pair.cluster.writes == []
    assert pair.cluster.status_writes == 0
    assert pair.cluster.events == []
    assert f"{NS}/chat" in standby.probes.subscribed  # it probes, to be ready
    assert standby.route_series() == []  # route series come from the leader alone
    assert all(call.startswith("read") for call in pair.cluster.calls), pair.cluster.calls


async def test_taking_over_with_the_same_health_writes_nothing() -> None:
    pair = await started()
    writes, statuses = len(pair.cluster.writes), pair.cluster.status_writes
    events = len(pair.cluster.events)
    calls = len(pair.cluster.calls)
    # The leader dies; the standby, probing all along, takes the Lease.
    pair.standby.leadership.hold(until=FOREVER)
    pair.clock.advance(10)
    pair.standby.answer(S.HEALTHY, S.HEALTHY, pair.clock)
    await pair.standby.controller.reconcile()
    assert len(pair.cluster.writes) == writes
    assert pair.cluster.status_writes == statuses
    assert len(pair.cluster.events) == events
    # It knew the ConfigMap from the watch: taking over read nothing either.
    assert pair.cluster.calls[calls:] == []
    assert pair.standby.route_series() != []  # the new leader's route series


async def test_a_failover_pending_when_the_leader_dies_is_done_by_the_new_leader() -> None:
    pair = await started()
    # The provider is geo-blocked: the standby's probe sees it; the leader dies before its own.
    pair.clock.advance(10)
    pair.standby.answer(S.GEO_BLOCKED, S.HEALTHY, pair.clock)
    await pair.standby.controller.reconcile()
    assert pair.provider() == "openai"  # a standby does not act
    writes = len(pair.cluster.writes)
    pair.standby.leadership.hold(until=FOREVER)
    await pair.standby.controller.reconcile()
    assert pair.provider() == "qwen"
    assert pair.cluster.writes[writes:] == [("ConfigMap", "chat-llm")]  # one write, the switch
    reasons = [reason for _, reason, _ in pair.cluster.events]
    assert reasons[-2:] == ["ProviderEjected", "FailedOver"]
    assert pair.cluster.status["activeProvider"] == "qwen"
    assert pair.cluster.status["failoverCount"] == 1


async def test_the_standby_follows_a_failover_the_leader_made() -> None:
    pair = await started()
    await pair.interval(S.GEO_BLOCKED)
    assert pair.provider() == "qwen"
    writes, events = len(pair.cluster.writes), len(pair.cluster.events)
    pair.standby.leadership.hold(until=FOREVER)
    pair.clock.advance(10)
    pair.standby.answer(S.GEO_BLOCKED, S.HEALTHY, pair.clock)
    await pair.standby.controller.reconcile()
    assert pair.cluster.writes[writes:] == []  # no second switch, no failback
    assert pair.cluster.events[events:] == []  # the leader announced it already
    assert pair.cluster.status["failoverCount"] == 1


async def test_a_standby_behind_the_leader_does_not_flap_when_it_takes_over() -> None:
    """The leader has seen the provider recover (successThreshold 2) and failed back; the
    standby's own probes saw one success only. It resumes from the leader's word, not from
    its own lagging count: no failover back to qwen."""
    pair = await started()
    await pair.interval(S.GEO_BLOCKED)
    assert pair.provider() == "qwen"
    await pair.interval(S.HEALTHY, standby_sees=S.GEO_BLOCKED)
    await pair.interval(S.HEALTHY, standby_sees=S.GEO_BLOCKED)
    assert pair.provider() == "openai"  # failed back
    writes = len(pair.cluster.writes)
    pair.standby.leadership.hold(until=FOREVER)
    pair.clock.advance(10)
    pair.standby.answer(S.HEALTHY, S.HEALTHY, pair.clock)
    await pair.standby.controller.reconcile()
    assert pair.provider() == "openai"
    assert pair.cluster.writes[writes:] == []


async def test_a_leader_that_loses_the_lease_stops_writing_and_exports_no_route_series() -> None:
    pair = await started()
    assert pair.leader.route_series() != []
    pair.leader.leadership.lose()
    writes, statuses = len(pair.cluster.writes), pair.cluster.status_writes
    pair.clock.advance(10)
    pair.leader.answer(S.GEO_BLOCKED, S.HEALTHY, pair.clock)
    await pair.leader.controller.reconcile()
    assert len(pair.cluster.writes) == writes
    assert pair.cluster.status_writes == statuses
    assert pair.leader.route_series() == []
    # Leader again later: it resumes, and does what is due.
    pair.leader.leadership.hold(until=FOREVER)
    await pair.leader.controller.reconcile()
    assert pair.provider() == "qwen"


async def test_a_standby_reports_nothing_on_the_route() -> None:
    pair = Pair()
    standby = pair.standby.controller
    standby.update(body(providers=[{"name": "Bad Name", "baseURL": "x"}]))
    await standby.reconcile()  # an invalid spec: the leader says so, not the standby
    await standby.report_crash(RuntimeError("boom"), 1.0)
    assert pair.cluster.status_writes == 0
    assert pair.cluster.events == []


async def test_a_standby_has_no_heartbeat_to_keep() -> None:
    """It writes no status, so a heartbeat falling due would wake it again and again, at once."""
    pair = await started()
    for replica in (pair.leader, pair.standby):
        replica.controller._heartbeat_from -= 100_000  # long overdue
    assert pair.leader.controller._next_wake() == 0
    assert pair.standby.controller._next_wake() is None


async def test_a_new_standby_that_saw_the_configmap_before_the_route_takes_over_without_reads() -> (
    None
):
    pair = await started()
    late = Replica(pair.cluster, pair.clock, leading=False)  # a replica started just now
    data = pair.cluster.data("ConfigMap", NS, "chat-llm")
    late.controller.target_changed("ConfigMap", "chat-llm", data)  # listed before the route
    late.controller.update(pair.watched())
    late.answer(S.HEALTHY, S.HEALTHY, pair.clock)
    await late.controller.reconcile()
    calls, writes = len(pair.cluster.calls), len(pair.cluster.writes)
    late.leadership.hold(until=FOREVER)
    await late.controller.reconcile()
    assert pair.cluster.calls[calls:] == []
    assert len(pair.cluster.writes) == writes


async def test_a_leader_dead_between_configmap_and_status_is_resumed_from_the_configmap() -> None:
    """The leader wrote the ConfigMap of a switch, then died before the status said so: the new
    leader resumes from the provider the ConfigMap names, and does not route back."""
    pair = await started()
    pair.cluster.failures["patch_route_status"] = 1_000
    pair.clock.advance(10)
    pair.leader.answer(S.GEO_BLOCKED, S.HEALTHY, pair.clock)
    with pytest.raises(KubeError):
        await pair.leader.controller.reconcile()
    assert pair.provider() == "qwen"
    assert pair.cluster.status["activeProvider"] == "openai"  # the leader dies here
    pair.cluster.failures.clear()
    pair.deliver()  # the standby sees the ConfigMap; the status is as it was
    writes = len(pair.cluster.writes)
    pair.standby.leadership.hold(until=FOREVER)
    await pair.standby.controller.reconcile()
    assert pair.provider() == "qwen"
    assert pair.cluster.writes[writes:] == []
    assert pair.cluster.status["activeProvider"] == "qwen"
