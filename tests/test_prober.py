"""The prober against local stand-in providers: requests, classification, sharing, limits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from llm_failover.catalog import AuthScheme, ProbeMethod, default_catalog
from llm_failover.prober import Credential, Endpoint, Prober, Schedule
from llm_failover.sandbox.providers import Behaviour, StandInProvider
from llm_failover.state import ProviderState as S

KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def provider() -> Iterator[StandInProvider]:
    with StandInProvider("openai", api_key=KEY, slow_seconds=3) as stand_in:
        yield stand_in


def endpoint(
    provider: StandInProvider,
    *,
    method: ProbeMethod = ProbeMethod.MODELS,
    key: str = KEY,
    model: str = "gpt-4o",
) -> Endpoint:
    return Endpoint.for_provider(
        base_url=provider.base_url,
        method=method,
        model=model,
        credential=Credential.of(key),
        auth=AuthScheme(),
        errors=default_catalog().dictionary(default_catalog().get("openai")),
    )


@pytest.mark.parametrize(
    ("behaviour", "state", "status"),
    [
        (Behaviour.HEALTHY, S.HEALTHY, 200),
        (Behaviour.GEO_BLOCKED, S.GEO_BLOCKED, 403),
        (Behaviour.UNAUTHORIZED, S.UNAUTHORIZED, 401),
        (Behaviour.QUOTA_EXHAUSTED, S.QUOTA_EXHAUSTED, 429),
        (Behaviour.RATE_LIMITED, S.RATE_LIMITED, 429),
        (Behaviour.SERVER_ERROR, S.SERVER_ERROR, 503),
        (Behaviour.SLOW, S.TIMEOUT, None),
        (Behaviour.RESET, S.UNREACHABLE, None),
    ],
)
@pytest.mark.parametrize("method", [ProbeMethod.MODELS, ProbeMethod.CHAT])
async def test_one_probe(
    provider: StandInProvider,
    behaviour: Behaviour,
    state: S,
    status: int | None,
    method: ProbeMethod,
) -> None:
    provider.set(behaviour)
    async with httpx.AsyncClient() as client:
        report = await Prober(client=client).probe(
            endpoint(provider, method=method), timeout_seconds=1
        )
    assert report.classification.state is state, report.classification
    assert report.classification.http_status == status
    request = provider.requests[-1]
    assert request.authorization == f"Bearer {KEY}"
    if method is ProbeMethod.CHAT:
        assert (request.method, request.path) == ("POST", "/v1/chat/completions")
        assert request.body is not None
        assert request.body["max_tokens"] == 1
        assert request.body["model"] == "gpt-4o"
    else:
        assert (request.method, request.path) == ("GET", "/v1/models")


async def test_wrong_key_is_unauthorized(provider: StandInProvider) -> None:
    async with httpx.AsyncClient() as client:
        report = await Prober(client=client).probe(
            endpoint(provider, key="sk-wrong"), timeout_seconds=2
        )
    assert report.classification.state is S.UNAUTHORIZED


async def test_refused_connection() -> None:
    stand_in = StandInProvider("gone").start()
    url = stand_in.base_url
    stand_in.stop()
    dead = Endpoint.for_provider(
        base_url=url,
        method=ProbeMethod.MODELS,
        model="m",
        credential=Credential.of(None),
        auth=AuthScheme(),
        errors=default_catalog().common,
    )
    async with httpx.AsyncClient() as client:
        report = await Prober(client=client).probe(dead, timeout_seconds=2)
    assert report.classification.state is S.UNREACHABLE
    assert "refused" in report.classification.message


async def test_the_body_read_is_capped(provider: StandInProvider) -> None:
    provider.model = "x" * 10_000
    async with httpx.AsyncClient() as client:
        prober = Prober(client=client, max_body_bytes=1024)
        models = await prober.probe(endpoint(provider), timeout_seconds=2)
        chat = await prober.probe(
            endpoint(provider, method=ProbeMethod.CHAT, model=provider.model), timeout_seconds=2
        )
    # A model list longer than the cap is recognised from its start: the provider is healthy.
    assert models.classification.state is S.HEALTHY
    # A completion cut off by the cap is not valid JSON: reported as unexpected, not parsed.
    assert chat.classification.state is S.SERVER_ERROR
    assert len(chat.classification.message) <= 200


def test_endpoint_identity() -> None:
    base = dict(base_url="http://h/v1", auth=AuthScheme(), errors=default_catalog().common)
    models_a = Endpoint.for_provider(
        method=ProbeMethod.MODELS, model="a", credential=Credential.of("k1"), **base
    )  # type: ignore[arg-type]
    models_b = Endpoint.for_provider(
        method=ProbeMethod.MODELS, model="b", credential=Credential.of("k1"), **base
    )  # type: ignore[arg-type]
    chat_a = Endpoint.for_provider(
        method=ProbeMethod.CHAT, model="a", credential=Credential.of("k1"), **base
    )  # type: ignore[arg-type]
    chat_b = Endpoint.for_provider(
        method=ProbeMethod.CHAT, model="b", credential=Credential.of("k1"), **base
    )  # type: ignore[arg-type]
    other_key = Endpoint.for_provider(
        method=ProbeMethod.MODELS, model="a", credential=Credential.of("k2"), **base
    )  # type: ignore[arg-type]
    assert models_a == models_b  # GET /models does not depend on the model
    assert chat_a != chat_b
    assert models_a != other_key
    assert "k1" not in repr(models_a)


async def test_shared_endpoint_is_probed_once_per_interval(provider: StandInProvider) -> None:
    async with httpx.AsyncClient() as client:
        prober = Prober(client=client)
        wakes = [asyncio.Event() for _ in range(5)]
        target = endpoint(provider)
        for i, wake in enumerate(wakes):
            # Five routes, one endpoint; their intervals differ, the shortest (1 s) wins.
            prober.subscribe(f"ns/route-{i}", {target: Schedule(1 + i, 1)}, wake)
        prober.attend("ns/route-0", [target])  # route-0 wants every answer
        await asyncio.wait_for(asyncio.gather(*(w.wait() for w in wakes)), 5)
        assert len(prober.endpoints) == 1
        start = provider.count("/models")
        for _ in range(3):  # three more probes, as route-0 (interval 1 s) sees them
            wakes[0].clear()
            await asyncio.wait_for(wakes[0].wait(), 5)
        probes = provider.count("/models") - start
        await prober.close()
    assert probes == 3  # one request per probe for all five routes, not five


async def test_only_a_new_state_wakes_a_route_that_does_not_attend(
    provider: StandInProvider,
) -> None:
    """Thousands of routes share an endpoint: an answer like the one before wakes only those
    counting answers towards a threshold; a new state wakes them all. Each report says how many
    answers of its state came in a row, so a route that slept counts them all."""
    async with httpx.AsyncClient() as client:
        prober = Prober(client=client)
        calm, eager = asyncio.Event(), asyncio.Event()
        target = endpoint(provider)
        prober.subscribe("ns/calm", {target: Schedule(0.2, 1)}, calm)
        prober.subscribe("ns/eager", {target: Schedule(0.2, 1)}, eager)
        prober.attend("ns/eager", [target])
        await asyncio.wait_for(calm.wait(), 5)  # the first answer starts a run: both woken
        calm.clear()
        for _ in range(3):
            eager.clear()
            await asyncio.wait_for(eager.wait(), 5)
        assert not calm.is_set()  # three answers like the first: the calm route slept
        healthy = prober.latest(target)
        assert healthy is not None
        assert healthy.classification.state is S.HEALTHY
        assert healthy.sequence >= 4
        assert healthy.run_start == 1
        assert healthy.unseen(1) == (healthy.sequence - 1, None)

        provider.set(Behaviour.UNAUTHORIZED)
        await asyncio.wait_for(calm.wait(), 5)  # a new state wakes everyone
        report = prober.latest(target)
        assert report is not None
        assert report.classification.state is S.UNAUTHORIZED
        assert report.run_start > healthy.sequence  # a new run began after the healthy one
        count, since = report.unseen(healthy.sequence)
        assert count == report.sequence - report.run_start + 1
        assert since == report.run_since

        prober.attend("ns/eager", [])
        eager.clear()
        await asyncio.sleep(0.7)  # several answers of the same state: proving a sleep needs a wait
        assert not eager.is_set()
        await prober.close()


async def test_unsubscribing_the_last_route_stops_probing(provider: StandInProvider) -> None:
    async with httpx.AsyncClient() as client:
        prober = Prober(client=client)
        wake = asyncio.Event()
        prober.subscribe("ns/a", {endpoint(provider): Schedule(1, 1)}, wake)
        await asyncio.wait_for(wake.wait(), 5)
        prober.unsubscribe("ns/a")
        assert prober.endpoints == frozenset()
        count = provider.count()
        await asyncio.sleep(1.5)  # longer than the interval: proving an absence needs a wait
        assert provider.count() == count
        await prober.close()
