"""One API read per key Secret however many routes use it (issue 12)."""

from __future__ import annotations

import asyncio

import pytest

from llm_failover.kube import KubeError
from llm_failover.secretcache import SecretCache


class Reads:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = False
        self.now = 0.0

    async def read(self, namespace: str, name: str) -> dict[str, bytes] | None:
        self.calls.append((namespace, name))
        await asyncio.sleep(0.01)
        if self.fail:
            raise KubeError("500")
        return None if name == "missing" else {"api-key": f"{namespace}/{name}".encode()}


async def test_routes_reading_one_secret_at_once_share_one_call() -> None:
    reads = Reads()
    cache = SecretCache(reads.read, clock=lambda: reads.now)
    values = await asyncio.gather(*(cache.read("ns", "keys", max_age=30) for _ in range(500)))
    assert reads.calls == [("ns", "keys")]
    assert all(v == {"api-key": b"ns/keys"} for v in values)
    assert await cache.read("ns", "missing", max_age=30) is None
    assert await cache.read("ns", "missing", max_age=30) is None  # "no such Secret" is cached
    assert await cache.read("other", "keys", max_age=30) == {"api-key": b"other/keys"}
    assert len(reads.calls) == 3


async def test_a_value_older_than_asked_is_read_again() -> None:
    reads = Reads()
    cache = SecretCache(reads.read, clock=lambda: reads.now)
    await cache.read("ns", "keys", max_age=30)
    reads.now = 29
    await cache.read("ns", "keys", max_age=30)
    assert len(reads.calls) == 1
    reads.now = 30
    await cache.read("ns", "keys", max_age=30)
    assert len(reads.calls) == 2


async def test_a_failed_read_fails_every_waiter_and_caches_nothing() -> None:
    reads = Reads()
    reads.fail = True
    cache = SecretCache(reads.read, clock=lambda: reads.now)
    results = await asyncio.gather(
        *(cache.read("ns", "keys", max_age=30) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, KubeError) for r in results)
    assert len(reads.calls) == 1
    reads.fail = False
    assert await cache.read("ns", "keys", max_age=30) == {"api-key": b"ns/keys"}
    with pytest.raises(KeyError):
        cache._reading[("ns", "keys")]  # nothing left in flight
