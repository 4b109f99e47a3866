"""Key Secrets: one API read per Secret however many routes use it, kept current by the watch,
a change waking exactly the routes that use it (issue 12)."""

from __future__ import annotations

import asyncio

from llm_failover.kube import Forbidden, KubeError
from llm_failover.secretcache import SecretCache


class Reads:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail: KubeError | None = None
        self.values: dict[tuple[str, str], dict[str, bytes] | None] = {}
        self.now = 0.0
        self.gate: asyncio.Event | None = None

    async def read(self, namespace: str, name: str) -> dict[str, bytes] | None:
        self.calls.append((namespace, name))
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0.01)
        if self.fail is not None:
            raise self.fail
        if (namespace, name) in self.values:
            return self.values[namespace, name]
        return None if name == "missing" else {"api-key": f"{namespace}/{name}".encode()}


async def test_routes_reading_one_secret_at_once_share_one_call() -> None:
    reads = Reads()
    cache = SecretCache(reads.read)
    values = await asyncio.gather(*(cache.read("ns", "keys") for _ in range(500)))
    assert reads.calls == [("ns", "keys")]
    assert all(v == ({"api-key": b"ns/keys"}, 1) for v in values)
    assert await cache.read("ns", "missing") == (None, 1)
    assert await cache.read("ns", "missing") == (None, 1)  # "no such Secret" is kept too
    assert await cache.read("other", "keys") == ({"api-key": b"other/keys"}, 1)
    assert len(reads.calls) == 3


async def test_a_failed_read_fails_every_waiter_and_keeps_nothing() -> None:
    reads = Reads()
    reads.fail = KubeError("500")
    cache = SecretCache(reads.read)
    results = await asyncio.gather(
        *(cache.read("ns", "keys") for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, KubeError) for r in results)
    assert len(reads.calls) == 1
    reads.fail = None
    assert await cache.read("ns", "keys") == ({"api-key": b"ns/keys"}, 1)
    assert cache._reading == {}  # nothing left in flight


async def test_a_change_seen_by_the_watch_wakes_the_routes_using_it_and_no_other() -> None:
    reads = Reads()
    cache = SecretCache(reads.read)
    a, b = asyncio.Event(), asyncio.Event()
    await cache.read("ns", "keys")
    await cache.read("ns", "other")
    cache.use("ns/a", [("ns", "keys")], a)
    cache.use("ns/b", [("ns", "other")], b)
    cache.observed("ns", "keys", {"api-key": b"ns/keys"})  # the same value: nothing changed
    assert not a.is_set()
    cache.observed("ns", "keys", {"api-key": b"rotated"})
    assert a.is_set()
    assert not b.is_set()
    assert await cache.read("ns", "keys") == ({"api-key": b"rotated"}, 2)
    cache.observed("ns", "keys", None)  # deleted
    assert await cache.read("ns", "keys") == (None, 3)
    cache.observed("elsewhere", "unused", {"x": b"y"})  # a Secret no route uses: not kept
    assert ("elsewhere", "unused") not in cache._values
    assert len(reads.calls) == 2  # the watch's values, no more reads


async def test_a_secret_nobody_uses_is_forgotten_and_read_again_when_used_again() -> None:
    reads = Reads()
    cache = SecretCache(reads.read)
    wake = asyncio.Event()
    _, version = await cache.read("ns", "keys")
    cache.use("ns/a", [("ns", "keys")], wake)
    cache.use("ns/a", [], wake)  # the route stopped (or refers to another Secret)
    assert cache._values == {}
    assert cache._users == {}
    cache.observed("ns", "keys", {"api-key": b"changed"})  # not kept: nobody uses it
    _, again = await cache.read("ns", "keys")
    assert len(reads.calls) == 2
    assert again > version  # a route remembering the old version sees a change


async def test_the_watch_wins_over_a_read_it_overtook() -> None:
    reads = Reads()
    reads.gate = asyncio.Event()
    cache = SecretCache(reads.read)
    reading = asyncio.create_task(cache.read("ns", "keys"))
    await asyncio.sleep(0.01)  # the GET is in flight with the old value
    cache.observed("ns", "keys", {"api-key": b"newer"})
    reads.gate.set()
    assert await reading == ({"api-key": b"newer"}, 1)


async def test_the_resync_reads_each_secret_in_use_once_per_period_and_reports_changes() -> None:
    reads = Reads()
    cache = SecretCache(reads.read)
    wakes = [asyncio.Event() for _ in range(3)]
    for i, wake in enumerate(wakes):
        await cache.read("ns", f"keys-{i}")
        cache.use(f"ns/route-{i}", [("ns", f"keys-{i}")], wake)
    reads.calls.clear()
    reads.values["ns", "keys-1"] = {"api-key": b"changed behind the watch's back"}
    await asyncio.wait_for(cache.resync(0.3, rounds=1), 5)
    assert sorted(reads.calls) == [("ns", "keys-0"), ("ns", "keys-1"), ("ns", "keys-2")]
    assert [w.is_set() for w in wakes] == [False, True, False]


async def test_a_refused_resync_is_kept_for_the_routes_and_the_old_value_stays() -> None:
    reads = Reads()
    cache = SecretCache(reads.read)
    wake = asyncio.Event()
    await cache.read("ns", "keys")
    cache.use("ns/a", [("ns", "keys")], wake)
    reads.fail = Forbidden('secrets "keys" is forbidden: cannot get resource "secrets"')
    await cache.resync(0.01, rounds=1)
    assert wake.is_set()
    assert isinstance(cache.refused(("ns", "keys")), Forbidden)
    assert await cache.read("ns", "keys") == ({"api-key": b"ns/keys"}, 1)
    wake.clear()
    reads.fail = KubeError("503")  # not a refusal: tried again next round, nothing to show
    await cache.resync(0.01, rounds=1)
    assert cache.refused(("ns", "keys")) is not None
    reads.fail = None
    await cache.resync(0.01, rounds=1)
    assert cache.refused(("ns", "keys")) is None
    assert wake.is_set()  # told it can be read again


async def test_routes_leaving_leave_nothing_behind() -> None:
    reads = Reads()
    cache = SecretCache(reads.read)
    wake = asyncio.Event()
    routes = 10_000
    for i in range(routes):
        cache.use(f"ns/r{i}", [("ns", f"keys-{i % 200}")], wake)
    assert len(cache._users) == 200
    for i in range(routes):
        cache.use(f"ns/r{i}", [], wake)
    assert cache._users == {}
    assert cache._wakes == {}
    assert cache._used == {}
