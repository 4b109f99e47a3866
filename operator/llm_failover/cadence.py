"""When an endpoint is probed next: the adaptive probe schedule, a pure function.

A probe every interval is what a healthy provider, the active one and the next in line need.
Others need less: a provider that said when its quota comes back is probed at that time; one in
a hard state (a bad key, an empty balance, a geo-block, a missing model: a human must act)
backs off, doubling up to a ceiling; one far down the list (behind the next in line) may be
probed at the route's slower `backupIntervalSeconds`. A change to its key Secret, a traffic
signal or a route waiting for a fresh answer probes it at once (`Prober.reprobe`); its becoming
the next in line probes it at once if its last probe is older than the interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from llm_failover.state import ProviderState

BACKOFF_MAX_SECONDS = 300.0
"""Longest wait between probes of a provider in a hard state with no reset time (the default of
`--probe-backoff-max`): a provider fixed without touching its Secret (a geo-block lifted,
a model enabled) is seen within five minutes; a new key or a top-up (a Secret change) at once."""
RESET_MAX_SECONDS = 24 * 3600.0
"""Longest wait for a provider's own reset time: a monthly quota is looked at again daily."""
MIN_GAP_SECONDS = 1.0
"""Shortest time between two probes of an endpoint however often a reprobe is asked for."""


class Wait(StrEnum):
    """Why the next probe waits as long as it does: the `reason` of the probes-saved metric."""

    INTERVAL = "interval"  # the route's intervalSeconds: nothing saved
    BACKUP = "backup"  # far down the list: the route's backupIntervalSeconds
    BACKOFF = "backoff"  # a hard state without a reset time: doubling up to a ceiling
    RESET = "reset"  # the provider said when it serves again


@dataclass(frozen=True)
class Cadence:
    """What the routes using an endpoint ask of it, all together."""

    interval_seconds: float
    """The shortest `intervalSeconds` among them: what a fixed schedule would use."""
    backup_seconds: float | None = None
    """Set when every route using it has it far down its list: their shortest backup interval."""

    @property
    def regular_seconds(self) -> float:
        return max(self.interval_seconds, self.backup_seconds or 0.0)


@dataclass(frozen=True)
class Plan:
    seconds: float
    why: Wait


def plan(
    cadence: Cadence,
    *,
    state: ProviderState,
    run_length: int,
    retry_in_seconds: float | None,
    backoff_max_seconds: float = BACKOFF_MAX_SECONDS,
) -> Plan:
    """Seconds from the start of the last probe to the next one, and why.

    `state` is the last answer's, `run_length` how many answers in a row had it (1 for the
    first), `retry_in_seconds` how long after the last probe the provider said it serves again.
    """
    regular = cadence.regular_seconds
    why = (
        Wait.BACKUP
        if cadence.backup_seconds is not None and regular > cadence.interval_seconds
        else Wait.INTERVAL
    )
    if state is ProviderState.HEALTHY:
        return Plan(regular, why)
    if retry_in_seconds is not None and retry_in_seconds > regular:
        return Plan(min(retry_in_seconds, RESET_MAX_SECONDS), Wait.RESET)
    if state.is_hard:
        ceiling = max(backoff_max_seconds, regular)
        doubled = cadence.interval_seconds * 2.0 ** min(max(run_length - 1, 0), 32)
        if doubled > regular:
            return Plan(min(doubled, ceiling), Wait.BACKOFF)
    return Plan(regular, why)


def at_full_rate(names: list[str], active: str | None, eligible: Mapping[str, bool]) -> set[str]:
    """The providers of a route (in its order) probed every interval when the others may go at
    the backup interval: the active one, those before it (a failback waits on them) and the
    first eligible one after it, the next in line (all after it while none is eligible).
    Before a first routing, all of them."""
    if active not in names:
        return set(names)
    position = names.index(active)
    behind = names[position + 1 :]
    following = [name for name in behind if eligible.get(name, False)]
    return set(names[: position + 1]) | ({following[0]} if following else set(behind))


def saved(elapsed_seconds: float, cadence: Cadence, why: Wait) -> float:
    """Probes a fixed schedule (every `interval_seconds`) would have sent in `elapsed_seconds`
    beyond the one that ends it; none for a regular wait that merely ran late."""
    if why is Wait.INTERVAL or cadence.interval_seconds <= 0:
        return 0.0
    return max(0.0, elapsed_seconds / cadence.interval_seconds - 1.0)
