"""The per-provider health state machine: thresholds, ejection, re-trust and anti-flapping.

One `ProviderHealth` exists per (route, provider): probe results are shared between routes, but
thresholds are a route's own. Every field needed to resume after a restart is kept in the route's
status, so a new operator process continues the same streaks instead of starting over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from llm_failover.state import ProviderState

FLAP_WINDOW = timedelta(hours=1)
"""An ejection this soon after the provider was last trusted counts as flapping."""


class Transition(StrEnum):
    EJECTED = "Ejected"
    RECOVERED = "Recovered"


@dataclass(frozen=True)
class Thresholds:
    failure: int
    success: int
    interval_seconds: int

    @property
    def success_cap(self) -> int:
        """At most one hour's worth of probes, and never less than the configured threshold."""
        return max(self.success, math.ceil(FLAP_WINDOW.total_seconds() / self.interval_seconds))


@dataclass(frozen=True)
class ProbeResult:
    """One classified probe of an endpoint, as a route sees it."""

    state: ProviderState
    time: datetime
    message: str = ""
    http_status: int | None = None
    latency_milliseconds: int | None = None
    retry_at: datetime | None = None
    """When the provider said it serves again (a reset time, a `Retry-After`)."""
    confirmed: bool = False
    """The provider's traffic signal fires: a failing probe confirms it, and ejects at once."""

    def holds(self, thresholds: Thresholds) -> bool:
        """A failure that says the provider will not serve before the next probe: it ejects at
        once, and the provider stays ejected until then (it is probed again at that time)."""
        return (
            self.retry_at is not None
            and self.state is not ProviderState.HEALTHY
            and (self.retry_at - self.time).total_seconds() >= thresholds.interval_seconds
        )


@dataclass(frozen=True)
class ProviderHealth:
    state: ProviderState = ProviderState.UNKNOWN
    trusted: bool = False
    """Eligible as far as health goes (the schedule window is the policy's business)."""
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    required_successes: int = 1
    """Consecutive successes needed to be trusted; while trusted, what the last recovery needed."""
    failing_since: datetime | None = None
    """First failing probe of the current streak: the start of a time-to-failover."""
    last_trusted: datetime | None = None
    last_probe: datetime | None = None
    last_transition: datetime | None = None
    message: str = ""
    http_status: int | None = None
    latency_milliseconds: int | None = None
    retry_after: datetime | None = None
    """Ejected until then, as the provider itself said (its next probe is at that time)."""
    traffic_errors: bool = False
    """Ejected by its traffic signal (`trust: Signal`) while its probes passed: trusted again
    only after `required_successes` healthy probes once the signal has stopped."""

    @property
    def probed(self) -> bool:
        return self.state is not ProviderState.UNKNOWN


def observe(
    health: ProviderHealth, result: ProbeResult, thresholds: Thresholds
) -> tuple[ProviderHealth, Transition | None]:
    """Fold one probe result into a provider's health; say whether it was ejected or recovered."""
    now = result.time
    held = result.holds(thresholds)
    base = replace(
        health,
        state=result.state,
        last_probe=now,
        last_transition=now if result.state is not health.state else health.last_transition,
        message=result.message,
        http_status=result.http_status,
        latency_milliseconds=result.latency_milliseconds,
        retry_after=result.retry_at if held else None,
    )
    if result.state is ProviderState.HEALTHY:
        successes = health.consecutive_successes + 1
        ok = replace(
            base, consecutive_failures=0, consecutive_successes=successes, failing_since=None
        )
        # Capped here too, not only when raised: a status edited by hand (or written by another
        # version) must not ask for more than an hour's worth of probes.
        required = min(health.required_successes, thresholds.success_cap)
        if health.trusted or successes < required:
            return ok, None
        # First contact is not a recovery: nothing was ejected.
        transition = Transition.RECOVERED if health.probed else None
        kept = required if health.probed else 0
        trusted = replace(
            ok, trusted=True, last_trusted=now, required_successes=kept, traffic_errors=False
        )
        return trusted, transition

    failures = health.consecutive_failures + 1
    failing = replace(
        base,
        consecutive_failures=failures,
        consecutive_successes=0,
        failing_since=health.failing_since or now,
    )
    # A hard state, a reset time beyond the next probe, or a failure confirming what traffic
    # says (the provider's signal fires): no streak to wait for.
    hard = result.state.is_hard or held or result.confirmed
    if not health.trusted:
        if hard or failures >= thresholds.failure:
            # Failing from the start: trusting it takes the full threshold, like a recovery.
            failing = replace(
                failing, required_successes=max(health.required_successes, thresholds.success)
            )
        # A provider whose very first answer is a hard failure is reported as ejected.
        first_hard = not health.probed and hard
        return failing, Transition.EJECTED if first_hard else None
    if not hard and failures < thresholds.failure:
        return failing, None
    return replace(failing, trusted=False, required_successes=_required(health, thresholds, now)), (
        Transition.EJECTED
    )


def observe_run(
    health: ProviderHealth,
    result: ProbeResult,
    count: int,
    thresholds: Thresholds,
    *,
    since: datetime | None = None,
) -> tuple[ProviderHealth, Transition | None]:
    """Fold `count` answers of one state, the last at `result.time` (the first at `since` when
    they start a run), as `count` calls of `observe` would. Once the provider is `settled` in
    that state only the streak counters move: the rest is added, not looped over."""
    transition: Transition | None = None
    for index in range(count):
        one = replace(result, time=since) if index == 0 and since is not None else result
        health, happened = observe(health, one, thresholds)
        transition = happened or transition
        rest = count - index - 1
        if rest and health.state is result.state and settled(health, thresholds):
            healthy = result.state is ProviderState.HEALTHY
            streak = "consecutive_successes" if healthy else "consecutive_failures"
            counted = {streak: getattr(health, streak) + rest}
            return replace(
                health,
                **counted,
                last_probe=result.time,
                message=result.message,
                http_status=result.http_status,
                latency_milliseconds=result.latency_milliseconds,
            ), transition
    return health, transition


def distrust(
    health: ProviderHealth, thresholds: Thresholds, now: datetime
) -> tuple[ProviderHealth, Transition | None]:
    """Its traffic signal fires and the route trusts signals (`trust: Signal`): eject it though
    its probes pass (`traffic_errors`), or keep it ejected: healthy probes count towards trust
    again only once the signal has stopped."""
    held = replace(health, consecutive_successes=0, traffic_errors=True)
    if not health.trusted:
        return held, None
    ejected = replace(
        held,
        trusted=False,
        required_successes=_required(health, thresholds, now),
        failing_since=health.failing_since or now,
    )
    return ejected, Transition.EJECTED


def settled(health: ProviderHealth, thresholds: Thresholds) -> bool:
    """Whether more answers of its current state can change nothing but the streak counters:
    a trusted healthy provider, or one ejected (or never trusted) whose failures have reached
    what they decide. Its route need not wake for each answer of the same state."""
    if health.state is ProviderState.UNKNOWN:
        return False
    if health.state is ProviderState.HEALTHY:
        return health.trusted
    if health.trusted:
        return False
    return health.state.is_hard or health.consecutive_failures >= thresholds.failure


def _required(health: ProviderHealth, thresholds: Thresholds, now: datetime) -> int:
    flapping = (
        health.last_trusted is not None
        and now - health.last_trusted < FLAP_WINDOW
        and health.required_successes > 0
    )
    if not flapping:
        return thresholds.success
    return min(max(thresholds.success, 2 * health.required_successes), thresholds.success_cap)
