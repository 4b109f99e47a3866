"""The RBAC in deploy/ grants exactly what the operator uses: every API call it makes in a scenario
that exercises all of them is allowed, and every granted verb is used.

The calls are those the emulated API server receives from the real operator process; the rules
are those `kubectl kustomize` renders, cluster-wide (deploy/) and per namespace
(the deploy/overlays/namespaced component over deploy/, as docs/install.md composes them)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import CRD, ROOT, Env, OperatorProcess, kustomize, three_providers, wait_for
from llm_failover.sandbox.cluster import EmulatedCluster
from llm_failover.sandbox.providers import Behaviour, StandInProvider
from test_deploy import namespaced_kustomization

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl not installed: it renders deploy/"
)
NAMESPACE = "shop"  # the overlay's example namespaces are shop and chat


@dataclass(frozen=True)
class Call:
    """One API request as RBAC sees it."""

    group: str
    resource: str  # with "/subresource" where there is one
    verbs: frozenset[str]  # a GET on a collection is a list or a watch: either needs both here
    namespace: str | None


def to_call(method: str, path: str) -> Call | None:
    """RBAC's view of a request; None for discovery, which every authenticated user may read."""
    path, _, query = path.partition("?")
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"]:
        group, rest = parts[1] if len(parts) > 1 else "", parts[3:]
    else:
        return None
    if not rest:
        return None  # /api, /api/v1, /apis, /apis/<group>/<version>
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    named = len(rest) > 1
    verbs = {
        "GET": {"get"} if named else ({"watch"} if "watch=true" in query else {"list", "watch"}),
        "POST": {"create"},
        "PATCH": {"patch"},
        "PUT": {"update"},
        "DELETE": {"delete"},
    }[method]
    return Call(group, resource, frozenset(verbs), namespace)


Grant = tuple[str, str, str]  # (apiGroup, resource, verb)


def grants(rules: list[dict[str, Any]]) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def check(calls: set[Call], cluster_wide: set[Grant], per_namespace: dict[str, set[Grant]]) -> None:
    used: set[Grant] = set()
    denied = []
    for call in sorted(calls, key=repr):
        allowed = cluster_wide | (
            per_namespace.get(call.namespace, set()) if call.namespace else set()
        )
        wanted = {(call.group, call.resource, verb) for verb in call.verbs}
        if wanted <= allowed:
            used |= wanted
        else:
            denied.append(f"{call}: missing {sorted(wanted - allowed)}")
    assert not denied, "calls the RBAC does not allow:\n" + "\n".join(denied)
    granted = cluster_wide | {g for role in per_namespace.values() for g in role}
    assert granted - used == set(), "granted but never used"


@pytest.fixture
def stand_ins() -> Iterator[dict[str, StandInProvider]]:
    found = {
        "openai": StandInProvider("openai", api_key="sk-rbac-openai"),
        "qwen": StandInProvider(
            "qwen", flavour="dashscope", prefix="/compatible-mode/v1", api_key="sk-rbac-qwen"
        ),
        "glm": StandInProvider("glm", flavour="zhipu", prefix="/api/paas/v4", api_key="rbac.glm"),
    }
    for stand_in in found.values():
        stand_in.start()
    yield found
    for stand_in in found.values():
        stand_in.stop()


def exercise(
    extra_args: tuple[str, ...], stand_ins: dict[str, StandInProvider], tmp_path: Path
) -> set[Call]:
    """Run the operator through every kind of API call it makes; return the calls."""
    with EmulatedCluster(crd_paths=[CRD]) as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        cluster.add_namespace(NAMESPACE)
        env = Env(cluster=cluster, namespace=NAMESPACE, kubeconfig=kubeconfig)
        for kind, plural in (
            ("Deployment", "deployments"),
            ("StatefulSet", "statefulsets"),
            ("DaemonSet", "daemonsets"),
        ):
            labels = {"app": plural}
            env.apply(
                {
                    "apiVersion": "apps/v1",
                    "kind": kind,
                    "metadata": {"name": plural},
                    "spec": {
                        "selector": {"matchLabels": labels},
                        "template": {
                            "metadata": {"labels": labels},
                            "spec": {"containers": [{"name": "c", "image": "i"}]},
                        },
                    },
                }
            )
        operator = OperatorProcess(
            kubeconfig, tmp_path / "operator.log", extra_args=extra_args
        ).start()
        try:
            spec = three_providers(stand_ins, env)
            spec["target"]["secretName"] = "chat-llm-key"
            spec["target"]["restart"] = [
                {"kind": "Deployment", "name": "deployments"},
                {"kind": "StatefulSet", "name": "statefulsets"},
                {"kind": "DaemonSet", "name": "daemonsets"},
            ]
            env.llm_route("chat", spec)  # reads keys; creates the Secret and ConfigMap; stamps
            wait_for(lambda: env.data("chat-llm").get("LLM_PROVIDER") == "openai", what="routing")
            stand_ins["openai"].set(Behaviour.GEO_BLOCKED)  # patches both, stamps again, Events
            wait_for(lambda: env.data("chat-llm").get("LLM_PROVIDER") == "qwen", what="failover")
            wait_for(lambda: "FailedOver" in env.event_reasons(), what="an Event")
            wait_for(lambda: env.status("chat").get("activeProvider") == "qwen", what="status")
        finally:
            assert operator.stop() == 0
        return {
            call for method, path in cluster.requests if (call := to_call(method, path)) is not None
        }


def test_cluster_wide_rbac_is_exact(stand_ins: dict[str, StandInProvider], tmp_path: Path) -> None:
    roles = [o for o in kustomize(ROOT / "deploy") if o["kind"] == "ClusterRole"]
    assert [r["metadata"]["name"] for r in roles] == ["llm-failover"]
    calls = exercise((), stand_ins, tmp_path)
    check(calls, grants(roles[0]["rules"]), {})


def test_namespaced_overlay_is_exact(stand_ins: dict[str, StandInProvider], tmp_path: Path) -> None:
    objects = kustomize(namespaced_kustomization(tmp_path))
    cluster_roles = [o for o in objects if o["kind"] == "ClusterRole"]
    roles = {o["metadata"]["namespace"]: o for o in objects if o["kind"] == "Role"}
    assert NAMESPACE in roles
    assert not any(
        r["resources"] == ["secrets"] for c in cluster_roles for r in c["rules"]
    )  # no cluster-wide Secrets
    args = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert args[:3] == ["run", "--namespace", NAMESPACE]
    calls = exercise(("--namespace", NAMESPACE), stand_ins, tmp_path)
    cluster_wide = {g for c in cluster_roles for g in grants(c["rules"])}
    check(calls, cluster_wide, {NAMESPACE: grants(roles[NAMESPACE]["rules"])})


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/apis", None),
        ("GET", "/apis/llmfailover.dev/v1alpha1", None),
        (
            "GET",
            "/apis/llmfailover.dev/v1alpha1/llmroutes?watch=true",
            Call("llmfailover.dev", "llmroutes", frozenset({"watch"}), None),
        ),
        ("GET", "/api/v1/namespaces", Call("", "namespaces", frozenset({"list", "watch"}), None)),
        (
            "GET",
            "/api/v1/namespaces/shop/secrets/k",
            Call("", "secrets", frozenset({"get"}), "shop"),
        ),
        (
            "PATCH",
            "/apis/llmfailover.dev/v1alpha1/namespaces/shop/llmroutes/chat/status",
            Call("llmfailover.dev", "llmroutes/status", frozenset({"patch"}), "shop"),
        ),
        (
            "POST",
            "/api/v1/namespaces/shop/events",
            Call("", "events", frozenset({"create"}), "shop"),
        ),
    ],
)
def test_requests_map_to_rbac_terms(method: str, path: str, expected: Call | None) -> None:
    assert to_call(method, path) == expected
