"""The real operator process against the emulated cluster and switchable stand-in providers."""

from __future__ import annotations

import base64
import itertools
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import (
    NAMESPACE_LIST,
    Env,
    OperatorProcess,
    grant,
    revoke,
    three_providers,
    wait_for,
)
from controlplane import RealCluster
from llm_failover.sandbox.providers import Behaviour, StandInProvider

pytestmark = [
    pytest.mark.usefixtures("operator"),
    # Every scenario on the emulated cluster and on the real control plane.
    pytest.mark.parametrize("cluster", ["emulated", "real"], indirect=True, scope="session"),
]
Providers = dict[str, StandInProvider]


def routed_to(env: Env, provider: str, route: str = "chat", cm: str = "chat-llm") -> dict[str, str]:
    """Wait until the ConfigMap names `provider` and the status has caught up (it is written after)."""

    def done() -> dict[str, str] | None:
        data = env.data(cm)
        caught_up = env.status(route).get("activeProvider") == provider
        return data if data.get("LLM_PROVIDER") == provider and caught_up else None

    return wait_for(done, what=f"{cm} and the status of {route} to name {provider}")


def settled(env: Env, cm: str = "chat-llm") -> dict[str, str]:
    """Wait until route.json has every candidate eligible: the first routing needs only the
    first provider, and the backups' first probes land a moment later (later still on a real
    server), each changing route.json once."""

    def done() -> dict[str, str] | None:
        data = env.data(cm)
        document = json.loads(data.get("route.json", "{}"))
        eligible = [p["eligible"] for p in document.get("providers", [])]
        return data if eligible and all(eligible) else None

    return wait_for(done, what=f"every candidate eligible in {cm}'s route.json")


def answered(provider: StandInProvider, since: int, n: int) -> None:
    """Wait until `provider` has answered `n` probes after its first `since`, and the routes
    have had a moment to look at the last one. (Streaks below a threshold reach the status only
    at the heartbeat: the stand-in's count is what a test can wait on.)"""
    wait_for(lambda: provider.count() - since >= n, what=f"{n} probes of {provider.name}")
    time.sleep(0.3)


def ready_with(env: Env, reason: str, route: str = "chat") -> dict[str, Any]:
    """Wait for the Ready condition to carry `reason`; return the condition."""

    def check() -> dict[str, Any] | None:
        ready = env.condition(route, "Ready")
        return ready if ready.get("reason") == reason else None

    return wait_for(check, what=f"Ready reason {reason}")


def test_first_routing(env: Env, stand_ins: Providers, operator: OperatorProcess) -> None:
    env.llm_route("chat", three_providers(stand_ins, env))
    data = routed_to(env, "openai")
    assert data["LLM_BASE_URL"] == data["OPENAI_BASE_URL"] == stand_ins["openai"].base_url
    assert data["LLM_MODEL"] == "gpt-4o"
    assert data["LLM_API_KEY_SECRET"] == "openai-key/api-key"
    candidates = json.loads(data["route.json"])
    assert candidates["active"] == "openai"
    assert [p["name"] for p in candidates["providers"]] == ["openai", "qwen", "glm"]

    settled(env)
    assert all("state" not in p for p in candidates["providers"])  # per-probe facts: status

    owner = env.config_map("chat-llm")["metadata"]["ownerReferences"][0]  # type: ignore[index]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "LLMRoute",
        "chat",
        env.route("chat")["metadata"]["uid"],
    )  # type: ignore[index]
    wait_for(lambda: env.condition("chat", "Ready").get("status") == "True", what="Ready=True")
    status = env.status("chat")
    assert status["activeProvider"] == "openai"
    assert status["failoverCount"] == 0
    assert env.condition("chat", "FailedOver")["status"] == "False"
    assert env.condition("chat", "Ready")["reason"] == "ProviderActive"
    # Every provider was probed with its own key, as a Bearer token.
    for provider in stand_ins.values():
        assert provider.requests[0].authorization == f"Bearer {provider.api_key}"
    # kubectl shows it as a user would see it.
    table = env.kubectl("get", "llmroute", "chat")
    assert "ACTIVE" in table
    assert "openai" in table
    assert (
        httpx.get(f"http://127.0.0.1:{operator.health_port}/healthz", timeout=5).status_code == 200
    )


def test_a_fixed_key_secret_is_used_within_seconds(env: Env, stand_ins: Providers) -> None:
    """The key Secret held a wrong key: once someone fixes it, the watch of Secrets brings the
    new key to the next probe, and the route fails back within seconds (not at the resync,
    minutes later)."""
    spec = three_providers(stand_ins, env)
    env.key_secret("openai-key", "sk-wrong-0123456789abcdef")
    env.llm_route("chat", spec)
    routed_to(env, "qwen")
    wait_for(
        lambda: env.provider_status("chat", "openai").get("state") == "Unauthorized",
        what="openai Unauthorized",
    )
    assert stand_ins["openai"].api_key is not None
    env.key_secret("openai-key", stand_ins["openai"].api_key)
    routed_to(env, "openai")  # 20 s at most; the resync comes after 300


def test_geo_block_fails_over_at_the_next_probe(env: Env, stand_ins: Providers) -> None:
    env.llm_route("chat", three_providers(stand_ins, env, healthCheck={"failureThreshold": 5}))
    routed_to(env, "openai")
    blocked_at = stand_ins["openai"].count()
    stand_ins["openai"].set(Behaviour.GEO_BLOCKED)
    data = routed_to(env, "qwen")
    # One geo-blocked answer was enough: no failureThreshold (5) wait.
    assert stand_ins["openai"].count() - blocked_at <= 2
    assert data["LLM_BASE_URL"] == stand_ins["qwen"].base_url
    assert data["LLM_API_KEY_SECRET"] == "qwen-key/api-key"
    status = wait_for(
        lambda: env.status("chat") if env.status("chat").get("failoverCount") == 1 else None,
        what="failoverCount 1",
    )
    assert status["lastFailover"]["from"] == "openai"
    assert status["lastFailover"]["to"] == "qwen"
    assert status["lastFailover"]["reason"] == "GeoBlocked"
    openai = env.provider_status("chat", "openai")
    assert (openai["state"], openai["eligible"], openai["httpStatus"]) == ("GeoBlocked", False, 403)
    assert "unsupported_country_region_territory" in openai["message"]
    assert env.condition("chat", "FailedOver")["reason"] == "GeoBlocked"
    wait_for(lambda: {"ProviderEjected", "FailedOver"} <= set(env.event_reasons()), what="Events")
    failed_over = next(e for e in env.events() if e["reason"] == "FailedOver")
    assert failed_over["type"] == "Warning"
    assert "openai → qwen (GeoBlocked)" in failed_over["message"]


def test_a_5xx_streak_fails_over_only_after_the_threshold(env: Env, stand_ins: Providers) -> None:
    env.llm_route("chat", three_providers(stand_ins, env, healthCheck={"failureThreshold": 3}))
    routed_to(env, "openai")
    stand_ins["openai"].set(Behaviour.SERVER_ERROR)
    # Two failures in a row: still routed to openai, counting.
    answered(stand_ins["openai"], stand_ins["openai"].count(), 2)
    assert env.data("chat-llm")["LLM_PROVIDER"] == "openai"
    assert env.provider_status("chat", "openai")["eligible"] is True
    routed_to(env, "qwen")
    openai = env.provider_status("chat", "openai")
    assert openai["consecutiveFailures"] >= 3
    assert openai["state"] == "ServerError"
    assert env.status("chat")["lastFailover"]["reason"] == "ServerError"


def test_all_down_keeps_the_routing(env: Env, stand_ins: Providers) -> None:
    env.llm_route("chat", three_providers(stand_ins, env, healthCheck={"failureThreshold": 1}))
    routed_to(env, "openai")
    stand_ins["openai"].set(Behaviour.GEO_BLOCKED)
    routed_to(env, "qwen")
    stand_ins["qwen"].set(Behaviour.QUOTA_EXHAUSTED)
    stand_ins["glm"].set(Behaviour.SERVER_ERROR)
    ready = ready_with(env, "NoHealthyProvider")
    assert ready["status"] == "False"
    assert "keeping" in ready["message"]
    assert env.data("chat-llm")["LLM_PROVIDER"] in ("qwen", "glm")  # never emptied
    assert env.data("chat-llm")["LLM_BASE_URL"]
    wait_for(lambda: "NoHealthyProvider" in env.event_reasons(), what="NoHealthyProvider Event")
    assert env.event_reasons().count("NoHealthyProvider") == 1  # on the transition, not per probe
    assert env.provider_status("chat", "qwen")["state"] == "QuotaExhausted"


@pytest.mark.parametrize("failback", ["Auto", "Manual"])
def test_recovery_and_failback(env: Env, stand_ins: Providers, failback: str) -> None:
    env.llm_route(
        "chat",
        three_providers(stand_ins, env, failback=failback, healthCheck={"successThreshold": 3}),
    )
    routed_to(env, "openai")
    stand_ins["openai"].set(Behaviour.GEO_BLOCKED)
    routed_to(env, "qwen")
    stand_ins["openai"].set(Behaviour.HEALTHY)
    # Healthy again, but not trusted before 3 successes in a row.
    answered(stand_ins["openai"], stand_ins["openai"].count(), 2)
    assert env.data("chat-llm")["LLM_PROVIDER"] == "qwen"
    recovered = wait_for(
        lambda: (
            env.provider_status("chat", "openai")
            if env.provider_status("chat", "openai").get("eligible")
            else None
        ),
        what="openai eligible",
    )
    assert recovered["consecutiveSuccesses"] >= 3
    if failback == "Auto":
        routed_to(env, "openai")
        status = env.status("chat")
        assert status["lastFailover"]["reason"] == "Failback"
        assert status["failoverCount"] == 2
        wait_for(
            lambda: {"ProviderRecovered", "FailedBack"} <= set(env.event_reasons()), what="Events"
        )
        assert env.condition("chat", "FailedOver")["status"] == "False"
    else:
        # Several more probes: still on qwen.
        answered(stand_ins["openai"], stand_ins["openai"].count(), 3)
        assert env.data("chat-llm")["LLM_PROVIDER"] == "qwen"
        assert env.condition("chat", "FailedOver")["status"] == "True"
        assert "FailedBack" not in env.event_reasons()


def test_paused_keeps_the_routing(env: Env, stand_ins: Providers) -> None:
    env.llm_route("chat", three_providers(stand_ins, env))
    routed_to(env, "openai")
    env.patch_spec("chat", paused=True)
    wait_for(
        lambda: env.condition("chat", "Ready").get("reason") == "Paused", what="Ready reason Paused"
    )
    stand_ins["openai"].set(Behaviour.GEO_BLOCKED)
    # Probing and status go on...
    wait_for(
        lambda: env.provider_status("chat", "openai").get("state") == "GeoBlocked",
        what="openai GeoBlocked",
    )
    answered(stand_ins["openai"], stand_ins["openai"].count(), 3)
    # ...but the routing does not move.
    assert env.data("chat-llm")["LLM_PROVIDER"] == "openai"
    assert env.condition("chat", "Ready")["status"] == "False"
    env.patch_spec("chat", paused=False)
    routed_to(env, "qwen")


def test_not_after_switches_with_reason_scheduled(env: Env, stand_ins: Providers) -> None:
    spec = three_providers(stand_ins, env)
    deadline = datetime.now(UTC) + timedelta(seconds=4)
    spec["providers"][0]["notAfter"] = deadline.strftime("%Y-%m-%dT%H:%M:%SZ")
    env.llm_route("chat", spec)
    routed_to(env, "openai")
    routed_to(env, "qwen")
    assert datetime.now(UTC) >= deadline.replace(microsecond=0)
    status = env.status("chat")
    assert status["lastFailover"]["reason"] == "Scheduled"
    assert env.provider_status("chat", "openai")["eligible"] is False
    assert (
        env.provider_status("chat", "openai")["state"] == "Healthy"
    )  # healthy, just out of its window
    assert env.condition("chat", "FailedOver")["reason"] == "Scheduled"


def test_reordering_providers_redecides_at_once(env: Env, stand_ins: Providers) -> None:
    spec = three_providers(
        stand_ins, env, healthCheck={"intervalSeconds": 3600, "timeoutSeconds": 2}
    )
    env.llm_route("chat", spec)
    routed_to(env, "openai")
    probes = sum(p.count() for p in stand_ins.values())
    env.patch_spec(
        "chat", providers=[spec["providers"][2], spec["providers"][0], spec["providers"][1]]
    )
    routed_to(env, "glm")  # with an hour between probes, only the spec change can explain it
    assert sum(p.count() for p in stand_ins.values()) == probes
    assert env.status("chat")["lastFailover"]["reason"] == "SpecChanged"


def test_target_conflict(env: Env, stand_ins: Providers) -> None:
    env.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "chat-llm"},
            "data": {"mine": "yes"},
        }
    )
    env.llm_route("chat", three_providers(stand_ins, env))
    ready = ready_with(env, "TargetConflict")
    assert ready["status"] == "False"
    assert "ConfigMap" in ready["message"]
    assert "chat-llm" in ready["message"]
    assert env.data("chat-llm") == {"mine": "yes"}
    assert "ownerReferences" not in env.config_map("chat-llm")["metadata"]  # type: ignore[index]
    wait_for(lambda: "TargetConflict" in env.event_reasons(), what="TargetConflict Event")
    assert "activeProvider" not in env.status("chat")


def test_invalid_spec(env: Env, stand_ins: Providers) -> None:
    spec = three_providers(stand_ins, env)
    spec["providers"][1]["preset"] = "no-such-preset"
    env.llm_route("chat", spec)
    ready = ready_with(env, "InvalidSpec")
    assert ready["status"] == "False"
    assert ready["message"].startswith("spec.providers[1].preset: unknown preset 'no-such-preset'")
    assert env.config_map("chat-llm") is None
    wait_for(lambda: "InvalidSpec" in env.event_reasons(), what="InvalidSpec Event")
    # Fixing it routes; breaking it again changes nothing in the routing.
    spec["providers"][1]["preset"] = "dashscope"
    env.patch_spec("chat", providers=spec["providers"])
    routed_to(env, "openai")
    before = settled(env)
    # Broken again in a way the API server's schema admits (a real server refuses a spec that
    # breaks the schema at the door): a port above 65535 fits the pattern's five digits.
    spec["providers"][0]["baseURL"] = "http://127.0.0.1:99999/v1"
    env.patch_spec("chat", providers=spec["providers"])
    wait_for(
        lambda: env.condition("chat", "Ready").get("reason") == "InvalidSpec",
        what="InvalidSpec again",
    )
    assert env.condition("chat", "Ready")["message"].startswith(
        "spec.providers[0].baseURL: 'http://127.0.0.1:99999/v1': port 99999 is not between"
    )
    assert env.data("chat-llm") == before


def test_missing_key_secret_is_unauthorized(env: Env, stand_ins: Providers) -> None:
    spec = three_providers(stand_ins, env)
    spec["providers"][0]["apiKeySecretRef"] = {"name": "nowhere", "key": "api-key"}
    env.llm_route("chat", spec)
    routed_to(env, "qwen")
    openai = env.provider_status("chat", "openai")
    assert openai["state"] == "Unauthorized"
    assert "Secret" in openai["message"]
    assert "nowhere" in openai["message"]
    assert stand_ins["openai"].count() == 0  # not probed without its key


def test_two_routes_share_one_probe_per_interval(env: Env, stand_ins: Providers) -> None:
    spec = three_providers(stand_ins, env)
    env.llm_route("chat", spec)
    env.llm_route("chat-2", {**spec, "target": {"configMapName": "chat-2-llm"}})
    routed_to(env, "openai")
    routed_to(env, "openai", route="chat-2", cm="chat-2-llm")
    openai = stand_ins["openai"]
    start = openai.count("/models")
    wait_for(lambda: openai.count("/models") >= start + 5, what="five more probes")
    times = [r.time for r in openai.requests[-5:]]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # One probe per 1 s interval serves both routes; two routes probing on their own would
    # show pairs of requests a few milliseconds apart.
    assert min(gaps) > 0.5, gaps


def test_the_key_value_appears_nowhere_else(
    env: Env, stand_ins: Providers, operator: OperatorProcess
) -> None:
    spec = three_providers(stand_ins, env)
    spec["target"]["secretName"] = "chat-llm-key"
    env.llm_route("chat", spec)
    routed_to(env, "openai")
    stand_ins["openai"].set(Behaviour.UNAUTHORIZED)  # the provider's error message goes into status
    routed_to(env, "qwen")
    wait_for(lambda: "FailedOver" in env.event_reasons(), what="FailedOver Event")
    secret = wait_for(lambda: env.secret("chat-llm-key"), what="key Secret")

    assert base64.b64decode(secret["data"]["OPENAI_API_KEY"]).decode() == stand_ins["qwen"].api_key
    assert base64.b64decode(secret["data"]["LLM_API_KEY"]).decode() == stand_ins["qwen"].api_key
    exposed = (
        json.dumps([env.config_map("chat-llm"), env.route("chat"), env.events()]) + operator.log()
    )
    for provider in stand_ins.values():
        assert provider.api_key is not None
        assert provider.api_key not in exposed


def test_restart_resumes_without_a_write(
    env: Env, stand_ins: Providers, operator: OperatorProcess
) -> None:
    env.llm_route("chat", three_providers(stand_ins, env, healthCheck={"successThreshold": 6}))
    routed_to(env, "openai")
    stand_ins["openai"].set(Behaviour.GEO_BLOCKED)
    routed_to(env, "qwen")
    stand_ins["openai"].set(Behaviour.HEALTHY)
    answered(stand_ins["openai"], stand_ins["openai"].count(), 2)

    assert operator.stop() == 0  # SIGTERM: a clean exit
    data, events = env.data("chat-llm"), len(env.events())
    writes = len(config_map_writes(env))
    operator.start()

    # The new process resumes from the status (the streak it held when last written: below the
    # threshold, it is written at the heartbeat, not per probe) and stays on qwen.
    answered(stand_ins["openai"], stand_ins["openai"].count(), 3)
    assert env.provider_status("chat", "openai")["eligible"] is False
    assert env.data("chat-llm") == data
    assert len(config_map_writes(env)) == writes
    assert env.status("chat")["failoverCount"] == 1
    assert len(env.events()) == events
    # And the resumed streak completes: 6 in all, failback.
    routed_to(env, "openai")
    assert env.status("chat")["failoverCount"] == 2


def config_map_writes(env: Env) -> list[tuple[str, str]]:
    prefix = f"/api/v1/namespaces/{env.namespace}/configmaps"
    return [
        (m, p)
        for m, p in env.cluster.requests
        if m in ("POST", "PUT", "PATCH") and p.startswith(prefix)
    ]


def test_run_with_namespace_watches_only_that_namespace(
    env: Env, stand_ins: Providers, operator: OperatorProcess, tmp_path: Path
) -> None:
    other = Env(env.cluster, f"{env.namespace}-other", env.kubeconfig)
    env.cluster.add_namespace(other.namespace)
    if isinstance(env.cluster, RealCluster):
        # With --namespace, kopf lists the namespaces: the namespaced install grants that
        # (deploy/components/namespaced), the cluster-wide one has no need to. Without it, the
        # real server showed, kopf retries the denied list for minutes before it routes.
        grant(env.cluster, "llm-failover-namespaces", NAMESPACE_LIST)
    operator.stop()
    scoped = OperatorProcess(
        operator.kubeconfig, tmp_path / "scoped.log", extra_args=("--namespace", env.namespace)
    ).start()
    try:
        env.llm_route("chat", three_providers(stand_ins, env))
        other.llm_route("chat", three_providers(stand_ins, other))
        routed_to(env, "openai")
        answered(stand_ins["openai"], stand_ins["openai"].count(), 3)
        assert other.config_map("chat-llm") is None
        assert other.status("chat") == {}
        assert "watching " + env.namespace in scoped.log()
    finally:
        assert scoped.stop() == 0
        operator.start()
        env.cluster.delete(
            group="", version="v1", plural="namespaces", namespace=None, name=other.namespace
        )
        if isinstance(env.cluster, RealCluster):
            revoke(env.cluster, "llm-failover-namespaces")


def test_restart_targets_roll_on_a_switch(env: Env, stand_ins: Providers) -> None:
    template = {
        "metadata": {"labels": {"app": "api"}},
        "spec": {"containers": [{"name": "api", "image": "app:1"}]},
    }
    env.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api"},
            "spec": {"selector": {"matchLabels": {"app": "api"}}, "template": template},
        }
    )
    spec = three_providers(stand_ins, env)
    spec["target"]["restart"] = [
        {"kind": "Deployment", "name": "api"},
        {"kind": "DaemonSet", "name": "gone"},
    ]
    env.llm_route("chat", spec)
    routed_to(env, "openai")

    def revision() -> str | None:
        deployment = env.cluster.get(
            group="apps", version="v1", plural="deployments", namespace=env.namespace, name="api"
        )
        annotations = (deployment or {})["spec"]["template"]["metadata"].get("annotations") or {}
        return annotations.get("llmfailover.dev/route-revision")

    first = wait_for(revision, what="the first stamp")
    wait_for(lambda: "RestartTargetMissing" in env.event_reasons(), what="RestartTargetMissing")
    assert (
        env.cluster.get(
            group="apps", version="v1", plural="daemonsets", namespace=env.namespace, name="gone"
        )
        is None
    )
    stand_ins["openai"].set(Behaviour.GEO_BLOCKED)
    routed_to(env, "qwen")
    second = wait_for(lambda: revision() if revision() != first else None, what="a new stamp")
    assert second is not None
    assert env.event_reasons().count("RestartTargetMissing") == 1
