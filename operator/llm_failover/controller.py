"""Keeps each LLMRoute's routing output in step with its providers' health.

One `RouteController` per route runs gather → decide → act → report whenever a probe answer it
depends on can change something for it (a new state, or a provider counting towards a threshold;
the answers in between are counted then), a key Secret it uses changed, its spec changed, an
object it wrote was changed by someone else, a schedule window opens or closes, or the status
heartbeat is due. Its `run` loop is supervised by the route manager: a crash is reported on
the route (Ready=False, OperatorError) and the loop restarts; an API error is retried, and one the
server refuses (403: RBAC) is also shown on the route (Ready=False, Forbidden, or a Forbidden Event
when the status itself may not be written); a route whose own status can no longer be written
(404) is gone, and the loop ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from llm_failover.cadence import at_full_rate
from llm_failover.catalog import Catalog
from llm_failover.credentials import Credential, read_key
from llm_failover.health import (
    ProbeResult,
    ProviderHealth,
    Thresholds,
    Transition,
    distrust,
    observe_run,
    settled,
)
from llm_failover.kube import (
    ClusterApi,
    Forbidden,
    KubeError,
    NotLeader,
    RouteGone,
    RouteRef,
    object_data,
)
from llm_failover.leader import Leadership
from llm_failover.metrics import Metrics
from llm_failover.policy import Condition, Decision, Reason, decide
from llm_failover.prober import Clock, Endpoint, ProbeSource, Schedule
from llm_failover.redact import Redactor
from llm_failover.routing import KEY_NAMES, RoutingOutput, routing_output
from llm_failover.secretcache import SecretCache
from llm_failover.settings import Settings
from llm_failover.signals import Query, Reading, SignalSource, Source, fill
from llm_failover.spec import ProviderSpec, RouteSpec, SpecError, Trust, parse_route_spec
from llm_failover.state import ProviderState
from llm_failover.status import (
    Event,
    EventReason,
    conditions,
    health_from_status,
    provider_entries,
    ready_event,
    significant,
    timestamp,
    transition_events,
)
from llm_failover.supervision import Watchdog

log = logging.getLogger(__name__)

REVISION_ANNOTATION = "llmfailover.dev/route-revision"
HEARTBEAT_WRITES_PER_SECOND = 5.0
"""Routine status writes (per-probe facts alone) of all routes together, at most, on average: at
10,000 routes a heartbeat write costs the operator about 6 ms of CPU (the write and its echo
through the watch), so every route's every 300 s would take a quarter of a core."""
MAX_PENDING_EVENTS = 100
"""Events kept for a retry while the API server refuses them; the oldest go first."""
RECONCILE_DEADLINE_SECONDS = 900.0
"""A reconcile still running after this long has stalled: each API call times out in 30 s, and
this leaves room for calls queued behind many others under load (a slow operator must not be
restarted by its liveness probe for being busy)."""


@dataclass(frozen=True)
class Keys:
    """The API keys a route's providers use, and why any provider has none."""

    values: Mapping[str, str | None]
    problems: Mapping[str, str]
    versions: Mapping[tuple[str, str], int]  # the version of each Secret read (`SecretCache`)

    @property
    def secrets(self) -> list[str]:
        return [v for v in self.values.values() if v]


@dataclass(frozen=True)
class Services:
    """What every route's controller shares: one of each for the whole operator."""

    kube: ClusterApi
    prober: ProbeSource
    catalog: Catalog
    clock: Clock
    settings: Settings
    metrics: Metrics
    redactor: Redactor = field(default_factory=Redactor)
    watchdog: Watchdog = field(default_factory=Watchdog)
    secrets: SecretCache | None = None
    """Key Secrets shared by all routes (else each controller reads its own)."""
    routes: Callable[[], int] = lambda: 1
    """How many routes the operator manages: the status heartbeat stretches with them."""
    leadership: Leadership = field(default_factory=Leadership.single)
    """Whether this replica writes (`leader`); a standby gathers health and writes nothing."""
    signals: SignalSource = field(default_factory=SignalSource)
    """Traffic signals (Prometheus queries, Alertmanager alerts); none by default."""


class RouteController:
    def __init__(self, *, ref: RouteRef, services: Services) -> None:
        self.ref = ref
        self._kube = services.kube
        self._prober = services.prober
        self._catalog = services.catalog
        self._clock = services.clock
        self._settings = services.settings
        self._metrics = services.metrics
        self._redactor = services.redactor
        self._watchdog = services.watchdog
        self._secrets = services.secrets or SecretCache(services.kube.read_secret)
        self._leadership = services.leadership
        self._signals = services.signals
        self._readings: dict[str, Reading] = {}  # provider → what its traffic signal says
        self._watched: dict[str, Query] | None = None  # the queries last handed to `signals`
        self._scheduled: dict[Endpoint, Schedule] | None = None  # last handed to the prober
        self._confirming: str | None = None  # the provider a fresh probe is awaited for
        self._leading = self._leadership.leading  # what this controller last worked as
        self._wake = asyncio.Event()
        self._body: Mapping[str, Any] = {}
        self._spec: RouteSpec | None = None  # the last valid spec: its schedule windows wake us
        self._parsed: tuple[Any, str, RouteSpec] | None = None  # raw spec, canonical, parsed
        self._seeded = False
        self._decided_spec: str | None = None  # canonical JSON of the spec last decided on
        self._keys_for: str | None = None  # canonical JSON of the spec the keys were read for
        self._observed_generation: int | None = None
        self._health: dict[str, ProviderHealth] = {}
        self._consumed: dict[str, tuple[Endpoint, int]] = {}  # provider → its answers read
        self._endpoints: dict[str, Endpoint] = {}
        self._eager: frozenset[Endpoint] = frozenset()  # endpoints whose every answer wakes us
        self._keys: Keys | None = None
        self._folded_problems: set[str] = set()
        self._active: str | None = None
        self._active_since: str | None = None
        self._failover_count = 0
        self._last_failover: dict[str, Any] | None = None
        self._status: dict[str, Any] = {}
        self._routes = services.routes
        # The heartbeat runs from the last write (or the start: no write because of a restart)
        # for a random part of its length, which is worked out when needed: the routes counted
        # then, not while the operator is still finding them at start.
        self._heartbeat_from = time.monotonic()
        self._heartbeat_part = random.uniform(0.5, 1.0)
        # object kind → (name, data) we know is there; dropped when someone else changes it
        self._written: dict[str, tuple[str, Mapping[str, str]]] = {}
        self._pending: list[Event] = []  # Events not posted yet: they survive a failed write
        self._unreported = ""  # the refusal last announced by an Event alone (no status write)
        self._unconfirmed: set[str] = set()  # status said active, the written output disagreed
        self._retry_at: float | None = None
        self._stamped: str | None = None  # routing revision last stamped on the restart targets
        self._missing: set[tuple[str, str]] = set()  # restart targets reported missing

    @property
    def key(self) -> str:
        return f"{self.ref.namespace}/{self.ref.name}"

    def update(self, body: Mapping[str, Any]) -> None:
        """A new version of the LLMRoute arrived from the watch.

        Its status is what the API server holds: when someone else wrote it (or a write of ours
        was overtaken), it no longer matches what we believe we wrote, and the next reconcile
        writes ours again instead of skipping an "unchanged" status for good.
        """
        previous, self._body = self._body, body
        observed = body.get("status")
        if self._seeded and isinstance(observed, Mapping) and observed != self._status:
            if self._leading:
                self._status = dict(observed)
            else:  # the leader wrote it: the standby's state follows
                self._adopt(observed)
        elif previous and previous.get("spec") == body.get("spec"):
            return  # our own status write coming back: nothing to decide
        self._wake.set()

    async def run(self) -> None:
        """Reconcile whenever woken, until the route is gone; exceptions other than API errors
        propagate to the supervisor, which reports them (`report_crash`) and runs this again."""
        self._wake.set()  # a restarted loop looks again at once
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
            # that lands as the wake is set, and the loop then outlives its route (and shutdown).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._next_wake()):
                    await self._wake.wait()
            self._wake.clear()
            self._watchdog.expect(f"route {self.key}", RECONCILE_DEADLINE_SECONDS)
            self._retry_at = None
            try:
                await self.reconcile()
            except RouteGone:
                log.info("%s: the LLMRoute no longer exists: stopping its work", self.key)
                return
            except NotLeader:
                # Leadership is passing: a change wakes this loop; a renewal, the retry.
                log.debug("%s: a write was not sent: not the leader", self.key)
                self._retry_at = time.monotonic() + self._settings.retry_seconds
            except Forbidden as exc:
                self._retry_at = time.monotonic() + self._settings.retry_seconds
                await self._report_forbidden(exc)
            except KubeError as exc:
                log.warning("%s: Kubernetes API error, retrying: %s", self.key, exc)
                self._retry_at = time.monotonic() + self._settings.retry_seconds
            finally:
                self._watchdog.done(f"route {self.key}")

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._prober.unsubscribe(self.key)
        self._signals.unwatch(self.key)
        self._watched = self._scheduled = None
        self._eager = frozenset()
        self._redactor.forget(self._keys.secrets if self._keys else [])
        self._keys = None
        self._secrets.use(self.key, (), self._wake)
        self._watchdog.done(f"route {self.key}")

    async def report_crash(self, exc: Exception, retry_in_seconds: float) -> None:
        """Show a crash where users look: Ready=False, reason OperatorError, on the route (by
        the leader: a standby's crash is in its log and metrics only)."""
        if not self._leadership.leading:
            return
        message = (
            f"internal error: {type(exc).__name__}: {str(exc)[:200]} (see the operator log); "
            f"retrying in {retry_in_seconds:.0f}s"
        )
        generation = (self._body.get("metadata") or {}).get("generation") if self._body else None
        await self._report_problem(Reason.OPERATOR_ERROR, message, generation, self._clock())

    async def _report_forbidden(self, exc: Forbidden) -> None:
        """The API server refused a call: the routing output stays as it is; say what is
        missing on the route (or, when its status may not be written, in an Event)."""
        message = f"{self._forbidden_message(exc)}, or the route stays as it is"
        log.error("%s: %s (retrying every %.0fs)", self.key, message, self._settings.retry_seconds)
        if not self._leadership.leading:
            return  # the leader says so on the route
        generation = (self._body.get("metadata") or {}).get("generation") if self._body else None
        now = self._clock()
        try:
            await self._report_problem(Reason.FORBIDDEN, message, generation, now)
        except KubeError as again:
            log.error("%s: the status cannot say so either: %s", self.key, again)
            if message != self._unreported:
                self._unreported = message
                self._queue([Event(EventReason.FORBIDDEN, message)])
                await self._post_pending(now)

    @staticmethod
    def _forbidden_message(exc: Forbidden) -> str:
        return (
            f"the API server refused the operator: {str(exc)[:400]}; grant it in the "
            "operator's RBAC (deploy/base/rbac.yaml or the Helm chart)"
        )

    def target_changed(self, kind: str, name: str, data: Mapping[str, str] | None) -> None:
        """Someone changed (or, with None, deleted) a ConfigMap or Secret this route owns: unless
        it is what we wrote, forget what we believed was there and reconcile now. A standby
        keeps what the leader wrote, so that taking over writes only what differs."""
        if not self._leading:
            # Before its spec is parsed (the watches list ConfigMaps and routes in any order) a
            # route's own objects are kept too: a name that is not the target's is never used.
            target = self._spec.target if self._spec is not None else None
            names = {
                "ConfigMap": target.config_map_name if target else name,
                "Secret": target.secret_name if target else name,
            }
            if names.get(kind) == name:
                if data is None:
                    self._written.pop(kind, None)
                else:
                    self._written[kind] = (name, dict(data))
            return
        written = self._written.get(kind)
        if written is None or written[0] != name:
            return
        if data is not None and dict(data) == dict(written[1]):
            return  # our own write, coming back through the watch
        log.info(
            "%s: %s %s was %s: restoring it",
            self.key,
            kind,
            name,
            "deleted" if data is None else "changed",
        )
        del self._written[kind]
        self._wake.set()

    # -- gather -----------------------------------------------------------------------------

    def _seed(self, status: Mapping[str, Any]) -> None:
        """Resume from the status a previous operator process wrote: no failover, no flap."""
        self._seeded = True
        self._status = dict(status)
        self._observed_generation = status.get("observedGeneration")
        for entry in status.get("providers") or []:
            if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
                self._health[entry["name"]] = health_from_status(entry)
        active = status.get("activeProvider")
        self._active = active if isinstance(active, str) and active else None
        self._active_since = status.get("activeSince")
        count = status.get("failoverCount")
        self._failover_count = count if isinstance(count, int) else 0
        last = status.get("lastFailover")
        self._last_failover = dict(last) if isinstance(last, Mapping) else None

    def _adopt(self, status: Mapping[str, Any]) -> None:
        """A standby resumes from each status the leader writes, as a restarted operator
        would; its own probe answers from then on count on top (those before are the leader's
        to judge), so it takes over warm and in step with the leader."""
        self._seed(status)
        for name, endpoint in self._endpoints.items():
            report = self._prober.latest(endpoint)
            if report is not None:
                self._consumed[name] = (endpoint, report.sequence)
        self._restart_heartbeat()  # the leader's write starts the heartbeat anew

    def _take_over(self) -> None:
        """This replica holds the Lease now: the next reconcile decides from the leader's last
        status and the answers seen since. It looks first as a restarted operator does (the
        routing output may be ahead of the status); what differs from the leader's last
        word, and only that, is written and announced."""
        self._decided_spec = None
        self._stamped = None
        self._pending.clear()
        self._unreported = ""
        transitions: dict[str, Transition] = {}
        for entry in self._status.get("providers") or []:
            if not isinstance(entry, Mapping) or entry.get("name") not in self._health:
                continue
            said, seen = health_from_status(entry), self._health[entry["name"]]
            if said.probed and seen.probed and said.trusted != seen.trusted:
                transitions[entry["name"]] = (
                    Transition.RECOVERED if seen.trusted else Transition.EJECTED
                )
        self._queue(transition_events(transitions, self._health))

    def _stand_by(self) -> None:
        """Another replica writes from now: follow what it writes; export no route series."""
        self._pending.clear()
        self._stamped = None
        self._retry_at = None
        self._unreported = ""
        # Resume from the status last written (ours, or already the new leader's); answers
        # that came after it are news to fold in.
        status = self._body.get("status") if self._body else None
        if self._seeded:
            self._seed(status if isinstance(status, Mapping) else {})
        self._metrics.route_removed(namespace=self.ref.namespace, route=self.ref.name)

    async def _read_keys(self, spec: RouteSpec) -> Keys:
        """Each provider's key, normalised (`credentials.read_key`), or why it has none. The
        values are remembered by the redactor before anything can show them."""
        values: dict[str, str | None] = {}
        problems: dict[str, str] = {}
        secrets: dict[str, dict[str, bytes] | None] = {}
        versions: dict[tuple[str, str], int] = {}
        for index, provider in enumerate(spec.providers):
            ref = provider.api_key
            values[provider.name] = None
            if ref is None:
                continue
            if ref.name not in secrets:
                (
                    secrets[ref.name],
                    versions[(self.ref.namespace, ref.name)],
                ) = await self._secrets.read(self.ref.namespace, ref.name)
            data = secrets[ref.name]
            where = f"spec.providers[{index}].apiKeySecretRef"
            secret = f"Secret {self.ref.namespace}/{ref.name}"
            if data is None:
                problems[provider.name] = f"{where}: {secret} not found"
            elif ref.key not in data:
                problems[provider.name] = f"{where}: {secret} has no key {ref.key!r}"
            else:
                found = read_key(data[ref.key])
                values[provider.name] = found.key
                if found.problem is not None:
                    problems[provider.name] = f"{where}: {secret} key {ref.key!r} {found.problem}"
        keys = Keys(values=values, problems=problems, versions=versions)
        self._secrets.use(self.key, versions.keys(), self._wake)
        self._redactor.remember(keys.secrets)
        if self._keys is not None:
            self._redactor.forget(self._keys.secrets)
        return keys

    def _subscribe(self, spec: RouteSpec, keys: Keys) -> None:
        self._endpoints = {
            p.name: Endpoint.for_provider(
                base_url=p.base_url,
                method=p.probe_method,
                model=p.model,
                credential=Credential.of(keys.values.get(p.name)),
                auth=p.auth,
                errors=p.errors,
                chat=p.chat,
            )
            for p in spec.providers
            if p.name not in keys.problems
        }
        self._scheduled = None
        self._schedule_probes(spec)
        self._eager &= frozenset(self._endpoints.values())  # the prober forgot the others

    def _schedule_probes(self, spec: RouteSpec) -> None:
        """Every provider every `intervalSeconds`, but those behind the next in line, at the
        `backupIntervalSeconds` when the route sets one: the active provider, those before it
        (a failback waits on them) and the first eligible one after it (the next in line; all
        after it while none is) are probed at the full rate. Handed to the prober on change."""
        check = spec.health_check
        regular = Schedule(check.interval_seconds, check.timeout_seconds)
        spaced = regular
        names = [p.name for p in spec.providers]
        fast = set(names)
        if check.backup_interval_seconds is not None:
            spaced = replace(regular, backup_seconds=float(check.backup_interval_seconds))
            now = self._clock()
            eligible = {
                p.name: self._health.get(p.name, ProviderHealth()).trusted and p.in_window(now)
                for p in spec.providers
            }
            fast = at_full_rate(names, self._active, eligible)
        scheduled: dict[Endpoint, Schedule] = {}
        for name, endpoint in self._endpoints.items():
            wanted = regular if name in fast else spaced
            # An endpoint two providers share goes at the faster of their rates.
            if scheduled.get(endpoint) != regular:
                scheduled[endpoint] = wanted
        if scheduled != self._scheduled:
            self._scheduled = scheduled
            self._prober.subscribe(self.key, scheduled, self._wake, tenant=self.ref.namespace)

    def _watch_signals(self, spec: RouteSpec) -> None:
        """Hand the route's queries to the signals: each provider's own, and the route's for
        the provider it routes to (the apps' traffic goes there)."""
        queries: dict[str, Query] = {}
        for provider in spec.providers:
            own = provider.signal.prometheus if provider.signal is not None else None
            shared = spec.signal.prometheus if spec.signal is not None else None
            query = own or (shared if provider.name == self._active else None)
            if query is not None:
                values = {
                    "provider": provider.name,
                    "model": provider.model,
                    "host": provider.host,
                    "namespace": self.ref.namespace,
                    "route": self.ref.name,
                }
                queries[provider.name] = Query(fill(query.query, values), query.threshold)
        if queries != self._watched:
            self._watched = queries
            self._signals.watch(self.key, queries, self._wake)

    def _listen(self, spec: RouteSpec) -> None:
        """Read what traffic says: a signal that starts firing probes its provider at once."""
        readings = self._signals.readings(self.key, self._active)
        events: list[Event] = []
        for provider in spec.providers:
            name = provider.name
            reading, before = readings.get(name), self._readings.get(name)
            firing, was = (
                reading is not None and reading.firing,
                before is not None and before.firing,
            )
            if firing and not was:
                assert reading is not None
                endpoint = self._endpoints.get(name)
                if endpoint is not None:
                    self._prober.reprobe([endpoint])
                log.warning(
                    "%s: %s: traffic signal fires (%s): probing it now",
                    self.key,
                    name,
                    reading.summary,
                )
                events.append(
                    Event(
                        EventReason.SIGNAL_FIRING,
                        f"{name}: traffic signal fires ({reading.source}: {reading.summary}): "
                        "probing it now",
                    )
                )
            elif was and not firing and (reading is not None or self._still_asked(name, before)):
                events.append(Event(EventReason.SIGNAL_RESOLVED, f"{name}: traffic signal stopped"))
            problem = reading.problem if reading is not None else ""
            if problem and not (before is not None and before.problem):
                events.append(
                    Event(
                        EventReason.SIGNAL_UNAVAILABLE,
                        f"{name}: traffic signal unavailable ({problem}): probes alone decide",
                    )
                )
        self._readings = readings
        if self._leading:
            self._queue(events)

    def _still_asked(self, name: str, before: Reading | None) -> bool:
        """Whether a signal that no longer fires stopped (an alert resolved, a query asked), or
        only moved on: a route's query follows the traffic to the new active provider."""
        alert = before is not None and before.source is Source.ALERTMANAGER
        return alert or name in (self._watched or {})

    def _trusts_signal(self, spec: RouteSpec, provider: ProviderSpec) -> bool:
        """Whether its firing signal may eject it though its probes pass (`trust: Signal`)."""
        reading = self._readings.get(provider.name)
        if reading is None or not reading.firing or not reading.may_eject:
            return False
        signal = provider.signal if provider.signal is not None else spec.signal
        return signal is not None and signal.trust is Trust.SIGNAL

    def _fresh(self, spec: RouteSpec, now: datetime) -> dict[str, bool]:
        """Providers probed lately enough to be routed to: within two intervals and a timeout."""
        check = spec.health_check
        limit = 2 * check.interval_seconds + check.timeout_seconds
        fresh = {}
        for provider in spec.providers:
            last = self._health.get(provider.name, ProviderHealth()).last_probe
            fresh[provider.name] = last is not None and (now - last).total_seconds() <= limit
        return fresh

    def _gather(self, spec: RouteSpec, keys: Keys, now: datetime) -> dict[str, Transition]:
        """Fold every probe result not seen yet into each provider's health."""
        check = spec.health_check
        thresholds = Thresholds(
            check.failure_threshold, check.success_threshold, check.interval_seconds
        )
        transitions: dict[str, Transition] = {}
        for provider in spec.providers:
            name = provider.name
            result: ProbeResult | None = None
            count, since = 1, None
            if name in keys.problems:
                if name not in self._folded_problems:  # once per read of the Secrets
                    self._folded_problems.add(name)
                    result = ProbeResult(ProviderState.UNAUTHORIZED, now, keys.problems[name])
            else:
                endpoint = self._endpoints[name]
                report = self._prober.latest(endpoint)
                seen_endpoint, seen = self._consumed.get(name, (endpoint, 0))
                consumed = seen if seen_endpoint == endpoint else 0
                if report is not None and report.sequence > consumed:
                    self._consumed[name] = (endpoint, report.sequence)
                    count, since = report.unseen(consumed)
                    c = report.classification
                    firing = self._readings.get(name)
                    result = ProbeResult(
                        c.state,
                        report.time,
                        c.message,
                        c.http_status,
                        report.latency_milliseconds,
                        retry_at=report.retry_at,
                        # (an alert nobody authenticated only probes: it confirms nothing)
                        confirmed=firing is not None and firing.firing and firing.may_eject,
                    )
            if result is not None:
                self._unconfirmed.discard(name)  # fresh evidence about it, from this process
                health, transition = observe_run(
                    self._health.get(name, ProviderHealth()), result, count, thresholds, since=since
                )
                self._health[name] = health
                if transition is not None:
                    transitions[name] = transition
            if self._trusts_signal(spec, provider):
                health, transition = distrust(
                    self._health.get(name, ProviderHealth()), thresholds, now
                )
                self._health[name] = health
                if transition is not None:
                    transitions[name] = transition
        self._attend(thresholds)
        return transitions

    def _attend(self, thresholds: Thresholds) -> None:
        """Ask to be woken by every answer only for providers counting towards a threshold."""
        # And for a provider whose signal fires, or that a switch waits to see probed afresh.
        eager = frozenset(
            endpoint
            for name, endpoint in self._endpoints.items()
            if not settled(self._health.get(name, ProviderHealth()), thresholds)
            or name == self._confirming
            or (name in self._readings and self._readings[name].firing)
        )
        if eager != self._eager:
            self._prober.attend(self.key, eager)
            self._eager = eager

    # -- the loop body ----------------------------------------------------------------------

    async def reconcile(self) -> None:
        body = self._body
        if not body:
            return
        leading = self._leadership.leading
        if leading != self._leading:
            self._leading = leading
            if leading:
                self._take_over()
            else:
                self._stand_by()
        status = body.get("status")
        if not self._seeded:
            self._seed(status if isinstance(status, Mapping) else {})
        now = self._clock()
        generation = body.get("metadata", {}).get("generation")
        raw_spec = body.get("spec")
        try:
            canonical, spec = self._parse(raw_spec)
        except SpecError as exc:
            self._spec = None
            self._prober.unsubscribe(self.key)
            self._signals.unwatch(self.key)
            self._watched = self._scheduled = None
            self._readings = {}
            self._endpoints = {}
            self._eager = frozenset()
            self._redactor.forget(self._keys.secrets if self._keys else [])
            self._keys = None
            self._secrets.use(self.key, (), self._wake)
            self._decided_spec = self._keys_for = None
            if self._leading:
                await self._report_problem(Reason.INVALID_SPEC, str(exc), generation, now)
            return
        self._spec = spec

        if self._decided_spec is None:
            # First look since start (or since the spec was fixed): a spec edited while the
            # operator was away shows as a generation the status has not observed.
            changed = (
                generation is not None
                and self._observed_generation is not None
                and generation != self._observed_generation
            )
        else:
            changed = canonical != self._decided_spec
        if canonical != self._keys_for or self._keys is None or self._keys_stale():
            touched = self._changed_secrets()
            self._keys = await self._read_keys(spec)
            self._keys_for = canonical
            self._folded_problems.clear()
            # Edits of the ConfigMap and Secret come through the watch; a missing restart
            # target may have been created since.
            if changed or self._missing:
                self._stamped = None
            self._subscribe(spec, self._keys)
            # A new key, or the same one touched after a top-up: probe now, not after the
            # backoff or the reset time the last answer gave.
            self._prober.reprobe(
                self._endpoints[p.name]
                for p in spec.providers
                if p.api_key is not None and p.api_key.name in touched and p.name in self._endpoints
            )
        # A refused re-read of a key Secret: decide (and fail over) with the keys read before,
        # and say so on the route until it can be read again.
        refused = next(filter(None, map(self._secrets.refused, self._keys.versions)), None)
        for gone in set(self._health) - {p.name for p in spec.providers}:
            del self._health[gone]
        self._watch_signals(spec)
        self._listen(spec)
        if not self._leading:
            self._gather(spec, self._keys, now)  # ready to take over; the leader decides
            self._schedule_probes(spec)
            return
        if self._decided_spec is None and self._active is not None:
            await self._resume_from_output(spec, self._keys)

        transitions = self._gather(spec, self._keys, now)
        self._queue(transition_events(transitions, self._health))
        decision = decide(
            spec,
            self._decidable_health(),
            current=self._active,
            spec_changed=changed,
            now=now,
            last_reason=(self._last_failover or {}).get("reason"),
            fresh=self._fresh(spec, now),
        )
        if decision.confirming is not None:
            if decision.confirming != self._confirming:
                log.info(
                    "%s: probing %s afresh before routing to it", self.key, decision.confirming
                )
            endpoint = self._endpoints.get(decision.confirming)
            self._prober.reprobe([endpoint] if endpoint is not None else [])
        self._confirming = decision.confirming
        self._decided_spec = canonical
        self._observed_generation = generation

        ready = decision.ready
        active_spec = spec.provider(decision.active) if decision.active else None
        if active_spec is not None:
            output = routing_output(
                spec,
                active=active_spec,
                eligible=decision.eligible,
                key=self._keys.values.get(active_spec.name),
            )
            conflict = await self._write_output(spec, output)
            if conflict is not None:
                ready = Condition("Ready", False, Reason.TARGET_CONFLICT, conflict)
            else:
                self._queue(self._apply(decision, now))
                self._queue(await self._restart(spec, output.revision))
        self._schedule_probes(spec)
        self._watch_signals(spec)
        if refused is not None and ready.reason != Reason.TARGET_CONFLICT:
            message = f"{self._forbidden_message(refused)}; the keys read before are still used"
            log.error("%s: %s", self.key, message)
            ready = Condition("Ready", False, Reason.FORBIDDEN, message)
        await self._report(spec, decision, ready, generation, now)

    def _parse(self, raw_spec: Any) -> tuple[str, RouteSpec]:
        """The spec parsed, and its canonical JSON: parsed again only when it changed."""
        if self._parsed is not None and self._parsed[0] == raw_spec:
            return self._parsed[1], self._parsed[2]
        canonical = json.dumps(raw_spec, sort_keys=True, default=str)
        spec = parse_route_spec(raw_spec, route_name=self.ref.name, catalog=self._catalog)
        self._parsed = (copy.deepcopy(raw_spec), canonical, spec)
        return canonical, spec

    async def _resume_from_output(self, spec: RouteSpec, keys: Keys) -> None:
        """The routing output written last is evidence too. A crash between the writes of one
        switch (key Secret, ConfigMap, status, in that order) leaves a status that still names
        the provider the output had already left: resume from the provider the output names
        (the ConfigMap's, else the one whose key the Secret holds), and do not route back to
        the provider the status named until this process has probed it itself."""
        before = self._active
        assert before is not None
        target = spec.target
        config_map = await self._current("ConfigMap", target.config_map_name)
        written = config_map.get("LLM_PROVIDER") if config_map is not None else None
        if written == before and target.secret_name is not None:
            secret = await self._current("Secret", target.secret_name)
            if secret is not None:
                key = secret.get(KEY_NAMES[0], "")
                if key != (keys.values.get(before) or ""):
                    written = next(
                        (p.name for p in spec.providers if key and keys.values.get(p.name) == key),
                        None,
                    )
        if written is None or written == before or spec.provider(written) is None:
            return
        log.warning(
            "%s: the routing output names %s but the status says %s (the operator stopped "
            "between the writes of a switch): resuming from %s; %s is used again once probed",
            self.key,
            written,
            before,
            written,
            before,
        )
        self._active = written
        self._active_since = timestamp(self._clock())
        self._unconfirmed.add(before)

    async def _current(self, kind: str, name: str) -> Mapping[str, str] | None:
        """The data of a routing object this route owns: as the watch last showed it (a
        standby's takeover reads nothing), else as read now; None if not there or not ours."""
        known = self._written.get(kind)
        if known is not None and known[0] == name:
            return known[1]
        read = self._kube.read_secret_object if kind == "Secret" else self._kube.read_config_map
        found = await read(self.ref.namespace, name)
        if found is None or not self.ref.owns(found):
            return None
        return object_data(found, kind)

    def _decidable_health(self) -> Mapping[str, ProviderHealth]:
        """Health as decide() may trust it: unconfirmed providers count as not trusted yet."""
        if not self._unconfirmed:
            return self._health
        return {
            name: replace(h, trusted=False) if name in self._unconfirmed else h
            for name, h in self._health.items()
        }

    def _queue(self, events: list[Event]) -> None:
        """Keep Events until they are posted: a failed write later in this reconcile must not
        lose the news of a transition that has already happened in memory."""
        self._pending.extend(events)
        if len(self._pending) > MAX_PENDING_EVENTS:
            dropped = len(self._pending) - MAX_PENDING_EVENTS
            log.warning("%s: dropping %d unposted Events (the oldest)", self.key, dropped)
            del self._pending[:dropped]

    # -- act ----------------------------------------------------------------------------------

    async def _write_output(self, spec: RouteSpec, output: RoutingOutput) -> str | None:
        """Write the key Secret, then the ConfigMap, each only if its content changed.

        The Secret goes first so that an app never sees a new base URL with the old key.
        Returns a conflict message when a target exists that this route does not own.
        """
        target = spec.target
        if target.secret_name is not None and output.secret is not None:
            conflict = await self._write(
                "Secret", target.secret_name, output.secret, self._kube.read_secret_object
            )
            if conflict:
                return conflict
        return await self._write(
            "ConfigMap", target.config_map_name, output.config_map, self._kube.read_config_map
        )

    async def _write(
        self,
        kind: str,
        name: str,
        data: Mapping[str, str],
        read: Callable[[str, str], Awaitable[dict[str, Any] | None]],
    ) -> str | None:
        """Write one routing object if its content changed. One this route wrote before (and
        nobody changed since, or the watch would have said so) is patched at once: a switch
        costs one write, not a read and a write; anything else is read first, for ownership."""
        known = self._written.get(kind)
        if known == (name, data):
            return None
        patch = self._kube.patch_secret if kind == "Secret" else self._kube.patch_config_map
        if known is not None and known[0] == name and await patch(self.ref.namespace, name, data):
            self._written_one(kind, name, "updated")
            self._written[kind] = (name, dict(data))
            return None
        existing = await read(self.ref.namespace, name)
        if existing is None:
            create = self._kube.create_secret if kind == "Secret" else self._kube.create_config_map
            await create(self.ref, name, data)
            self._written_one(kind, name, "created")
        elif not self.ref.owns(existing):
            return f"{kind} {self.ref.namespace}/{name} exists and is not owned by this LLMRoute"
        elif object_data(existing, kind) != dict(data):
            await patch(self.ref.namespace, name, data)
            self._written_one(kind, name, "updated")
        self._written[kind] = (name, dict(data))
        return None

    async def _restart(self, spec: RouteSpec, revision: str) -> list[Event]:
        """Stamp the revision on each listed workload's pod template when it differs.

        Reading first makes a restarted operator (which cannot know what it stamped before)
        patch nothing; only a new revision, i.e. a new provider or key, rolls pods.
        """
        if revision == self._stamped:
            return []
        events = []
        for workload in spec.target.restart:
            where = f"{workload.kind} {self.ref.namespace}/{workload.name}"
            found = await self._kube.read_workload(self.ref.namespace, workload.kind, workload.name)
            if found is None:
                if (workload.kind, workload.name) not in self._missing:
                    self._missing.add((workload.kind, workload.name))
                    message = f"{where} not found: not restarted (the operator never creates it)"
                    events.append(Event(EventReason.RESTART_TARGET_MISSING, message))
                continue
            self._missing.discard((workload.kind, workload.name))
            template = found.get("spec", {}).get("template", {}).get("metadata") or {}
            if (template.get("annotations") or {}).get(REVISION_ANNOTATION) != revision:
                await self._kube.annotate_pod_template(
                    self.ref.namespace,
                    workload.kind,
                    workload.name,
                    {REVISION_ANNOTATION: revision},
                )
                log.info("%s: restarting %s for revision %s", self.key, where, revision)
        self._stamped = revision
        return events

    def _written_one(self, kind: str, name: str, verb: str) -> None:
        log.info("%s: %s %s %s", self.key, verb, kind, name)
        if kind == "ConfigMap":
            self._metrics.config_map_written(namespace=self.ref.namespace, route=self.ref.name)

    def _apply(self, decision: Decision, now: datetime) -> list[Event]:
        """Record a decision whose output is written; return the Event of a switch, if any."""
        previous = self._active
        if decision.active == previous or decision.active is None:
            return []
        self._active = decision.active
        self._active_since = timestamp(now)
        if previous is None or decision.reason is None:
            log.info("%s: routing to %s", self.key, decision.active)
            return []
        self._failover_count += 1
        self._last_failover = {
            "time": timestamp(now),
            "from": previous,
            "to": decision.active,
            "reason": decision.reason,
        }
        # Time to failover runs from the first failing probe of the provider left behind to now,
        # when the output naming its successor is written; a switch no failure caused has none.
        failing_since = self._health.get(previous, ProviderHealth()).failing_since
        written = self._clock()
        self._metrics.failed_over(
            namespace=self.ref.namespace,
            route=self.ref.name,
            source=previous,
            target=decision.active,
            reason=decision.reason,
            at=written.timestamp(),
            duration_seconds=(written - failing_since).total_seconds() if failing_since else None,
        )
        back = decision.reason == Reason.FAILBACK
        reason = EventReason.FAILED_BACK if back else EventReason.FAILED_OVER
        return [Event(reason, f"{previous} → {decision.active} ({decision.reason})")]

    # -- report -------------------------------------------------------------------------------

    async def _report(
        self,
        spec: RouteSpec,
        decision: Decision,
        ready: Condition,
        generation: int | None,
        now: datetime,
    ) -> None:
        previous = self._status
        event = ready_event(ready, _condition(previous, "Ready"))
        status: dict[str, Any] = {
            "providers": provider_entries(spec, self._health, decision.eligible, self._readings),
            "failoverCount": self._failover_count,
            "conditions": conditions(
                [ready, decision.failed_over],
                previous.get("conditions") or [],
                generation=generation,
                now=now,
            ),
        }
        if generation is not None:
            status["observedGeneration"] = generation
        if self._active is not None:
            status["activeProvider"] = self._active
            status["activeSince"] = self._active_since
        if self._last_failover is not None:
            status["lastFailover"] = self._last_failover
        await self._patch_status(status, routine=True)
        # Announced only once the status saying so is written: a retry computes it again.
        self._queue([event] if event is not None else [])
        self._metrics.route_state(
            namespace=self.ref.namespace,
            route=self.ref.name,
            providers=[
                (
                    p.name,
                    self._health.get(p.name, ProviderHealth()).state,
                    decision.eligible[p.name],
                )
                for p in spec.providers
            ],
            active=self._active,
            failed_over=self._active is not None and self._active != spec.providers[0].name,
            signals={name: reading.firing for name, reading in self._readings.items()},
        )
        await self._post_pending(now)

    async def _report_problem(
        self, reason: str, message: str, generation: int | None, now: datetime
    ) -> None:
        """Ready=False with this reason; the rest of the status and the routing stay as they are."""
        previous = self._status
        ready = Condition("Ready", False, reason, message)
        others = [c for c in previous.get("conditions") or [] if c.get("type") != "Ready"]
        status = dict(previous)
        status["conditions"] = [
            *conditions([ready], previous.get("conditions") or [], generation=generation, now=now),
            *others,
        ]
        if generation is not None:
            status["observedGeneration"] = generation
        event = ready_event(ready, _condition(previous, "Ready"))
        await self._patch_status(status)
        self._queue([event] if event else [])
        await self._post_pending(now)

    async def _patch_status(self, status: dict[str, Any], *, routine: bool = False) -> None:
        """Write the status if it changed; a `routine` one (a probe's facts alone) only once
        the heartbeat is due."""
        heartbeat_due = self._heartbeat_in() <= 0
        if status == self._status:
            if heartbeat_due:
                self._restart_heartbeat()  # nothing to tell: wait another
            return
        if routine and not heartbeat_due and significant(status) == significant(self._status):
            return
        await self._kube.patch_route_status(self.ref.namespace, self.ref.name, status)
        self._status = status
        self._restart_heartbeat()

    def _heartbeat_in(self) -> float:
        """Seconds until per-probe facts are due in the status. A heartbeat stretches with the
        routes, so that all of them together write at most `HEARTBEAT_WRITES_PER_SECOND`
        routine statuses a second; each route waits a random part of it (three quarters to all
        of it; half to all the first time), so routes created or resumed together do not write
        together."""
        heartbeat = max(
            self._settings.status_heartbeat_seconds,
            self._routes() / HEARTBEAT_WRITES_PER_SECOND,
        )
        return self._heartbeat_from + heartbeat * self._heartbeat_part - time.monotonic()

    def _restart_heartbeat(self) -> None:
        self._heartbeat_from = time.monotonic()
        self._heartbeat_part = random.uniform(0.75, 1.0)

    async def _post_pending(self, now: datetime) -> None:
        """Post queued Events in order; what the API server refuses waits for the retry."""
        while self._pending:
            event = self._pending[0]
            try:
                await self._kube.post_event(
                    self.ref, type=event.type, reason=event.reason, message=event.message, now=now
                )
            except KubeError as exc:  # worth a log line and a retry, not a failed reconcile
                log.log(
                    logging.ERROR if isinstance(exc, Forbidden) else logging.WARNING,
                    "%s: could not post Event %s (%s), will retry: %s",
                    self.key,
                    event.reason,
                    event.message,
                    exc,
                )
                self._retry_at = time.monotonic() + self._settings.retry_seconds
                return
            self._pending.pop(0)
            log.log(
                logging.WARNING if event.type == "Warning" else logging.INFO,
                "%s: %s: %s",
                self.key,
                event.reason,
                event.message,
            )

    # -- timing -------------------------------------------------------------------------------

    def _changed_secrets(self) -> set[str]:
        """Names of the key Secrets that changed since they were read."""
        if self._keys is None:
            return set()
        return {
            name
            for (namespace, name), version in self._keys.versions.items()
            if self._secrets.version((namespace, name)) != version
        }

    def _keys_stale(self) -> bool:
        """A key Secret changed since it was read (the watch told the cache)."""
        return self._keys is not None and any(
            self._secrets.version(key) != version for key, version in self._keys.versions.items()
        )

    def _next_wake(self) -> float | None:
        """Seconds until something is due without a probe: a window edge, the status heartbeat
        (the leader's) or a retry."""
        waits: list[float] = []
        if self._spec is not None and self._leading:  # a standby writes no heartbeat
            waits.append(self._heartbeat_in())
        if self._retry_at is not None:
            waits.append(self._retry_at - time.monotonic())
        now = self._clock()
        for provider in self._spec.providers if self._spec is not None else ():
            for edge in (provider.not_before, provider.not_after):
                if edge is not None and edge > now:
                    waits.append((edge - now).total_seconds() + 0.01)
        return max(0.0, min(waits)) if waits else None


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for entry in status.get("conditions") or []:
        if isinstance(entry, Mapping) and entry.get("type") == kind:
            return entry
    return None
