"""The operator installed from deploy/ in a real cluster (kind, k3d, ...) fails over for real.

`make e2e` with KUBECONFIG pointing at a throwaway cluster whose nodes already have the operator
image (README "Real-cluster tests"). It installs as docs/install.md says: the CRD
(`kubectl apply --server-side -k crds/`), then deploy/ with kustomize (image overridden by
LLMFAILOVER_E2E_IMAGE; with deploy/components/monitoring when the cluster has prometheus-operator),
runs stand-in providers in a pod built from the same image, creates key Secrets and an LLMRoute,
geo-blocks the first provider and checks the routing ConfigMap, the LLMRoute's status, its Events
and the operator's metrics. Without a reachable cluster it stops at once, exit status 2, with one
line saying why (the `cluster` fixture).

Clean-up deletes the test namespace, then the operator (`kubectl delete -k` of what it applied),
and keeps the CRD and any other LLMRoute of the cluster, as an uninstall does. Set
LLMFAILOVER_E2E_DELETE_CRD=1 to remove the CRD too (every LLMRoute of the cluster first, then the
CRD: docs/install.md's destructive step), LLMFAILOVER_E2E_KEEP=1 to leave it all in place.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ROOT, wait_for

DEFAULT_IMAGE = "ghcr.io/llm-failover/llm-failover:0.1.0"
IMAGE = os.environ.get("LLMFAILOVER_E2E_IMAGE", DEFAULT_IMAGE)
KEEP = os.environ.get("LLMFAILOVER_E2E_KEEP", "") not in ("", "0")
DELETE_CRD = os.environ.get("LLMFAILOVER_E2E_DELETE_CRD", "") not in ("", "0")
NO_CLUSTER = (
    "no Kubernetes cluster reachable through KUBECONFIG: "
    "start kind or k3d (see README 'Real-cluster tests')"
)
NO_CLUSTER_EXIT = 2  # make e2e's exit status when no cluster answers
KEYS = {"openai": "sk-e2e-openai-0001", "qwen": "sk-e2e-qwen-0002"}

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def kubectl(*args: str, stdin: str | None = None, timeout: float = 120, check: bool = True) -> str:
    result = subprocess.run(
        ["kubectl", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def kubectl_json(*args: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(kubectl(*args, "-o", "json"))
    return loaded


def image_override(image: str) -> dict[str, str]:
    """A kustomize `images:` entry replacing the operator image with `image`."""
    entry = {"name": DEFAULT_IMAGE.rsplit(":", 1)[0]}
    name, at, digest = image.partition("@")
    if at:
        return {**entry, "newName": name, "digest": digest}
    repository, colon, tag = name.rpartition(":")
    if not colon or "/" in tag:  # no tag: "host:5000/x" has a colon but no tag
        return {**entry, "newName": name, "newTag": "latest"}
    return {**entry, "newName": repository, "newTag": tag}


def write_overlay(directory: Path, image: str, *, prometheus_operator: bool) -> None:
    """A kustomization in `directory`: deploy/ with `image`, and the monitoring component when the
    cluster has prometheus-operator (whose kinds the API server refuses otherwise), as
    docs/install.md describes."""
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(ROOT / "deploy", directory)],  # kustomize wants it relative
        "images": [image_override(image)],
    }
    if prometheus_operator:
        monitoring = ROOT / "deploy" / "components" / "monitoring"
        kustomization["components"] = [os.path.relpath(monitoring, directory)]
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))


@dataclass(frozen=True)
class Install:
    kustomization: Path
    namespace: str  # the operator's
    deployment: str
    service: str  # the metrics Service

    def logs(self) -> str:
        """Every replica's log (the leader's has the failovers; a standby's, its probes)."""
        return kubectl(
            "-n", self.namespace, "logs", "-l", "app.kubernetes.io/name=llm-failover",
            "--prefix", "--tail=300", check=False,
        )  # fmt: skip

    def leader(self) -> str:
        """The pod that holds the Lease: its identity is the pod name, "_", a random suffix."""
        holder = wait_for(
            lambda: kubectl(
                "-n", self.namespace, "get", "lease", "llm-failover",
                "-o", "jsonpath={.spec.holderIdentity}", check=False,
            ).strip(),
            timeout=60,
            what="a leader",
            interval=1,
        )  # fmt: skip
        return holder.rsplit("_", 1)[0]

    def metrics(self) -> str:
        """The leader's /metrics: the route series come from it alone."""
        pod = self.leader()
        return kubectl(
            "get", "--raw", f"/api/v1/namespaces/{self.namespace}/pods/{pod}:8080/proxy/metrics"
        )


def why_no_cluster() -> str | None:
    """None when the cluster of KUBECONFIG answers /readyz; else one line saying why not."""
    if shutil.which("kubectl") is None:
        return f"kubectl is not installed; and {NO_CLUSTER}"
    try:
        ready = subprocess.run(
            ["kubectl", "get", "--raw", "/readyz", "--request-timeout=5s"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return NO_CLUSTER
    if ready.returncode != 0 or ready.stdout.strip() != "ok":
        return NO_CLUSTER
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    """Without a cluster, `make e2e` stops before its first test with exit status 2 and one line
    saying why: a run that tested nothing must not pass (nor pass as "skipped")."""
    why = why_no_cluster()
    if why is not None:
        pytest.exit(why, returncode=NO_CLUSTER_EXIT)


@pytest.fixture(scope="module")
def installed(cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    """deploy/ applied with kustomize and the image under test; uninstalled afterwards."""
    overlay = tmp_path_factory.mktemp("install")
    monitoring = kubectl("api-resources", "--api-group=monitoring.coreos.com", "-o", "name")
    write_overlay(overlay, IMAGE, prometheus_operator=bool(monitoring.strip()))
    rendered = [d for d in yaml.safe_load_all(kubectl("kustomize", str(overlay))) if d]
    deployment = next(d for d in rendered if d["kind"] == "Deployment")
    service = next(d for d in rendered if d["kind"] == "Service")
    install = Install(
        overlay,
        deployment["metadata"]["namespace"],
        deployment["metadata"]["name"],
        service["metadata"]["name"],
    )
    kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))  # the CRD first, on its own
    kubectl("wait", "--for=condition=Established", "crd/llmroutes.llmfailover.dev")
    kubectl("apply", "-k", str(overlay))
    try:
        rolled_out(install.namespace, install.deployment)
        yield install
    finally:
        if not KEEP:
            kubectl(
                "delete", "-k", str(overlay), "--ignore-not-found", "--timeout=180s", timeout=240
            )
            if DELETE_CRD:  # the routes first, so that what they own is collected (install.md)
                kubectl("delete", "llmroutes", "--all", "--all-namespaces", "--timeout=180s",
                        timeout=240)  # fmt: skip
                kubectl("delete", "-k", str(ROOT / "crds"), "--ignore-not-found",
                        "--timeout=180s", timeout=240)  # fmt: skip


def rolled_out(namespace: str, deployment: str) -> None:
    """Wait for the Deployment; name the image loading step when its pods cannot get the image."""
    rollout = ["rollout", "status", f"deployment/{deployment}", "--timeout=180s"]
    result = subprocess.run(
        ["kubectl", "-n", namespace, *rollout],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    if result.returncode == 0:
        return
    pods = kubectl_json("-n", namespace, "get", "pods")["items"]
    waiting = {
        (status.get("state", {}).get("waiting") or {}).get("reason")
        for pod in pods
        for status in pod.get("status", {}).get("containerStatuses", [])
    }
    if waiting & {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"}:
        pytest.fail(
            f"the cluster's nodes do not have the image {IMAGE}: build it and load it first, "
            f"`docker build -t {IMAGE} . && kind load docker-image {IMAGE}` "
            f"(k3d: `k3d image import {IMAGE}`), or set LLMFAILOVER_E2E_IMAGE"
        )
    described = kubectl("-n", namespace, "describe", "pods", check=False)
    raise AssertionError(f"{namespace}/{deployment} did not roll out:\n{result.stderr}{described}")


@pytest.fixture
def namespace(installed: Install) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    if not KEEP:
        kubectl("delete", "namespace", name, "--timeout=180s", timeout=240)


def stand_ins(namespace: str) -> list[dict[str, Any]]:
    """openai and qwen stand-ins in one pod of the operator's image; a Service for each."""
    labels = {"app.kubernetes.io/name": "stand-ins"}
    args = [
        *("--name", "openai", "--port", "8080", "--key", KEYS["openai"]),
        *("--name", "qwen", "--port", "8081", "--key", KEYS["qwen"], "--flavour", "dashscope"),
        *("--prefix", "/compatible-mode/v1", "--model", "qwen-max"),
    ]
    container = {
        "name": "stand-ins",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "llm_failover.sandbox.providers"],
        "args": args,
        "ports": [{"containerPort": 8080}, {"containerPort": 8081}],
        "readinessProbe": {"tcpSocket": {"port": 8081}, "periodSeconds": 2},
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "stand-ins", "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }
    services = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": port}]},
        }
        for name, port in (("openai", 8080), ("qwen", 8081))
    ]
    return [deployment, *services]


def route(namespace: str) -> list[dict[str, Any]]:
    secrets = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{name}-key", "namespace": namespace},
            "stringData": {"api-key": key},
        }
        for name, key in KEYS.items()
    ]
    llm_route = {
        "apiVersion": "llmfailover.dev/v1alpha1",
        "kind": "LLMRoute",
        "metadata": {"name": "chat", "namespace": namespace},
        "spec": {
            "providers": [
                {
                    "name": "openai",
                    "preset": "openai",
                    "baseURL": f"http://openai.{namespace}.svc/v1",
                    "model": "gpt-4o",
                    "apiKeySecretRef": {"name": "openai-key", "key": "api-key"},
                },
                {
                    "name": "qwen",
                    "preset": "dashscope",
                    "baseURL": f"http://qwen.{namespace}.svc/compatible-mode/v1",
                    "model": "qwen-max",
                    "apiKeySecretRef": {"name": "qwen-key", "key": "api-key"},
                },
            ],
            "healthCheck": {
                "intervalSeconds": 2,
                "timeoutSeconds": 2,
                "failureThreshold": 3,
                "successThreshold": 2,
            },
            "target": {"configMapName": "chat-llm"},
        },
    }
    return [*secrets, llm_route]


def apply(objects: list[dict[str, Any]]) -> None:
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))


def test_geo_block_fails_over_in_a_real_cluster(installed: Install, namespace: str) -> None:
    def data() -> dict[str, str]:
        found = kubectl("-n", namespace, "get", "configmap", "chat-llm", "-o", "json", check=False)
        return (json.loads(found).get("data") or {}) if found else {}

    def status() -> dict[str, Any]:
        status: dict[str, Any] = (
            kubectl_json("-n", namespace, "get", "llmroute", "chat").get("status") or {}
        )
        return status

    def routed_to(provider: str, timeout: float) -> dict[str, str]:
        def check() -> dict[str, str] | None:
            found = data()
            caught_up = status().get("activeProvider") == provider  # written after the ConfigMap
            return found if found.get("LLM_PROVIDER") == provider and caught_up else None

        return wait_for(
            check, timeout=timeout, what=f"chat-llm and the status to name {provider}", interval=1
        )

    def failover_events() -> list[dict[str, Any]] | None:
        found = route_events(namespace)
        return found if {"FailedOver", "ProviderEjected"} <= {e["reason"] for e in found} else None

    try:
        apply(stand_ins(namespace))
        rolled_out(namespace, "stand-ins")
        apply(route(namespace))

        first = routed_to("openai", timeout=120)
        assert (
            first["LLM_BASE_URL"] == first["OPENAI_BASE_URL"] == f"http://openai.{namespace}.svc/v1"
        )
        assert first["LLM_API_KEY_SECRET"] == "openai-key/api-key"

        switched = kubectl(
            *("-n", namespace, "exec", "deployment/stand-ins", "--"),
            *switch_command(8080, "geo-blocked"),
        )
        assert "geo-blocked" in switched

        after = routed_to("qwen", timeout=60)
        assert after["LLM_BASE_URL"] == f"http://qwen.{namespace}.svc/compatible-mode/v1"
        assert after["LLM_MODEL"] == "qwen-max"
        assert after["LLM_API_KEY_SECRET"] == "qwen-key/api-key"
        assert json.loads(after["route.json"])["active"] == "qwen"

        cm = kubectl_json("-n", namespace, "get", "configmap", "chat-llm")
        llm_route = kubectl_json("-n", namespace, "get", "llmroute", "chat")
        owner = cm["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["uid"]) == ("LLMRoute", llm_route["metadata"]["uid"])

        final = wait_for(
            lambda: status() if ready(status()).get("status") == "True" else None,
            timeout=30,
            what="Ready=True after the failover",
            interval=1,
        )
        assert final["failoverCount"] == 1
        assert final["lastFailover"]["from"] == "openai"
        assert final["lastFailover"]["to"] == "qwen"
        assert final["lastFailover"]["reason"] == "GeoBlocked"
        assert ready(final)["reason"] == "ProviderActive"
        failed_over = next(c for c in final["conditions"] if c["type"] == "FailedOver")
        assert (failed_over["status"], failed_over["reason"]) == ("True", "GeoBlocked")
        openai = next(p for p in final["providers"] if p["name"] == "openai")
        assert (openai["state"], openai["eligible"], openai["httpStatus"]) == (
            "GeoBlocked",
            False,
            403,
        )

        events = wait_for(
            failover_events, timeout=30, what="FailedOver and ProviderEjected Events", interval=1
        )
        failed_over_event = next(e for e in events if e["reason"] == "FailedOver")
        assert failed_over_event["type"] == "Warning"
        assert "openai → qwen (GeoBlocked)" in failed_over_event["message"]

        assert "qwen" in kubectl("-n", namespace, "get", "llmroute", "chat")  # ACTIVE column
        metrics = installed.metrics()
        assert any(
            line.startswith("llmfailover_failovers_total{")
            and f'namespace="{namespace}"' in line
            and 'reason="GeoBlocked"' in line
            and line.endswith(" 1.0")
            for line in metrics.splitlines()
        ), "llmfailover_failovers_total has no GeoBlocked failover of this route"

        seen = json.dumps([cm, llm_route, events]) + metrics + installed.logs()
        assert not [key for key in KEYS.values() if key in seen], "an API key leaked"
    except BaseException:
        print(diagnostics(installed, namespace))
        raise


def switch_command(port: int, behaviour: str) -> list[str]:
    """`python -c ...` that switches the stand-in on `port` of this pod (no curl in the image)."""
    url = f"http://127.0.0.1:{port}/_behaviour/{behaviour}"
    code = (
        "import urllib.request as r; "
        f"print(r.urlopen(r.Request({url!r}, method='POST'), timeout=10).read().decode())"
    )
    return ["python", "-c", code]


def ready(status: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})


def route_events(namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl_json("-n", namespace, "get", "events")["items"]
    return [
        e
        for e in items
        if e["involvedObject"].get("kind") == "LLMRoute" and e["involvedObject"]["name"] == "chat"
    ]


def diagnostics(installed: Install, namespace: str) -> str:
    parts = {
        "operator log": installed.logs(),
        "LLMRoute": kubectl("-n", namespace, "get", "llmroute", "chat", "-o", "yaml", check=False),
        "Events": kubectl("-n", namespace, "get", "events", check=False),
        "pods": kubectl("get", "pods", "-A", "-o", "wide", check=False),
        "stand-ins log": kubectl(
            "-n", namespace, "logs", "deployment/stand-ins", "--tail=50", check=False
        ),
    }
    return "\n".join(f"----- {title}\n{text}" for title, text in parts.items())
