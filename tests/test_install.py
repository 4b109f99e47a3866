"""The install paths of docs/install.md, for real, on a real API server without prometheus-operator.

Each path is installed as the docs say (not a dry run), on a control plane of its own (etcd,
kube-apiserver, kube-controller-manager from tests/controlplane/, built once and cached; its
garbage collector and namespace controller do the deleting): a route and what it owns are
created, the operator is uninstalled as the docs say, and what the table "What install, upgrade
and uninstall do" of docs/install.md says is kept is checked to be there (the CRD, the LLMRoute,
the ConfigMap and Secret it owns; with Helm, the namespace and the Lease), and what it says is gone
to be gone. Then the CRD is removed, the separate destructive step, and the garbage collector
deletes the ConfigMap and Secret the route owned.

- kustomize: `kubectl apply --server-side -k crds/`, `kubectl apply -k deploy/`, an upgrade
  (both again), `kubectl delete -k deploy/`, `kubectl delete -k crds/`;
- Helm: the packaged chart (`helm package`, as `make chart`) installed with helm-python-sdk (Helm 4
  in-process, the same code as `helm install -n llm-failover --create-namespace`), the CRD applied
  server-side as docs/upgrading.md says before `helm upgrade`, `helm uninstall`, then the CRD.

The control plane has no nodes: the operator's pods are created and stay Pending. What is tested
is what the API server keeps and deletes.
"""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import CRD, ROOT, kustomize
from controlplane import ControlPlane, ControlPlaneError, RealCluster

helm = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed (.[test])")

pytestmark = pytest.mark.timeout(300)

GROUP, VERSION, PLURAL = "llmfailover.dev", "v1alpha1", "llmroutes"
CRD_NAME = "llmroutes.llmfailover.dev"
OPERATOR_NS, APP_NS = "llm-failover", "shop"
CHART = ROOT / "deploy" / "helm" / "llm-failover"
# The operator's cluster-scoped objects, named alike on both paths.
CLUSTER_RBAC = (("clusterroles", "llm-failover"), ("clusterrolebindings", "llm-failover"))
# Its namespaced objects: (group, version, plural, name).
OPERATOR_OBJECTS = (
    ("apps", "v1", "deployments", "llm-failover"),
    ("", "v1", "serviceaccounts", "llm-failover"),
    ("", "v1", "services", "llm-failover"),
    ("policy", "v1", "poddisruptionbudgets", "llm-failover"),
    ("rbac.authorization.k8s.io", "v1", "roles", "llm-failover-leader-election"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "llm-failover-leader-election"),
)
ROUTE_SPEC = {
    "providers": [{"name": "qwen", "preset": "dashscope", "model": "qwen-max"}],
}


@pytest.fixture
def plane(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    """A fresh control plane of its own (the binary the shared one was built from): these tests
    delete the CRD, the operator's namespace and its ClusterRole, which other tests rely on."""
    try:
        own = ControlPlane(control_plane.binary).start()
    except ControlPlaneError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield own
    own.remove()


@pytest.fixture
def cluster(plane: ControlPlane) -> Iterator[RealCluster]:
    real = RealCluster(plane)
    yield real
    real.close()


def kubectl(plane: ControlPlane, *args: str) -> str:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(plane.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def until(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.3)


def get(real: RealCluster, group: str, version: str, plural: str, ns: str | None, name: str) -> Any:
    return real.get(group=group, version=version, plural=plural, namespace=ns, name=name)


def crd_established(real: RealCluster) -> bool:
    crd = get(real, "apiextensions.k8s.io", "v1", "customresourcedefinitions", None, CRD_NAME)
    conditions = (crd or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def a_route_and_what_it_owns(real: RealCluster) -> None:
    """An LLMRoute, the routing ConfigMap and key Secret it owns (as the operator writes them:
    no pod runs here), and the operator's Lease (as its leader creates it)."""
    real.add_namespace(APP_NS)
    real.apply(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "LLMRoute",
            "metadata": {"name": "chat", "namespace": APP_NS},
            "spec": ROUTE_SPEC,
        }
    )
    route = get(real, GROUP, VERSION, PLURAL, APP_NS, "chat")
    owner = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LLMRoute",
        "name": "chat",
        "uid": route["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    meta = {"namespace": APP_NS, "ownerReferences": [owner]}
    real.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "chat-llm", **meta},
            "data": {"LLM_PROVIDER": "qwen"},
        }
    )
    real.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "chat-llm-key", **meta},
            "data": {"LLM_API_KEY": base64.b64encode(b"sk-test").decode()},
        }
    )
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "llm-failover", "namespace": OPERATOR_NS},
        "spec": {"holderIdentity": "llm-failover-0_abc", "leaseDurationSeconds": 15},
    }
    answer = real.http.post(
        f"/apis/coordination.k8s.io/v1/namespaces/{OPERATOR_NS}/leases", json=lease
    )
    assert answer.status_code == 201, answer.text


def routing_is_kept(real: RealCluster) -> None:
    """What every uninstall of the operator keeps: what apps read."""
    assert crd_established(real)
    assert get(real, GROUP, VERSION, PLURAL, APP_NS, "chat") is not None
    assert get(real, "", "v1", "configmaps", APP_NS, "chat-llm")["data"] == {"LLM_PROVIDER": "qwen"}
    assert get(real, "", "v1", "secrets", APP_NS, "chat-llm-key") is not None


def operator_is_gone(real: RealCluster) -> None:
    for plural, name in CLUSTER_RBAC:
        until(
            lambda p=plural, n=name: (
                get(real, "rbac.authorization.k8s.io", "v1", p, None, n) is None
            ),  # type: ignore[misc]
            f"{plural}/{name} deleted",
        )
    for group, version, plural, name in OPERATOR_OBJECTS:
        until(
            lambda g=group, v=version, p=plural, n=name: get(real, g, v, p, OPERATOR_NS, n) is None,  # type: ignore[misc]
            f"{plural}/{name} deleted",
        )


def removing_the_crd_deletes_every_route_and_what_they_own(
    plane: ControlPlane, real: RealCluster
) -> None:
    """docs/install.md's destructive step: the routes first, while their type is still served, so
    that the garbage collector can see them gone and delete what they own; then the CRD.

    (Deleting the CRD alone deletes every LLMRoute too, but whether the garbage collector then
    deletes their ConfigMaps and Secrets is a race with the type's removal: when the type goes
    first, it keeps them, their owner unresolvable, until the CRD is installed again and it can
    see the owner gone, kubernetes/kubernetes#102641. Seen here: they stayed.)"""
    kubectl(plane, "delete", "llmroutes", "--all", "--all-namespaces", "--timeout=120s")
    until(
        lambda: get(real, "", "v1", "configmaps", APP_NS, "chat-llm") is None, "ConfigMap collected"
    )
    until(
        lambda: get(real, "", "v1", "secrets", APP_NS, "chat-llm-key") is None, "Secret collected"
    )
    kubectl(plane, "delete", "-k", str(ROOT / "crds"), "--timeout=120s")
    until(lambda: get(real, "apiextensions.k8s.io", "v1", "customresourcedefinitions", None,
                      CRD_NAME) is None, "the CRD deleted")  # fmt: skip
    assert real.exists("namespaces", APP_NS)  # the app's namespace itself stays


def test_kustomize_install_upgrade_uninstall(plane: ControlPlane, cluster: RealCluster) -> None:
    # Install: the CRD first, then the operator; the base applies with no error on a cluster
    # without prometheus-operator.
    kubectl(plane, "apply", "--server-side", "-k", str(ROOT / "crds"))
    kubectl(plane, "wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD_NAME}")
    applied = kubectl(plane, "apply", "-k", str(ROOT / "deploy"))
    assert applied.count(" created") == len(kustomize(ROOT / "deploy")), applied
    operator_is_there(cluster)
    a_route_and_what_it_owns(cluster)

    # Upgrade, as docs/upgrading.md says: the CRD, then deploy/, both again.
    kubectl(plane, "apply", "--server-side", "-k", str(ROOT / "crds"))
    kubectl(plane, "apply", "-k", str(ROOT / "deploy"))
    routing_is_kept(cluster)

    # Uninstall: the operator goes, its namespace (and the Lease in it) too; the routing stays.
    kubectl(plane, "delete", "-k", str(ROOT / "deploy"), "--timeout=120s")
    operator_is_gone(cluster)
    until(lambda: not cluster.exists("namespaces", OPERATOR_NS), "namespace llm-failover deleted")
    routing_is_kept(cluster)

    removing_the_crd_deletes_every_route_and_what_they_own(plane, cluster)


@pytest.fixture
def packaged(tmp_path: Path) -> Path:
    """The chart as `make chart` packages it, unpacked; less its kubeVersion constraint, which the
    test control plane cannot meet: built from the Go modules without the release's version
    stamp, it reports "v0.0.0-master", and Helm has no install flag to set the version it checks.
    That one line is the only change (asserted)."""
    archive = Path(helm.package(str(CHART), destination=str(tmp_path)))
    helm.expand(str(tmp_path / "unpacked"), str(archive))
    unpacked = tmp_path / "unpacked" / "llm-failover"
    chart_yaml = unpacked / "Chart.yaml"
    lines = chart_yaml.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("kubeVersion:")]
    assert len(lines) - len(kept) == 1
    chart_yaml.write_text("".join(kept))
    assert (unpacked / "crds" / "llmroutes.yaml").read_bytes() == CRD.read_bytes()
    return unpacked


def operator_is_there(real: RealCluster) -> None:
    for plural, name in CLUSTER_RBAC:
        assert get(real, "rbac.authorization.k8s.io", "v1", plural, None, name) is not None
    for group, version, plural, name in OPERATOR_OBJECTS:
        assert get(real, group, version, plural, OPERATOR_NS, name) is not None, plural


def test_helm_install_upgrade_uninstall(
    plane: ControlPlane, cluster: RealCluster, packaged: Path, tmp_path: Path
) -> None:
    config = helm.Config(kubeconfig_path=str(plane.kubeconfig), namespace=OPERATOR_NS)
    try:
        # helm install llm-failover <chart> -n llm-failover --create-namespace: the defaults
        # install on a cluster without prometheus-operator (the server would refuse its kinds).
        release = config.install(str(packaged), "llm-failover", create_namespace=True, timeout=120)
        assert (release["status"], release["revision"]) == ("deployed", 1), release
        until(lambda: crd_established(cluster), "the CRD (from the chart's crds/) established")
        operator_is_there(cluster)
        a_route_and_what_it_owns(cluster)

        # Upgrade, as docs/upgrading.md says: Helm never upgrades crds/, so the new CRD is applied
        # first, server-side. Helm 4 applied it server-side as its own field manager, so a changed
        # field conflicts until kubectl takes it over with --force-conflicts.
        newer = tmp_path / "llmroutes.yaml"
        text = (packaged / "crds" / "llmroutes.yaml").read_text()
        newer.write_text(text.replace("OpenAI-compatible API", "OpenAI-compatible HTTP API", 1))
        assert newer.read_text() != text
        apply = ["kubectl", "--kubeconfig", str(plane.kubeconfig), "apply", "--server-side"]
        refused = subprocess.run([*apply, "-f", str(newer)], capture_output=True, text=True,
                                 timeout=60, check=False)  # fmt: skip
        assert refused.returncode != 0
        assert "conflict" in refused.stderr, refused.stderr
        kubectl(plane, "apply", "--server-side", "--force-conflicts", "-f", str(newer))
        upgraded = config.upgrade(str(packaged), "llm-failover", {"replicaCount": 1}, timeout=120)
        assert (upgraded["status"], upgraded["revision"]) == ("deployed", 2), upgraded
        crd = get(
            cluster, "apiextensions.k8s.io", "v1", "customresourcedefinitions", None, CRD_NAME
        )
        assert "OpenAI-compatible HTTP API" in str(crd)  # the upgrade left the CRD as applied
        routing_is_kept(cluster)

        # Uninstall: the release's objects go; the CRD, the routing, the namespace made by
        # --create-namespace and the Lease in it stay.
        config.uninstall("llm-failover", timeout=120)
        operator_is_gone(cluster)
        routing_is_kept(cluster)
        assert cluster.exists("namespaces", OPERATOR_NS)
        lease = cluster.get(group="coordination.k8s.io", version="v1", plural="leases",
                            namespace=OPERATOR_NS, name="llm-failover")  # fmt: skip
        assert lease is not None
        # `kubectl delete namespace llm-failover`, as docs/install.md says, takes the Lease.
        kubectl(plane, "delete", "namespace", OPERATOR_NS, "--timeout=120s")
        until(lambda: not cluster.exists("namespaces", OPERATOR_NS), "namespace deleted")
    finally:
        config.close()

    removing_the_crd_deletes_every_route_and_what_they_own(plane, cluster)
