"""Supervised tasks restart with backoff and say so; the watchdog names loops that stall."""

from __future__ import annotations

import asyncio
import logging
import time

import kopf
import pytest

from llm_failover.handlers import build_registry
from llm_failover.leader import Leadership
from llm_failover.supervision import Backoff, LoopLag, Stalled, Watchdog, supervise

FAST = Backoff(base_seconds=0.01, cap_seconds=0.04, reset_after_seconds=60)


async def test_a_crashing_task_is_restarted_reported_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []
    crashes: list[tuple[str, float]] = []
    counted: list[int] = []

    async def body() -> None:
        runs.append(len(runs))
        if len(runs) < 4:
            raise RuntimeError("boom")  # the same crash three times in a row

    async def on_crash(exc: Exception, delay: float) -> None:
        crashes.append((str(exc), delay))

    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(
            supervise(
                "test task", body, on_crash=on_crash, count=lambda: counted.append(1), backoff=FAST
            ),
            5,
        )
    assert len(runs) == 4  # three crashes, then a run that finished
    assert [c[0] for c in crashes] == ["boom"] * 3
    assert all(0 < delay <= FAST.cap_seconds * 1.2 for _, delay in crashes)
    assert len(counted) == 3
    # The traceback once, then one line per repeat: no flood.
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert sum("crashed again" in r.getMessage() for r in caplog.records) == 2


async def test_a_failing_crash_report_does_not_stop_the_restarts() -> None:
    runs: list[int] = []

    async def body() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise ValueError("bad")

    async def on_crash(exc: Exception, delay: float) -> None:
        raise ConnectionError("the API server is down too")

    await asyncio.wait_for(supervise("t", body, on_crash=on_crash, backoff=FAST), 5)
    assert len(runs) == 3


async def test_cancellation_goes_through() -> None:
    started = asyncio.Event()

    async def body() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(supervise("t", body, backoff=FAST))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(base_seconds=1, cap_seconds=8)
    plain = [backoff.delay(n) for n in range(1, 7)]
    for got, want in zip(plain, [1, 2, 4, 8, 8, 8], strict=True):
        assert want * 0.8 <= got <= want * 1.2


def test_the_watchdog_names_overdue_loops() -> None:
    now = [100.0]
    watchdog = Watchdog(clock=lambda: now[0])
    watchdog.expect("probe a", 10)
    watchdog.expect("route x", 300)
    assert watchdog.overdue() == []
    now[0] = 111
    assert watchdog.overdue() == ["probe a"]
    watchdog.expect("probe a", 10)  # it showed progress
    assert watchdog.overdue() == []
    watchdog.done("route x")
    now[0] = 500
    assert watchdog.overdue() == ["probe a"]
    assert len(watchdog) == 1


async def test_loop_lag_is_measured() -> None:
    lag = LoopLag(period_seconds=0.01, window=5)
    seen: list[float] = []
    task = asyncio.create_task(lag.run(seen.append, Watchdog()))
    await asyncio.sleep(0.05)
    time.sleep(0.2)  # noqa: ASYNC251 (block the loop, as a quadratic regex would)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert max(seen) >= 0.15
    assert lag.worst_seconds >= 0.15


def test_the_liveness_handler_fails_while_a_loop_is_overdue() -> None:
    now = [0.0]
    watchdog = Watchdog(clock=lambda: now[0])
    for i in range(7):
        watchdog.expect(f"probe loop {i}", 10)
    registry = build_registry()
    handlers = registry._activities.get_handlers(activity="probe")  # kopf.Activity.PROBE
    handler = next(h for h in handlers if h.id == "loops")
    memo = kopf.Memo(watchdog=watchdog)
    assert handler.fn(memo=memo) == {"loops": 7}
    now[0] = 11
    with pytest.raises(kopf.PermanentError, match=r"stalled: probe loop 0, .* and 2 more"):
        handler.fn(memo=memo)
    with pytest.raises(Stalled):
        watchdog.check()


def test_the_health_endpoint_says_which_replica_leads() -> None:
    """Readiness stays true on a standby; /healthz carries `leader` for whoever asks."""
    registry = build_registry()
    handlers = registry._activities.get_handlers(activity="probe")
    leader = next(h for h in handlers if h.id == "leader")
    leadership = Leadership()
    assert leader.fn(memo=kopf.Memo(leadership=leadership)) is False
    leadership.hold(until=float("inf"))
    assert leader.fn(memo=kopf.Memo(leadership=leadership)) is True


def test_kopf_retries_a_refused_or_failing_request_for_ever() -> None:
    """kopf stops a watch for good once a request has failed all its retries; with backoffs of
    no length it never gives up, and re-iterates them afresh for each request."""
    from collections.abc import Sized
    from itertools import islice

    from llm_failover.handlers import RetryForever

    backoffs = RetryForever()
    assert not isinstance(backoffs, Sized)  # kopf counts attempts only of a Sized
    first = list(islice(backoffs, 100))
    assert first[:8] == list(RetryForever.START)
    assert first[8:] == [RetryForever.THEN] * 92
    assert list(islice(backoffs, 3)) == [1.0, 1.0, 2.0]  # each request starts over
