"""Probes provider endpoints over one shared `httpx.AsyncClient`: one task per distinct endpoint.

An endpoint is (base URL, probe method, model for Chat, credential). However many routes use it,
it is probed once per interval (the shortest interval among its routes), and every route using it
is woken with the result. This is the only place that talks HTTP to providers.

Nothing a provider sends can end a probe loop or cost more than a bounded amount: a probe that
raises is a failed probe (`Unreachable`, with the reason), bodies are read up to a cap on their
decoded size, and each loop runs under `supervise`. Concurrent probes are shared out fairly: at
most `per_tenant` per namespace out of `total`, and a probe's timeout starts only once it holds a
slot, so waiting behind other tenants never shows as a provider's `Timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from llm_failover import __version__
from llm_failover.cadence import (
    BACKOFF_MAX_SECONDS,
    MIN_GAP_SECONDS,
    Cadence,
    Wait,
    plan,
    saved,
)
from llm_failover.catalog import AuthScheme, ErrorDictionary, ProbeMethod
from llm_failover.chatprobe import DEFAULT_PROBE, ChatProbe, chat_payload
from llm_failover.classifier import (
    Classification,
    HttpAnswer,
    Outcome,
    Transport,
    TransportFailure,
    classify,
)
from llm_failover.credentials import Credential
from llm_failover.redact import Redactor
from llm_failover.resettime import reset_time
from llm_failover.state import ProviderState
from llm_failover.supervision import Watchdog, supervise

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    method: ProbeMethod
    model: str  # "" for Models: the model does not change what GET /models answers
    credential: Credential
    auth: AuthScheme = field(default=AuthScheme(), compare=False)
    errors: ErrorDictionary = field(default=ErrorDictionary(), compare=False, repr=False)
    chat: ChatProbe = DEFAULT_PROBE  # how Chat asks: two routes asking differently, two probes

    @classmethod
    def for_provider(
        cls,
        *,
        base_url: str,
        method: ProbeMethod,
        model: str,
        credential: Credential,
        auth: AuthScheme,
        errors: ErrorDictionary,
        chat: ChatProbe = DEFAULT_PROBE,
    ) -> Endpoint:
        return cls(
            base_url=base_url,
            method=method,
            model=model if method is ProbeMethod.CHAT else "",
            credential=credential,
            auth=auth,
            errors=errors,
            chat=chat if method is ProbeMethod.CHAT else DEFAULT_PROBE,
        )

    @property
    def label(self) -> str:
        """How logs and the liveness check name it: unique, and without the key."""
        key = f" key {self.credential.fingerprint[:8]}" if self.credential.fingerprint else ""
        return f"{self.base_url} {self.method.value}{f' {self.model}' if self.model else ''}{key}"

    @property
    def host(self) -> str:
        """The URL host: the bounded `endpoint` label of the probe metrics."""
        try:
            return urlsplit(self.base_url).hostname or "unknown"
        except ValueError:  # e.g. an unbalanced "[": the spec parser keeps these out
            return "unknown"


@dataclass(frozen=True)
class Report:
    """One probe of an endpoint, the `sequence`-th; with the run of answers of the same state it
    ends, so that a route woken only when something can change for it still counts every answer
    (`run_start` is the sequence of the run's first answer, sent at `run_since`)."""

    sequence: int
    time: datetime  # when the probe was sent: a time-to-failover starts there
    classification: Classification
    latency_milliseconds: int
    run_start: int = 0  # 0: this report starts its run
    run_since: datetime | None = None
    retry_at: datetime | None = None
    """When the provider said it serves again (a `Retry-After`, a reset time in the body)."""

    @property
    def run_length(self) -> int:
        return self.sequence - (self.run_start or self.sequence) + 1

    @property
    def starts_run(self) -> bool:
        return self.run_start in (0, self.sequence)

    def unseen(self, consumed: int) -> tuple[int, datetime | None]:
        """How many answers of this report's state a route that consumed up to `consumed` has
        not seen (earlier runs it missed are lost), and when the run began if it saw none of it."""
        start = self.run_start or self.sequence
        if consumed >= start:
            return self.sequence - consumed, None
        return self.sequence - start + 1, self.run_since or self.time


class Wake(Protocol):
    """What a subscriber is woken by (an `asyncio.Event`)."""

    def set(self) -> None: ...


@dataclass(frozen=True)
class Schedule:
    interval_seconds: float
    timeout_seconds: float
    backup_seconds: float | None = None
    """Set while the provider is far down the subscriber's list: probed this often instead."""


class ProbeSource(Protocol):
    """What the route controller needs from the prober (tests provide a fake)."""

    def subscribe(
        self,
        subscriber: str,
        endpoints: Mapping[Endpoint, Schedule],
        wake: Wake,
        *,
        tenant: str = "",
    ) -> None: ...
    def unsubscribe(self, subscriber: str) -> None: ...
    def attend(self, subscriber: str, endpoints: Iterable[Endpoint]) -> None: ...
    def reprobe(self, endpoints: Iterable[Endpoint]) -> None: ...
    def latest(self, endpoint: Endpoint) -> Report | None: ...


class ProbeGate:
    """Fair shares of concurrent probes: `per_tenant` per namespace, `total` in all.

    One namespace whose providers never answer holds at most its share; every other namespace's
    probes still find a slot. Waiters are served in arrival order.
    """

    def __init__(self, *, total: int = 256, per_tenant: int = 32) -> None:
        self.total = total
        self.per_tenant = per_tenant
        self._all = asyncio.Semaphore(total)
        self._tenants: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def slot(self, tenant: str) -> AsyncIterator[None]:
        share, users = self._tenants.setdefault(tenant, (asyncio.Semaphore(self.per_tenant), [0]))
        users[0] += 1
        try:
            async with share, self._all:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._tenants[tenant]

    @property
    def tenants(self) -> int:
        return len(self._tenants)


@dataclass
class _Subscription:
    endpoints: Mapping[Endpoint, Schedule]
    wake: Wake
    tenant: str
    eager: frozenset[Endpoint] = frozenset()


@dataclass
class _Timer:
    """An endpoint loop's wait: `poke` makes it look again at its plan (a subscription
    changed), with `reprobe` at once (but `MIN_GAP_SECONDS` after the last probe)."""

    poke: asyncio.Event = field(default_factory=asyncio.Event)
    reprobe: bool = False
    last_start: float | None = None
    why: Wait = Wait.INTERVAL


class Prober:
    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        clock: Clock = utc_now,
        max_body_bytes: int = 64 * 1024,
        on_report: Callable[[Endpoint, Report], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_saved: Callable[[Wait, float], None] | None = None,
        redactor: Redactor | None = None,
        gate: ProbeGate | None = None,
        watchdog: Watchdog | None = None,
        deliver: Callable[[list[Wake]], None] | None = None,
        backoff_max_seconds: float = BACKOFF_MAX_SECONDS,
    ) -> None:
        self._client = client
        self._deliver = deliver if deliver is not None else set_all  # how wakes are set
        self._clock = clock
        self._max_body_bytes = max_body_bytes
        self._on_report = on_report
        self._on_error = on_error  # told "probe" (a probe raised) or "probe_loop" (a crash)
        self._on_saved = on_saved  # told the probes a wait saved, against a fixed schedule
        self._backoff_max_seconds = backoff_max_seconds
        self._redactor = redactor if redactor is not None else Redactor()
        self._gate = gate if gate is not None else ProbeGate()
        self._watchdog = watchdog if watchdog is not None else Watchdog()  # it has a len()
        self._subscriptions: dict[str, _Subscription] = {}
        self._subscribers: dict[Endpoint, set[str]] = {}  # endpoint → who wants it
        self._eager: dict[Endpoint, set[str]] = {}  # endpoint → who wants every answer
        self._tasks: dict[Endpoint, asyncio.Task[None]] = {}
        self._timers: dict[Endpoint, _Timer] = {}
        self._latest: dict[Endpoint, Report] = {}
        self._raising: set[Endpoint] = set()  # endpoints whose last probe raised: logged once

    def subscribe(
        self,
        subscriber: str,
        endpoints: Mapping[Endpoint, Schedule],
        wake: Wake,
        *,
        tenant: str = "",
    ) -> None:
        """Replace what `subscriber` wants probed; `wake` is set when an answer of those starts
        a run (a new state), and after every answer of the endpoints it `attend`s to.

        `tenant` (the route's namespace) decides whose share of concurrent probes it uses.
        """
        old = self._subscriptions.get(subscriber)
        eager = old.eager & set(endpoints) if old is not None else frozenset()
        self._subscriptions[subscriber] = _Subscription(dict(endpoints), wake, tenant, eager)
        for endpoint in endpoints:
            self._subscribers.setdefault(endpoint, set()).add(subscriber)
        if old is not None:
            self._drop(subscriber, set(old.endpoints) - set(endpoints))
        for endpoint in endpoints:
            if endpoint not in self._tasks:
                self._start(endpoint)
            else:
                self._timers[endpoint].poke.set()  # its cadence may have changed

    def unsubscribe(self, subscriber: str) -> None:
        old = self._subscriptions.pop(subscriber, None)
        if old is not None:
            self._drop(subscriber, set(old.endpoints))

    def attend(self, subscriber: str, endpoints: Iterable[Endpoint]) -> None:
        """Wake `subscriber` after every answer of these endpoints (of those it subscribed to),
        not only when one starts a run: a route counting answers towards a threshold needs each.
        The others' answers of the same state change nothing but counters: it reads them later,
        all at once (`Report.unseen`), instead of waking thousands of routes per answer."""
        subscription = self._subscriptions.get(subscriber)
        if subscription is None:
            return
        eager = frozenset(endpoints) & subscription.endpoints.keys()
        for endpoint in subscription.eager - eager:
            wanted = self._eager.get(endpoint)
            if wanted is not None:
                wanted.discard(subscriber)
                if not wanted:
                    del self._eager[endpoint]
        for endpoint in eager - subscription.eager:
            self._eager.setdefault(endpoint, set()).add(subscriber)
        subscription.eager = eager

    def reprobe(self, endpoints: Iterable[Endpoint]) -> None:
        """Probe these endpoints now (at most once a second each), whatever their wait: a key
        Secret changed, traffic says something is wrong, or a route needs a fresh answer."""
        for endpoint in endpoints:
            timer = self._timers.get(endpoint)
            if timer is not None:
                timer.reprobe = True
                timer.poke.set()

    def latest(self, endpoint: Endpoint) -> Report | None:
        return self._latest.get(endpoint)

    @property
    def endpoints(self) -> frozenset[Endpoint]:
        return frozenset(self._tasks)

    async def close(self) -> None:
        self._subscriptions.clear()
        self._subscribers.clear()
        self._eager.clear()
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _drop(self, subscriber: str, endpoints: set[Endpoint]) -> None:
        for endpoint in endpoints:
            eager = self._eager.get(endpoint)
            if eager is not None:
                eager.discard(subscriber)
                if not eager:
                    del self._eager[endpoint]
            wanted_by = self._subscribers.get(endpoint)
            if wanted_by is None:
                continue
            wanted_by.discard(subscriber)
            if not wanted_by:
                del self._subscribers[endpoint]
                task = self._tasks.pop(endpoint, None)
                if task is not None:
                    task.cancel()
                self._timers.pop(endpoint, None)
                self._latest.pop(endpoint, None)
                self._raising.discard(endpoint)

    def _start(self, endpoint: Endpoint) -> None:
        name = f"probe loop {endpoint.label}"
        self._timers[endpoint] = _Timer()
        self._tasks[endpoint] = asyncio.create_task(
            supervise(name, lambda: self._loop(endpoint), count=lambda: self._count("probe_loop")),
            name=name,
        )

    def _schedule(self, endpoint: Endpoint) -> tuple[Cadence, float, str] | None:
        """What its subscribers ask of it together: the shortest interval (the backup interval
        only if every one has it far down its list), the shortest timeout, and whose share it
        uses (the first tenant by name, so the choice is stable); None if nobody wants it."""
        wanted = [self._subscriptions[s] for s in self._subscribers.get(endpoint, ())]
        if not wanted:
            return None
        schedules = [w.endpoints[endpoint] for w in wanted]
        backups = [s.backup_seconds for s in schedules]
        cadence = Cadence(
            interval_seconds=min(s.interval_seconds for s in schedules),
            backup_seconds=None if None in backups else min(b for b in backups if b is not None),
        )
        timeout = min(s.timeout_seconds for s in schedules)
        return cadence, timeout, min(w.tenant for w in wanted)

    async def _loop(self, endpoint: Endpoint) -> None:
        name = f"probe {endpoint.label}"
        timer = self._timers[endpoint]
        self._redactor.remember([endpoint.credential.value])
        try:
            while (planned := self._schedule(endpoint)) is not None:
                cadence, timeout, tenant = planned
                started = time.monotonic()
                if timer.last_start is not None and self._on_saved is not None:
                    probes = saved(started - timer.last_start, cadence, timer.why)
                    if probes > 0:
                        self._on_saved(timer.why, probes)
                timer.last_start, timer.reprobe, timer.why = started, False, Wait.INTERVAL
                # Waiting for a slot is queueing behind other probes, not stalling: the watchdog
                # expects progress only while the probe holds a slot, and while the loop waits.
                self._watchdog.done(name)
                report = await self.probe(
                    endpoint, timeout_seconds=timeout, tenant=tenant, watch=name
                )
                report = in_run(self._latest.get(endpoint), report)
                self._latest[endpoint] = report
                if self._on_report is not None:
                    self._on_report(endpoint, report)
                woken = self._subscribers if report.starts_run else self._eager
                wakes = [self._subscriptions[s].wake for s in woken.get(endpoint, ())]
                if wakes:
                    self._deliver(wakes)
                await self._wait(endpoint, timer, started, report, name)
        finally:
            self._watchdog.done(name)
            self._redactor.forget([endpoint.credential.value])

    async def _wait(
        self, endpoint: Endpoint, timer: _Timer, started: float, report: Report, name: str
    ) -> None:
        """Until the next probe is due: planned from the last answer (`cadence.plan`) and
        planned again whenever a subscription changes; a reprobe cuts it short."""
        while (planned := self._schedule(endpoint)) is not None:
            retry_in = (
                (report.retry_at - report.time).total_seconds()
                if report.retry_at is not None
                else None
            )
            next_probe = plan(
                planned[0],
                state=report.classification.state,
                run_length=report.run_length,
                retry_in_seconds=retry_in,
                backoff_max_seconds=self._backoff_max_seconds,
            )
            due = started + next_probe.seconds
            if timer.reprobe:
                due = min(due, started + MIN_GAP_SECONDS)
            remaining = due - time.monotonic()
            if next_probe.why is not Wait.INTERVAL:  # what the wait saves, even if cut short
                timer.why = next_probe.why
            if remaining <= 0:
                return
            timer.poke.clear()
            self._watchdog.expect(name, remaining + 30)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await timer.poke.wait()
                    continue
            return

    async def probe(
        self,
        endpoint: Endpoint,
        *,
        timeout_seconds: float,
        tenant: str = "",
        watch: str | None = None,
    ) -> Report:
        """Probe once and classify; never raises (but for cancellation), whatever the provider,
        the network or the endpoint's own values do. With `watch`, the watchdog expects the probe
        to end within its timeout once it holds a slot."""
        async with self._gate.slot(tenant):
            if watch is not None:
                self._watchdog.expect(watch, timeout_seconds + 30)
            sent_at = self._clock()
            started = time.monotonic()
            headers: Mapping[str, str] = {}
            try:
                async with asyncio.timeout(timeout_seconds):
                    outcome, headers = await self._request(endpoint, timeout_seconds)
            except TimeoutError:
                outcome = TransportFailure(Transport.TIMEOUT, f"{timeout_seconds:g}s")
            except httpx.HTTPError as exc:
                outcome = _transport_failure(exc)
            except Exception as exc:
                outcome = self._raised(endpoint, exc)
            else:
                self._raising.discard(endpoint)
            latency = round((time.monotonic() - started) * 1000)
        # The shared redactor knows this key while its loop runs; a one-off probe
        # (`llm-failover probe`) has no loop, so the key is remembered for the classification.
        self._redactor.remember([endpoint.credential.value])
        try:
            classification = classify(
                outcome, errors=endpoint.errors, method=endpoint.method, redact=self._redactor
            )
        finally:
            self._redactor.forget([endpoint.credential.value])
        retry_at = None
        if classification.state is not ProviderState.HEALTHY and isinstance(outcome, HttpAnswer):
            # When it serves again, if it says (a 200 may carry an error: MiniMax's base_resp).
            lowered = {key.lower(): value for key, value in headers.items()}
            body = outcome.body.decode("utf-8", "replace")
            retry_at = reset_time(outcome.status, lowered, body, sent_at)
        return Report(1, sent_at, classification, latency, retry_at=retry_at)

    def _raised(self, endpoint: Endpoint, exc: Exception) -> TransportFailure:
        """An exception no network failure explains: a failed probe, logged once per streak."""
        self._count("probe")
        if endpoint not in self._raising:
            self._raising.add(endpoint)
            log.error(
                "probe of %s raised; counting it as Unreachable until it stops",
                endpoint.label,
                exc_info=exc,
            )
        return TransportFailure(Transport.INTERNAL, f"{type(exc).__name__}: {exc}")

    def _count(self, task: str) -> None:
        if self._on_error is not None:
            self._on_error(task)

    async def _request(
        self, endpoint: Endpoint, timeout_seconds: float
    ) -> tuple[Outcome, Mapping[str, str]]:
        headers = {
            "User-Agent": f"llm-failover/{__version__}",
            "Accept": "application/json",
            # Compressed bodies are decoded here under a cap (`_read_body`); asking for none
            # keeps honest providers from sending any.
            "Accept-Encoding": "identity",
        }
        if endpoint.credential.value:
            headers.update(endpoint.auth.headers(endpoint.credential.value))
        if endpoint.method is ProbeMethod.MODELS:
            request = self._client.build_request(
                "GET", f"{endpoint.base_url}/models", headers=headers, timeout=timeout_seconds
            )
        else:
            payload = chat_payload(endpoint.model, endpoint.chat)
            request = self._client.build_request(
                "POST",
                f"{endpoint.base_url}/chat/completions",
                headers=headers,
                json=payload,
                timeout=timeout_seconds,
            )
        response = await self._client.send(request, stream=True, follow_redirects=False)
        try:
            body, truncated, note = await _read_body(response, self._max_body_bytes)
        finally:
            await response.aclose()
        answer = HttpAnswer(
            response.status_code,
            body,
            response.headers.get("content-type", ""),
            truncated=truncated,
            note=note,
        )
        return answer, response.headers


def set_all(wakes: list[Wake]) -> None:
    """Wake each subscriber (on the loop the wakes belong to)."""
    for wake in wakes:
        wake.set()


def in_run(previous: Report | None, report: Report) -> Report:
    """Number the report after the previous one of its endpoint, and place it in its run."""
    if previous is None:
        return replace(report, sequence=1, run_start=1, run_since=report.time)
    sequence = previous.sequence + 1
    if previous.classification.state is report.classification.state:
        return replace(
            report,
            sequence=sequence,
            run_start=previous.run_start,
            run_since=previous.run_since,
        )
    return replace(report, sequence=sequence, run_start=sequence, run_since=report.time)


async def _read_body(response: httpx.Response, cap: int) -> tuple[bytes, bool, str]:
    """At most `cap` bytes of the decoded body, whether there was more, and why not all of it
    could be read. The wire bytes read are capped too, so neither a flood nor a decompression
    bomb costs more than `cap` bytes of memory (and the CPU to inflate that much)."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    inflate = _inflater(encoding)
    if inflate is None:
        return b"", True, f"body not read: unsupported content-encoding {encoding[:40]!r}"
    body = bytearray()
    raw_read = 0
    async for chunk in response.aiter_raw():
        raw_read += len(chunk)
        try:
            body.extend(inflate(chunk, cap + 1 - len(body)))
        except zlib.error:
            return bytes(body[:cap]), True, f"body not read: corrupt {encoding} data"
        if len(body) > cap or raw_read > cap:
            return bytes(body[:cap]), True, ""
    return bytes(body), False, ""


def _inflater(encoding: str) -> Callable[[bytes, int], bytes] | None:
    """A function giving at most `limit` more decoded bytes of each chunk; None if unsupported."""
    if encoding in ("", "identity"):
        return lambda chunk, limit: chunk[: max(0, limit)]
    if encoding not in ("gzip", "x-gzip", "deflate"):
        return None  # br, zstd, stacked encodings: never asked for, not decoded
    # gzip, or zlib-wrapped deflate: 32 + MAX_WBITS detects either header.
    inflater = zlib.decompressobj(32 + zlib.MAX_WBITS)

    def inflate(chunk: bytes, limit: int) -> bytes:
        if limit <= 0:
            return b""
        # Whatever `max_length` leaves unconsumed would only inflate beyond the cap: dropped.
        return inflater.decompress(chunk, limit)

    return inflate


def _transport_failure(exc: httpx.HTTPError) -> TransportFailure:
    """Name the cause: httpx often says only "All connection attempts failed"."""
    if isinstance(exc, httpx.TimeoutException):
        return TransportFailure(Transport.TIMEOUT, str(exc))
    kind = Transport.RESET if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError) else None
    cause: BaseException | None = exc
    while cause is not None and kind is None:
        if isinstance(cause, socket.gaierror):
            kind = Transport.DNS
        elif isinstance(cause, ConnectionRefusedError):
            kind = Transport.REFUSED
        elif isinstance(cause, ConnectionResetError | BrokenPipeError):
            kind = Transport.RESET
        elif isinstance(cause, ssl.SSLError):
            kind = Transport.TLS
        cause = cause.__cause__ or cause.__context__
    return TransportFailure(kind or Transport.OTHER, str(exc) or type(exc).__name__)
