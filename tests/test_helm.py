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
        ("Role", NAMESPACE, "llm-failover-leader-election"),  # the Lease, in the release's
        ("Role", "shop", "llm-failover"),
        ("RoleBinding", NAMESPACE, "llm-failover-leader-election"),
        ("RoleBinding", "shop", "llm-failover"),
    ]
    binding = next(o for o in roles if o["kind"] == "RoleBinding" and key(o)[1] == "shop")
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
    # The Lease is named like the release's other objects (two releases, two leaders).
    assert container["args"] == [
        "run",
        "--metrics-port",
        "9090",
        "--leader-elect-resource-name",
        "prod-llm-failover",
    ]
    assert container["ports"][0] == {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}
    assert objects["Service", "ops", "prod-llm-failover"]["spec"]["ports"][0]["port"] == 9090
    monitor = objects["ServiceMonitor", "ops", "prod-llm-failover"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    binding = objects["ClusterRoleBinding", None, "prod-llm-failover"]
    assert binding["subjects"][0]["namespace"] == "ops"
    lease_role = objects["Role", "ops", "prod-llm-failover-leader-election"]
    assert lease_role["rules"][0]["resourceNames"] == ["prod-llm-failover"]
    lease_binding = objects["RoleBinding", "ops", "prod-llm-failover-leader-election"]
    assert lease_binding["roleRef"]["name"] == "prod-llm-failover-leader-election"
    assert lease_binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "prod-llm-failover", "namespace": "ops"}
    ]
    kinds = {k[0] for k in objects}
    assert "PrometheusRule" not in kinds
    assert "ConfigMap" not in kinds
    assert "Namespace" not in kinds
    validate(list(objects.values()))


# --- replicas and leader election ----------------------------------------------------------------

LEASE_ROLE = "llm-failover-leader-election"


def deployment_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    return deployment


def args_of(objects: list[dict[str, Any]]) -> list[str]:
    args: list[str] = deployment_of(objects)["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def run_args(args: list[str]) -> Any:
    """`args` as the operator's own `llm-failover` parser reads them."""
    from llm_failover.cli import _parser

    return _parser().parse_args(args)


def test_replica_count_and_leader_election_timings_reach_the_deployment() -> None:
    objects = render(
        {
            "replicaCount": 3,
            "leaderElection": {
                "leaseDurationSeconds": 30,
                "renewDeadlineSeconds": 20,
                "retryPeriodSeconds": 4,
            },
        }
    )
    validate(objects)
    spec = deployment_of(objects)["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["type"] == "RollingUpdate"
    args = args_of(objects)
    assert args == [
        "run",
        *("--leader-elect-lease-duration", "30"),
        *("--leader-elect-renew-deadline", "20"),
        *("--leader-elect-retry-period", "4"),
    ]
    parsed = run_args(args)
    assert parsed.leader_elect is True
    assert (
        parsed.leader_elect_lease_duration,
        parsed.leader_elect_renew_deadline,
        parsed.leader_elect_retry_period,
    ) == (30, 20, 4)
    # Defaults add no flag: the default render's args are kustomize's, ["run"].
    assert args_of(render()) == ["run"]
    assert run_args(["run"]).leader_elect is True


def test_the_lease_name_follows_the_release() -> None:
    objects = by_key(render(name="prod", namespace="ops"))
    parsed = run_args(args_of(list(objects.values())))
    assert parsed.leader_elect_resource_name == "prod-llm-failover"
    role = objects["Role", "ops", f"prod-{LEASE_ROLE}"]
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["prod-llm-failover"],
            "verbs": ["get", "update"],
        },
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    ]
    # Only that Role reaches a Lease: nothing cluster-wide.
    (cluster_role,) = [o for o in objects.values() if o["kind"] == "ClusterRole"]
    assert not [r for r in cluster_role["rules"] if "leases" in r["resources"]]


def test_leader_election_off_runs_one_replica_without_the_lease_role() -> None:
    objects = render({"replicaCount": 1, "leaderElection": {"enabled": False}})
    validate(objects)
    deployment = deployment_of(objects)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # never two at once
    assert args_of(objects) == ["run", "--leader-elect=false"]
    assert run_args(args_of(objects)).leader_elect is False
    assert "env" not in deployment["spec"]["template"]["spec"]["containers"][0]
    assert [key(o) for o in objects if o["kind"] in ("Role", "RoleBinding")] == []


def test_several_replicas_need_leader_election() -> None:
    with pytest.raises(helm.errors.HelmRenderError, match="needs leaderElection"):
        render({"leaderElection": {"enabled": False}})  # replicaCount 2 by default


def test_pod_disruption_budget_toggle() -> None:
    (pdb,) = [o for o in render() if o["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == deployment_of(render())["spec"]["selector"]
    (pdb,) = [
        o
        for o in render({"replicaCount": 4, "podDisruptionBudget": {"maxUnavailable": "50%"}})
        if o["kind"] == "PodDisruptionBudget"
    ]
    assert pdb["spec"]["maxUnavailable"] == "50%"
    objects = render({"podDisruptionBudget": {"enabled": False}})
    assert "PodDisruptionBudget" not in {o["kind"] for o in objects}


def test_affinity_preset_and_override() -> None:
    def affinity(values: dict[str, Any]) -> Any:
        return deployment_of(render(values))["spec"]["template"]["spec"].get("affinity")

    # The preset follows the selector labels (nameOverride included).
    deployment = deployment_of(render({"nameOverride": "llmf"}))
    (term,) = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["podAffinityTerm"]["labelSelector"] == deployment["spec"]["selector"]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"]["app.kubernetes.io/name"] == (
        "llmf"
    )
    assert affinity({"podAntiAffinityPreset": ""}) is None
    own = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ops"]}]}
                ]
            }
        }
    }
    assert affinity({"affinity": own}) == own  # replaces the preset
    with pytest.raises(helm.errors.HelmRenderError, match="podAntiAffinityPreset"):
        render({"podAntiAffinityPreset": "hard"})


# --- traffic signals and probe backoff (docs/signals.md) -------------------------------------------


def test_signal_values_reach_the_deployment_as_flags_and_mounted_secrets() -> None:
    objects = render(
        {
            "probeBackoffMax": 600,
            "signals": {
                "prometheusUrl": "http://prometheus-operated.monitoring.svc:9090",
                "prometheusTokenSecret": {"name": "prometheus-reader", "key": "bearer"},
                "interval": 30,
                "alertmanagerTokenSecret": {"name": "llm-failover-alertmanager"},
            },
        }
    )
    validate(objects)
    parsed = run_args(args_of(objects))
    assert parsed.probe_backoff_max == 600
    assert parsed.prometheus_url == "http://prometheus-operated.monitoring.svc:9090"
    assert parsed.signal_interval == 30
    pod = deployment_of(objects)["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for name, flag, secret, key in (
        ("prometheus-token", parsed.prometheus_token_file, "prometheus-reader", "bearer"),
        (
            "alertmanager-token",
            parsed.alertmanager_token_file,
            "llm-failover-alertmanager",
            "token",
        ),
    ):
        assert mounts[name]["readOnly"] is True
        # The flag names the file the Secret's key is mounted as.
        assert flag == f"{mounts[name]['mountPath']}/token"
        assert volumes[name]["secret"]["secretName"] == secret
        assert volumes[name]["secret"]["items"] == [{"key": key, "path": "token"}]
    # The root filesystem stays read-only: the mounts are the only new paths.
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_a_prometheus_token_file_already_in_the_pod_mounts_nothing() -> None:
    token = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    objects = render(
        {"signals": {"prometheusUrl": "http://thanos:9090", "prometheusTokenFile": token}}
    )
    parsed = run_args(args_of(objects))
    assert parsed.prometheus_token_file == token
    assert parsed.alertmanager_token_file is None
    assert parsed.signal_interval == 15  # the default: no flag
    pod = deployment_of(objects)["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]


def test_signal_values_that_cannot_work_fail_the_render() -> None:
    with pytest.raises(helm.errors.HelmRenderError, match="set one, not both"):
        render(
            {
                "signals": {
                    "prometheusUrl": "http://p:9090",
                    "prometheusTokenFile": "/t",
                    "prometheusTokenSecret": {"name": "s"},
                }
            }
        )
    with pytest.raises(helm.errors.HelmRenderError, match=r"needs signals\.prometheusUrl"):
        render({"signals": {"prometheusTokenSecret": {"name": "s"}}})
