"""The real operator process against hostile providers, careless tenants and a failing API server.

Each test is one way failover used to stop silently (issue 10), run end to end: the route still
fails over, memory and event-loop lag stay bounded, and no key reaches any sink.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kmock
import pytest

from conftest import Env, OperatorProcess, three_providers, wait_for
from llm_failover.redact import FRAGMENT
from llm_failover.sandbox.hostile import HostileProvider, Hostility
from llm_failover.sandbox.providers import Behaviour, StandInProvider
from test_operator import config_map_writes, ready_with, routed_to, settled

pytestmark = pytest.mark.usefixtures("operator")
# On the real control plane too, except where the test injects API faults the emulator alone can
# (a failed write, an object removed behind the watch's back) or relies on the emulator lacking
# CEL (a route name the real server refuses outright).
on_both = pytest.mark.parametrize("cluster", ["emulated", "real"], indirect=True, scope="session")
Providers = dict[str, StandInProvider]

RSS_BOUND_MB = 400
"""The operator's peak resident memory after every hostile test: about 120 MB at rest; one
inflated bomb used to take it past 5 GB."""
LAG_BOUND_SECONDS = 0.5
"""The worst event-loop lag while hostile answers are classified: 64 KiB of `<` used to cost 4 s."""


def metric(operator: OperatorProcess, name: str, **labels: str) -> float | None:
    text = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).text
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', series))
        if series.split("{")[0] == name and all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return None


def peak_rss_mb(operator: OperatorProcess) -> float:
    assert operator.process is not None
    status = Path(f"/proc/{operator.process.pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


@pytest.fixture
def hostile() -> Iterator[HostileProvider]:
    with HostileProvider() as provider:
        yield provider


def hostile_provider(name: str, provider: HostileProvider, **fields: Any) -> dict[str, Any]:
    return {"name": name, "baseURL": provider.base_url, "model": "m", **fields}


@on_both
def test_a_poisoned_answer_does_not_stop_failover(
    env: Env, stand_ins: Providers, hostile: HostileProvider
) -> None:
    """2 KB of "[" used to kill the provider's probe task for good: its last state froze and a
    later 503 streak never failed the route over."""
    spec = three_providers(stand_ins, env, healthCheck={"failureThreshold": 3})
    spec["providers"][0] = hostile_provider("openai", hostile)
    env.llm_route("chat", spec)
    routed_to(env, "openai")
    hostile.set(Hostility.DEEP_JSON)
    wait_for(
        lambda: env.provider_status("chat", "openai").get("state") == "ServerError",
        what="the deep answer classified",
    )
    hostile.set(Hostility.HEALTHY)
    wait_for(
        lambda: env.provider_status("chat", "openai").get("state") == "Healthy",
        what="probing to go on after it",
    )
    hostile.set(Hostility.SERVER_ERROR)
    routed_to(env, "qwen")
    assert env.status("chat")["lastFailover"]["reason"] == "ServerError"


@on_both
def test_one_tenants_typo_touches_only_its_route(
    env: Env, stand_ins: Providers, operator: OperatorProcess
) -> None:
    """A base URL the schema's old pattern admitted but httpx rejects (an unbalanced bracket)
    used to crash the shared prober and every other route's controller with it. The schema now
    refuses those it can; what it admits and httpx does not is that route's InvalidSpec."""
    careless = f"{env.namespace}-careless"
    env.cluster.add_namespace(careless)

    def route(i: int, url: str) -> dict[str, Any]:
        return {
            "apiVersion": "llmfailover.dev/v1alpha1",
            "kind": "LLMRoute",
            "metadata": {"name": f"typo-{i}", "namespace": careless},
            "spec": {"providers": [{"name": "p", "baseURL": url, "model": "m"}]},
        }

    refused = ["http://[::1/v1", "https://user:hunter2@api.example.com/v1"]
    for url in refused:  # the API server's 422, naming the field
        with pytest.raises((RuntimeError, kmock.KubernetesError), match=r"providers\[0\]\.baseURL"):
            env.cluster.apply(route(99, url))
    urls = ["http://127.0.0.1:99999/v1", "https://xn--a/v1"]  # admitted: httpx's checks are finer
    for i, url in enumerate(urls):
        env.cluster.apply(route(i, url))
    env.llm_route("chat", three_providers(stand_ins, env))
    routed_to(env, "openai")
    for i in range(len(urls)):
        ready = wait_for(
            lambda i=i: next(  # type: ignore[misc]
                (
                    c
                    for c in (
                        env.cluster.get(
                            group="llmfailover.dev",
                            version="v1alpha1",
                            plural="llmroutes",
                            namespace=careless,
                            name=f"typo-{i}",
                        )
                        or {}
                    )
                    .get("status", {})
                    .get("conditions", [])
                    if c["type"] == "Ready" and c["reason"] == "InvalidSpec"
                ),
                None,
            ),
            what=f"typo-{i} InvalidSpec",
        )
        assert ready["message"].startswith("spec.providers[0].baseURL: ")
    stand_ins["openai"].set(Behaviour.GEO_BLOCKED)
    routed_to(env, "qwen")  # the other tenant's route still fails over
    assert metric(operator, "llmfailover_internal_errors_total", task="route") == 0
    events = env.cluster.objects(group="", version="v1", plural="events", namespace=careless)
    assert "hunter2" not in json.dumps(events) + operator.log()
    env.cluster.delete(group="", version="v1", plural="namespaces", namespace=None, name=careless)


@on_both
def test_keys_never_leave_secrets(
    env: Env, stand_ins: Providers, hostile: HostileProvider, operator: OperatorProcess
) -> None:
    """A key with a trailing newline is used without it; a key that cannot be sent is an
    Unauthorized that names its Secret; a provider echoing its key gets it masked; and no key,
    nor any 8 characters of one, is found in status, Events, ConfigMap, log or metrics."""
    echoed = "sk-echo-Zq81LmN0pQrStUv2468AbCd"
    spec = three_providers(stand_ins, env)
    spec["target"]["secretName"] = "chat-llm-key"
    env.apply(
        {  # what `echo KEY > f; kubectl create secret generic openai-key --from-file` gives
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "openai-key"},
            "data": {"api-key": base64.b64encode(b"sk-oA7hQ2Lm9Xw4Rt81\n").decode()},
        }
    )
    env.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "bad-key"},
            "data": {"api-key": base64.b64encode("sk-bZ\u00a0w3Pq8Ny5Ek".encode()).decode()},
        }
    )
    env.key_secret("echo-key", echoed)
    spec["providers"] = [
        hostile_provider("echo", hostile, apiKeySecretRef={"name": "echo-key", "key": "api-key"}),
        {**spec["providers"][1], "apiKeySecretRef": {"name": "bad-key", "key": "api-key"}},
        spec["providers"][0],
    ]
    hostile.set(Hostility.ECHO_KEY)
    env.llm_route("chat", spec)
    routed_to(env, "openai")  # echo is Unauthorized, qwen's key is unsendable
    assert stand_ins["openai"].requests[-1].authorization == "Bearer sk-oA7hQ2Lm9Xw4Rt81"
    assert f"Bearer {echoed}" in hostile.authorizations
    qwen = env.provider_status("chat", "qwen")
    assert qwen["state"] == "Unauthorized"
    assert "Secret" in qwen["message"]
    assert "bad-key" in qwen["message"]
    echo = env.provider_status("chat", "echo")
    assert echo["state"] == "Unauthorized"
    assert "***" in echo["message"]
    wait_for(lambda: "ProviderEjected" in env.event_reasons(), what="ProviderEjected")
    sinks = json.dumps([env.config_map("chat-llm"), env.route("chat"), env.events()])
    sinks += operator.log()
    sinks += httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).text
    for key in (echoed, "sk-oA7hQ2Lm9Xw4Rt81", "sk-bZ\u00a0w3Pq8Ny5Ek"):
        for start in range(len(key) - FRAGMENT + 1):
            assert key[start : start + FRAGMENT] not in sinks, key[start : start + FRAGMENT]


@on_both
def test_bombs_floods_and_quadratic_bodies_stay_bounded(
    env: Env, stand_ins: Providers, operator: OperatorProcess
) -> None:
    """Six hostile providers answer every second while the route fails over past them: the
    operator's memory and event-loop lag stay bounded, and a long model list is healthy."""
    behaviours = [
        Hostility.GZIP_BOMB,
        Hostility.DEFLATE_BOMB,
        Hostility.FLOOD,
        Hostility.LT_FLOOD,
        Hostility.TAG_SOUP,
        Hostility.DEEP_ERROR,
    ]
    servers = [HostileProvider(behaviour=b).start() for b in behaviours]
    huge = HostileProvider(behaviour=Hostility.HUGE_MODELS).start()
    try:
        spec = three_providers(stand_ins, env)
        spec["providers"] = [
            *(hostile_provider(f"h{i}", s) for i, s in enumerate(servers)),
            hostile_provider("huge", huge),
            spec["providers"][0],
        ]
        env.llm_route("chat", spec)
        lags = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            lags.append(metric(operator, "llmfailover_event_loop_lag_seconds") or 0.0)
            if env.data("chat-llm").get("LLM_PROVIDER") == "huge":
                break
            time.sleep(0.25)
        routed_to(env, "huge")  # every hostile one ejected, the long model list healthy
        for _ in range(12):  # and three more seconds of hostile probes
            lags.append(metric(operator, "llmfailover_event_loop_lag_seconds") or 0.0)
            time.sleep(0.25)
        assert all(s.requests >= 3 for s in servers)
        states = {p["name"]: p["state"] for p in env.status("chat")["providers"]}
    finally:
        for server in [*servers, huge]:
            server.stop()
    assert states == {
        "h0": "ServerError",
        "h1": "ServerError",
        "h2": "ServerError",
        "h3": "Unauthorized",
        "h4": "Unauthorized",
        "h5": "Unauthorized",
        "huge": "Healthy",
        "openai": "Healthy",
    }
    assert max(lags) < LAG_BOUND_SECONDS, lags
    assert peak_rss_mb(operator) < RSS_BOUND_MB


@on_both
def test_hanging_providers_in_one_namespace_do_not_time_out_another(
    env: Env, stand_ins: Providers
) -> None:
    """105 providers that never answer, in one namespace, used to hold all 100 connections of
    the shared client: a healthy route elsewhere was then ejected for Timeout."""
    crowded = f"{env.namespace}-crowded"
    env.cluster.add_namespace(crowded)
    with HostileProvider(behaviour=Hostility.HANG) as hanging:
        for r in range(7):
            env.cluster.apply(
                {
                    "apiVersion": "llmfailover.dev/v1alpha1",
                    "kind": "LLMRoute",
                    "metadata": {"name": f"slow-{r}", "namespace": crowded},
                    "spec": {
                        "providers": [
                            {
                                "name": f"p{i}",
                                "baseURL": f"{hanging.base_url}/{r}/{i}",
                                "model": "m",
                            }
                            for i in range(15)
                        ],
                        "healthCheck": {"intervalSeconds": 1, "timeoutSeconds": 5},
                    },
                }
            )
        wait_for(lambda: hanging.requests >= 32, what="the crowded namespace's probes", timeout=30)
        env.llm_route("chat", three_providers(stand_ins, env, healthCheck={"timeoutSeconds": 2}))
        routed_to(env, "openai")
        start = stand_ins["openai"].count()
        wait_for(lambda: stand_ins["openai"].count() >= start + 8, what="8 more probes", timeout=30)
        openai = env.provider_status("chat", "openai")
        assert openai["state"] == "Healthy"
        assert openai["eligible"] is True
        assert hanging.requests <= 32 + 32  # never more than its share in flight at once
        env.cluster.delete(
            group="", version="v1", plural="namespaces", namespace=None, name=crowded
        )
    assert env.status("chat")["failoverCount"] == 0


def test_events_of_a_switch_survive_a_failed_status_write(env: Env, stand_ins: Providers) -> None:
    env.llm_route("chat", three_providers(stand_ins, env))
    routed_to(env, "openai")
    status_path = f"/apis/llmfailover.dev/v1alpha1/namespaces/{env.namespace}/llmroutes/chat/status"
    fault = env.cluster.fail("PATCH", re.escape(status_path), times=3)
    stand_ins["openai"].set(Behaviour.GEO_BLOCKED)
    routed_to(env, "qwen")
    assert fault.times == 0  # the writes were refused, and retried
    wait_for(
        lambda: {"ProviderEjected", "FailedOver"} <= set(env.event_reasons()),
        what="the switch's Events",
    )
    time.sleep(1.5)  # a retry that posted them twice would show by now
    assert env.event_reasons().count("FailedOver") == 1
    assert env.event_reasons().count("ProviderEjected") == 1


def test_sigkill_between_configmap_and_status_does_not_route_back(
    env: Env, stand_ins: Providers, kubeconfig: Path, tmp_path: Path, operator: OperatorProcess
) -> None:
    operator.stop()  # this test runs an operator of its own, which it kills
    own = OperatorProcess(kubeconfig, tmp_path / "operator.log").start()
    try:
        env.llm_route("chat", three_providers(stand_ins, env))
        routed_to(env, "openai")
        settled(env)  # every backup probed and eligible, in route.json and in the status:
        wait_for(  # else the restarted process would see them eligible only once probed again
            lambda: all(p.get("eligible") for p in env.status("chat").get("providers", [])),
            what="every provider eligible in the status",
        )
        status_path = (
            f"/apis/llmfailover.dev/v1alpha1/namespaces/{env.namespace}/llmroutes/chat/status"
        )
        fault = env.cluster.fail("PATCH", re.escape(status_path), times=1000)
        stand_ins["openai"].set(Behaviour.GEO_BLOCKED)
        wait_for(lambda: env.data("chat-llm").get("LLM_PROVIDER") == "qwen", what="the switch")
        assert own.process is not None
        own.process.kill()  # SIGKILL: the status still says openai
        own.process.wait(10)
        own.process = None
        fault.times = 0
        assert env.status("chat")["activeProvider"] == "openai"
        writes = len(config_map_writes(env))
        own.start()
        wait_for(lambda: env.status("chat").get("activeProvider") == "qwen", what="resumed")
        wait_for(
            lambda: env.provider_status("chat", "openai").get("state") == "GeoBlocked",
            what="openai probed again",
        )
        assert config_map_writes(env)[writes:] == []  # never written back to openai
        assert env.data("chat-llm")["LLM_PROVIDER"] == "qwen"
        assert "resuming from qwen" in own.log()
    finally:
        if own.process is not None:
            own.stop()
        operator.start()


@on_both
def test_a_deleted_or_edited_configmap_is_restored_within_seconds(
    env: Env, stand_ins: Providers
) -> None:
    env.llm_route("chat", three_providers(stand_ins, env))
    routed_to(env, "openai")
    data = settled(env)
    env.cluster.delete(
        group="", version="v1", plural="configmaps", namespace=env.namespace, name="chat-llm"
    )
    wait_for(lambda: env.data("chat-llm") == data, what="the ConfigMap re-created", timeout=5)
    edited = env.config_map("chat-llm")
    assert edited is not None
    edited["data"]["LLM_PROVIDER"] = "someone-else"
    env.cluster.apply(edited)
    wait_for(lambda: env.data("chat-llm") == data, what="the edit undone", timeout=5)


def test_a_deletion_missed_by_the_watch_stops_probing(
    env: Env, stand_ins: Providers, kubeconfig: Path, tmp_path: Path, operator: OperatorProcess
) -> None:
    """Noticed at the route's next status write, which a 404 answers: a change, or else the
    status heartbeat (short here)."""
    operator.stop()
    own = OperatorProcess(
        kubeconfig, tmp_path / "operator.log", extra_args=("--status-heartbeat", "2")
    ).start()
    try:
        env.llm_route("chat", three_providers(stand_ins, env))
        routed_to(env, "openai")
        env.cluster.vanish(
            group="llmfailover.dev",
            version="v1alpha1",
            plural="llmroutes",
            namespace=env.namespace,
            name="chat",
        )

        def settled() -> bool:
            before = stand_ins["openai"].count()
            time.sleep(2.5)  # more than two probe intervals
            return stand_ins["openai"].count() == before

        wait_for(settled, what="probing to stop", timeout=20)
    finally:
        own.stop()
        operator.start()


@on_both
def test_a_flapping_backup_does_not_rewrite_the_configmap(env: Env, stand_ins: Providers) -> None:
    """route.json used to carry each probe's state: a backup blinking below its threshold
    rewrote every ConfigMap that listed it."""
    env.llm_route("chat", three_providers(stand_ins, env, healthCheck={"failureThreshold": 3}))
    routed_to(env, "openai")
    # Every provider eligible, as route.json says (the status is written after the ConfigMap).
    wait_for(
        lambda: all(p.get("eligible") for p in env.status("chat").get("providers", [])),
        what="every provider eligible",
    )
    writes = len(config_map_writes(env))
    for _ in range(4):
        stand_ins["glm"].set(Behaviour.SERVER_ERROR)
        wait_for(lambda: env.provider_status("chat", "glm").get("state") == "ServerError")
        stand_ins["glm"].set(Behaviour.HEALTHY)
        wait_for(lambda: env.provider_status("chat", "glm").get("state") == "Healthy")
    assert config_map_writes(env)[writes:] == []


def test_a_route_name_too_long_for_a_label_is_an_invalid_spec(
    env: Env, stand_ins: Providers
) -> None:
    name = "r" * 64
    env.llm_route(name, three_providers(stand_ins, env))
    ready = ready_with(env, "InvalidSpec", route=name)
    assert ready["message"].startswith("metadata.name: at most 63 characters")
    assert env.config_map(f"{name}-llm") is None


@on_both
def test_liveness_counts_the_supervised_loops(
    env: Env, stand_ins: Providers, operator: OperatorProcess
) -> None:
    env.llm_route("chat", three_providers(stand_ins, env))
    routed_to(env, "openai")

    def loops() -> int:
        answer = httpx.get(f"http://127.0.0.1:{operator.health_port}/healthz", timeout=5)
        assert answer.status_code == 200
        return int(answer.json()["loops"]["loops"])

    # Three probe loops and the lag monitor at least (kopf caches the answer for ten seconds).
    wait_for(lambda: loops() >= 4, what="the loops counted by the liveness check", timeout=15)
