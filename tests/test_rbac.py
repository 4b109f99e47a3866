"""The RBAC in deploy/ grants exactly what the operator uses: every API call it makes in a scenario
that exercises all of them is allowed, and every granted verb is used.

The calls are those the emulated API server receives from the real operator process; the rules
are those `kubectl kustomize` renders, cluster-wide (deploy/) and per namespace
(the deploy/components/namespaced component over deploy/, as docs/install.md composes them)."""

from __future__ import annotations

import copy
import shutil
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    CRD,
    OPERATOR_NAMESPACE,
    ROOT,
    Env,
    OperatorProcess,
    kustomize,
    shared_operator_stopped,
    three_providers,
    wait_for,
)
from controlplane import RealCluster
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


def exercise(env: Env, operator: OperatorProcess, stand_ins: dict[str, StandInProvider]) -> None:
    """Run the operator through every kind of API call it makes."""
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
    operator.start()
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


def on_emulator(
    rbac: list[dict[str, Any]],
    extra_args: tuple[str, ...],
    stand_ins: dict[str, StandInProvider],
    tmp_path: Path,
) -> set[Call]:
    """The calls of `exercise` as the emulated API server received them (it authorizes all)."""
    with EmulatedCluster(crd_paths=[CRD]) as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        cluster.add_namespace(NAMESPACE)
        cluster.add_namespace(OPERATOR_NAMESPACE)  # the Lease's
        env = Env(cluster=cluster, namespace=NAMESPACE, kubeconfig=kubeconfig)
        operator = OperatorProcess(
            kubeconfig, tmp_path / "operator.log", extra_args=extra_args, leader_elect=True
        )
        exercise(env, operator, stand_ins)
        return {
            call for method, path in cluster.requests if (call := to_call(method, path)) is not None
        }


def on_real_server(
    real: RealCluster,
    rbac: list[dict[str, Any]],
    extra_args: tuple[str, ...],
    stand_ins: dict[str, StandInProvider],
    tmp_path: Path,
) -> set[Call]:
    """The calls of `exercise` on the real control plane, as its audit log has them, by an
    operator holding only a token of a ServiceAccount that `rbac` (deploy/'s RBAC objects, under
    names of this test's own) empowers; fails if the server denied any of them."""
    own = f"llm-failover-{uuid.uuid4().hex[:6]}"
    namespaces = {NAMESPACE, *(o["metadata"].get("namespace") for o in rbac)} - {None}
    for name in namespaces:
        real.add_namespace(name)
    for obj in rename(rbac, own):
        real.apply(obj)
    namespaces.discard(OPERATOR_NAMESPACE)  # shared with the other tests
    user = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{own}"
    kubeconfig = real.plane.write_kubeconfig(
        tmp_path / "kubeconfig", token=real.token(OPERATOR_NAMESPACE, own)
    )
    env = Env(cluster=real, namespace=NAMESPACE, kubeconfig=kubeconfig)
    # A Lease of its own (deploy/'s is the shared operator's): created, renewed, released.
    operator = OperatorProcess(
        kubeconfig,
        tmp_path / "operator.log",
        extra_args=(*extra_args, "--leader-elect-resource-name", own),
        leader_elect=True,
    )
    try:
        exercise(env, operator, stand_ins)
    finally:
        real.delete_namespaces(namespaces)  # gone before the next test makes it anew
    audited = real.audited(user)
    denied = [f"{a.method} {a.path}: {a.message}" for a in audited if a.denied]
    assert not denied, "the RBAC denied the operator:\n" + "\n".join(denied)
    return {call for a in audited if (call := to_call(a.method, a.path)) is not None}


def rename(objects: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The ServiceAccount and RBAC objects named llm-failover(-…), named `name`(-…) instead, and
    the Lease they name too (so two tests' roles never mix on one server, nor with deploy/'s
    that the shared operator holds)."""

    def renamed_one(text: str) -> str:
        return name + text.removeprefix("llm-failover") if text.startswith("llm-failover") else text

    renamed = []
    for obj in copy.deepcopy(objects):
        obj["metadata"]["name"] = renamed_one(obj["metadata"]["name"])
        if "roleRef" in obj:
            obj["roleRef"]["name"] = renamed_one(obj["roleRef"]["name"])
        for subject in obj.get("subjects", []):
            subject["name"] = renamed_one(subject["name"])
        for rule in obj.get("rules", []):
            if "resourceNames" in rule:
                rule["resourceNames"] = [renamed_one(n) for n in rule["resourceNames"]]
        renamed.append(obj)
    return renamed


def lease_role(objects: list[dict[str, Any]]) -> set[Grant]:
    """The Role for the Lease, in the operator's own namespace."""
    roles = [
        o
        for o in objects
        if o["kind"] == "Role" and o["metadata"].get("namespace") == OPERATOR_NAMESPACE
    ]
    assert [r["metadata"]["name"] for r in roles] == ["llm-failover-leader-election"]
    return grants(roles[0]["rules"])


RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
clusters = pytest.mark.parametrize("where", ["emulated", "real"])


def calls_of(
    where: str,
    objects: list[dict[str, Any]],
    extra_args: tuple[str, ...],
    stand_ins: dict[str, StandInProvider],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> set[Call]:
    rbac = [o for o in objects if o["kind"] in RBAC_KINDS]
    if where == "emulated":
        return on_emulator(rbac, extra_args, stand_ins, tmp_path)
    real: RealCluster = request.getfixturevalue("real_cluster")
    with shared_operator_stopped(real):
        return on_real_server(real, rbac, extra_args, stand_ins, tmp_path)


@clusters
def test_cluster_wide_rbac_is_exact(
    where: str,
    stand_ins: dict[str, StandInProvider],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    objects = kustomize(ROOT / "deploy")
    roles = [o for o in objects if o["kind"] == "ClusterRole"]
    assert [r["metadata"]["name"] for r in roles] == ["llm-failover"]
    calls = calls_of(where, objects, (), stand_ins, tmp_path, request)
    check(calls, grants(roles[0]["rules"]), {OPERATOR_NAMESPACE: lease_role(objects)})


@clusters
def test_namespaced_overlay_is_exact(
    where: str,
    stand_ins: dict[str, StandInProvider],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
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
    calls = calls_of(where, objects, ("--namespace", NAMESPACE), stand_ins, tmp_path, request)
    cluster_wide = {g for c in cluster_roles for g in grants(c["rules"])}
    check(
        calls,
        cluster_wide,
        {NAMESPACE: grants(roles[NAMESPACE]["rules"]), OPERATOR_NAMESPACE: lease_role(objects)},
    )


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


# --- each grant taken away, on the real control plane -------------------------------------------

Removal = tuple[str, str, tuple[str, ...]]  # (apiGroup, resource, verbs taken away together)
REMOVALS: dict[str, tuple[Removal, str]] = {
    # id: (what is taken away, what shows it: a route "condition", an "event", or the "log" only)
    "crds-list-watch": (
        ("apiextensions.k8s.io", "customresourcedefinitions", ("list", "watch")),
        "log",
    ),
    "routes-list-watch": (("llmfailover.dev", "llmroutes", ("list", "watch")), "log"),
    "status-patch": (("llmfailover.dev", "llmroutes/status", ("patch",)), "event"),
    "configmaps-get": (("", "configmaps", ("get",)), "condition"),
    "configmaps-create": (("", "configmaps", ("create",)), "condition"),
    "configmaps-patch": (("", "configmaps", ("patch",)), "condition"),
    "configmaps-list-watch": (("", "configmaps", ("list", "watch")), "log"),
    "secrets-get": (("", "secrets", ("get",)), "condition"),
    "secrets-create": (("", "secrets", ("create",)), "condition"),
    "secrets-patch": (("", "secrets", ("patch",)), "condition"),
    "secrets-list-watch": (("", "secrets", ("list", "watch")), "log"),
    "events-create": (("", "events", ("create",)), "log"),
    "deployments-get": (("apps", "deployments", ("get",)), "condition"),
    "deployments-patch": (("apps", "deployments", ("patch",)), "condition"),
}
WITHOUT = "llm-failover-without"  # the ServiceAccount and ClusterRole of these tests


def rules_without(rules: list[dict[str, Any]], removal: Removal) -> list[dict[str, Any]]:
    group, resource, verbs = removal
    kept = sorted(grants(rules) - {(group, resource, verb) for verb in verbs})
    assert len(kept) == len(grants(rules)) - len(verbs), f"{removal} is not granted"
    return [{"apiGroups": [g], "resources": [r], "verbs": [v]} for g, r, v in kept]


@pytest.fixture(scope="module")
def without(request: pytest.FixtureRequest) -> Iterator[tuple[RealCluster, list[dict[str, Any]]]]:
    """The real cluster, with a ServiceAccount of its own for these tests, and deploy/'s rules;
    the shared operator stopped meanwhile."""
    real: RealCluster = request.getfixturevalue("real_cluster")
    objects = kustomize(ROOT / "deploy")
    real.add_namespace(OPERATOR_NAMESPACE)
    for obj in rename([o for o in objects if o["kind"] in RBAC_KINDS], WITHOUT):
        if obj["kind"] != "ClusterRole":  # each test writes its own
            real.apply(obj)
    (role,) = [o for o in objects if o["kind"] == "ClusterRole"]
    with shared_operator_stopped(real):
        yield real, role["rules"]


def set_rules(real: RealCluster, rules: list[dict[str, Any]]) -> None:
    real.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": WITHOUT}, "rules": rules})  # fmt: skip


def healthy(operator: OperatorProcess) -> bool:
    url = f"http://127.0.0.1:{operator.health_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.mark.parametrize("case", REMOVALS.keys())
def test_a_missing_grant_is_named_and_granting_it_recovers(
    case: str,
    without: tuple[RealCluster, list[dict[str, Any]]],
    stand_ins: dict[str, StandInProvider],
    tmp_path: Path,
) -> None:
    """Without one grant the feature that needs it fails where users look (the server's
    "cannot VERB resource" in the log, and on the route as Ready=False reason Forbidden, or in a
    Forbidden Event when the status may not be written); the operator stays up and healthy (no
    crash loop), the routing output is never written wrong, and granting it back recovers
    without a restart."""
    real, rules = without
    removal, shown = REMOVALS[case]
    _, resource, verbs = removal
    refused = f'cannot {verbs[0]} resource "{resource}"'
    namespace = f"g-{uuid.uuid4().hex[:8]}"
    real.add_namespace(namespace)
    env = Env(cluster=real, namespace=namespace, kubeconfig=real.plane.kubeconfig)
    labels = {"app": "api"}
    env.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"},
               "spec": {"selector": {"matchLabels": labels},
                        "template": {"metadata": {"labels": labels},
                                     "spec": {"containers": [{"name": "c", "image": "i"}]}}}})  # fmt: skip
    set_rules(real, rules_without(rules, removal))
    kubeconfig = real.plane.write_kubeconfig(
        tmp_path / "kubeconfig", token=real.token(OPERATOR_NAMESPACE, WITHOUT)
    )
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log").start()
    try:
        spec = three_providers(stand_ins, env)
        spec["target"]["secretName"] = "chat-llm-key"
        spec["target"]["restart"] = [{"kind": "Deployment", "name": "api"}]
        env.llm_route("chat", spec)
        if verbs == ("patch",) and resource != "llmroutes/status":
            # Only a switch patches what the first routing created.
            wait_for(lambda: env.data("chat-llm").get("LLM_PROVIDER") == "openai", what="routing")
            stand_ins["openai"].set(Behaviour.GEO_BLOCKED)
        wait_for(lambda: refused in operator.log(), what=f"a log line: {refused}")
        if shown == "condition":
            ready = wait_for(
                lambda: (c := env.condition("chat", "Ready")).get("reason") == "Forbidden" and c,
                what="Ready=False, reason Forbidden",
            )
            assert ready["status"] == "False", ready
            assert refused in ready["message"], ready
            wait_for(lambda: "Forbidden" in env.event_reasons(), what="a Forbidden Event")
        elif shown == "event":
            wait_for(
                lambda: any(
                    e["reason"] == "Forbidden" and refused in e["message"] for e in env.events()
                ),
                what="a Forbidden Event",
            )
        if resource != "llmroutes":  # without it, no route is seen at all
            time.sleep(1)
            assert env.data("chat-llm").get("LLM_PROVIDER") in (None, "openai", "qwen")
        assert operator.process is not None
        assert operator.process.poll() is None, "the operator exited"
        assert healthy(operator), "/healthz failed: the kubelet would restart it"

        set_rules(real, rules)  # granted again: recovers by itself
        wait_for(
            lambda: env.condition("chat", "Ready").get("status") == "True",
            timeout=60,
            what="Ready=True once granted",
        )
        expected = "qwen" if stand_ins["openai"].behaviour is Behaviour.GEO_BLOCKED else "openai"
        wait_for(
            lambda: (
                env.data("chat-llm").get("LLM_PROVIDER") == expected
                and env.status("chat").get("activeProvider") == expected
            ),
            what=f"routing to {expected}",
        )
    finally:
        assert operator.stop() == 0
        real.delete(group="", version="v1", plural="namespaces", namespace=None, name=namespace)
