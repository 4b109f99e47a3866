"""The adaptive probe schedule (`cadence`) and the health rules it goes with: a reset time holds
a provider out, a failure confirming a traffic signal ejects at once, `distrust` (TrafficErrors)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_failover.cadence import (
    BACKOFF_MAX_SECONDS,
    RESET_MAX_SECONDS,
    Cadence,
    Plan,
    Wait,
    at_full_rate,
    plan,
    saved,
)
from llm_failover.health import (
    ProbeResult,
    ProviderHealth,
    Thresholds,
    Transition,
    distrust,
    observe,
)
from llm_failover.state import ProviderState as S

EVERY_10 = Cadence(10)
T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
THRESHOLDS = Thresholds(failure=3, success=2, interval_seconds=10)


def test_a_healthy_provider_is_probed_every_interval() -> None:
    assert plan(EVERY_10, state=S.HEALTHY, run_length=50, retry_in_seconds=None) == Plan(
        10, Wait.INTERVAL
    )


def test_a_provider_far_down_the_list_is_probed_at_the_backup_interval() -> None:
    backup = Cadence(10, backup_seconds=60)
    assert plan(backup, state=S.HEALTHY, run_length=1, retry_in_seconds=None) == Plan(
        60, Wait.BACKUP
    )
    assert saved(60, backup, Wait.BACKUP) == 5


def test_a_hard_state_backs_off_doubling_up_to_the_ceiling() -> None:
    waits = [
        plan(EVERY_10, state=S.UNAUTHORIZED, run_length=n, retry_in_seconds=None)
        for n in range(1, 10)
    ]
    assert [w.seconds for w in waits] == [10, 20, 40, 80, 160, 300, 300, 300, 300]
    assert [w.why for w in waits] == [Wait.INTERVAL] + [Wait.BACKOFF] * 8
    assert BACKOFF_MAX_SECONDS == 300
    # A ceiling below the interval never probes faster than the interval.
    slow = Cadence(600)
    assert plan(slow, state=S.GEO_BLOCKED, run_length=9, retry_in_seconds=None).seconds == 600


@pytest.mark.parametrize("state", [S.RATE_LIMITED, S.SERVER_ERROR, S.TIMEOUT, S.UNREACHABLE])
def test_a_soft_state_keeps_the_interval(state: S) -> None:
    assert plan(EVERY_10, state=state, run_length=30, retry_in_seconds=None).seconds == 10


def test_a_reset_time_is_when_the_next_probe_goes() -> None:
    assert plan(EVERY_10, state=S.QUOTA_EXHAUSTED, run_length=1, retry_in_seconds=1800) == Plan(
        1800, Wait.RESET
    )
    # Sooner than the interval: the interval; a month away: once a day.
    assert plan(EVERY_10, state=S.RATE_LIMITED, run_length=1, retry_in_seconds=3).seconds == 10
    far = plan(EVERY_10, state=S.QUOTA_EXHAUSTED, run_length=1, retry_in_seconds=30 * 86400)
    assert far == Plan(RESET_MAX_SECONDS, Wait.RESET)
    # A healthy answer's reset header (a remaining-quota hint) changes nothing.
    assert plan(EVERY_10, state=S.HEALTHY, run_length=1, retry_in_seconds=600).seconds == 10


@given(
    interval=st.floats(1, 3600),
    backup=st.none() | st.floats(1, 3600),
    run=st.integers(-5, 10**9),
    retry=st.none() | st.floats(-1e12, 1e12),
    state=st.sampled_from(list(S)),
)
def test_a_wait_is_never_shorter_than_the_interval_nor_longer_than_a_day(
    interval: float, backup: float | None, run: int, retry: float | None, state: S
) -> None:
    wait = plan(Cadence(interval, backup), state=state, run_length=run, retry_in_seconds=retry)
    assert interval <= wait.seconds <= max(RESET_MAX_SECONDS, interval, backup or 0)


def test_only_waits_longer_than_the_interval_save_probes() -> None:
    assert saved(25, EVERY_10, Wait.INTERVAL) == 0  # a slow probe is not a saving
    assert saved(40, EVERY_10, Wait.BACKOFF) == 3
    assert saved(5, EVERY_10, Wait.RESET) == 0  # cut short by a reprobe


def result(state: S, **extra: object) -> ProbeResult:
    return ProbeResult(state, T0, **extra)  # type: ignore[arg-type]


def trusted() -> ProviderHealth:
    health, _ = observe(ProviderHealth(), result(S.HEALTHY), THRESHOLDS)
    assert health.trusted
    return health


def test_a_reset_time_beyond_the_next_probe_ejects_a_soft_state_at_once() -> None:
    until = T0 + timedelta(minutes=5)
    health, transition = observe(trusted(), result(S.RATE_LIMITED, retry_at=until), THRESHOLDS)
    assert transition is Transition.EJECTED
    assert not health.trusted
    assert health.retry_after == until
    # A healthy answer later clears it.
    later = ProbeResult(S.HEALTHY, until + timedelta(seconds=1))
    health, _ = observe(health, later, THRESHOLDS)
    assert health.retry_after is None


def test_a_reset_time_before_the_next_probe_counts_as_an_ordinary_failure() -> None:
    soon = T0 + timedelta(seconds=2)
    health, transition = observe(trusted(), result(S.RATE_LIMITED, retry_at=soon), THRESHOLDS)
    assert transition is None
    assert health.trusted
    assert health.retry_after is None


def test_a_failure_confirming_a_firing_signal_ejects_at_once() -> None:
    health, transition = observe(trusted(), result(S.TIMEOUT, confirmed=True), THRESHOLDS)
    assert transition is Transition.EJECTED
    assert not health.trusted
    health, transition = observe(trusted(), result(S.TIMEOUT), THRESHOLDS)
    assert transition is None
    assert health.trusted


def test_distrust_ejects_once_and_holds_while_the_signal_fires() -> None:
    health, transition = distrust(trusted(), THRESHOLDS, T0)
    assert transition is Transition.EJECTED
    assert health.traffic_errors
    assert not health.trusted
    assert health.failing_since == T0
    for n in range(1, 4):  # healthy probes while it fires count for nothing
        health, _ = observe(
            health, ProbeResult(S.HEALTHY, T0 + timedelta(seconds=10 * n)), THRESHOLDS
        )
        health, again = distrust(health, THRESHOLDS, T0)
        assert again is None
        assert health.consecutive_successes == 0
    for n in range(4, 4 + health.required_successes):
        health, recovered = observe(
            health, ProbeResult(S.HEALTHY, T0 + timedelta(seconds=10 * n)), THRESHOLDS
        )
    assert recovered is Transition.RECOVERED
    assert health.trusted
    assert not health.traffic_errors


@pytest.mark.parametrize(
    ("active", "eligible", "fast"),
    [
        (None, {}, {"a", "b", "c", "d"}),  # before the first routing: all of them
        ("a", {"a": True, "b": True, "c": True, "d": True}, {"a", "b"}),
        ("a", {"a": True, "b": False, "c": True, "d": True}, {"a", "c"}),  # b is out
        ("b", {"a": False, "b": True, "c": True, "d": True}, {"a", "b", "c"}),  # a: failback
        ("a", {"a": True}, {"a", "b", "c", "d"}),  # none eligible behind: all of them
        ("d", {"d": True}, {"a", "b", "c", "d"}),
    ],
)
def test_the_active_provider_those_before_and_the_next_in_line_go_at_full_rate(
    active: str | None, eligible: dict[str, bool], fast: set[str]
) -> None:
    assert at_full_rate(["a", "b", "c", "d"], active, eligible) == fast
