"""The prober against a hostile provider on loopback: bombs, floods, drips, deep and broken
bodies, echoed keys, garbage. Every probe ends in exactly one state, within its timeout, within a
bounded amount of memory, with a message that holds no key; and one tenant's hanging providers
do not starve another tenant's probes."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Iterator

import httpx
import pytest

from llm_failover.catalog import AuthScheme, ProbeMethod, default_catalog
from llm_failover.classifier import MESSAGE_LIMIT
from llm_failover.credentials import Credential
from llm_failover.prober import Endpoint, ProbeGate, Prober, Schedule
from llm_failover.redact import FRAGMENT
from llm_failover.sandbox.hostile import HostileProvider, Hostility
from llm_failover.sandbox.providers import StandInProvider
from llm_failover.state import ProviderState as S
from llm_failover.supervision import Watchdog

KEY = "sk-hostile-9f8e7d6c5b4a39281706"
TIMEOUT = 2.0
MEMORY_BOUND = 4 << 20
"""Python-heap peak of one probe: the 64 KiB body cap, decoding buffers and the classifier's
copies fit many times over; a bomb inflated or a flood read whole would not."""

EXPECTED = {
    Hostility.HEALTHY: S.HEALTHY,
    Hostility.SERVER_ERROR: S.SERVER_ERROR,
    Hostility.DEEP_JSON: S.SERVER_ERROR,
    Hostility.DEEP_ERROR: S.UNAUTHORIZED,
    Hostility.GZIP_BOMB: S.SERVER_ERROR,
    Hostility.DEFLATE_BOMB: S.SERVER_ERROR,
    Hostility.BROTLI: S.SERVER_ERROR,
    Hostility.FLOOD: S.SERVER_ERROR,
    Hostility.HUGE_MODELS: S.HEALTHY,
    Hostility.DRIP: S.TIMEOUT,
    Hostility.HANG: S.TIMEOUT,
    Hostility.LT_FLOOD: S.UNAUTHORIZED,
    Hostility.TAG_SOUP: S.UNAUTHORIZED,
    Hostility.BAD_BYTES: S.UNAUTHORIZED,
    Hostility.ECHO_KEY: S.UNAUTHORIZED,
    Hostility.REDIRECT: S.SERVER_ERROR,
    Hostility.HUGE_HEADERS: S.UNREACHABLE,
    Hostility.GARBAGE: S.UNREACHABLE,
    Hostility.SHORT_BODY: S.UNREACHABLE,
    Hostility.BIG_NUMBER: S.RATE_LIMITED,
}


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileProvider]:
    with HostileProvider() as provider:
        yield provider


def endpoint(base_url: str, key: str = KEY) -> Endpoint:
    catalog = default_catalog()
    return Endpoint.for_provider(
        base_url=base_url,
        method=ProbeMethod.MODELS,
        model="m",
        credential=Credential.of(key),
        auth=AuthScheme(),
        errors=catalog.dictionary(catalog.get("openai")),
    )


def test_every_behaviour_has_an_expectation() -> None:
    assert set(EXPECTED) == set(Hostility)


@pytest.mark.parametrize("behaviour", list(Hostility))
async def test_one_hostile_answer_is_one_bounded_failed_probe(
    hostile: HostileProvider, behaviour: Hostility
) -> None:
    hostile.set(behaviour)
    async with httpx.AsyncClient() as client:
        prober = Prober(client=client)
        tracemalloc.start()
        started = time.monotonic()
        try:
            report = await prober.probe(endpoint(hostile.base_url), timeout_seconds=TIMEOUT)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        elapsed = time.monotonic() - started
    result = report.classification
    assert result.state is EXPECTED[behaviour], result
    assert elapsed < TIMEOUT + 1.0
    assert peak < MEMORY_BOUND, f"{behaviour}: {peak / 1e6:.1f} MB"
    assert len(result.message) <= MESSAGE_LIMIT
    assert "\n" not in result.message
    for start in range(len(KEY) - FRAGMENT + 1):
        assert KEY[start : start + FRAGMENT] not in result.message, result.message
    assert "hunter2" not in result.message


async def test_what_the_messages_say(hostile: HostileProvider) -> None:
    """The messages a user reads for the hostile cases that need explaining."""
    async with httpx.AsyncClient() as client:
        prober = Prober(client=client)
        hostile.set(Hostility.BROTLI)
        brotli = await prober.probe(endpoint(hostile.base_url), timeout_seconds=TIMEOUT)
        hostile.set(Hostility.ECHO_KEY)
        echo = await prober.probe(endpoint(hostile.base_url), timeout_seconds=TIMEOUT)
        hostile.set(Hostility.GZIP_BOMB)
        bomb = await prober.probe(endpoint(hostile.base_url), timeout_seconds=TIMEOUT)
    assert "unsupported content-encoding 'br'" in brotli.classification.message
    assert echo.classification.message.startswith(
        "invalid_api_key: Incorrect API key provided: ***"
    )
    assert bomb.classification.message.startswith("unexpected answer")


async def test_a_probe_that_raises_is_a_failed_probe_not_a_dead_loop(
    hostile: HostileProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """A key that cannot travel in a header makes the HTTP layer raise (the operator normalises
    keys first; this is the defence behind that): one failed probe, the key nowhere in the
    message or the log, the loop goes on, and the error is counted."""
    hostile.set(Hostility.HEALTHY)
    errors: list[str] = []
    bad = endpoint(hostile.base_url, key=f"{KEY}é")
    async with httpx.AsyncClient() as client:
        prober = Prober(client=client, on_error=errors.append)
        wake = asyncio.Event()
        prober.subscribe("ns/route", {bad: Schedule(0.2, 1)}, wake, tenant="ns")
        prober.attend("ns/route", [bad])  # woken by every answer, not only a new state
        for _ in range(3):  # three probes in a row: the loop survives each
            await asyncio.wait_for(wake.wait(), 5)
            wake.clear()
        report = prober.latest(bad)
        await prober.close()
    assert report is not None
    assert report.classification.state is S.UNREACHABLE
    assert report.classification.message.startswith("probe failed:")
    assert errors.count("probe") >= 3
    assert KEY[:FRAGMENT] not in report.classification.message
    assert KEY[:FRAGMENT] not in caplog.text
    assert sum("raised" in r.getMessage() for r in caplog.records) == 1  # logged once


async def test_hanging_providers_of_one_namespace_do_not_starve_another() -> None:
    """105 providers that never answer, in one namespace, against one healthy provider in
    another: the healthy one is probed at once and answers Healthy, not Timeout."""
    slots = 40
    now = [time.monotonic()]
    watchdog = Watchdog(clock=lambda: now[0])
    with HostileProvider(behaviour=Hostility.HANG) as hanging, HostileProvider() as healthy:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=slots)) as client:
            gate = ProbeGate(total=slots, per_tenant=32)
            prober = Prober(client=client, gate=gate, watchdog=watchdog)
            for i in range(105):
                prober.subscribe(
                    f"evil/route-{i}",
                    {endpoint(f"{hanging.base_url}/{i}"): Schedule(10, 5)},
                    asyncio.Event(),
                    tenant="evil",
                )
            await asyncio.sleep(0.5)  # every slot the evil namespace may take is taken
            assert hanging.requests == 32
            # Liveness: the 32 probes in flight must end within their timeout; the 73 loops
            # queued for a slot are waiting, not stalled, so no tenant can fail the liveness
            # probe (and get the operator restarted) by making its providers hang.
            now[0] += 36
            assert len(watchdog.overdue()) == 32
            now[0] -= 36
            wake = asyncio.Event()
            started = time.monotonic()
            good = endpoint(healthy.base_url)
            prober.subscribe("good/chat", {good: Schedule(10, 1)}, wake, tenant="good")
            await asyncio.wait_for(wake.wait(), 5)
            waited = time.monotonic() - started
            report = prober.latest(good)
            await prober.close()
    assert report is not None
    assert report.classification.state is S.HEALTHY
    assert waited < 1.0  # not queued behind the hanging probes' 5 s timeouts


async def test_https_to_a_server_that_speaks_no_tls_is_unreachable() -> None:
    with StandInProvider("plain") as plain:  # answers the TLS hello with a plain-text 400
        tls = plain.base_url.replace("http://", "https://")
        async with httpx.AsyncClient() as client:
            report = await Prober(client=client).probe(endpoint(tls), timeout_seconds=TIMEOUT)
    assert report.classification.state is S.UNREACHABLE
    assert report.classification.message.startswith("TLS handshake failed")
