"""Signals from the apps' own traffic: Prometheus queries and Alertmanager alerts.

The operator is not in the request path; it can still hear the traffic. A route (or one of its
providers) names a PromQL query of its apps' error rate or latency for a provider, with a
threshold; Alertmanager can also post alerts naming a route. A signal never switches a route by
itself: it probes the provider at once, and a failing probe while it fires ejects the provider
at once (no streak to wait for). Only with `trust: Signal` does a firing signal eject a provider
whose probes pass (reason TrafficErrors). An alert posted without the webhook's token (none is
configured) only probes. A Prometheus that cannot be asked is reported on the
route and in the metrics, and never fails anything over.

Queries are evaluated every `interval_seconds` (a new one at once), each distinct query once
however many routes use it, a few at a time; a route is woken only when what its signals say
changes (firing or not, a problem or not), not when a value moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import httpx

from llm_failover.prober import Wake
from llm_failover.supervision import Watchdog

log = logging.getLogger(__name__)

QUERY_TIMEOUT_SECONDS = 10.0
MAX_ANSWER_BYTES = 1024 * 1024
"""A query's answer read at most: a signal is one number, a mistaken query may return thousands."""
CONCURRENT_QUERIES = 4
ALERT_TTL_SECONDS = 3600.0
"""How long a firing alert counts without news when it gives no end: Alertmanager sends a
resolved notification (`send_resolved`, on by default) long before."""
MAX_ALERT_HOURS = 24.0
MAX_ALERTS_PER_ROUTE = 17
"""One per provider a route may have (16), and one for its active provider."""


class Source(StrEnum):
    PROMETHEUS = "Prometheus"
    ALERTMANAGER = "Alertmanager"


@dataclass(frozen=True)
class Query:
    """A provider's query as a route asks it: placeholders filled in."""

    text: str
    threshold: float


@dataclass(frozen=True)
class Reading:
    """What the signals say of one provider of one route."""

    firing: bool
    source: Source
    value: float | None = None  # the query's value; None: no data (no traffic), or an alert
    threshold: float | None = None
    problem: str = ""  # why the query could not be evaluated ("" when it was)
    may_eject: bool = True  # False: an alert from an unauthenticated webhook only probes

    @property
    def summary(self) -> str:
        if self.source is Source.ALERTMANAGER:
            return "an Alertmanager alert fires"
        if self.value is None:
            return "no data"
        return f"{self.value:.4g} > {self.threshold:g}" if self.firing else f"{self.value:.4g}"


@dataclass(frozen=True)
class Alert:
    """An Alertmanager alert naming a route (labels `namespace`, `llmroute`, and `provider`:
    the route's active provider when absent)."""

    namespace: str
    route: str
    provider: str
    firing: bool
    ends_at: datetime | None
    authenticated: bool


class SignalSource:
    """What the route controller needs (the operator has one `Signals`; tests, this)."""

    def watch(self, subscriber: str, queries: Mapping[str, Query], wake: Wake) -> None:
        return None

    def unwatch(self, subscriber: str) -> None:
        return None

    def readings(self, subscriber: str, active: str | None) -> dict[str, Reading]:
        return {}


@dataclass
class _Watch:
    queries: Mapping[str, Query]
    wake: Wake
    shown: frozenset[tuple[str, bool, bool]] = frozenset()  # (provider, firing, problem)


@dataclass
class _Answer:
    value: float | None
    problem: str = ""


@dataclass
class _Firing:
    until: float  # monotonic
    authenticated: bool


@dataclass
class Signals(SignalSource):
    """Evaluates the routes' queries against one Prometheus and keeps the alerts posted."""

    client: httpx.AsyncClient | None = None
    url: str | None = None
    token_file: str | None = None
    interval_seconds: float = 15.0
    on_query: Callable[[str], None] | None = None  # told "ok" or "error" per query
    watchdog: Watchdog = field(default_factory=Watchdog)
    tenant_param: str | None = None
    """A query parameter carrying the route's namespace with each query (`namespace` for
    prom-label-proxy, or the tenancy port of OpenShift's Thanos querier): each tenant's queries
    then see that tenant's series only."""
    _watches: dict[str, _Watch] = field(default_factory=dict)
    _answers: dict[tuple[str, str], _Answer] = field(default_factory=dict)
    _alerts: dict[str, dict[str, _Firing]] = field(default_factory=dict)  # route → provider
    _failing: bool = False
    _new: asyncio.Event = field(default_factory=asyncio.Event)  # a query not asked yet

    def watch(self, subscriber: str, queries: Mapping[str, Query], wake: Wake) -> None:
        old = self._watches.get(subscriber)
        self._watches[subscriber] = _Watch(dict(queries), wake, old.shown if old else frozenset())
        if any(self._key(subscriber, query) not in self._answers for query in queries.values()):
            self._new.set()  # asked at once, not at the next interval

    def unwatch(self, subscriber: str) -> None:
        self._watches.pop(subscriber, None)
        self._alerts.pop(subscriber, None)

    def readings(self, subscriber: str, active: str | None) -> dict[str, Reading]:
        """Per provider of the route: what its query says, and whether an alert fires for it."""
        found: dict[str, Reading] = {}
        watch = self._watches.get(subscriber)
        for provider, query in (watch.queries if watch else {}).items():
            answer = self._answers.get(self._key(subscriber, query))
            if answer is None:
                continue  # not evaluated yet
            if answer.problem:
                found[provider] = Reading(
                    False, Source.PROMETHEUS, threshold=query.threshold, problem=answer.problem
                )
                continue
            firing = answer.value is not None and answer.value > query.threshold
            found[provider] = Reading(firing, Source.PROMETHEUS, answer.value, query.threshold)
        now = time.monotonic()
        for provider, alert in self._alerts.get(subscriber, {}).items():
            name = provider or active
            if name is not None and alert.until > now:
                found[name] = Reading(True, Source.ALERTMANAGER, may_eject=alert.authenticated)
        return found

    def alert(self, alerts: Iterable[Alert]) -> set[str]:
        """Record posted alerts; the subscribers (routes) they name, to be woken. Alerts naming
        a route this replica does not manage are dropped, and a route keeps a bounded number
        (one per provider it may have, and one for its active provider): what is posted cannot
        grow the operator's memory."""
        now = time.monotonic()
        named: set[str] = set()
        for alert in alerts:
            subscriber = f"{alert.namespace}/{alert.route}"
            watch = self._watches.get(subscriber)
            if watch is None:
                continue
            held = self._alerts.setdefault(subscriber, {})
            if not alert.firing:
                held.pop(alert.provider, None)
            else:
                ttl = ALERT_TTL_SECONDS
                if alert.ends_at is not None:
                    left = (alert.ends_at - datetime.now(UTC)).total_seconds()
                    if left > 0:
                        ttl = min(left, MAX_ALERT_HOURS * 3600)
                if alert.provider not in held and len(held) >= MAX_ALERTS_PER_ROUTE:
                    continue
                held[alert.provider] = _Firing(now + ttl, alert.authenticated)
            if not held:
                del self._alerts[subscriber]
            watch.wake.set()
            named.add(subscriber)
        return named

    async def run(self) -> None:
        """Evaluate every distinct query each interval; wake the routes whose signals changed."""
        name = "traffic signals"
        try:
            while True:
                due = time.monotonic() + self.interval_seconds
                await self._evaluate_watched(name, new_only=False)
                # Queries a route adds meanwhile are asked at once; all of them again when due.
                while (left := due - time.monotonic()) > 0:
                    self.watchdog.expect(name, left + 30)
                    self._new.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(left):
                            await self._new.wait()
                    if self._new.is_set():
                        await self._evaluate_watched(name, new_only=True)
        finally:
            self.watchdog.done(name)

    async def _evaluate_watched(self, name: str, *, new_only: bool) -> None:
        # Each batch of CONCURRENT_QUERIES queries ends within its timeout.
        batches = 1 + len(self._watches) // CONCURRENT_QUERIES
        self.watchdog.expect(name, batches * QUERY_TIMEOUT_SECONDS + 30)
        await self.evaluate(new_only=new_only)
        self._wake_changed()

    def _key(self, subscriber: str, query: Query) -> tuple[str, str]:
        """What is asked: the query, and the tenant it is asked for (when tenancy is on)."""
        return query.text, subscriber.partition("/")[0] if self.tenant_param else ""

    async def evaluate(self, *, new_only: bool = False) -> None:
        """Ask every distinct query (`new_only`: those not asked yet)."""
        keys = {
            self._key(subscriber, query)
            for subscriber, watch in self._watches.items()
            for query in watch.queries.values()
        }
        for gone in set(self._answers) - keys:
            del self._answers[gone]
        if new_only:
            keys -= set(self._answers)
        if not keys:
            return
        gate = asyncio.Semaphore(CONCURRENT_QUERIES)

        async def one(key: tuple[str, str]) -> None:
            async with gate:
                self._answers[key] = await self._ask(*key)

        await asyncio.gather(*(one(key) for key in sorted(keys)))
        problems = [a.problem for a in self._answers.values() if a.problem]
        if problems and not self._failing:
            log.error(
                "traffic signals: Prometheus queries fail (%s); no route fails over for "
                "it: probes go on as usual",
                problems[0],
            )
        elif self._failing and not problems:
            log.info("traffic signals: Prometheus queries answer again")
        self._failing = bool(problems)

    def _wake_changed(self) -> None:
        now = time.monotonic()
        for subscriber, held in list(self._alerts.items()):  # alerts that lapsed: no news
            lapsed = [provider for provider, alert in held.items() if alert.until <= now]
            for provider in lapsed:
                del held[provider]
            if not held:
                del self._alerts[subscriber]
            watch = self._watches.get(subscriber)
            if lapsed and watch is not None:
                watch.wake.set()
        for subscriber, watch in self._watches.items():
            if not watch.queries:
                continue
            shown = frozenset(
                (provider, reading.firing, bool(reading.problem))
                for provider, reading in self.readings(subscriber, None).items()
                if reading.source is Source.PROMETHEUS
            )
            if shown != watch.shown:
                watch.shown = shown
                watch.wake.set()

    async def _ask(self, text: str, tenant: str) -> _Answer:
        answer = await self._query(text, tenant)
        if self.on_query is not None:
            self.on_query("error" if answer.problem else "ok")
        return answer

    async def _query(self, text: str, tenant: str) -> _Answer:
        if self.client is None or not self.url:
            return _Answer(None, "no Prometheus configured (--prometheus-url)")
        headers = {"Accept": "application/json"}
        token = read_token(self.token_file)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        params = {"query": text}
        if self.tenant_param and tenant:
            params[self.tenant_param] = tenant
        try:
            async with asyncio.timeout(QUERY_TIMEOUT_SECONDS):
                request = self.client.build_request(
                    "GET",
                    f"{self.url.rstrip('/')}/api/v1/query",
                    params=params,
                    headers=headers,
                    timeout=QUERY_TIMEOUT_SECONDS,
                )
                response = await self.client.send(request, stream=True)
                try:
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body.extend(chunk)
                        if len(body) > MAX_ANSWER_BYTES:
                            return _Answer(None, "Prometheus answer too large: not one number")
                finally:
                    await response.aclose()
        except TimeoutError:
            return _Answer(None, f"Prometheus: no answer within {QUERY_TIMEOUT_SECONDS:g}s")
        except httpx.HTTPError as exc:
            return _Answer(None, f"Prometheus unreachable: {type(exc).__name__}: {exc}"[:200])
        return parse_answer(response.status_code, bytes(body))


def fill(query: str, values: Mapping[str, str]) -> str:
    """A query with each `${name}` of `values` filled in, escaped for a PromQL string (a model
    name may hold a quote or a backslash)."""
    for name, value in values.items():
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        query = query.replace(f"${{{name}}}", escaped)
    return query


def parse_answer(status: int, body: bytes) -> _Answer:
    """The value of an instant query's answer: a scalar, or the largest sample of a vector;
    None for no data (an empty vector, NaN: no traffic); a problem for anything else."""
    try:
        document: Any = json.loads(body)
    except (ValueError, RecursionError):
        return _Answer(None, f"Prometheus answered HTTP {status}, not JSON")
    if not isinstance(document, dict):
        return _Answer(None, f"Prometheus answered HTTP {status}, not a query result")
    if document.get("status") != "success":
        error = str(document.get("error") or f"HTTP {status}")[:160]
        return _Answer(None, f"the query failed: {error}")
    data = document.get("data")
    if not isinstance(data, dict):
        return _Answer(None, "Prometheus answered without data")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        samples = [result]
    elif kind == "vector" and isinstance(result, list):
        samples = [item.get("value") for item in result if isinstance(item, dict)]
    else:
        return _Answer(None, f"the query must give a number or an instant vector, not {kind}")
    values = []
    for sample in samples:
        if isinstance(sample, list) and len(sample) == 2:
            try:
                value = float(sample[1])
            except (TypeError, ValueError):
                continue
            if not math.isnan(value):
                values.append(value)
    return _Answer(max(values) if values else None)


def read_token(path: str | None) -> str | None:
    """The token in a file (read each time: projected service-account tokens rotate)."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            return file.read(65536).strip() or None
    except (OSError, UnicodeDecodeError):
        log.warning("cannot read the token file %s", path)
        return None


MAX_WEBHOOK_BYTES = 1024 * 1024
"""An Alertmanager notification read at most (a group of a thousand alerts fits)."""


@dataclass
class AlertWebhook:
    """`POST /alertmanager` on the metrics port, served from the metrics server's threads: the
    alerts go to `deliver` (on the operator's loop). With a token file, a notification without
    its bearer token is refused (401); without one, alerts are taken but only ever probe.

    Only the leader takes them: a standby answers 503, which Alertmanager retries (through the
    Service, to either replica) until the leader has it; a resolution reaches it the same way."""

    deliver: Callable[[list[Alert]], None]
    token_file: str | None = None
    count: Callable[[str], None] | None = None
    leading: Callable[[], bool] = lambda: True

    def handle(self, body: bytes, authorization: str) -> tuple[int, str]:
        result, status, text = self._handle(body, authorization)
        if self.count is not None:
            self.count(result)
        return status, text

    def _handle(self, body: bytes, authorization: str) -> tuple[str, int, str]:
        if not self.leading():
            return "standby", 503, "not the leader: retry (Alertmanager does)\n"
        authenticated = False
        if self.token_file is not None:
            token = read_token(self.token_file)
            given = authorization.removeprefix("Bearer ").strip()
            if not token or not hmac.compare_digest(given.encode(), token.encode()):
                return "unauthorized", 401, "a bearer token is required\n"
            authenticated = True
        try:
            alerts = parse_alerts(json.loads(body), authenticated=authenticated)
        except (ValueError, RecursionError) as exc:
            return "invalid", 400, f"not an Alertmanager notification: {str(exc)[:200]}\n"
        self.deliver(alerts)
        return "accepted", 200, f"{len(alerts)} alert(s) naming a route\n"


def parse_alerts(document: Any, *, authenticated: bool) -> list[Alert]:
    """The alerts of an Alertmanager webhook body (version 4) that name a route; raises
    ValueError, with what is wrong, for a body that is not one."""
    if not isinstance(document, dict) or not isinstance(document.get("alerts"), list):
        raise ValueError("not an Alertmanager webhook body: no alerts list")
    alerts = []
    for item in document["alerts"][:1000]:
        if not isinstance(item, dict):
            continue
        labels = item.get("labels")
        if not isinstance(labels, dict):
            continue
        namespace, route = labels.get("namespace"), labels.get("llmroute")
        provider = labels.get("provider", "")
        if not (isinstance(namespace, str) and isinstance(route, str) and namespace and route):
            continue
        if not isinstance(provider, str):
            continue
        alerts.append(
            Alert(
                namespace=namespace[:253],
                route=route[:253],
                provider=provider[:63],
                firing=item.get("status", document.get("status")) == "firing",
                ends_at=_time(item.get("endsAt")),
                authenticated=authenticated,
            )
        )
    return alerts


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or value.startswith("0001-"):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
