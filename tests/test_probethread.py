"""Probes on a loop of their own: a busy main loop delays no probe and fakes no `Timeout`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from llm_failover.prober import Prober, Schedule, Wake
from llm_failover.probethread import ProbeThread
from llm_failover.sandbox.providers import Behaviour, StandInProvider
from llm_failover.state import ProviderState as S
from test_prober import KEY, endpoint


@pytest.fixture
def provider() -> Iterator[StandInProvider]:
    with StandInProvider("openai", api_key=KEY, slow_seconds=30) as stand_in:
        yield stand_in


def probes() -> ProbeThread:
    def make(client: httpx.AsyncClient, deliver: Callable[[list[Wake]], None]) -> Prober:
        return Prober(client=client, deliver=deliver)

    return ProbeThread(make, httpx.AsyncClient)


async def test_a_main_loop_busy_for_seconds_delays_no_probe(provider: StandInProvider) -> None:
    """The main thread computes for 3 s without yielding (thousands of reconciles): probes
    with a 1 s timeout go on every 0.2 s, and every answer of the healthy stand-in is Healthy."""
    thread = probes()
    wake = asyncio.Event()
    target = endpoint(provider)
    thread.subscribe("ns/route", {target: Schedule(0.2, 1)}, wake)
    try:
        await asyncio.wait_for(wake.wait(), 5)  # the first answer wakes the main loop
        before = provider.count()
        busy_until = time.monotonic() + 3
        while time.monotonic() < busy_until:  # CPU-bound, never awaiting: the loop is stalled
            sum(range(1000))
        during = provider.count() - before
        report = thread.latest(target)
        assert report is not None
        assert during >= 8  # about 15 at 0.2 s: the probe loop kept its schedule
        assert report.classification.state is S.HEALTHY
        assert report.run_start == 1  # no other state in between: not one false Timeout
        assert report.latency_milliseconds < 1000
    finally:
        await thread.close()


async def test_answers_wake_the_main_loop_and_attend_and_unsubscribe_reach_the_prober(
    provider: StandInProvider,
) -> None:
    thread = probes()
    wake = asyncio.Event()
    target = endpoint(provider)
    thread.subscribe("ns/route", {target: Schedule(0.2, 1)}, wake)
    thread.attend("ns/route", [target])
    try:
        for _ in range(3):  # attended: every answer wakes it
            wake.clear()
            await asyncio.wait_for(wake.wait(), 5)
        thread.attend("ns/route", [])
        await asyncio.sleep(0.1)
        provider.set(Behaviour.SERVER_ERROR)  # a new state wakes it even unattended
        wake.clear()
        await asyncio.wait_for(wake.wait(), 5)
        report = thread.latest(target)
        assert report is not None
        assert report.classification.state is S.SERVER_ERROR
        thread.unsubscribe("ns/route")
        for _ in range(50):
            if not thread.endpoints:
                break
            await asyncio.sleep(0.02)
        assert thread.endpoints == frozenset()
    finally:
        await thread.close()


async def test_close_is_bounded_while_a_provider_hangs(provider: StandInProvider) -> None:
    provider.set(Behaviour.SLOW)  # answers after 30 s
    thread = probes()
    thread.subscribe("ns/route", {endpoint(provider): Schedule(1, 20)}, asyncio.Event())
    await asyncio.sleep(0.5)  # the probe is in flight
    await asyncio.wait_for(thread.close(), 10)  # the probe is cancelled, not waited for
    assert not thread._thread.is_alive()
