"""The LLMRoute status (docs/reference.md#status): provider table, conditions and the Events of a
transition."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from llm_failover.health import ProviderHealth, Transition
from llm_failover.policy import Condition
from llm_failover.signals import Reading
from llm_failover.spec import RouteSpec
from llm_failover.state import ProviderState


class EventReason(StrEnum):
    FAILED_OVER = "FailedOver"
    FAILED_BACK = "FailedBack"
    PROVIDER_EJECTED = "ProviderEjected"
    PROVIDER_RECOVERED = "ProviderRecovered"
    NO_HEALTHY_PROVIDER = "NoHealthyProvider"
    INVALID_SPEC = "InvalidSpec"
    TARGET_CONFLICT = "TargetConflict"
    RESTART_TARGET_MISSING = "RestartTargetMissing"
    OPERATOR_ERROR = "OperatorError"
    FORBIDDEN = "Forbidden"
    SIGNAL_FIRING = "SignalFiring"
    SIGNAL_RESOLVED = "SignalResolved"
    SIGNAL_UNAVAILABLE = "SignalUnavailable"


WARNINGS = frozenset(
    {
        EventReason.SIGNAL_FIRING,
        EventReason.SIGNAL_UNAVAILABLE,
        EventReason.FAILED_OVER,
        EventReason.PROVIDER_EJECTED,
        EventReason.NO_HEALTHY_PROVIDER,
        EventReason.INVALID_SPEC,
        EventReason.TARGET_CONFLICT,
        EventReason.RESTART_TARGET_MISSING,
        EventReason.OPERATOR_ERROR,
        EventReason.FORBIDDEN,
    }
)

# Ready reasons that announce themselves with an Event of the same name when they begin.
ANNOUNCED = {
    r.value: r
    for r in (
        EventReason.NO_HEALTHY_PROVIDER,
        EventReason.INVALID_SPEC,
        EventReason.TARGET_CONFLICT,
        EventReason.OPERATOR_ERROR,
        EventReason.FORBIDDEN,
    )
}


@dataclass(frozen=True)
class Event:
    reason: EventReason
    message: str

    @property
    def type(self) -> str:
        return "Warning" if self.reason in WARNINGS else "Normal"


def timestamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def provider_entries(
    spec: RouteSpec,
    health: Mapping[str, ProviderHealth],
    eligible: Mapping[str, bool],
    signals: Mapping[str, Reading] | None = None,
) -> list[dict[str, Any]]:
    entries = []
    for provider in spec.providers:
        h = health.get(provider.name, ProviderHealth())
        entry: dict[str, Any] = {
            "name": provider.name,
            "state": h.state.value,
            "eligible": eligible.get(provider.name, False),
            "ejected": h.probed and not h.trusted,
            "consecutiveFailures": h.consecutive_failures,
            "consecutiveSuccesses": h.consecutive_successes,
            "requiredSuccesses": h.required_successes,
        }
        optional = {
            "lastProbeTime": timestamp(h.last_probe) if h.last_probe else None,
            "lastTransitionTime": timestamp(h.last_transition) if h.last_transition else None,
            "lastTrustedTime": timestamp(h.last_trusted) if h.last_trusted else None,
            "failingSince": timestamp(h.failing_since) if h.failing_since else None,
            "retryAfter": timestamp(h.retry_after) if h.retry_after else None,
            "trafficErrors": True if h.traffic_errors else None,
            "latencyMilliseconds": h.latency_milliseconds,
            "httpStatus": h.http_status,
            "message": h.message or None,
        }
        entry.update({k: v for k, v in optional.items() if v is not None})
        reading = (signals or {}).get(provider.name)
        if reading is not None:
            entry["signal"] = signal_entry(reading)
        entries.append(entry)
    return entries


def signal_entry(reading: Reading) -> dict[str, Any]:
    """What a provider's traffic signal says, in its status entry."""
    entry: dict[str, Any] = {"firing": reading.firing, "source": reading.source.value}
    if reading.value is not None and math.isfinite(reading.value):  # JSON has no Infinity
        entry["value"] = reading.value
    if reading.threshold is not None:
        entry["threshold"] = reading.threshold
    if reading.problem:
        entry["message"] = reading.problem
    return entry


PER_PROBE = frozenset(
    {
        "lastProbeTime",
        "latencyMilliseconds",
        "consecutiveFailures",
        "consecutiveSuccesses",
        "httpStatus",
        "message",
    }
)
"""Provider fields that change with every probe: written with anything that matters, or at the
heartbeat. A streak crossing its threshold changes `ejected` or `eligible`, which matter."""


def significant(status: Mapping[str, Any]) -> dict[str, Any]:
    """The status without its per-probe facts: what a change of is worth a write at once."""
    found = dict(status)
    providers = found.get("providers")
    if isinstance(providers, list):
        found["providers"] = [
            _significant_entry(entry) if isinstance(entry, Mapping) else entry
            for entry in providers
        ]
    return found


def _significant_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A provider entry without its per-probe facts, nor the value a signal's query gave (that
    it fires or not, or cannot be asked, is what counts)."""
    found = {k: v for k, v in entry.items() if k not in PER_PROBE}
    signal = found.get("signal")
    if isinstance(signal, Mapping):
        found["signal"] = {k: v for k, v in signal.items() if k != "value"}
    return found


def health_from_status(entry: Mapping[str, Any]) -> ProviderHealth:
    """Rebuild a provider's health from its status entry: how a restarted operator resumes."""
    try:
        state = ProviderState(entry.get("state", ProviderState.UNKNOWN.value))
    except ValueError:
        state = ProviderState.UNKNOWN
    probed = state is not ProviderState.UNKNOWN

    def count(key: str, default: int) -> int:
        value = entry.get(key)
        return (
            value
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0
            else default
        )

    http_status = entry.get("httpStatus")
    latency = entry.get("latencyMilliseconds")
    return ProviderHealth(
        state=state,
        trusted=probed and not entry.get("ejected", False),
        consecutive_failures=count("consecutiveFailures", 0),
        consecutive_successes=count("consecutiveSuccesses", 0),
        required_successes=count("requiredSuccesses", 1),
        failing_since=parse_timestamp(entry.get("failingSince")),
        last_trusted=parse_timestamp(entry.get("lastTrustedTime")),
        last_probe=parse_timestamp(entry.get("lastProbeTime")),
        last_transition=parse_timestamp(entry.get("lastTransitionTime")),
        message=str(entry.get("message", "")),
        http_status=http_status if isinstance(http_status, int) else None,
        latency_milliseconds=latency if isinstance(latency, int) else None,
        retry_after=parse_timestamp(entry.get("retryAfter")),
        traffic_errors=entry.get("trafficErrors") is True,
    )


def conditions(
    new: Sequence[Condition],
    previous: Sequence[Mapping[str, Any]],
    *,
    generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """Kubernetes-convention conditions; lastTransitionTime moves only when the status does."""
    before = {c.get("type"): c for c in previous if isinstance(c, Mapping)}
    result = []
    for condition in new:
        status = {True: "True", False: "False", None: "Unknown"}[condition.status]
        old = before.get(condition.type)
        since = old.get("lastTransitionTime") if old and old.get("status") == status else None
        entry: dict[str, Any] = {
            "type": condition.type,
            "status": status,
            "reason": condition.reason,
            "message": condition.message,
            "lastTransitionTime": since or timestamp(now),
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        result.append(entry)
    return result


def transition_events(
    transitions: Mapping[str, Transition], health: Mapping[str, ProviderHealth]
) -> list[Event]:
    events = []
    for name, transition in transitions.items():
        h = health[name]
        if transition is Transition.EJECTED:
            why = f"{h.state}: {h.message}" if h.message else h.state.value
            if h.traffic_errors and h.state is ProviderState.HEALTHY:
                why = "TrafficErrors: its traffic signal fires while its probes pass"
            elif h.retry_after is not None:
                why = f"{why}; until {timestamp(h.retry_after)}, as the provider says"
            events.append(Event(EventReason.PROVIDER_EJECTED, f"{name} ejected ({why})"))
        else:
            events.append(
                Event(
                    EventReason.PROVIDER_RECOVERED,
                    f"{name} trusted again after {h.consecutive_successes} healthy probes in a row",
                )
            )
    return events


def ready_event(ready: Condition, previous: Mapping[str, Any] | None) -> Event | None:
    """NoHealthyProvider, InvalidSpec, TargetConflict, OperatorError and Forbidden announce
    themselves when they begin.

    A new InvalidSpec or TargetConflict message is a new problem; NoHealthyProvider's message
    changes with every provider state and OperatorError's with every retry, so only their start
    counts.
    """
    reason = ANNOUNCED.get(ready.reason)
    if reason is None:
        return None
    if previous is not None and previous.get("reason") == ready.reason:
        same = previous.get("message") == ready.message
        if same or reason in (EventReason.NO_HEALTHY_PROVIDER, EventReason.OPERATOR_ERROR):
            return None
    return Event(reason, ready.message)
