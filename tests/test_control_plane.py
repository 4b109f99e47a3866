"""What only a real API server can tell: the CRD as the server takes it (structural schema, CEL
cost budget, patterns with RE2 semantics, CEL messages), kubectl's views, the deploy/ manifests
dry-run on the server, garbage collection of what a route owns, and a restart stamp rolling a
real Deployment. Every claim of tests/test_crd.py about what is accepted or rejected is put to
the real server here, each with its reason."""

from __future__ import annotations

import base64
import copy
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
import yaml

from conftest import ROOT, Env, OperatorProcess, kustomize, three_providers, wait_for
from controlplane import ControlPlane, RealCluster
from llm_failover.kube import KubeClient, RouteRef
from llm_failover.sandbox.cluster import EmulatedCluster
from llm_failover.sandbox.providers import Behaviour, StandInProvider
from test_crd import CEL_CASES, CONTRACT_EXAMPLE, INVALID_SPECS, VALID_SPECS, Patch
from test_deploy import namespaced_kustomization, user_kustomization
from test_examples import DOCUMENTS as EXAMPLE_DOCUMENTS
from test_helm import render as helm_render
from test_operator import config_map_writes, routed_to, settled

GROUP, VERSION, PLURAL = "llmfailover.dev", "v1alpha1", "llmroutes"


@pytest.fixture
def namespace(real_cluster: RealCluster) -> Iterator[str]:
    name = f"r-{uuid.uuid4().hex[:8]}"
    real_cluster.add_namespace(name)
    yield name
    real_cluster.delete(group="", version="v1", plural="namespaces", namespace=None, name=name)


def kubectl(plane: ControlPlane, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(plane.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def dry_run(
    cluster: EmulatedCluster | RealCluster, namespace: str, spec: Any, name: str = "chat"
) -> tuple[int, str]:
    """Create an LLMRoute with server-side dry run: (HTTP status, the server's message). (The
    emulator creates it for real; it is deleted again.)"""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LLMRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    http = cluster.http if isinstance(cluster, RealCluster) else httpx.Client(base_url=cluster.url)
    collection = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    answer = http.post(collection, params={"dryRun": "All"}, json=body)
    if answer.status_code < 400 and not isinstance(cluster, RealCluster):
        http.delete(f"{collection}/{name}")
    message = answer.json().get("message", "") if answer.status_code >= 400 else ""
    return answer.status_code, message


@pytest.fixture
def any_namespace(cluster: EmulatedCluster | RealCluster) -> Iterator[str]:
    name = f"r-{uuid.uuid4().hex[:8]}"
    cluster.add_namespace(name)
    yield name
    cluster.delete(group="", version="v1", plural="namespaces", namespace=None, name=name)


# The schema's verdicts, on the real server and on the emulator (which must agree: it checks
# the same OpenAPI schema on every write; CEL rules are the real server's alone, below).
on_both = pytest.mark.parametrize("cluster", ["emulated", "real"], indirect=True, scope="session")


def test_the_crd_is_accepted_whole(real_cluster: RealCluster, control_plane: ControlPlane) -> None:
    """Structural, within the CEL cost budget, every pattern compiled by RE2: else no
    Established condition (the fixture waits for it) or a NonStructuralSchema one."""
    crd = real_cluster.get(
        group="apiextensions.k8s.io",
        version="v1",
        plural="customresourcedefinitions",
        namespace=None,
        name="llmroutes.llmfailover.dev",
    )
    assert crd is not None
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions.get("Established") == "True"
    assert conditions.get("NonStructuralSchema", "False") == "False"


@on_both
@pytest.mark.parametrize("spec", VALID_SPECS.values(), ids=VALID_SPECS.keys())
def test_valid_specs_are_accepted_by_the_server(
    cluster: EmulatedCluster | RealCluster, any_namespace: str, spec: dict[str, Any]
) -> None:
    status, message = dry_run(cluster, any_namespace, spec)
    assert status == 201, message


@on_both
@pytest.mark.parametrize("mutate", INVALID_SPECS.values(), ids=INVALID_SPECS.keys())
def test_invalid_specs_are_rejected_by_the_server_naming_the_field(
    cluster: EmulatedCluster | RealCluster, any_namespace: str, mutate: Patch
) -> None:
    obj = copy.deepcopy(CONTRACT_EXAMPLE)
    mutate(obj["spec"])
    status, message = dry_run(cluster, any_namespace, obj["spec"])
    assert status == 422, f"accepted: {obj['spec']}"
    # The server writes spec.providers[0].name where a Patch says providers.0.name.
    field = re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", f"spec.{mutate.path}")
    parent = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", field)
    assert field in message or f"{parent}:" in message, message


@pytest.mark.parametrize(("path", "rule"), CEL_CASES, ids=[f"{p}: {r[:40]}" for p, r in CEL_CASES])
def test_cel_rules_reject_with_the_messages_the_docs_give(
    real_cluster: RealCluster, namespace: str, path: str, rule: str
) -> None:
    valid, invalid, field = CEL_CASES[(path, rule)]
    for value in invalid:
        name, spec = place(path, value)
        status, message = dry_run(real_cluster, namespace, spec, name=name)
        assert status == 422, f"accepted: {value}"
        assert field in message, message
    for value in valid:
        name, spec = place(path, value)
        status, message = dry_run(real_cluster, namespace, spec, name=name)
        assert status == 201, message


def place(path: str, value: Any) -> tuple[str, dict[str, Any]]:
    """A route whose `path` (a schema path of a CEL rule) holds `value`."""
    spec = copy.deepcopy(CONTRACT_EXAMPLE["spec"])
    if path == "":
        return value["metadata"]["name"], value["spec"]
    if path == "spec.providers":
        spec["providers"] = value
    elif path == "spec.providers[]":
        spec["providers"] = [value]
    elif path == "spec.target.restart":
        spec["target"]["restart"] = value
    elif path == "spec.healthCheck":
        spec["healthCheck"] = value
    else:
        raise AssertionError(f"no placement for {path}")
    return "chat", spec


def test_kubectl_views_and_protobuf_writes(
    real_cluster: RealCluster, control_plane: ControlPlane
) -> None:
    namespace = f"r-{uuid.uuid4().hex[:8]}"
    kubectl(control_plane, "create", "namespace", namespace)  # protobuf, unlike kubectl apply
    kubectl(control_plane, "-n", namespace, "create", "secret", "generic", "openai",
            "--from-literal=api-key=sk-x")  # fmt: skip
    route = {**copy.deepcopy(CONTRACT_EXAMPLE), "metadata": {"name": "chat"}}
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(control_plane.kubeconfig), "-n", namespace, "apply",
         "-f", "-"],
        input=yaml.safe_dump(route),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = kubectl(control_plane, "-n", namespace, "get", "llmroute", "chat").stdout
    assert table.split()[:6] == ["NAME", "ACTIVE", "READY", "FAILED-OVER", "FAILOVERS", "AGE"]
    wide = kubectl(control_plane, "-n", namespace, "get", "llm", "-o", "wide").stdout
    assert "MESSAGE" in wide.splitlines()[0]
    assert "chat" in kubectl(control_plane, "get", "llmr", "-A").stdout  # a list, short name
    described = kubectl(control_plane, "-n", namespace, "describe", "llmroute", "chat").stdout
    assert "Providers:" in described
    explained = kubectl(control_plane, "explain", "llmroute.spec.providers.baseURL").stdout
    assert "OpenAI-compatible API" in explained
    kubectl(control_plane, "delete", "namespace", namespace, "--wait=false")


def server_dry_run(
    real: RealCluster, plane: ControlPlane, objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    """`kubectl apply --dry-run=server` of `objects` (prometheus-operator's kinds aside: their
    CRDs are not installed here); kubectl validates strictly, so an unknown field fails too."""
    objects = [o for o in objects if o["kind"] not in ("ServiceMonitor", "PrometheusRule")]
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    # A dry run creates nothing, so the namespaces the objects go to must exist for real.
    made = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    made |= {o["metadata"]["namespace"] for o in objects if o["metadata"].get("namespace")}
    made = {n for n in made if not real.exists("namespaces", n)}
    for namespace in made:
        real.add_namespace(namespace)
    try:
        done = kubectl(plane, "apply", "--dry-run=server", "-f", str(manifest), ok=False)
    finally:
        real.delete_namespaces(made)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(server dry run)") == len(objects), done.stdout


def test_deploy_manifests_pass_a_server_side_dry_run(
    real_cluster: RealCluster, control_plane: ControlPlane, tmp_path: Path
) -> None:
    """`kubectl apply -k deploy/` as the server would take it, deploy/overlays/monitoring (its
    prometheus-operator kinds aside), and every component as docs/install.md composes them."""
    server_dry_run(real_cluster, control_plane, kustomize(ROOT / "deploy"), tmp_path)
    monitoring = kustomize(ROOT / "deploy" / "overlays" / "monitoring")
    assert any(o["metadata"]["name"] == "llm-failover-dashboard" for o in monitoring)
    server_dry_run(real_cluster, control_plane, monitoring, tmp_path)
    overlay = kustomize(namespaced_kustomization(tmp_path))
    server_dry_run(real_cluster, control_plane, overlay, tmp_path)
    everything = tmp_path / "everything"
    everything.mkdir()
    components = [ROOT / "deploy" / c for c in ("components/proxy", "components/namespaced",
                                                "components/monitoring")]  # fmt: skip
    server_dry_run(
        real_cluster,
        control_plane,
        kustomize(user_kustomization(everything, *components)),
        tmp_path,
    )


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"namespaces": ["shop", "chat"]},
        {
            "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
            "dashboards": {"enabled": True},
            "proxy": {"httpsProxy": "http://proxy.example.com:3128", "noProxy": [".corp"]},
            "env": [{"name": "SSL_CERT_FILE", "value": "/etc/ssl/corp/ca.pem"}],
            "envFrom": [{"secretRef": {"name": "corp-env", "optional": True}}],
        },
    ],
    ids=["cluster-wide", "namespaced", "monitoring-proxy-env"],
)
def test_the_helm_chart_passes_a_server_side_dry_run(
    real_cluster: RealCluster, control_plane: ControlPlane, tmp_path: Path, values: dict[str, Any]
) -> None:
    """What `helm install` would send, CRD included, as the server takes it."""
    server_dry_run(real_cluster, control_plane, helm_render(values), tmp_path)


def test_every_example_passes_a_server_side_dry_run(
    real_cluster: RealCluster, control_plane: ControlPlane, tmp_path: Path
) -> None:
    """examples/ as users apply them: routes, their apps' Deployments, the migrations."""
    documents = [d.body for d in EXAMPLE_DOCUMENTS]
    assert any(d["kind"] == "LLMRoute" for d in documents)
    server_dry_run(real_cluster, control_plane, documents, tmp_path)


def test_deleting_a_route_collects_what_it_owns(real_cluster: RealCluster, namespace: str) -> None:
    real_cluster.apply(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "LLMRoute",
            "metadata": {"name": "chat", "namespace": namespace},
            "spec": CONTRACT_EXAMPLE["spec"],
        }
    )
    route = real_cluster.get(
        group=GROUP, version=VERSION, plural=PLURAL, namespace=namespace, name="chat"
    )
    assert route is not None
    owner = RouteRef(namespace, "chat", route["metadata"]["uid"]).owner_reference()
    for kind in ("ConfigMap", "Secret"):
        real_cluster.apply(
            {
                "apiVersion": "v1",
                "kind": kind,
                "metadata": {"name": "chat-llm", "namespace": namespace,
                             "ownerReferences": [owner]},
                "data": {"k": base64.b64encode(b"v").decode() if kind == "Secret" else "v"},
            }
        )  # fmt: skip
    real_cluster.delete(
        group=GROUP, version=VERSION, plural=PLURAL, namespace=namespace, name="chat"
    )
    for plural in ("configmaps", "secrets"):
        wait_for(
            lambda plural=plural: (
                real_cluster.get(  # type: ignore[misc]
                    group="", version="v1", plural=plural, namespace=namespace, name="chat-llm"
                )
                is None
            ),
            what=f"the garbage collector to delete the route's {plural}",
            timeout=60,
        )


async def test_a_restart_stamp_rolls_a_real_deployment(
    real_cluster: RealCluster, control_plane: ControlPlane, namespace: str
) -> None:
    """The operator's own client stamps the pod template; the deployment controller makes a
    new ReplicaSet (its pods stay Pending: there are no nodes)."""
    template = {
        "metadata": {"labels": {"app": "api"}},
        "spec": {"containers": [{"name": "api", "image": "app:1"}]},
    }
    real_cluster.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api", "namespace": namespace},
            "spec": {"selector": {"matchLabels": {"app": "api"}}, "template": template},
        }
    )

    def replica_sets() -> list[dict[str, Any]]:
        return real_cluster.objects(
            group="apps", version="v1", plural="replicasets", namespace=namespace
        )

    wait_for(lambda: len(replica_sets()) == 1, what="the first ReplicaSet", timeout=60)
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(control_plane.kubeconfig), client_configuration=configuration
    )
    kube = KubeClient(kubernetes.client.ApiClient(configuration))
    try:
        await kube.annotate_pod_template(
            namespace, "Deployment", "api", {"llmfailover.dev/route-revision": "abc123"}
        )
    finally:
        kube.close()
    wait_for(lambda: len(replica_sets()) == 2, what="a new ReplicaSet for the stamp", timeout=60)
    stamped = [
        rs
        for rs in replica_sets()
        if rs["spec"]["template"]["metadata"]
        .get("annotations", {})
        .get("llmfailover.dev/route-revision")
        == "abc123"
    ]
    assert len(stamped) == 1


# --- the operator on the real server: what the emulator cannot play ---------------------------

on_the_real_server = pytest.mark.parametrize("cluster", ["real"], indirect=True, scope="session")


@on_the_real_server
def test_an_api_server_restart_is_resumed_without_a_failover(
    env: Env, stand_ins: dict[str, StandInProvider], operator: OperatorProcess,
    control_plane: ControlPlane,
) -> None:  # fmt: skip
    """The server closes every watch when it stops: kopf re-lists when it is back, and the
    operator goes on from where it was (no failover, no write), then still fails over."""
    env.llm_route("chat", three_providers(stand_ins, env))
    routed_to(env, "openai")
    before = settled(env)
    writes = len(config_map_writes(env))
    control_plane.stop_apiserver()
    time.sleep(3)  # probes go on meanwhile; their status writes fail and are retried
    control_plane.start_apiserver()
    wait_for(lambda: env.status("chat").get("activeProvider") == "openai", what="status again")
    time.sleep(3)  # a few probe intervals on the new connections
    assert env.data("chat-llm") == before
    assert config_map_writes(env)[writes:] == []
    assert env.status("chat")["failoverCount"] == 0
    stand_ins["openai"].set(Behaviour.GEO_BLOCKED)
    routed_to(env, "qwen")
    assert env.status("chat")["failoverCount"] == 1


@on_the_real_server
def test_a_second_writer_meets_a_real_conflict_and_the_operator_converges(
    env: Env, stand_ins: dict[str, StandInProvider], real_cluster: RealCluster
) -> None:
    env.llm_route("chat", three_providers(stand_ins, env))
    routed_to(env, "openai")
    stale = env.config_map("chat-llm")
    assert stale is not None
    stand_ins["openai"].set(Behaviour.GEO_BLOCKED)
    wanted = routed_to(env, "qwen")  # the operator's write moved the resourceVersion on
    path = f"/api/v1/namespaces/{env.namespace}/configmaps/chat-llm"
    stale["data"]["LLM_PROVIDER"] = "hand-edit"
    refused = real_cluster.http.put(path, json=stale)
    assert refused.status_code == 409  # optimistic concurrency, which the emulator lacks
    fresh = env.config_map("chat-llm")
    assert fresh is not None
    fresh["data"]["LLM_PROVIDER"] = "hand-edit"
    assert real_cluster.http.put(path, json=fresh).status_code == 200
    wait_for(lambda: env.data("chat-llm") == wanted, what="the operator to restore it", timeout=10)
