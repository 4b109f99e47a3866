"""Table tests of `decide()`: which provider a route uses, and why (docs/reference.md, "Choosing
the active provider" and "Conditions")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llm_failover.catalog import default_catalog
from llm_failover.health import ProviderHealth
from llm_failover.policy import decide
from llm_failover.spec import RouteSpec, parse_route_spec
from llm_failover.state import ProviderState as S

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
OK = ProviderHealth(state=S.HEALTHY, trusted=True)
NEW = ProviderHealth()


def down(state: S) -> ProviderHealth:
    return ProviderHealth(state=state, trusted=False, required_successes=2)


def route(**extra: Any) -> RouteSpec:
    providers = [
        {"name": "openai", "preset": "openai", "model": "gpt-4o"},
        {"name": "qwen", "preset": "dashscope", "model": "qwen-max"},
        {"name": "glm", "preset": "zhipu", "model": "glm-5"},
    ]
    for name, fields in extra.pop("provider_fields", {}).items():
        next(p for p in providers if p["name"] == name).update(fields)
    return parse_route_spec(
        {"providers": providers, **extra}, route_name="chat", catalog=default_catalog()
    )


def health(
    openai: ProviderHealth = OK, qwen: ProviderHealth = OK, glm: ProviderHealth = OK
) -> dict[str, ProviderHealth]:
    return {"openai": openai, "qwen": qwen, "glm": glm}


CASES = [
    # id, spec extras, health, current, spec_changed -> active, reason, Ready status and reason
    ("first routing", {}, health(), None, False, "openai", None, True, "ProviderActive"),
    (
        "first routing skips a blocked primary",
        {},
        health(openai=down(S.GEO_BLOCKED)),
        None,
        False,
        "qwen",
        None,
        True,
        "ProviderActive",
    ),
    (
        "first routing waits for the primary's first probe",
        {},
        health(openai=NEW),
        None,
        False,
        None,
        None,
        False,
        "Probing",
    ),
    (
        "stays put while healthy",
        {},
        health(),
        "openai",
        False,
        "openai",
        None,
        True,
        "ProviderActive",
    ),
    (
        "geo-block fails over",
        {},
        health(openai=down(S.GEO_BLOCKED)),
        "openai",
        False,
        "qwen",
        "GeoBlocked",
        True,
        "ProviderActive",
    ),
    (
        "5xx ejection fails over",
        {},
        health(openai=down(S.SERVER_ERROR)),
        "openai",
        False,
        "qwen",
        "ServerError",
        True,
        "ProviderActive",
    ),
    (
        "skips two",
        {},
        health(openai=down(S.GEO_BLOCKED), qwen=down(S.QUOTA_EXHAUSTED)),
        "openai",
        False,
        "glm",
        "GeoBlocked",
        True,
        "ProviderActive",
    ),
    ("auto failback", {}, health(), "qwen", False, "openai", "Failback", True, "ProviderActive"),
    (
        "manual stays on the backup",
        {"failback": "Manual"},
        health(),
        "qwen",
        False,
        "qwen",
        None,
        True,
        "ProviderActive",
    ),
    (
        "manual still fails over",
        {"failback": "Manual"},
        health(qwen=down(S.UNAUTHORIZED)),
        "qwen",
        False,
        "openai",
        "Unauthorized",
        True,
        "ProviderActive",
    ),
    (
        "manual: a spec change re-decides from the top",
        {"failback": "Manual"},
        health(),
        "qwen",
        True,
        "openai",
        "SpecChanged",
        True,
        "ProviderActive",
    ),
    (
        "none eligible keeps the routing",
        {},
        health(down(S.GEO_BLOCKED), down(S.SERVER_ERROR), down(S.TIMEOUT)),
        "qwen",
        False,
        "qwen",
        None,
        False,
        "NoHealthyProvider",
    ),
    (
        "none eligible before any routing",
        {},
        health(down(S.GEO_BLOCKED), down(S.SERVER_ERROR), down(S.TIMEOUT)),
        None,
        False,
        None,
        None,
        False,
        "NoHealthyProvider",
    ),
    (
        "paused keeps a broken provider",
        {"paused": True},
        health(openai=down(S.GEO_BLOCKED)),
        "openai",
        False,
        "openai",
        None,
        False,
        "Paused",
    ),
    (
        "paused keeps the backup",
        {"paused": True},
        health(),
        "qwen",
        False,
        "qwen",
        None,
        True,
        "Paused",
    ),
    (
        "removed active provider",
        {},
        health(),
        "gone",
        False,
        "openai",
        "SpecChanged",
        True,
        "ProviderActive",
    ),
    (
        "notAfter passed",
        {"provider_fields": {"openai": {"notAfter": "2026-11-21T08:00:00Z"}}},
        health(),
        "openai",
        False,
        "qwen",
        "Scheduled",
        True,
        "ProviderActive",
    ),
    (
        "notBefore not reached",
        {"provider_fields": {"openai": {"notBefore": "2026-11-21T10:00:00Z"}}},
        health(),
        None,
        False,
        "qwen",
        None,
        True,
        "ProviderActive",
    ),
    (
        "inside the window",
        {
            "provider_fields": {
                "openai": {"notBefore": "2026-11-21T08:00:00Z", "notAfter": "2026-11-21T10:00:00Z"}
            }
        },
        health(),
        "qwen",
        False,
        "openai",
        "Failback",
        True,
        "ProviderActive",
    ),
]


@pytest.mark.parametrize(
    ("extra", "states", "current", "changed", "active", "reason", "ready", "ready_reason"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_decide(
    extra: dict[str, Any],
    states: dict[str, ProviderHealth],
    current: str | None,
    changed: bool,
    active: str | None,
    reason: str | None,
    ready: bool,
    ready_reason: str,
) -> None:
    decision = decide(route(**extra), states, current=current, spec_changed=changed, now=NOW)
    assert decision.active == active
    assert decision.reason == reason
    assert (decision.ready.status, decision.ready.reason) == (ready, ready_reason)
    assert decision.switched is (reason is not None)


def test_reordering_the_list_switches_with_spec_changed() -> None:
    spec = route()
    reordered = RouteSpec(
        providers=(spec.providers[1], spec.providers[0], spec.providers[2]),
        health_check=spec.health_check,
        target=spec.target,
    )
    decision = decide(reordered, health(), current="openai", spec_changed=True, now=NOW)
    assert (decision.active, decision.reason) == ("qwen", "SpecChanged")


def test_failed_over_condition() -> None:
    spec = route()
    on_primary = decide(spec, health(), current="openai", spec_changed=False, now=NOW)
    assert (on_primary.failed_over.status, on_primary.failed_over.reason) == (
        False,
        "PrimaryActive",
    )
    blocked = decide(
        spec, health(openai=down(S.GEO_BLOCKED)), current="openai", spec_changed=False, now=NOW
    )
    assert (blocked.failed_over.status, blocked.failed_over.reason) == (True, "GeoBlocked")
    manual = decide(
        route(failback="Manual"),
        health(),
        current="qwen",
        spec_changed=False,
        now=NOW,
        last_reason="GeoBlocked",
    )
    assert (manual.failed_over.status, manual.failed_over.reason) == (True, "GeoBlocked")
    late = decide(
        route(provider_fields={"openai": {"notAfter": "2026-11-21T08:00:00Z"}}),
        health(),
        current="qwen",
        spec_changed=False,
        now=NOW,
    )
    assert (late.failed_over.status, late.failed_over.reason) == (True, "Scheduled")


def test_eligibility_and_the_no_healthy_message() -> None:
    states = health(
        down(S.GEO_BLOCKED),
        ProviderHealth(S.HEALTHY, trusted=False, consecutive_successes=1, required_successes=4),
        down(S.TIMEOUT),
    )
    decision = decide(route(), states, current="openai", spec_changed=False, now=NOW)
    assert decision.eligible == {"openai": False, "qwen": False, "glm": False}
    assert decision.ready.message == (
        "no eligible provider: openai GeoBlocked, qwen Healthy (1/4 to be trusted), glm Timeout; keeping openai"
    )


def test_window_edge_is_exclusive_at_not_after() -> None:
    spec = route(provider_fields={"openai": {"notAfter": "2026-11-21T09:00:00Z"}})
    assert decide(spec, health(), current="openai", spec_changed=False, now=NOW).active == "qwen"
    assert (
        decide(
            spec, health(), current="openai", spec_changed=False, now=NOW - timedelta(seconds=1)
        ).active
        == "openai"
    )
