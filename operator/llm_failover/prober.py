"""Probes provider endpoints over one shared `httpx.AsyncClient`: one task per distinct endpoint.

An endpoint is (base URL, probe method, model for Chat, credential). However many routes use it,
it is probed once per interval (the shortest interval among its routes), and every route using it
is woken with the result. This is the only place that talks HTTP to providers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from llm_failover import __version__
from llm_failover.catalog import AuthScheme, ErrorDictionary, ProbeMethod
from llm_failover.classifier import (
    Classification,
    HttpAnswer,
    Outcome,
    Transport,
    TransportFailure,
    classify,
)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Credential:
    """An API key. Compared and shown by fingerprint only: the value never reaches a repr or log."""

    value: str = field(repr=False, compare=False)
    fingerprint: str = ""

    @classmethod
    def of(cls, value: str | None) -> Credential:
        if not value:
            return NO_CREDENTIAL
        return cls(value=value, fingerprint=hashlib.sha256(value.encode()).hexdigest()[:16])


NO_CREDENTIAL = Credential(value="", fingerprint="")


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    method: ProbeMethod
    model: str  # "" for Models: the model does not change what GET /models answers
    credential: Credential
    auth: AuthScheme = field(default=AuthScheme(), compare=False)
    errors: ErrorDictionary = field(default=ErrorDictionary(), compare=False, repr=False)

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
    ) -> Endpoint:
        return cls(
            base_url=base_url,
            method=method,
            model=model if method is ProbeMethod.CHAT else "",
            credential=credential,
            auth=auth,
            errors=errors,
        )

    @property
    def host(self) -> str:
        """The URL host: the bounded `endpoint` label of the probe metrics."""
        return urlsplit(self.base_url).hostname or "unknown"


@dataclass(frozen=True)
class Report:
    """One probe of an endpoint; `sequence` grows by one per probe so routes consume each once."""

    sequence: int
    time: datetime  # when the probe was sent: a time-to-failover starts there
    classification: Classification
    latency_milliseconds: int


@dataclass(frozen=True)
class Schedule:
    interval_seconds: float
    timeout_seconds: float


class ProbeSource(Protocol):
    """What the route controller needs from the prober (tests provide a fake)."""

    def subscribe(
        self, subscriber: str, endpoints: Mapping[Endpoint, Schedule], wake: asyncio.Event
    ) -> None: ...
    def unsubscribe(self, subscriber: str) -> None: ...
    def latest(self, endpoint: Endpoint) -> Report | None: ...


class Prober:
    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        clock: Clock = utc_now,
        max_body_bytes: int = 64 * 1024,
        on_report: Callable[[Endpoint, Report], None] | None = None,
    ) -> None:
        self._client = client
        self._clock = clock
        self._max_body_bytes = max_body_bytes
        self._on_report = on_report
        self._subscriptions: dict[str, tuple[Mapping[Endpoint, Schedule], asyncio.Event]] = {}
        self._tasks: dict[Endpoint, asyncio.Task[None]] = {}
        self._latest: dict[Endpoint, Report] = {}
        self._sequence = 0

    def subscribe(
        self, subscriber: str, endpoints: Mapping[Endpoint, Schedule], wake: asyncio.Event
    ) -> None:
        """Replace what `subscriber` wants probed; `wake` is set after each probe of those."""
        self._subscriptions[subscriber] = (dict(endpoints), wake)
        self._reconcile_tasks()

    def unsubscribe(self, subscriber: str) -> None:
        self._subscriptions.pop(subscriber, None)
        self._reconcile_tasks()

    def latest(self, endpoint: Endpoint) -> Report | None:
        return self._latest.get(endpoint)

    @property
    def endpoints(self) -> frozenset[Endpoint]:
        return frozenset(self._tasks)

    async def close(self) -> None:
        self._subscriptions.clear()
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _schedule(self, endpoint: Endpoint) -> Schedule | None:
        """The shortest interval and timeout any subscriber asked for; None if nobody wants it."""
        wanted = [e[endpoint] for e, _ in self._subscriptions.values() if endpoint in e]
        if not wanted:
            return None
        return Schedule(
            interval_seconds=min(s.interval_seconds for s in wanted),
            timeout_seconds=min(s.timeout_seconds for s in wanted),
        )

    def _reconcile_tasks(self) -> None:
        wanted = {e for endpoints, _ in self._subscriptions.values() for e in endpoints}
        for endpoint in set(self._tasks) - wanted:
            self._tasks.pop(endpoint).cancel()
            self._latest.pop(endpoint, None)
        for endpoint in wanted - set(self._tasks):
            self._tasks[endpoint] = asyncio.create_task(
                self._loop(endpoint), name=f"probe {endpoint.host}"
            )

    async def _loop(self, endpoint: Endpoint) -> None:
        while (schedule := self._schedule(endpoint)) is not None:
            started = time.monotonic()
            report = await self.probe(endpoint, timeout_seconds=schedule.timeout_seconds)
            self._latest[endpoint] = report
            if self._on_report is not None:
                self._on_report(endpoint, report)
            for endpoints, wake in self._subscriptions.values():
                if endpoint in endpoints:
                    wake.set()
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, schedule.interval_seconds - elapsed))

    async def probe(self, endpoint: Endpoint, *, timeout_seconds: float) -> Report:
        """Probe once and classify; never raises for anything the provider or network does."""
        sent_at = self._clock()
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout_seconds):
                outcome = await self._request(endpoint, timeout_seconds)
        except TimeoutError:
            outcome = TransportFailure(Transport.TIMEOUT, f"{timeout_seconds:g}s")
        except httpx.HTTPError as exc:
            outcome = _transport_failure(exc)
        latency = round((time.monotonic() - started) * 1000)
        classification = classify(outcome, errors=endpoint.errors, method=endpoint.method)
        if endpoint.credential.value and endpoint.credential.value in classification.message:
            classification = Classification(
                classification.state,
                classification.message.replace(endpoint.credential.value, "***"),
                classification.http_status,
            )
        self._sequence += 1
        return Report(self._sequence, sent_at, classification, latency)

    async def _request(self, endpoint: Endpoint, timeout_seconds: float) -> Outcome:
        headers = {"User-Agent": f"llm-failover/{__version__}", "Accept": "application/json"}
        if endpoint.credential.value:
            headers.update(endpoint.auth.headers(endpoint.credential.value))
        if endpoint.method is ProbeMethod.MODELS:
            request = self._client.build_request(
                "GET", f"{endpoint.base_url}/models", headers=headers, timeout=timeout_seconds
            )
        else:
            payload = {
                "model": endpoint.model,
                "messages": [{"role": "user", "content": "ping"}],
                "max_tokens": 1,
                "stream": False,
            }
            request = self._client.build_request(
                "POST",
                f"{endpoint.base_url}/chat/completions",
                headers=headers,
                json=payload,
                timeout=timeout_seconds,
            )
        response = await self._client.send(request, stream=True, follow_redirects=False)
        try:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) >= self._max_body_bytes:
                    del body[self._max_body_bytes :]
                    break
        finally:
            await response.aclose()
        return HttpAnswer(
            response.status_code, bytes(body), response.headers.get("content-type", "")
        )


def _transport_failure(exc: httpx.HTTPError) -> TransportFailure:
    """Name the cause: httpx often says only "All connection attempts failed"."""
    if isinstance(exc, httpx.TimeoutException):
        return TransportFailure(Transport.TIMEOUT, str(exc)[:120])
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
    return TransportFailure(kind or Transport.OTHER, (str(exc) or type(exc).__name__)[:120])
