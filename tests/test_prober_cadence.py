"""The prober's adaptive schedule against a scripted provider (httpx's mock transport): a hard
state backs off, a reset time is waited for, a reprobe cuts a wait short, a provider moving up
the list is probed at once, and what is not sent is counted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta

import httpx

from llm_failover.cadence import Wait
from llm_failover.catalog import AuthScheme, ProbeMethod, default_catalog
from llm_failover.prober import Credential, Endpoint, Prober, Schedule
from llm_failover.state import ProviderState as S

UNAUTHORIZED = (401, {}, b'{"error":{"code":"invalid_api_key","message":"Incorrect API key"}}')
MODELS = (200, {}, b'{"object":"list","data":[{"id":"m"}]}')


class Script:
    """Answers every probe with `answer`, and notes when each came."""

    def __init__(self, answer: tuple[int, dict[str, str], bytes]) -> None:
        self.answer = answer
        self.times: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.times.append(time.monotonic())
        status, headers, body = self.answer
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


def target() -> Endpoint:
    return Endpoint.for_provider(
        base_url="http://provider.test/v1",
        method=ProbeMethod.MODELS,
        model="m",
        credential=Credential.of("sk-test"),
        auth=AuthScheme(),
        errors=default_catalog().dictionary(default_catalog().get("openai")),
    )


def prober(script: Script, **options: object) -> tuple[Prober, list[tuple[Wait, float]]]:
    saved: list[tuple[Wait, float]] = []
    client = httpx.AsyncClient(transport=httpx.MockTransport(script))
    made = Prober(
        client=client,
        on_saved=lambda why, probes: saved.append((why, probes)),
        **options,  # type: ignore[arg-type]
    )
    return made, saved


async def until(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.01)


async def test_a_hard_state_backs_off_doubling_up_to_the_ceiling() -> None:
    script = Script(UNAUTHORIZED)
    probes, saved = prober(script, backoff_max_seconds=0.4)
    probes.subscribe("ns/r", {target(): Schedule(0.1, 1)}, asyncio.Event())
    await until(lambda: len(script.times) >= 6, 5)
    await probes.close()
    gaps = script.gaps()
    # 0.1 (the interval), 0.2, 0.4, then the 0.4 ceiling: a fixed schedule would have sent ~15.
    assert [round(g, 1) for g in gaps[:4]] == [0.1, 0.2, 0.4, 0.4], gaps
    assert {why for why, _ in saved} == {Wait.BACKOFF}
    # 1 + 3 + 3 + 3 (+ 3 for each further probe): what a probe every 0.1 s would have sent more.
    assert 9 <= sum(probes for _, probes in saved) <= 3 * len(gaps)


async def test_a_reset_time_is_waited_for_then_probing_resumes() -> None:
    script = Script((429, {"Retry-After": "1"}, b'{"error":{"message":"Rate limit reached"}}'))
    probes, saved = prober(script)
    endpoint = target()
    probes.subscribe("ns/r", {endpoint: Schedule(0.1, 1)}, asyncio.Event())
    await until(lambda: len(script.times) >= 1, 5)
    await until(lambda: probes.latest(endpoint) is not None, 5)
    report = probes.latest(endpoint)
    assert report is not None
    assert report.classification.state is S.RATE_LIMITED
    assert report.retry_at is not None
    assert 0.9 <= (report.retry_at - report.time).total_seconds() <= 1.1
    script.answer = MODELS
    await until(lambda: len(script.times) >= 3, 5)
    await probes.close()
    gaps = script.gaps()
    assert 0.9 <= gaps[0] <= 1.5, gaps  # the reset time, not the 0.1 s interval
    assert gaps[1] < 0.5, gaps  # healthy again: the interval
    assert saved
    assert saved[0][0] is Wait.RESET
    assert saved[0][1] >= 7


async def test_a_healthy_answer_has_no_reset_time_whatever_its_headers() -> None:
    script = Script((200, {"Retry-After": "600"}, MODELS[2]))
    probes, _ = prober(script)
    report = await probes.probe(target(), timeout_seconds=1)
    assert report.classification.state is S.HEALTHY
    assert report.retry_at is None


async def test_a_reprobe_cuts_a_backoff_short() -> None:
    script = Script(UNAUTHORIZED)
    probes, _ = prober(script, backoff_max_seconds=3600)
    endpoint = target()
    probes.subscribe("ns/r", {endpoint: Schedule(0.05, 1)}, asyncio.Event())
    await until(lambda: len(script.times) >= 8, 10)  # the wait is 6.4 s by now
    asked = time.monotonic()
    script.answer = MODELS  # a new key, a top-up
    probes.reprobe([endpoint])
    await until(lambda: len(script.times) >= 9, 3)
    await probes.close()
    assert script.times[8] - asked < 1.5  # at most a second after the last probe


async def test_a_provider_moving_up_the_list_is_probed_at_once() -> None:
    script = Script(MODELS)
    probes, saved = prober(script)
    endpoint = target()
    wake = asyncio.Event()
    probes.subscribe("ns/r", {endpoint: Schedule(0.2, 1, backup_seconds=100)}, wake)
    await until(lambda: len(script.times) >= 1, 5)
    await asyncio.sleep(0.5)
    assert len(script.times) == 1  # far down the list: the 100 s backup interval
    probes.subscribe("ns/r", {endpoint: Schedule(0.2, 1)}, wake)  # the next in line now
    await until(lambda: len(script.times) >= 2, 1)
    await probes.close()
    assert saved
    assert saved[0][0] is Wait.BACKUP


async def test_a_shared_endpoint_goes_at_the_rate_of_its_most_demanding_route() -> None:
    script = Script(MODELS)
    probes, _ = prober(script)
    endpoint = target()
    probes.subscribe("ns/far", {endpoint: Schedule(0.1, 1, backup_seconds=100)}, asyncio.Event())
    probes.subscribe("ns/near", {endpoint: Schedule(0.1, 1)}, asyncio.Event())
    await until(lambda: len(script.times) >= 5, 3)
    await probes.close()


async def test_a_zhipu_plan_limit_is_quota_exhausted_until_the_time_it_prints() -> None:
    # The coding plan's 5-hour window (docs/research/reset-times.md: Zhipu 1308, Beijing time).
    body = (
        b'{"error":{"code":"1308","message":"Usage limit reached for 5 hour. Your limit will '
        b'reset at 2099-01-01 08:00:00"}}'
    )
    client = httpx.AsyncClient(transport=httpx.MockTransport(Script((429, {}, body))))
    zhipu = Endpoint.for_provider(
        base_url="http://glm.test/api/paas/v4",
        method=ProbeMethod.CHAT,
        model="glm-5",
        credential=Credential.of("id.secret"),
        auth=AuthScheme(),
        errors=default_catalog().dictionary(default_catalog().get("zhipu")),
    )
    report = await Prober(client=client).probe(zhipu, timeout_seconds=1)
    assert report.classification.state is S.QUOTA_EXHAUSTED
    # Beyond a day ahead: looked at again in a day (`resettime.MAX_RESET`).
    assert report.retry_at is not None
    assert timedelta(hours=23) < report.retry_at - report.time <= timedelta(hours=24)
