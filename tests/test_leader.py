"""Leader election on a Lease, with an in-memory Lease store and a fake clock: who may write, and
that no two replicas ever may at once, whatever fails when."""

from __future__ import annotations

import copy
import random
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llm_failover.kube import KubeError
from llm_failover.leader import (
    Change,
    ElectionThread,
    Leadership,
    LeaseConflict,
    LeaseElector,
    Timings,
    micro_time,
)

NS, NAME = "llm-failover", "llm-failover"
TIMINGS = Timings(lease_seconds=15, renew_deadline_seconds=10, retry_seconds=2)
EPOCH = datetime(2026, 12, 2, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return EPOCH + timedelta(seconds=self.now)


class Leases:
    """One namespace's Leases with the API server's optimistic concurrency: a write naming an
    old resourceVersion is a conflict. `down` makes every call fail; `lost_answers` applies a
    write but fails the call (the answer lost on the way back)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.down: set[str] = set()  # identities whose calls fail
        self.lost_answers: set[str] = set()
        self.calls: list[tuple[str, str]] = []

    def client(self, identity: str) -> Client:
        return Client(self, identity)

    def spec(self) -> dict[str, Any]:
        return dict(self.objects[NAME]["spec"])

    def _stamp(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(dict(body))
        stored.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        return stored


class Client:
    def __init__(self, leases: Leases, identity: str) -> None:
        self.leases = leases
        self.identity = identity

    def _check(self, verb: str) -> None:
        self.leases.calls.append((self.identity, verb))
        if self.identity in self.leases.down:
            raise KubeError("ConnectTimeoutError: the API server does not answer")

    def _answer(self, stored: dict[str, Any]) -> dict[str, Any]:
        if self.identity in self.leases.lost_answers:
            raise KubeError("ReadTimeoutError: no answer")
        return copy.deepcopy(stored)

    def get_lease(self, namespace: str, name: str, *, timeout: float) -> dict[str, Any] | None:
        self._check("get")
        found = self.leases.objects.get(name)
        return copy.deepcopy(found) if found is not None else None

    def create_lease(
        self, namespace: str, body: Mapping[str, Any], *, timeout: float
    ) -> dict[str, Any]:
        self._check("create")
        name = body["metadata"]["name"]
        if name in self.leases.objects:
            raise LeaseConflict("409 AlreadyExists")
        stored = self.leases.objects[name] = self.leases._stamp(body)
        return self._answer(stored)

    def replace_lease(
        self, namespace: str, name: str, body: Mapping[str, Any], *, timeout: float
    ) -> dict[str, Any]:
        self._check("replace")
        current = self.leases.objects.get(name)
        if current is None:
            raise LeaseConflict("gone")
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted != current["metadata"]["resourceVersion"]:
            raise LeaseConflict("409 Conflict")
        stored = self.leases.objects[name] = self.leases._stamp(body)
        return self._answer(stored)


class Replica:
    def __init__(self, leases: Leases, clock: Clock, identity: str) -> None:
        self.leadership = Leadership(
            margin_seconds=TIMINGS.lease_seconds - TIMINGS.renew_deadline_seconds, clock=clock
        )
        self.changes: list[tuple[bool, Change]] = []
        self.leadership.listen(lambda leading, change: self.changes.append((leading, change)))
        self.elector = LeaseElector(
            api=leases.client(identity),
            leadership=self.leadership,
            identity=identity,
            namespace=NS,
            name=NAME,
            timings=TIMINGS,
            clock=clock,
            wall=clock.wall,
        )


@pytest.fixture
def leases() -> Leases:
    return Leases()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_the_first_replica_creates_the_lease_and_writes(leases: Leases, clock: Clock) -> None:
    a = Replica(leases, clock, "a")
    assert not a.leadership.may_write()
    assert a.elector.attempt()
    assert a.leadership.may_write()
    assert a.changes == [(True, Change.ACQUIRED)]
    spec = leases.spec()
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert spec["renewTime"] == spec["acquireTime"] == micro_time(clock.wall())
    # It may write until the renew deadline, and a write may take until the lease could pass on.
    clock.now += 9.9
    assert a.leadership.may_write()
    assert a.leadership.write_seconds() == pytest.approx(5.1)
    clock.now += 0.1
    assert not a.leadership.may_write()  # nothing renewed: no write, before the elector knows


def test_the_leader_renews_without_reading_and_keeps_its_acquire_time(
    leases: Leases, clock: Clock
) -> None:
    a = Replica(leases, clock, "a")
    a.elector.attempt()
    acquired = leases.spec()["acquireTime"]
    leases.calls.clear()
    clock.now += 2
    assert a.elector.attempt()
    assert leases.calls == [("a", "replace")]
    assert leases.spec()["acquireTime"] == acquired
    assert leases.spec()["renewTime"] == micro_time(clock.wall())
    assert a.leadership.until == clock.now + 10
    assert a.changes == [(True, Change.ACQUIRED)]  # a renewal is no change


def test_a_standby_waits_while_the_leader_renews_and_takes_over_when_it_stops(
    leases: Leases, clock: Clock
) -> None:
    a, b = Replica(leases, clock, "a"), Replica(leases, clock, "b")
    a.elector.attempt()
    for _ in range(20):  # 40 s of renewals: b never gets it
        clock.now += 2
        assert a.elector.attempt()
        assert not b.elector.attempt()
    assert not b.leadership.may_write()
    last_renewal = clock.now
    for _ in range(7):  # a is gone: b still waits the lease duration from the last change
        clock.now += 2
        assert not b.elector.attempt(), clock.now - last_renewal
    clock.now += 2  # 16 s after the last renewal b saw
    assert b.elector.attempt()
    assert b.leadership.may_write()
    spec = leases.spec()
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1
    assert spec["acquireTime"] == micro_time(clock.wall())


def test_a_standby_trusts_its_own_clock_not_the_renew_time(leases: Leases, clock: Clock) -> None:
    """A Lease renewed long ago by the wall clock (a skewed node) is not expired for a replica
    that has just seen it change: expiry runs from when this replica saw the change."""
    a, b = Replica(leases, clock, "a"), Replica(leases, clock, "b")
    a.elector.attempt()
    leases.objects[NAME]["spec"]["renewTime"] = micro_time(EPOCH)  # "years ago"
    assert not b.elector.attempt()
    clock.now += 14.9
    assert not b.elector.attempt()
    clock.now += 0.2
    assert b.elector.attempt()


def test_a_leader_that_cannot_renew_stops_writing_before_anyone_can_take_over(
    leases: Leases, clock: Clock
) -> None:
    a, b = Replica(leases, clock, "a"), Replica(leases, clock, "b")
    a.elector.attempt()
    b.elector.attempt()
    clock.now += 2
    a.elector.attempt()  # the last renewal, sent at this moment
    renewed = clock.now
    leases.down.add("a")  # a is cut off from the API server
    stopped = took = None
    while took is None and clock.now < renewed + 60:
        clock.now += 0.25
        if a.leadership.may_write():
            assert clock.now < renewed + 10
        elif stopped is None:
            stopped = clock.now
        if round(clock.now * 4) % 8 == 0:  # every 2 s
            a.elector.attempt()
            if b.elector.attempt():
                took = clock.now
    assert stopped is not None
    assert took is not None
    assert stopped == renewed + 10  # the renew deadline
    # What a sent before it stopped may be in flight for its write timeout at most: even that
    # ends before b takes over.
    assert stopped + 5 <= took
    assert a.changes == [(True, Change.ACQUIRED), (False, Change.LOST)]
    assert not a.leadership.leading


def test_a_renewal_whose_answer_is_lost_keeps_the_standby_waiting(
    leases: Leases, clock: Clock
) -> None:
    """The server applied the renewal but the leader never heard: the leader stops at its
    deadline; the standby saw the renewal and waits from it, so the gap only grows."""
    a, b = Replica(leases, clock, "a"), Replica(leases, clock, "b")
    a.elector.attempt()
    b.elector.attempt()
    leases.lost_answers.add("a")
    clock.now += 2
    assert not a.elector.attempt()
    applied = clock.now
    b.elector.attempt()  # sees the change
    clock.now = applied + 14.9
    assert not b.elector.attempt()
    clock.now += 0.2
    assert b.elector.attempt()


def test_release_hands_over_at_the_next_retry(leases: Leases, clock: Clock) -> None:
    a, b = Replica(leases, clock, "a"), Replica(leases, clock, "b")
    a.elector.attempt()
    b.elector.attempt()
    a.leadership.resign()
    assert not a.leadership.may_write()
    assert a.changes[-1] == (False, Change.RELEASED)
    clock.now += 2
    assert a.elector.attempt()  # renews while its writes drain: nobody else may write yet
    assert not b.elector.attempt()
    assert not a.leadership.leading  # resigned for good: a renewal does not lead again
    assert a.elector.release()
    spec = leases.spec()
    assert "holderIdentity" not in spec
    assert spec["leaseDurationSeconds"] == 1
    clock.now += 0.1
    assert b.elector.attempt()  # at once: no lease duration to wait out
    assert leases.spec()["leaseTransitions"] == 1
    assert not a.elector.release()  # nothing to release twice


def test_two_candidates_for_a_free_lease_get_one_leader(leases: Leases, clock: Clock) -> None:
    a, b = Replica(leases, clock, "a"), Replica(leases, clock, "b")
    a.elector.attempt()
    a.leadership.resign()
    a.elector.release()
    # Both read the released Lease, then both write: the second write names an old version.
    real_get = Client.get_lease
    read = [real_get(leases.client("x"), NS, NAME, timeout=1)]
    b_client = b.elector._api
    c = Replica(leases, clock, "c")
    assert isinstance(b_client, Client)
    b_client.get_lease = lambda namespace, name, *, timeout: copy.deepcopy(read[0])  # type: ignore[method-assign]
    c.elector._api.get_lease = b_client.get_lease  # type: ignore[attr-defined]
    results = [b.elector.attempt(), c.elector.attempt()]
    assert results == [True, False]
    assert leases.spec()["holderIdentity"] == "b"
    assert not c.leadership.may_write()


def test_a_leader_that_finds_another_holder_stops_at_once(leases: Leases, clock: Clock) -> None:
    a = Replica(leases, clock, "a")
    a.elector.attempt()
    # Someone else wrote the Lease (an operator of another install, a person with kubectl).
    leases.objects[NAME] = leases._stamp(
        {"metadata": {"name": NAME}, "spec": {**leases.spec(), "holderIdentity": "intruder"}}
    )
    clock.now += 2
    assert not a.elector.attempt()  # the renewal conflicts
    assert a.leadership.leading  # until it has read who holds it
    clock.now += 2
    assert not a.elector.attempt()
    assert not a.leadership.may_write()
    assert a.changes[-1] == (False, Change.LOST)


def test_a_deleted_lease_is_created_again(leases: Leases, clock: Clock) -> None:
    a = Replica(leases, clock, "a")
    a.elector.attempt()
    del leases.objects[NAME]
    clock.now += 2
    assert not a.elector.attempt()
    clock.now += 2
    assert a.elector.attempt()
    assert leases.spec()["holderIdentity"] == "a"
    assert a.changes == [(True, Change.ACQUIRED)]


def test_a_lease_with_absurd_fields_is_still_handled(leases: Leases, clock: Clock) -> None:
    leases.objects[NAME] = leases._stamp(
        {
            "metadata": {"name": NAME},
            "spec": {"holderIdentity": "old", "leaseDurationSeconds": "ever",
                     "leaseTransitions": -5, "renewTime": "not a time"},
        }
    )  # fmt: skip
    b = Replica(leases, clock, "b")
    assert not b.elector.attempt()
    clock.now += 15  # our own lease duration, the Lease's being unusable
    assert b.elector.attempt()
    assert leases.spec()["leaseTransitions"] == 1


def test_without_election_it_always_writes() -> None:
    single = Leadership.single()
    assert single.leading
    assert single.may_write()
    assert single.write_seconds() is None
    single.lose()
    single.resign()
    assert single.may_write()


@pytest.mark.parametrize(
    ("timings", "problem"),
    [
        (Timings(15, 10, 2), None),
        (Timings(10, 10, 2), "lease duration must be longer than the renew deadline"),
        (Timings(15, 2, 2), "renew deadline must be longer than 1.2 times the retry period"),
    ],
)
def test_timings_that_cannot_keep_writers_apart_are_refused(
    timings: Timings, problem: str | None
) -> None:
    found = timings.problem()
    assert (found is None) if problem is None else (problem in (found or ""))


@pytest.mark.parametrize("seed", range(30))
def test_never_two_writers_whatever_fails_when(seed: int) -> None:
    """Three replicas, each attempting as the elector's loop does (a leader every retry period,
    a standby twice as often and at the moment a Lease lapses) for ten simulated
    minutes while the API server drops their calls or their answers at random: at every
    moment at most one may write, and a replica takes over only once the previous writer's
    last write (sent before its deadline) has had its whole write timeout."""
    rng = random.Random(seed)
    leases, clock = Leases(), Clock()
    replicas = [Replica(leases, clock, name) for name in "abc"]
    next_try = {r.elector.identity: clock.now + rng.uniform(0, 2) for r in replicas}
    end = clock.now + 600
    acquisitions = 0
    while clock.now < end:
        clock.now += 0.1
        if rng.random() < 0.01:  # partitions come and go
            leases.down = {i for i in "abc" if rng.random() < 0.4}
            leases.lost_answers = {i for i in "abc" if rng.random() < 0.1}
        for replica in replicas:
            who = replica.elector.identity
            if clock.now >= next_try[who]:
                before = replica.leadership.leading
                replica.elector.attempt()
                leading = replica.leadership.leading
                next_try[who] = clock.now + (2 if leading else replica.elector.next_attempt_in())
                if replica.leadership.leading and not before:
                    acquisitions += 1
                    for other in replicas:
                        if other is not replica:
                            assert other.leadership.until + 5 <= clock.now + 1e-9
        assert sum(r.leadership.may_write() for r in replicas) <= 1
    assert acquisitions >= 1


def test_the_elector_thread_runs_until_stopped_and_survives_a_bug() -> None:
    leases = Leases()
    leadership = Leadership(margin_seconds=0.2)
    timings = Timings(lease_seconds=0.6, renew_deadline_seconds=0.4, retry_seconds=0.05)
    errors: list[int] = []
    elector = LeaseElector(
        api=leases.client("a"),
        leadership=leadership,
        identity="a",
        namespace=NS,
        name=NAME,
        timings=timings,
        on_error=lambda: errors.append(1),
    )
    broken = [True]
    real = elector.attempt

    def attempt() -> bool:
        if broken[0]:
            broken[0] = False
            raise RuntimeError("a bug")
        return real()

    elector.attempt = attempt  # type: ignore[method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=elector.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not leadership.may_write() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert leadership.may_write()
    assert errors == [1]
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_a_standby_looks_twice_per_retry_period_and_at_the_moment_the_lease_lapses(
    leases: Leases, clock: Clock
) -> None:
    a, b = Replica(leases, clock, "a"), Replica(leases, clock, "b")
    a.elector.attempt()
    assert a.elector.next_attempt_in() <= 1.2  # not used by a leader, which renews every 2 s
    assert not b.elector.attempt()
    for _ in range(50):
        assert 1.0 <= b.elector.next_attempt_in() <= 1.2
    clock.now += 14.5  # a renewed no more: the Lease b saw lapses in 0.5 s
    assert not b.elector.attempt()
    assert b.elector.next_attempt_in() == pytest.approx(0.51)
    clock.now += 0.51
    assert b.elector.attempt()


@pytest.mark.parametrize("release", [True, False])
def test_the_election_thread_stops_and_releases_only_when_asked(release: bool) -> None:
    timings = Timings(lease_seconds=0.6, renew_deadline_seconds=0.4, retry_seconds=0.05)
    leases = Leases()
    leadership = Leadership(margin_seconds=0.2)
    closed: list[bool] = []
    election = ElectionThread(
        LeaseElector(
            api=leases.client("a"),
            leadership=leadership,
            identity="a",
            namespace=NS,
            name=NAME,
            timings=timings,
        ),
        close=lambda: closed.append(True),
    )
    election.start()
    deadline = time.monotonic() + 10
    while not leadership.may_write() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert leadership.may_write()
    leadership.resign()
    assert election.stop(release=release, within=5) is release
    assert closed == [True]
    assert ("holderIdentity" in leases.spec()) is not release
