"""`decide()`: which provider a route should use now, and why; a pure function of its inputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from llm_failover.health import ProviderHealth
from llm_failover.spec import Failback, ProviderSpec, RouteSpec
from llm_failover.state import ProviderState


class Reason(StrEnum):
    """Condition reasons that are not provider states."""

    PROVIDER_ACTIVE = "ProviderActive"
    PRIMARY_ACTIVE = "PrimaryActive"
    NO_HEALTHY_PROVIDER = "NoHealthyProvider"
    PROBING = "Probing"
    PAUSED = "Paused"
    SCHEDULED = "Scheduled"
    FAILBACK = "Failback"
    SPEC_CHANGED = "SpecChanged"
    NOT_ROUTED = "NotRouted"
    INVALID_SPEC = "InvalidSpec"
    TARGET_CONFLICT = "TargetConflict"
    OPERATOR_ERROR = "OperatorError"
    FORBIDDEN = "Forbidden"
    TRAFFIC_ERRORS = "TrafficErrors"


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool | None  # None: Unknown
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    active: str | None
    """The provider the routing output names; None only before a route's first routing."""
    switched_from: str | None
    """The provider routed to before, when this decision changes it (not on first routing)."""
    reason: str | None
    """Why it changed: a provider state, Scheduled, Failback or SpecChanged."""
    eligible: Mapping[str, bool]
    ready: Condition
    failed_over: Condition
    confirming: str | None = None
    """The provider it would switch to once a fresh probe confirms it (the switch waits)."""

    @property
    def switched(self) -> bool:
        return self.switched_from is not None


def eligible(provider: ProviderSpec, health: ProviderHealth, now: datetime) -> bool:
    return health.trusted and provider.in_window(now)


def decide(
    spec: RouteSpec,
    health: Mapping[str, ProviderHealth],
    *,
    current: str | None,
    spec_changed: bool,
    now: datetime,
    last_reason: str | None = None,
    fresh: Mapping[str, bool] | None = None,
) -> Decision:
    """Choose the active provider.

    `current` is the provider the routing output names now (None before the first routing);
    `spec_changed` says the spec changed since the last decision; `last_reason` is the reason of
    the last switch, kept for the FailedOver condition while a backup stays active; `fresh`
    says which providers were probed lately: a provider becomes the active one only after a
    fresh probe (one probed at a backup interval waits for it, and the route stays as it is).
    """
    states = {p.name: health.get(p.name, ProviderHealth()) for p in spec.providers}
    ok = {p.name: eligible(p, states[p.name], now) for p in spec.providers}
    current_spec = spec.provider(current) if current is not None else None

    def finish(active: str | None, reason: str | None, ready: Condition) -> Decision:
        switched = current if active != current and current is not None else None
        return Decision(
            active=active,
            switched_from=switched,
            reason=reason if switched else None,
            eligible=ok,
            ready=ready,
            failed_over=_failed_over(spec, states, ok, active, reason or last_reason, now),
        )

    if spec.paused:
        if current is None:
            return finish(
                None,
                None,
                Condition("Ready", False, Reason.PAUSED, "paused before the first routing"),
            )
        fine = ok.get(current, False)
        note = "paused: routing frozen" + ("" if fine else f", and {current} is not eligible")
        return finish(current, None, Condition("Ready", fine, Reason.PAUSED, note))

    if current is None and _waiting(spec, states, ok, now):
        return finish(
            None,
            None,
            Condition("Ready", False, Reason.PROBING, "waiting for the first probe results"),
        )

    candidate = _choose(spec, ok, current_spec, spec_changed)
    if (
        candidate is not None
        and candidate.name != current
        and fresh is not None
        and not fresh.get(candidate.name, True)
    ):
        confirming = candidate.name
        note = f"confirming {confirming} with a fresh probe before routing to it"
        if current is None:
            ready = Condition("Ready", False, Reason.PROBING, note)
        elif ok.get(current, False):
            ready = Condition(
                "Ready", True, Reason.PROVIDER_ACTIVE, f"routing to {current}; {note}"
            )
        else:
            ready = Condition("Ready", False, Reason.PROBING, f"{current} is not eligible; {note}")
        return replace(finish(current, None, ready), confirming=confirming)
    if candidate is None:
        summary = ", ".join(f"{p.name} {_describe(p, states[p.name], now)}" for p in spec.providers)
        kept = f"; keeping {current}" if current is not None else ""
        return finish(
            current,
            None,
            Condition(
                "Ready", False, Reason.NO_HEALTHY_PROVIDER, f"no eligible provider: {summary}{kept}"
            ),
        )

    reason = None
    if current is not None and candidate.name != current:
        reason = _switch_reason(spec, current_spec, states, ok, candidate, spec_changed, now)
    ready = Condition(
        "Ready", True, Reason.PROVIDER_ACTIVE, f"routing to {candidate.name} ({candidate.model})"
    )
    return finish(candidate.name, reason, ready)


def _waiting(
    spec: RouteSpec, states: Mapping[str, ProviderHealth], ok: Mapping[str, bool], now: datetime
) -> bool:
    """Before the first routing, wait for every provider ahead of the first eligible one."""
    for provider in spec.providers:
        if ok[provider.name]:
            return False
        if provider.in_window(now) and not states[provider.name].probed:
            return True
    return False


def _choose(
    spec: RouteSpec, ok: Mapping[str, bool], current: ProviderSpec | None, spec_changed: bool
) -> ProviderSpec | None:
    # With Manual failback a route stays where it is while that provider is eligible; a spec
    # change is a human decision, so it re-decides from the top of the list.
    if (
        spec.failback is Failback.MANUAL
        and current is not None
        and ok[current.name]
        and not spec_changed
    ):
        return current
    return next((p for p in spec.providers if ok[p.name]), None)


def _switch_reason(
    spec: RouteSpec,
    current: ProviderSpec | None,
    states: Mapping[str, ProviderHealth],
    ok: Mapping[str, bool],
    candidate: ProviderSpec,
    spec_changed: bool,
    now: datetime,
) -> str:
    if current is None:
        return Reason.SPEC_CHANGED  # the active provider was removed from the list
    if not ok[current.name]:
        return _why(current, states[current.name], now)
    if spec_changed:
        return Reason.SPEC_CHANGED
    return (
        Reason.FAILBACK
        if spec.providers.index(candidate) < spec.providers.index(current)
        else Reason.SPEC_CHANGED
    )


def _why(provider: ProviderSpec, health: ProviderHealth, now: datetime) -> str:
    """Why a provider is not (or is) usable: Scheduled outside its window, TrafficErrors while
    its signal keeps it out though its probes pass, else its state."""
    if not provider.in_window(now):
        return Reason.SCHEDULED
    if health.traffic_errors and health.state is ProviderState.HEALTHY:
        return Reason.TRAFFIC_ERRORS
    return health.state.value


def _describe(provider: ProviderSpec, health: ProviderHealth, now: datetime) -> str:
    why = _why(provider, health, now)
    if why == ProviderState.HEALTHY and not health.trusted:
        return f"{why} ({health.consecutive_successes}/{health.required_successes} to be trusted)"
    return why


def _failed_over(
    spec: RouteSpec,
    states: Mapping[str, ProviderHealth],
    ok: Mapping[str, bool],
    active: str | None,
    reason: str | None,
    now: datetime,
) -> Condition:
    primary = spec.providers[0]
    if active is None:
        return Condition("FailedOver", None, Reason.NOT_ROUTED, "no provider routed yet")
    if active == primary.name:
        return Condition("FailedOver", False, Reason.PRIMARY_ACTIVE, f"{primary.name} is active")
    if not ok[primary.name]:
        why = _why(primary, states[primary.name], now)
        return Condition("FailedOver", True, why, f"{primary.name} is {why}; routing to {active}")
    why = reason or Reason.FAILBACK
    return Condition(
        "FailedOver",
        True,
        why,
        f"{primary.name} is eligible again but {active} stays active ({spec.failback} failback)",
    )
