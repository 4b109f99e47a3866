"""Fixtures for integration tests: an emulated cluster, stand-in providers, the operator process."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from controlplane import (
    ControlPlane,
    ControlPlaneError,
    Progress,
    RealCluster,
    build,
    kubernetes_version,
)
from llm_failover.sandbox.cluster import EmulatedCluster
from llm_failover.sandbox.providers import StandInProvider

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "llmroutes.yaml"
GROUP, VERSION, PLURAL = "llmfailover.dev", "v1alpha1", "llmroutes"
T = TypeVar("T")


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float = 20,
    what: str = "condition",
    interval: float = 0.05,
) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIRECTORY`, parsed; the failure message carries kustomize's own."""
    done = subprocess.run(
        ["kubectl", "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize {directory} failed:\n{done.stderr}"
    return [obj for obj in yaml.safe_load_all(done.stdout) if obj]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


OPERATOR_NAMESPACE = "llm-failover"  # deploy/'s namespace and ServiceAccount name
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:llm-failover"


@dataclass
class OperatorProcess:
    """`llm-failover run` as a user starts it, against the emulated cluster's kubeconfig.

    It elects itself on deploy/'s Lease (in OPERATOR_NAMESPACE) when `leader_elect`, as in a
    pod; else it is the only writer (`--leader-elect=false`): a test that runs an operator of
    its own beside the shared one, or kills one and starts another at once, needs no Lease."""

    kubeconfig: Path
    log_path: Path
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    health_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    leader_elect: bool = False

    def start(self) -> OperatorProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        args = [sys.executable, "-m", "llm_failover.cli", "run", "--verbose"]
        args += ["--health-port", str(self.health_port), "--metrics-port", str(self.metrics_port)]
        if self.leader_elect:
            args += ["--leader-elect-resource-namespace", OPERATOR_NAMESPACE]
        else:
            args += ["--leader-elect=false"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*args, *self.extra_args], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_until_serving()
        return self

    def _wait_until_serving(self, timeout: float = 60) -> None:
        """Until /healthz answers: imports and kopf's start-up take seconds on a busy machine,
        and a test's deadlines should not include them."""
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the operator exited with {self.process.returncode}:\n{self.log()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the operator did not serve {url} within {timeout:.0f} s")

    def stop(self) -> int:
        assert self.process is not None
        self.process.terminate()  # SIGTERM: the way Kubernetes stops a pod
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("the operator did not stop within 20 s of SIGTERM") from None
        self.process = None
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Env:
    """One test's world: a namespace in the emulated cluster, stand-ins, and kubectl."""

    cluster: EmulatedCluster
    namespace: str
    kubeconfig: Path

    def route(self, name: str) -> dict[str, Any] | None:
        return self.cluster.get(
            group=GROUP, version=VERSION, plural=PLURAL, namespace=self.namespace, name=name
        )

    def status(self, name: str) -> dict[str, Any]:
        return (self.route(name) or {}).get("status") or {}

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions", []) if c["type"] == kind), {})

    def provider_status(self, route: str, provider: str) -> dict[str, Any]:
        return next(
            (p for p in self.status(route).get("providers", []) if p["name"] == provider), {}
        )

    def config_map(self, name: str) -> dict[str, Any] | None:
        return self.cluster.get(
            group="", version="v1", plural="configmaps", namespace=self.namespace, name=name
        )

    def data(self, name: str) -> dict[str, str]:
        return (self.config_map(name) or {}).get("data") or {}

    def secret(self, name: str) -> dict[str, Any] | None:
        return self.cluster.get(
            group="", version="v1", plural="secrets", namespace=self.namespace, name=name
        )

    def events(self) -> list[dict[str, Any]]:
        return self.cluster.objects(
            group="", version="v1", plural="events", namespace=self.namespace
        )

    def event_reasons(self) -> list[str]:
        return [
            e["reason"] for e in sorted(self.events(), key=lambda e: e.get("lastTimestamp", ""))
        ]

    def apply(self, obj: dict[str, Any]) -> None:
        obj.setdefault("metadata", {}).setdefault("namespace", self.namespace)
        self.cluster.apply(obj)

    def key_secret(self, name: str, value: str, key: str = "api-key") -> None:
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name},
                "stringData": {key: value},
            }
        )

    def llm_route(self, name: str, spec: dict[str, Any]) -> None:
        self.apply(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "LLMRoute",
                "metadata": {"name": name},
                "spec": spec,
            }
        )

    def patch_spec(self, name: str, **changes: Any) -> None:
        """Change the spec as `kubectl edit` would: the status (which `apply` would write back
        as read, over whatever the operator wrote meanwhile) is left alone."""
        route = self.route(name)
        assert route is not None
        route["spec"].update(changes)
        route.pop("status", None)
        self.cluster.apply(route)

    def kubectl(self, *args: str) -> str:
        result = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), "-n", self.namespace, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture(scope="session")
def emulated_cluster() -> Iterator[EmulatedCluster]:
    with EmulatedCluster(crd_paths=[CRD]) as emulated:
        yield emulated


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the control plane before the first test when a selected test needs it: on a fresh
    machine the build (Go modules downloaded and compiled) takes several minutes, far more than
    one test's timeout, which would otherwise interrupt it in the fixture. A failure is left to
    the fixture to report, on the tests that need it."""
    if session.config.option.collectonly or shutil.which("go") is None:
        return
    if not any(map(_needs_control_plane, session.items)):
        return
    with contextlib.suppress(ControlPlaneError):
        build(Progress())


def _needs_control_plane(item: pytest.Item) -> bool:
    if {"control_plane", "real_cluster"} & set(getattr(item, "fixturenames", ())):
        return True
    # Tests that pick their cluster by a parameter ("cluster", "where": "real") ask for it late.
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "real" in callspec.params.values()


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd, kube-apiserver and kube-controller-manager from the Kubernetes Go modules.

    Skipped, saying why, without a Go toolchain, unless LLMFAILOVER_REQUIRE_CONTROL_PLANE is set
    (`.ci/run` sets it: CI has Go, and a skipped tier there is a failure).
    """
    say = Progress()
    if shutil.which("go") is None and not os.environ.get("LLMFAILOVER_REQUIRE_CONTROL_PLANE"):
        pytest.skip("no Go toolchain on PATH: the real control-plane tier needs Go (README)")
    try:
        plane = ControlPlane(build(say)).start()
    except ControlPlaneError as exc:
        pytest.fail(str(exc), pytrace=False)
    say(f"Kubernetes {kubernetes_version()} serving at {plane.url} (logs in {plane.workdir})")
    yield plane
    if os.environ.get("LLMFAILOVER_KEEP_CONTROL_PLANE"):  # to read its logs afterwards
        plane.stop()
        say(f"kept {plane.workdir}")
    else:
        plane.remove()


@pytest.fixture(scope="session")
def real_cluster(control_plane: ControlPlane) -> Iterator[RealCluster]:
    """The real control plane with the LLMRoute CRD applied and established."""
    real = RealCluster(control_plane)
    kubectl = ["kubectl", "--kubeconfig", str(control_plane.kubeconfig)]
    subprocess.run([*kubectl, "apply", "-f", str(CRD)], check=True, capture_output=True, timeout=60)
    subprocess.run(
        [*kubectl, "wait", "--for=condition=Established", "--timeout=60s",
         "crd/llmroutes.llmfailover.dev"],
        check=True,
        capture_output=True,
        timeout=90,
    )  # fmt: skip
    yield real
    real.close()


@pytest.fixture(scope="session", params=["emulated"])
def cluster(request: pytest.FixtureRequest) -> EmulatedCluster | RealCluster:
    """The cluster a test runs against: the emulator, unless the test asks for both with
    `pytest.mark.parametrize("cluster", ["emulated", "real"], indirect=True)`."""
    name = "emulated_cluster" if request.param == "emulated" else "real_cluster"
    found: EmulatedCluster | RealCluster = request.getfixturevalue(name)
    return found


@pytest.fixture(scope="session")
def kubeconfig(cluster: EmulatedCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cluster.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config")


def deploy_rbac(real: RealCluster) -> None:
    """deploy/'s Namespace, ServiceAccount and cluster-wide RBAC, applied as `kubectl apply -k`
    would (the rest of deploy/ is not needed to run the operator outside the cluster)."""
    kinds = (
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    )
    for obj in kustomize(ROOT / "deploy"):
        if obj["kind"] in kinds:
            real.apply(obj)


NAMESPACE_LIST = {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]}


def grant(real: RealCluster, name: str, *rules: dict[str, Any]) -> None:
    """A ClusterRole `name` with `rules`, bound to the operator's ServiceAccount."""
    real.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": name}, "rules": list(rules)})  # fmt: skip
    real.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "llm-failover",
                          "namespace": OPERATOR_NAMESPACE}],
        }
    )  # fmt: skip


def revoke(real: RealCluster, name: str) -> None:
    for plural in ("clusterrolebindings", "clusterroles"):
        real.delete(group="rbac.authorization.k8s.io", version="v1", plural=plural,
                    namespace=None, name=name)  # fmt: skip


@pytest.fixture(scope="session")
def operator_kubeconfig(
    cluster: EmulatedCluster | RealCluster,
    kubeconfig: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The kubeconfig `llm-failover run` gets. On the real control plane it holds nothing but a
    token of the operator's own ServiceAccount, which only deploy/'s RBAC empowers: every
    scenario there runs under the permissions users install (the emulator authorizes all)."""
    if not isinstance(cluster, RealCluster):
        return kubeconfig
    deploy_rbac(cluster)
    token = cluster.token(OPERATOR_NAMESPACE, "llm-failover")
    path = tmp_path_factory.mktemp("operator-kube") / "config"
    return cluster.plane.write_kubeconfig(path, token=token)


SHARED_OPERATORS: dict[int, OperatorProcess] = {}
"""The running `operator` of each cluster (by id): it watches every namespace."""


@contextlib.contextmanager
def shared_operator_stopped(cluster: EmulatedCluster | RealCluster) -> Iterator[None]:
    """Without the shared operator of `cluster` (if one runs), which would otherwise do the
    work of an operator under test (create what that one should, for instance)."""
    shared = SHARED_OPERATORS.get(id(cluster))
    running = shared is not None and shared.process is not None
    if running:
        assert shared is not None
        shared.stop()
    try:
        yield
    finally:
        if running:
            assert shared is not None
            shared.start()


@pytest.fixture(scope="session")
def operator(
    cluster: EmulatedCluster | RealCluster,
    operator_kubeconfig: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """One operator for the integration tests that do not restart it; each test has a namespace.
    It holds deploy/'s Lease, as a deployed replica does."""
    if not isinstance(cluster, RealCluster):
        cluster.add_namespace(OPERATOR_NAMESPACE)  # the real one has deploy/'s
    process = OperatorProcess(
        operator_kubeconfig,
        tmp_path_factory.mktemp("operator") / "operator.log",
        leader_elect=True,
    ).start()
    SHARED_OPERATORS[id(cluster)] = process
    yield process
    SHARED_OPERATORS.pop(id(cluster), None)
    if process.process is not None:
        process.stop()


@pytest.fixture
def env(cluster: EmulatedCluster | RealCluster, kubeconfig: Path) -> Iterator[Env]:
    """A fresh namespace. On the real control plane, the test also fails if the API server
    denied the operator anything meanwhile: deploy/'s RBAC must cover every scenario."""
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    cluster.add_namespace(namespace)
    real = isinstance(cluster, RealCluster)
    before = len(cluster.audited(OPERATOR_USER)) if real else 0
    yield Env(cluster=cluster, namespace=namespace, kubeconfig=kubeconfig)
    # Deleting the namespace deletes its routes: the operator stops probing for them.
    cluster.delete(group="", version="v1", plural="namespaces", namespace=None, name=namespace)
    if real:
        denied = [
            f"{a.method} {a.path}: {a.message}"
            for a in cluster.audited(OPERATOR_USER)[before:]
            if a.denied and not cluster.plane.starting(a.time)
        ]
        assert not denied, "deploy/'s RBAC denied the operator:\n" + "\n".join(denied)


@pytest.fixture
def stand_ins() -> Iterator[dict[str, StandInProvider]]:
    """openai, qwen (DashScope's API shape) and glm (Zhipu's), each expecting its own key."""
    providers = {
        "openai": StandInProvider(
            "openai",
            flavour="openai",
            prefix="/v1",
            model="gpt-4o",
            api_key="sk-oA7hQ2Lm9Xw4Rt81",  # random-looking, as real keys are
            slow_seconds=3,
        ),
        "qwen": StandInProvider(
            "qwen",
            flavour="dashscope",
            prefix="/compatible-mode/v1",
            model="qwen-max",
            api_key="sk-qB3nV8Kp1Zs6Yd92",
            slow_seconds=3,
        ),
        "glm": StandInProvider(
            "glm",
            flavour="zhipu",
            prefix="/api/paas/v4",
            model="glm-5",
            api_key="gC5jT0Fx7Wm2.Ue4Hr9",
            slow_seconds=3,
        ),
    }
    for provider in providers.values():
        provider.start()
    yield providers
    for provider in providers.values():
        provider.stop()


def three_providers(stand_ins: dict[str, StandInProvider], env: Env, **spec: Any) -> dict[str, Any]:
    """A route spec over the three stand-ins, with their key Secrets created in the namespace."""
    presets = {"openai": "openai", "qwen": "dashscope", "glm": "zhipu"}
    providers = []
    for name, provider in stand_ins.items():
        assert provider.api_key is not None
        env.key_secret(f"{name}-key", provider.api_key)
        providers.append(
            {
                "name": name,
                "preset": presets[name],
                "baseURL": provider.base_url,
                "model": provider.model,
                "apiKeySecretRef": {"name": f"{name}-key", "key": "api-key"},
            }
        )
    health = {
        "intervalSeconds": 1,
        "timeoutSeconds": 1,
        "failureThreshold": 3,
        "successThreshold": 2,
    }
    health.update(spec.pop("healthCheck", {}))
    return {
        "providers": providers,
        "healthCheck": health,
        "target": {"configMapName": "chat-llm"},
        **spec,
    }


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    """On failure, attach the operator's log lines about the test's namespace."""
    report: pytest.TestReport = yield
    funcargs = getattr(item, "funcargs", {})
    if (
        report.failed
        and isinstance(funcargs.get("env"), Env)
        and isinstance(funcargs.get("operator"), OperatorProcess)
    ):
        namespace = funcargs["env"].namespace
        lines = [
            line
            for line in funcargs["operator"].log().splitlines()
            if namespace in line or "Error" in line
        ]
        report.sections.append(("operator log", "\n".join(lines[-80:])))
    return report
