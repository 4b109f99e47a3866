"""The Helm chart (deploy/helm/llm-failover) installs what kustomize's deploy/ installs.

Rendered offline with helm-python-sdk (Helm's own Go engine, bundled in the wheel; no helm binary):
with defaults it must equal `kubectl kustomize deploy/`, and with `namespaces` it must equal
deploy/overlays/namespaced, object for object, once Helm's own labels are set aside. So the RBAC
that tests/test_rbac.py proves exact for kustomize is exact for the chart too. Every object must
also pass the Kubernetes OpenAPI schema (kubernetes-validate).
"""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from conftest import CRD, ROOT, kustomize

helm = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed (.[test])")

CHART = ROOT / "deploy" / "helm" / "llm-failover"
RELEASE, NAMESPACE = "llm-failover", "llm-failover"
HELM_LABELS = frozenset(
    {
        "app.kubernetes.io/instance",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/version",
        "helm.sh/chart",
    }
)
Key = tuple[str, str | None, str]  # (kind, namespace, name)
needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl not installed: it renders deploy/"
)


def render(
    values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE
) -> list[dict[str, Any]]:
    """`helm template` of the chart, CRDs included (as `helm install` applies them first)."""
    with helm.Chart.load(str(CHART)) as chart:
        manifests: dict[str, str] = chart.render(
            values or {}, name=name, namespace=namespace, is_install=True
        )
        texts = [crd["data"] for crd in chart.crds]
    texts += [text for path, text in sorted(manifests.items()) if path.endswith((".yaml", ".yml"))]
    return [doc for text in texts for doc in yaml.safe_load_all(text) if doc]


def key(obj: dict[str, Any]) -> Key:
    return (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])


def by_key(objects: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    found = {key(o): o for o in objects}
    assert len(found) == len(objects), "two objects with the same kind, namespace and name"
    return found


def without_helm_labels(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    labels = obj["metadata"].get("labels") or {}
    obj["metadata"]["labels"] = {k: v for k, v in labels.items() if k not in HELM_LABELS}
    return obj


def assert_same(chart: list[dict[str, Any]], kustomized: list[dict[str, Any]]) -> None:
    ours, theirs = by_key(chart), by_key(kustomized)
    assert sorted(ours, key=repr) == sorted(theirs, key=repr)
    for k, theirs_obj in theirs.items():
        ours_obj = without_helm_labels(ours[k])
        if k[0] == "CustomResourceDefinition":
            # Helm applies crds/ as it is: kustomize's common labels cannot reach it.
            ours_obj["metadata"]["labels"] = theirs_obj["metadata"]["labels"] = {}
        assert ours_obj == theirs_obj, f"{k} differs from kustomize's"


def validate(objects: list[dict[str, Any]]) -> None:
    version = kubernetes_validate.latest_version()
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # prometheus-operator's kinds: no schema in kubernetes-validate
        kubernetes_validate.validate(obj, version, strict=True)


def test_chart_lints_clean() -> None:
    result = helm.lint(str(CHART))
    assert result["errors"] == []
    assert [m for m in result["messages"] if m["severity"] > 1] == []  # 1 is INFO


def test_the_crd_is_the_single_crd_file() -> None:
    (crd,) = [o for o in render() if o["kind"] == "CustomResourceDefinition"]
    assert crd == yaml.safe_load(CRD.read_text(encoding="utf-8"))


@needs_kubectl
def test_defaults_render_what_kustomize_renders() -> None:
    chart = render({"createNamespace": True})
    assert_same(chart, kustomize(ROOT / "deploy"))
    validate(chart)
    # Without createNamespace (the default, for `helm install --create-namespace`) only that goes.
    assert {key(o) for o in chart} - {key(o) for o in render()} == {("Namespace", None, NAMESPACE)}


@needs_kubectl
def test_listed_namespaces_render_the_namespaced_overlay(tmp_path: Path) -> None:
    # The overlay is a kustomize Component over deploy/, taken by a kustomization outside deploy/.
    deploy = os.path.relpath(ROOT / "deploy", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [deploy], "components": [f"{deploy}/overlays/namespaced"]})
    )
    overlay = kustomize(tmp_path)
    deployment = next(o for o in overlay if o["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    namespaces = args[2::2]  # run --namespace A --namespace B
    assert namespaces
    chart = render({"createNamespace": True, "namespaces": namespaces})
    assert_same(chart, overlay)
    validate(chart)


def test_one_namespace() -> None:
    objects = render({"namespaces": ["shop"]})
    validate(objects)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "run",
        "--namespace",
        "shop",
    ]
    roles = [o for o in objects if o["kind"] in ("Role", "RoleBinding")]
    assert sorted(key(o) for o in roles) == [
        ("Role", "shop", "llm-failover"),
        ("RoleBinding", "shop", "llm-failover"),
    ]
    binding = next(o for o in roles if o["kind"] == "RoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "llm-failover", "namespace": NAMESPACE}
    ]
    (cluster_role,) = [o for o in objects if o["kind"] == "ClusterRole"]
    cluster_wide = {r for rule in cluster_role["rules"] for r in rule["resources"]}
    assert cluster_wide == {"customresourcedefinitions", "namespaces"}  # no Secrets cluster-wide


def test_values_reach_the_objects() -> None:
    objects = by_key(
        render(
            {
                "image": {"repository": "registry.example.com/llmf", "tag": "0.2.0"},
                "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}},
                "metrics": {
                    "port": 9090,
                    "serviceMonitor": {"labels": {"release": "kube-prometheus-stack"}},
                    "prometheusRule": {"enabled": False},
                },
                "dashboards": {"enabled": False},
            },
            name="prod",
            namespace="ops",
        )
    )
    container = objects["Deployment", "ops", "prod-llm-failover"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["image"] == "registry.example.com/llmf:0.2.0"
    assert container["resources"]["requests"] == {"cpu": "10m", "memory": "64Mi"}
    assert container["args"] == ["run", "--metrics-port", "9090"]
    assert container["ports"][0] == {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}
    assert objects["Service", "ops", "prod-llm-failover"]["spec"]["ports"][0]["port"] == 9090
    monitor = objects["ServiceMonitor", "ops", "prod-llm-failover"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    binding = objects["ClusterRoleBinding", None, "prod-llm-failover"]
    assert binding["subjects"][0]["namespace"] == "ops"
    kinds = {k[0] for k in objects}
    assert "PrometheusRule" not in kinds
    assert "ConfigMap" not in kinds
    assert "Namespace" not in kinds
    validate(list(objects.values()))
