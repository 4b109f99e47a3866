"""The Helm chart (deploy/helm/llm-failover) installs what kustomize's crds/ and deploy/ install.

Rendered offline with helm-python-sdk (Helm's own Go engine, bundled in the wheel; no helm binary):
with defaults it must equal `kubectl kustomize crds/` + `kubectl kustomize deploy/` (no monitoring:
it installs on a plain cluster), with the monitoring values on deploy/overlays/monitoring, and with
`namespaces` deploy/components/namespaced, object for object, once Helm's own labels are set aside.
The packaged chart (`helm package`, as `make chart` runs it) is checked file by file. So the RBAC
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
from test_deploy import user_kustomization

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


MONITORING_VALUES: dict[str, Any] = {
    "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    "dashboards": {"enabled": True},
}
MONITORING_KINDS = {"ServiceMonitor", "PrometheusRule", "ConfigMap"}


@needs_kubectl
def test_defaults_render_what_kustomize_renders() -> None:
    chart = render({"createNamespace": True})
    assert_same(chart, kustomize(ROOT / "crds") + kustomize(ROOT / "deploy"))
    validate(chart)
    # Without createNamespace (the default, for `helm install --create-namespace`) only that goes.
    assert {key(o) for o in chart} - {key(o) for o in render()} == {("Namespace", None, NAMESPACE)}


@needs_kubectl
def test_listed_namespaces_render_the_namespaced_overlay(tmp_path: Path) -> None:
    # The overlay is a kustomize Component over deploy/, taken by a kustomization outside deploy/.
    deploy = os.path.relpath(ROOT / "deploy", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [deploy], "components": [f"{deploy}/components/namespaced"]})
    )
    overlay = kustomize(tmp_path)
    deployment = next(o for o in overlay if o["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    namespaces = args[2::2]  # run --namespace A --namespace B
    assert namespaces
    chart = render({"createNamespace": True, "namespaces": namespaces})
    assert_same(chart, kustomize(ROOT / "crds") + overlay)
    validate(chart)


def test_defaults_render_no_monitoring() -> None:
    """A plain cluster takes the defaults: no prometheus-operator kind, no dashboard."""
    kinds = {o["kind"] for o in render()}
    assert not kinds & MONITORING_KINDS
    assert not [o for o in render() if o["apiVersion"].startswith("monitoring.coreos.com/")]


@needs_kubectl
def test_monitoring_values_render_the_monitoring_overlay() -> None:
    chart = render({"createNamespace": True, **MONITORING_VALUES})
    assert_same(chart, kustomize(ROOT / "crds") + kustomize(ROOT / "deploy/overlays/monitoring"))


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ({"metrics": {"serviceMonitor": {"enabled": True}}}, "ServiceMonitor"),
        ({"metrics": {"prometheusRule": {"enabled": True}}}, "PrometheusRule"),
        ({"dashboards": {"enabled": True}}, "ConfigMap"),
    ],
)
def test_each_monitoring_value_turns_on_its_object(values: dict[str, Any], kind: str) -> None:
    added = {key(o) for o in render(values)} - {key(o) for o in render()}
    expected = "llm-failover-dashboard" if kind == "ConfigMap" else "llm-failover"
    assert added == {(kind, NAMESPACE, expected)}


@needs_kubectl
def test_namespaced_with_monitoring_renders_both_components(tmp_path: Path) -> None:
    deploy = ROOT / "deploy"
    overlay = kustomize(
        user_kustomization(
            tmp_path, deploy / "components/namespaced", deploy / "components/monitoring"
        )
    )
    chart = render({"createNamespace": True, "namespaces": ["shop", "chat"], **MONITORING_VALUES})
    assert_same(chart, kustomize(ROOT / "crds") + overlay)


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
                    "serviceMonitor": {
                        "enabled": True,
                        "labels": {"release": "kube-prometheus-stack"},
                    },
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


# --- environment and proxy ---------------------------------------------------------------------

PROXY = "http://proxy.example.com:3128"
DIRECT = "$(KUBERNETES_SERVICE_HOST),.svc,.cluster.local,localhost,127.0.0.1"


def env_of(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = deployment_of(objects)["spec"]["template"]["spec"]["containers"][
        0
    ].get("env", [])
    return env


def test_defaults_set_no_proxy_and_no_extra_env() -> None:
    assert [e["name"] for e in env_of(render())] == ["POD_NAMESPACE"]
    assert "envFrom" not in deployment_of(render())["spec"]["template"]["spec"]["containers"][0]


def test_proxy_values_render_the_proxy_variables_and_keep_the_api_server_direct() -> None:
    objects = render(
        {
            "proxy": {"httpsProxy": PROXY, "httpProxy": PROXY, "noProxy": ["10.0.0.0/8", ".corp"]},
            "env": [{"name": "SSL_CERT_FILE", "value": "/etc/ssl/corp/ca.pem"}],
            "envFrom": [{"secretRef": {"name": "corp-env"}}],
        }
    )
    validate(objects)
    env = env_of(objects)
    assert env[0]["name"] == "POD_NAMESPACE"
    values = {e["name"]: e.get("value") for e in env}
    assert values["HTTPS_PROXY"] == values["HTTP_PROXY"] == PROXY
    assert values["NO_PROXY"] == f"{DIRECT},10.0.0.0/8,.corp"
    # The lower-case twins follow the upper-case ones: the kubelet expands $(NAME) from the
    # entries before it, so each must come after the one it names.
    names = [e["name"] for e in env]
    for lower in ("https_proxy", "http_proxy", "no_proxy"):
        assert values[lower] == f"$({lower.upper()})"
        assert names.index(lower) > names.index(lower.upper())
    assert names[-1] == "SSL_CERT_FILE"  # the user's come last: they may refer to the chart's
    container = deployment_of(objects)["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "corp-env"}}]


def test_the_proxy_env_is_the_kustomize_components() -> None:
    """The chart and deploy/components/proxy set the same variables to the same values."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed: it renders deploy/components/proxy")
    import tempfile

    with tempfile.TemporaryDirectory() as where:
        objects = kustomize(user_kustomization(Path(where), ROOT / "deploy/components/proxy"))
    kustomized = {e["name"]: e for e in env_of(objects)}
    charted = {
        e["name"]: e for e in env_of(render({"proxy": {"httpsProxy": PROXY, "httpProxy": PROXY}}))
    }
    assert charted == kustomized


def test_only_an_https_proxy_and_a_string_no_proxy() -> None:
    env = env_of(render({"proxy": {"httpsProxy": PROXY, "noProxy": " 10.1.2.3 , .corp,"}}))
    values = {e["name"]: e.get("value") for e in env}
    assert "HTTP_PROXY" not in values
    assert "http_proxy" not in values
    assert values["NO_PROXY"] == f"{DIRECT},10.1.2.3,.corp"


def test_env_that_cannot_work_fails_the_render() -> None:
    with pytest.raises(helm.errors.HelmRenderError, match=r"proxy\.noProxy needs"):
        render({"proxy": {"noProxy": [".corp"]}})
    with pytest.raises(helm.errors.HelmRenderError, match="env sets HTTPS_PROXY"):
        render({"proxy": {"httpsProxy": PROXY}, "env": [{"name": "HTTPS_PROXY", "value": "x"}]})
    with pytest.raises(helm.errors.HelmRenderError, match="env sets POD_NAMESPACE"):
        render({"env": [{"name": "POD_NAMESPACE", "value": "x"}]})


# --- real files, and the packaged chart ---------------------------------------------------------

COPIES = {
    "crds/llmroutes.yaml": CRD,
    "files/llm-failover-rules.yaml": ROOT / "deploy/prometheus/llm-failover-rules.yaml",
    "files/llm-failover.json": ROOT / "deploy/grafana/llm-failover.json",
}
REGENERATE = {
    "crds/llmroutes.yaml": "make crds",
    "files/llm-failover-rules.yaml": "python deploy/prometheus/generate_prometheusrule.py",
    "files/llm-failover.json": "python deploy/grafana/dashboard.py",
}


@pytest.mark.parametrize("inside", sorted(COPIES))
def test_the_charts_copies_are_real_files_equal_to_their_sources(inside: str) -> None:
    copy_path = CHART / inside
    assert not copy_path.is_symlink(), f"{inside} is a symlink: a packaged chart cannot carry it"
    assert copy_path.read_bytes() == COPIES[inside].read_bytes(), (
        f"{inside} differs from {COPIES[inside].relative_to(ROOT)}: run {REGENERATE[inside]}"
    )


def chart_files() -> set[str]:
    return {
        str(p.relative_to(CHART.parent))
        for p in CHART.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`helm package deploy/helm/llm-failover`, as `make chart` runs it."""
    archive = Path(helm.package(str(CHART), destination=str(tmp_path_factory.mktemp("dist"))))
    assert archive.name == "llm-failover-0.1.0.tgz"
    return archive


def test_the_package_holds_the_chart_as_real_files(packaged: Path) -> None:
    import tarfile

    with tarfile.open(packaged) as tar:
        members = tar.getmembers()
        assert [m.name for m in members if not (m.isfile() or m.isdir())] == []  # no links
        names = {m.name for m in members if m.isfile()}
        assert names == chart_files()
        assert {"llm-failover/Chart.yaml", "llm-failover/values.yaml"} <= names
        assert any(n.startswith("llm-failover/templates/") for n in names)
        for inside, source in COPIES.items():
            extracted = tar.extractfile(f"llm-failover/{inside}")
            assert extracted is not None
            assert extracted.read() == source.read_bytes(), inside


def test_the_package_renders_as_the_directory(packaged: Path) -> None:
    with helm.Chart.load_archive(packaged.read_bytes()) as chart:
        assert chart.version == "0.1.0"
        manifests = chart.render({}, name=RELEASE, namespace=NAMESPACE, is_install=True)
        crds = [yaml.safe_load(c["data"]) for c in chart.crds]
    rendered = [
        doc
        for path, text in sorted(manifests.items())
        if path.endswith((".yaml", ".yml"))
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    assert crds + rendered == render()
    assert helm.lint(str(packaged))["errors"] == []
