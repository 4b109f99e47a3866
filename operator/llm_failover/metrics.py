"""Prometheus metrics (docs/reference.md#metrics) on an injected registry; a deleted route's series
go too."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from llm_failover import __version__
from llm_failover.routemetrics import Family, HistogramFamily, RouteSeries
from llm_failover.state import ProviderState

# Time to failover spans a geo-block noticed at the next probe (well under a second after the
# probe) to soft failures counted over several intervals (tens of seconds to minutes).
FAILOVER_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
# Probe latency: loopback stand-ins answer in milliseconds, a provider across the GFW in seconds.
PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


INTERNAL_TASKS = (
    "probe",
    "probe_loop",
    "route",
    "watch",
    "secret_resync",
    "leader_election",
    "signals",
)
LEADER_CHANGES = ("acquired", "lost", "released")
PROBES_SAVED = ("backup", "backoff", "reset")

# A `_created` sample beside every counter and histogram doubles their series and nobody queries
# them (rate() needs none): off, for the whole process.
disable_created_metrics()  # type: ignore[no-untyped-call]


@dataclass
class _RouteSeries:
    """Which label values a route has used, so that they can all be removed."""

    providers: dict[str, ProviderState] = field(default_factory=dict)  # and its state series
    failovers: set[tuple[str, str, str]] = field(default_factory=set)
    signals: set[str] = field(default_factory=set)  # providers with a signal series
    shown: tuple[object, ...] | None = None  # what the gauges were last set to


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        route = ("namespace", "route")
        # Per-route series: pre-rendered (`routemetrics`), so a scrape costs little at 10,000
        # routes; everything else is an ordinary prometheus_client metric.
        self.provider_up = Family(
            "llmfailover_provider_up",
            "1 if the provider is eligible for routing (trusted and inside its window), else 0.",
            (*route, "provider"),
            counter=False,
        )
        self.provider_state = Family(
            "llmfailover_provider_state",
            "1 for the provider's current state; the other states have no series (a handful of "
            "series per route however many states there are: match it with == 1).",
            (*route, "provider", "state"),
            counter=False,
        )
        self.active_provider = Family(
            "llmfailover_route_active_provider",
            "1 for the provider the route's ConfigMap names, 0 for the route's other providers.",
            (*route, "provider"),
            counter=False,
        )
        # The one route series that knows provider priority: without it,
        # "failed over for longer than N minutes" cannot be alerted on.
        self.failed_over_now = Family(
            "llmfailover_route_failed_over",
            "1 while the route's active provider is not its first one (the FailedOver condition).",
            route,
            counter=False,
        )
        self.failovers = Family(
            "llmfailover_failovers",
            "Switches of a route's active provider, failbacks included.",
            (*route, "from_provider", "to_provider", "reason"),
            counter=True,
        )
        self.last_failover = Family(
            "llmfailover_last_failover_timestamp_seconds",
            "Unix time of the route's last switch of active provider.",
            route,
            counter=False,
        )
        self.failover_duration = HistogramFamily(
            "llmfailover_failover_duration_seconds",
            "From the first failing probe of the active provider to the routing output switched.",
            route,
            FAILOVER_BUCKETS,
        )
        self.signal_firing = Family(
            "llmfailover_provider_signal_firing",
            "1 while the provider's traffic signal fires (its query above the threshold, or an "
            "Alertmanager alert), 0 while it does not; no series without a signal.",
            (*route, "provider"),
            counter=False,
        )
        self.configmap_writes = Family(
            "llmfailover_configmap_writes",
            "Writes (creates and updates) of a route's routing ConfigMap.",
            route,
            counter=True,
        )
        self.route_series = RouteSeries(
            (
                self.provider_up,
                self.provider_state,
                self.active_provider,
                self.failed_over_now,
                self.failovers,
                self.last_failover,
                self.failover_duration,
                self.configmap_writes,
                self.signal_firing,
            )
        )
        self.base = CollectorRegistry()
        """Everything but the per-route series: rendered by prometheus_client at each scrape.
        `registry` offers both (tests read it); `exposition` renders both, fast."""
        self.probes = Counter(
            "llmfailover_probes",
            "Probes sent, by endpoint host and resulting state.",
            ["endpoint", "state"],
            registry=self.base,
        )
        self.probe_duration = Histogram(
            "llmfailover_probe_duration_seconds",
            "Probe round trip, by endpoint host.",
            ["endpoint"],
            buckets=PROBE_BUCKETS,
            registry=self.base,
        )
        self.routes = Gauge(
            "llmfailover_routes",
            "LLMRoutes this replica manages (0 on a standby, which writes nothing).",
            registry=self.base,
        )
        self.build_info = Gauge(
            "llmfailover_build_info",
            "Always 1; the version is a label.",
            ["version"],
            registry=self.base,
        )
        self.build_info.labels(__version__).set(1)
        # What supervision (issue 10) needs to be seen.
        self.internal_errors = Counter(
            "llmfailover_internal_errors",
            "Unexpected exceptions: a probe that raised (counted as a failed probe), a probe "
            "loop or route controller that crashed (restarted with backoff), a watch event "
            "that could not be handled.",
            ["task"],
            registry=self.base,
        )
        for task in INTERNAL_TASKS:
            self.internal_errors.labels(task)
        self.loop_lag = Gauge(
            "llmfailover_event_loop_lag_seconds",
            "Worst delay of the operator's event loop over the last ten seconds: what every "
            "probe timeout and API call waits behind.",
            registry=self.base,
        )
        self.api_requests = Counter(
            "llmfailover_api_requests",
            "The operator's calls to the Kubernetes API (its own client; kopf's lists and "
            "watches aside), by verb, resource and answer (2xx, 4xx, 5xx, or error: none).",
            ["verb", "resource", "code"],
            registry=self.base,
        )
        # Leader election (issue 13).
        self.leader = Gauge(
            "llmfailover_leader",
            "1 on the replica that holds the Lease and writes, 0 on a standby (1 with "
            "--leader-elect=false). Per-route series come from the leader only.",
            registry=self.base,
        )
        self.leader_changes = Counter(
            "llmfailover_leader_changes",
            "This replica's changes of leadership: acquired the Lease, lost it (not renewed "
            "within the renew deadline, or taken by another), released it (at shutdown).",
            ["change"],
            registry=self.base,
        )
        for change in LEADER_CHANGES:
            self.leader_changes.labels(change)
        # Adaptive probes and traffic signals (issue 14).
        self.probes_saved = Counter(
            "llmfailover_probes_saved",
            "Probes not sent, against a probe every intervalSeconds: a provider far down its "
            "list probed at the backup interval, one in a hard state backing off, one waiting "
            "for the reset time it gave.",
            ["reason"],
            registry=self.base,
        )
        for reason in PROBES_SAVED:
            self.probes_saved.labels(reason)
        self.signal_queries = Counter(
            "llmfailover_signal_queries",
            "Traffic-signal queries sent to Prometheus, by result (ok, or error: Prometheus "
            "unreachable or the query refused; probes alone decide meanwhile).",
            ["result"],
            registry=self.base,
        )
        for result in ("ok", "error"):
            self.signal_queries.labels(result)
        self.alerts_received = Counter(
            "llmfailover_alertmanager_notifications",
            "Alertmanager webhook posts to /alertmanager, by result (accepted; standby: "
            "answered 503 for Alertmanager to retry until the leader has it; unauthorized; "
            "invalid).",
            ["result"],
            registry=self.base,
        )
        for result in ("accepted", "standby", "unauthorized", "invalid"):
            self.alerts_received.labels(result)
        registry.register(_Joined((self.base, self.route_series)))
        self._series: dict[tuple[str, str], _RouteSeries] = {}

    def leadership(self, *, leading: bool, change: str | None = None) -> None:
        self.leader.set(1 if leading else 0)
        if change is not None:
            self.leader_changes.labels(change).inc()

    def api_request(self, *, verb: str, resource: str, code: str) -> None:
        self.api_requests.labels(verb, resource, code).inc()

    def internal_error(self, *, task: str) -> None:
        self.internal_errors.labels(task).inc()

    def probed(self, *, endpoint: str, state: ProviderState, seconds: float) -> None:
        self.probes.labels(endpoint, state.value).inc()
        self.probe_duration.labels(endpoint).observe(seconds)

    def route_state(
        self,
        *,
        namespace: str,
        route: str,
        providers: Iterable[tuple[str, ProviderState, bool]],
        active: str | None,
        failed_over: bool,
        signals: Mapping[str, bool] | None = None,
    ) -> None:
        """Set a route's per-provider gauges; providers no longer in its spec lose their series.
        `signals`: whether each provider with a traffic signal has it firing."""
        series = self._series.setdefault((namespace, route), _RouteSeries())
        providers = tuple(providers)
        firing = dict(signals or {})
        shown = (providers, active, failed_over, tuple(sorted(firing.items())))
        if shown == series.shown:
            return  # every reconcile reports; the gauges change far less often
        series.shown = shown
        current: dict[str, ProviderState] = {}
        for name, state, eligible in providers:
            current[name] = state
            self.provider_up.set((namespace, route, name), 1 if eligible else 0)
            before = series.providers.get(name)
            if before is not None and before is not state:
                self.provider_state.remove((namespace, route, name, before.value))
            self.provider_state.set((namespace, route, name, state.value), 1)
            if active is not None:
                self.active_provider.set((namespace, route, name), 1 if name == active else 0)
        self.failed_over_now.set((namespace, route), 1 if failed_over else 0)
        for name, on in firing.items():
            self.signal_firing.set((namespace, route, name), 1 if on else 0)
        for name in series.signals - firing.keys():
            self.signal_firing.remove((namespace, route, name))
        series.signals = set(firing)
        for gone, state in series.providers.items():
            if gone not in current:
                self._remove_provider(namespace, route, gone, state)
        series.providers = current
        self.routes.set(len(self._series))

    def failed_over(
        self,
        *,
        namespace: str,
        route: str,
        source: str,
        target: str,
        reason: str,
        at: float,
        duration_seconds: float | None,
    ) -> None:
        self.failovers.inc((namespace, route, source, target, reason))
        self._series.setdefault((namespace, route), _RouteSeries()).failovers.add(
            (source, target, reason)
        )
        self.last_failover.set((namespace, route), at)
        if duration_seconds is not None:
            self.failover_duration.observe((namespace, route), max(0.0, duration_seconds))

    def config_map_written(self, *, namespace: str, route: str) -> None:
        self.configmap_writes.inc((namespace, route))

    def exposition(self) -> bytes:
        """`/metrics` in the Prometheus text format: prometheus_client's rendering of the few
        process-wide series, then the per-route series' kept lines."""
        return generate_latest(self.base) + self.route_series.render()

    def route_removed(self, *, namespace: str, route: str) -> None:
        series = self._series.pop((namespace, route), _RouteSeries())
        for provider, state in series.providers.items():
            self._remove_provider(namespace, route, provider, state)
        for labels in series.failovers:
            self.failovers.remove((namespace, route, *labels))
        for provider in series.signals:
            self.signal_firing.remove((namespace, route, provider))
        for family in (
            self.failed_over_now,
            self.last_failover,
            self.failover_duration,
            self.configmap_writes,
        ):
            family.remove((namespace, route))
        self.routes.set(len(self._series))

    def _remove_provider(
        self, namespace: str, route: str, provider: str, state: ProviderState
    ) -> None:
        self.provider_up.remove((namespace, route, provider))
        self.active_provider.remove((namespace, route, provider))
        self.provider_state.remove((namespace, route, provider, state.value))


class _Joined(Collector):
    """Several collectors registered as one."""

    def __init__(self, parts: tuple[Collector, ...]) -> None:
        self._parts = parts

    def collect(self) -> Iterator[Metric]:
        for part in self._parts:
            yield from part.collect()
