"""Table tests of the per-provider health state machine (docs/reference.md#eligibility)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from llm_failover.health import (
    ProbeResult,
    ProviderHealth,
    Thresholds,
    Transition,
    observe,
    observe_run,
    settled,
)
from llm_failover.state import ProviderState as S

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
TH = Thresholds(failure=3, success=2, interval_seconds=10)
H, GEO, E5, RATE = S.HEALTHY, S.GEO_BLOCKED, S.SERVER_ERROR, S.RATE_LIMITED


def run(
    states: list[S], *, start: ProviderHealth | None = None, step: timedelta = timedelta(seconds=10)
) -> tuple[ProviderHealth, list[Transition | None]]:
    health = start or ProviderHealth()
    transitions = []
    for i, state in enumerate(states):
        health, transition = observe(health, ProbeResult(state, T0 + i * step), TH)
        transitions.append(transition)
    return health, transitions


TRUSTED = run([H])[0]
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("states", "trusted", "transitions"),
    [
        pytest.param([H], True, [None], id="first healthy probe: trusted, no event"),
        pytest.param([GEO], False, [Transition.EJECTED], id="first answer a geo-block: ejected"),
        pytest.param([E5], False, [None], id="first answer a 5xx: not trusted yet, not ejected"),
        pytest.param([H, GEO], False, [None, Transition.EJECTED], id="hard state ejects at once"),
        pytest.param(
            [H, E5, E5], True, [None, None, None], id="soft below threshold: still trusted"
        ),
        pytest.param(
            [H, E5, E5, E5], False, [None, None, None, Transition.EJECTED], id="soft at threshold"
        ),
        pytest.param(
            [H, E5, RATE, E5], False, [None, None, None, Transition.EJECTED], id="mixed soft streak"
        ),
        pytest.param([H, E5, E5, H, E5, E5], True, [None] * 6, id="a success resets the streak"),
        pytest.param(
            [H, GEO, H],
            False,
            [None, Transition.EJECTED, None],
            id="one success is not enough after ejection",
        ),
        pytest.param(
            [H, GEO, H, H],
            True,
            [None, Transition.EJECTED, None, Transition.RECOVERED],
            id="successThreshold successes re-trust",
        ),
        pytest.param(
            [H, GEO, H, E5, H, H],
            True,
            [None, Transition.EJECTED, None, None, None, Transition.RECOVERED],
            id="a failure restarts the success count",
        ),
    ],
)
def test_transitions(states: list[S], trusted: bool, transitions: list[Transition | None]) -> None:
    health, seen = run(states)
    assert health.trusted is trusted
    assert seen == transitions
    assert health.state is states[-1]


def test_counters_and_failing_since() -> None:
    health, _ = run([H, E5, E5])
    assert (health.consecutive_failures, health.consecutive_successes) == (2, 0)
    assert health.failing_since == T0 + timedelta(seconds=10)  # the first failure of the streak
    health, _ = observe(health, ProbeResult(H, T0 + timedelta(seconds=30)), TH)
    assert (health.consecutive_failures, health.consecutive_successes) == (0, 1)
    assert health.failing_since is None


def test_failing_from_the_start_needs_the_full_threshold() -> None:
    health, _ = run([E5, E5, E5, H])
    assert not health.trusted  # 3 failures reached failureThreshold: one success is not enough
    health, transition = observe(health, ProbeResult(H, T0 + timedelta(minutes=1)), TH)
    assert health.trusted
    assert transition is Transition.RECOVERED


def ejections_and_recoveries(cycles: int, *, gap: timedelta) -> list[int]:
    """Eject and recover a provider `cycles` times; return what each recovery required."""
    health = TRUSTED
    now = T0
    required = []
    for _ in range(cycles):
        now += gap
        health, transition = observe(health, ProbeResult(GEO, now), TH)
        assert transition is Transition.EJECTED
        required.append(health.required_successes)
        while not health.trusted:
            now += timedelta(seconds=10)
            health, _ = observe(health, ProbeResult(H, now), TH)
    return required


def test_flapping_doubles_the_successes_needed() -> None:
    assert ejections_and_recoveries(4, gap=timedelta(minutes=5)) == [2, 4, 8, 16]


def test_doubling_is_capped_at_one_hour_of_probes() -> None:
    # interval 10 s: one hour is 360 probes
    assert ejections_and_recoveries(12, gap=timedelta(minutes=1))[-3:] == [360, 360, 360]


def test_a_stable_hour_resets_the_doubling() -> None:
    assert ejections_and_recoveries(3, gap=timedelta(hours=2)) == [2, 2, 2]


def test_the_cap_is_never_below_the_threshold() -> None:
    assert Thresholds(failure=3, success=10, interval_seconds=3600).success_cap == 10
    assert Thresholds(failure=3, success=2, interval_seconds=7).success_cap == 515


def test_probe_details_are_kept() -> None:
    result = ProbeResult(GEO, T0, "unsupported_country_region_territory: nope", 403, 182)
    health, _ = observe(TRUSTED, result, TH)
    assert (health.message, health.http_status, health.latency_milliseconds) == (
        "unsupported_country_region_territory: nope",
        403,
        182,
    )
    assert health.last_transition == T0
    assert health.last_probe == T0


def test_a_required_streak_from_an_edited_status_is_capped_at_an_hour_of_probes() -> None:
    """requiredSuccesses comes back from the status, which a person (or another version) may
    have written: it never asks for more than an hour's worth of probes."""
    thresholds = Thresholds(failure=3, success=2, interval_seconds=600)  # cap: 6 probes
    health = ProviderHealth(state=S.SERVER_ERROR, trusted=False, required_successes=10**9)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(6):
        health, transition = observe(
            health, ProbeResult(S.HEALTHY, start + timedelta(minutes=10 * n)), thresholds
        )
    assert health.trusted
    assert transition is Transition.RECOVERED
    assert health.required_successes == 6


STARTS = [
    pytest.param([], id="never probed"),
    pytest.param([H], id="trusted"),
    pytest.param([H, E5], id="trusted, one soft failure"),
    pytest.param([GEO], id="ejected at once"),
    pytest.param([E5, E5, E5], id="failing from the start"),
    pytest.param([H, GEO, H], id="recovering"),
    pytest.param([H, GEO, H, H, RATE, RATE, RATE], id="flapping"),
]


@pytest.mark.parametrize("before", STARTS)
@pytest.mark.parametrize("state", [H, GEO, E5, RATE])
@pytest.mark.parametrize("count", [1, 2, 3, 5, 400, 1000])
def test_a_run_folded_at_once_is_the_same_as_one_answer_at_a_time(
    before: list[S], state: S, count: int
) -> None:
    """A route woken only when an answer can change something folds the answers it slept
    through in one go: the same health, streaks and transition as folding each."""
    start, _ = run(before)
    first = T0 + timedelta(hours=1)
    step = timedelta(seconds=10)
    one_by_one, transitions = start, []
    for i in range(count):
        one_by_one, transition = observe(one_by_one, ProbeResult(state, first + i * step), TH)
        transitions.append(transition)
    last = ProbeResult(state, first + (count - 1) * step)
    at_once, transition = observe_run(start, last, count, TH, since=first)
    assert transition == next((t for t in reversed(transitions) if t is not None), None)
    # Only the moment of trust may differ: folded, it is the run's last answer.
    assert at_once == replace(one_by_one, last_trusted=at_once.last_trusted)
    assert (at_once.last_trusted is None) == (one_by_one.last_trusted is None)


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        pytest.param([], False, id="never probed: its first answer counts"),
        pytest.param([H], True, id="trusted and healthy"),
        pytest.param([H, E5], False, id="trusted, failing below the threshold"),
        pytest.param([GEO], True, id="ejected by a hard state"),
        pytest.param([E5, E5], False, id="soft failures below the threshold"),
        pytest.param([E5, E5, E5], True, id="soft failures at the threshold"),
        pytest.param([GEO, H], False, id="healthy, counting towards trust"),
    ],
)
def test_settled_means_only_counters_can_change(states: list[S], expected: bool) -> None:
    health, _ = run(states)
    assert settled(health, TH) is expected
    if expected:  # the claim itself: ten more answers of its state change only the counters
        more, transition = observe_run(health, ProbeResult(health.state, T0 + HOUR), 10, TH)
        counters = {"consecutive_failures", "consecutive_successes", "last_probe"}
        assert transition is None
        assert {
            name
            for name in health.__dataclass_fields__
            if getattr(health, name) != getattr(more, name)
        } <= counters | {"message", "http_status", "latency_milliseconds"}
        assert more.trusted == health.trusted
        assert more.required_successes == health.required_successes
