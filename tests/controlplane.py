"""A real Kubernetes control plane for the tests: etcd, kube-apiserver and kube-controller-manager,
built from the official Go modules in tests/controlplane/ and started on loopback.

The binary is built once per version of tests/controlplane/ (go.mod, go.sum, main.go) into
~/.cache/llm-failover/ (`LLMFAILOVER_CACHE` overrides it); the first build takes minutes and says
so while it runs. Each start gets a temporary directory with fresh certificates (a CA, the API
server's serving certificate, an admin client certificate in group system:masters) and a
service-account signing key, free loopback ports, RBAC authorization, and a kubeconfig for the
admin. A failed build or start raises `ControlPlaneError` with one line naming the log to read.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

SOURCE = Path(__file__).resolve().parent / "controlplane"
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "deployment-controller",
    "replicaset-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
)
START_TIMEOUT_SECONDS = 120.0
BUILD_TIMEOUT_SECONDS = 3600.0


class ControlPlaneError(RuntimeError):
    """The control plane could not be built or started; the message names the log."""


def kubernetes_version() -> str:
    for line in (SOURCE / "go.mod").read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["k8s.io/kubernetes"]:
            return parts[1]
    raise ControlPlaneError(f"{SOURCE / 'go.mod'} does not require k8s.io/kubernetes")


def cache_dir() -> Path:
    return Path(os.environ.get("LLMFAILOVER_CACHE", Path.home() / ".cache" / "llm-failover"))


def binary_path() -> Path:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((SOURCE / name).read_bytes())
    return cache_dir() / f"controlplane-{kubernetes_version()}-{digest.hexdigest()[:12]}"


def build(say: Callable[[str], None]) -> Path:
    """The control-plane binary, built unless the cache has it; `say` reports progress."""
    target = binary_path()
    if target.exists():
        return target
    go = shutil.which("go")
    if go is None:
        raise ControlPlaneError("no Go toolchain on PATH: the control plane cannot be built")
    target.parent.mkdir(parents=True, exist_ok=True)
    log = target.with_suffix(".build.log")
    say(
        f"building the control plane (etcd, kube-apiserver, kube-controller-manager, Kubernetes "
        f"{kubernetes_version()}) from the Go modules: the first build takes many minutes; "
        f"log: {log}"
    )
    partial = target.with_suffix(".partial")
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [go, "build", "-o", str(partial), "."],
            cwd=SOURCE,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        while process.poll() is None:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                say(f"  still building ({time.monotonic() - started:.0f} s)…")
            if time.monotonic() - started > BUILD_TIMEOUT_SECONDS:
                process.kill()
                process.wait()
                raise ControlPlaneError(f"the control plane build timed out; see {log}")
    if process.returncode != 0:
        raise ControlPlaneError(f"the control plane build failed; see {log}")
    partial.replace(target)
    say(f"built the control plane in {time.monotonic() - started:.0f} s: {target}")
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Certificates:
    """A CA, the API server's serving pair, an admin client pair and the SA signing key."""

    directory: Path

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        ca_key = _key()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llm-failover-test-ca")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        self._write("ca.crt", ca.public_bytes(serialization.Encoding.PEM))
        serving_names = x509.SubjectAlternativeName(
            [
                x509.DNSName("localhost"),
                x509.DNSName("kubernetes.default.svc"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
            ]
        )
        self._pair("apiserver", "kube-apiserver", None, ca, ca_key, now, serving_names)
        self._pair("admin", "admin", "system:masters", ca, ca_key, now, None)
        self._write("sa.key", _pem(_key()))

    def path(self, name: str) -> Path:
        return self.directory / name

    def _pair(
        self,
        name: str,
        common_name: str,
        group: str | None,
        ca: x509.Certificate,
        ca_key: rsa.RSAPrivateKey,
        now: dt.datetime,
        names: x509.SubjectAlternativeName | None,
    ) -> None:
        key = _key()
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if group is not None:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, group))
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
        )
        if names is not None:
            builder = builder.add_extension(names, critical=False)
        certificate = builder.sign(ca_key, hashes.SHA256())
        self._write(f"{name}.crt", certificate.public_bytes(serialization.Encoding.PEM))
        self._write(f"{name}.key", _pem(key))

    def _write(self, name: str, data: bytes) -> None:
        path = self.directory / name
        path.write_bytes(data)
        path.chmod(0o600)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


@dataclass
class ControlPlane:
    """etcd, kube-apiserver and kube-controller-manager from `binary`, on loopback ports."""

    binary: Path
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="controlplane-")))
    etcd_port: int = field(default_factory=free_port)
    peer_port: int = field(default_factory=free_port)
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    starts: list[tuple[float, float]] = field(default_factory=list)
    """(began, ready) wall-clock times of each API server start: until its caches have synced, a
    starting API server may deny what RBAC allows."""

    def __post_init__(self) -> None:
        self.certificates = Certificates(self.workdir / "pki")
        self.kubeconfig = self.write_kubeconfig(self.workdir / "admin.kubeconfig")
        self.audit_log = self.workdir / "audit.log"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def write_kubeconfig(
        self, path: Path, *, token: str | None = None, namespace: str = "default"
    ) -> Path:
        """A kubeconfig for the admin (client certificate), or for a bearer token."""
        pki = self.certificates
        user: dict[str, str] = (
            {"token": token}
            if token is not None
            else {
                "client-certificate": str(pki.path("admin.crt")),
                "client-key": str(pki.path("admin.key")),
            }
        )
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "real",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority": str(pki.path("ca.crt")),
                    },
                }
            ],
            "users": [{"name": "user", "user": user}],
            "contexts": [
                {
                    "name": "real",
                    "context": {"cluster": "real", "user": "user", "namespace": namespace},
                }
            ],
            "current-context": "real",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    def start(self) -> ControlPlane:
        try:
            self._start("etcd", self._etcd_args())
            self._wait(self._etcd_ready, "etcd")
            self.start_apiserver()
            self._start("kube-controller-manager", self._controller_manager_args())
        except BaseException:
            self.stop()
            raise
        return self

    def start_apiserver(self) -> None:
        began = time.time()
        self._start("kube-apiserver", self._apiserver_args())
        self._wait(self._apiserver_ready, "kube-apiserver")
        self.starts.append((began, time.time()))

    def starting(self, when: float, *, settle: float = 5.0) -> bool:
        """Whether `when` falls while the API server was starting (or `settle` s after)."""
        return any(began <= when <= ready + settle for began, ready in self.starts)

    def stop_apiserver(self) -> None:
        self._stop("kube-apiserver")

    def stop(self) -> None:
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            self._stop(name)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    # --- processes --------------------------------------------------------------------------

    def _etcd_args(self) -> list[str]:
        return [
            "--data-dir",
            str(self.workdir / "etcd"),
            "--client-port",
            str(self.etcd_port),
            "--peer-port",
            str(self.peer_port),
        ]

    def _apiserver_args(self) -> list[str]:
        pki = self.certificates
        policy = self.workdir / "audit-policy.yaml"
        # Metadata of every request from anyone but the control plane's own components: what
        # the emulator's request log gives the tests (who wrote what, how often).
        policy.write_text(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n"
            "rules:\n  - level: None\n    userGroups: ['system:nodes']\n"
            "  - level: Metadata\n"
        )
        return [
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            f"--secure-port={self.port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--tls-cert-file={pki.path('apiserver.crt')}",
            f"--tls-private-key-file={pki.path('apiserver.key')}",
            f"--client-ca-file={pki.path('ca.crt')}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.path('sa.key')}",
            f"--service-account-signing-key-file={pki.path('sa.key')}",
            "--service-cluster-ip-range=10.0.0.0/24",
            f"--cert-dir={self.workdir / 'certs'}",
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--profiling=false",
        ]

    def _controller_manager_args(self) -> list[str]:
        pki = self.certificates
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--controllers={','.join(CONTROLLERS)}",
            f"--service-account-private-key-file={pki.path('sa.key')}",
            f"--root-ca-file={pki.path('ca.crt')}",
            "--use-service-account-credentials=false",
            "--leader-elect=false",
            "--secure-port=0",
            "--concurrent-gc-syncs=5",
        ]

    def _start(self, name: str, args: list[str]) -> None:
        with self.log(name).open("ab") as out:
            self.processes[name] = subprocess.Popen(
                [str(self.binary), name, *args], stdout=out, stderr=subprocess.STDOUT
            )

    def _stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _wait(self, ready: Callable[[], bool], name: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with {process.returncode} while starting; see {self.log(name)}"
                )
            if ready():
                return
            time.sleep(0.2)
        raise ControlPlaneError(
            f"{name} was not ready within {START_TIMEOUT_SECONDS:.0f} s; see {self.log(name)}"
        )

    def _etcd_ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.etcd_port), timeout=1):
                return True
        except OSError:
            return False

    def _apiserver_ready(self) -> bool:
        pki = self.certificates
        context = ssl.create_default_context(cafile=str(pki.path("ca.crt")))
        context.load_cert_chain(str(pki.path("admin.crt")), str(pki.path("admin.key")))
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", context=context, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False


class Progress:
    """Writes progress lines to the terminal even while pytest captures output."""

    def __init__(self, write: Callable[[str], None] | None = None) -> None:
        self._write = write or (lambda line: print(line, file=sys.__stderr__, flush=True))
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self._write(f"[control plane] {line}")


# Plural and API path of each kind the tests write; the real API server takes the rest as given.
_KINDS: dict[str, tuple[str, str, bool]] = {
    # kind: (api prefix, plural, namespaced)
    "Namespace": ("/api/v1", "namespaces", False),
    "Secret": ("/api/v1", "secrets", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Service": ("/api/v1", "services", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "Event": ("/api/v1", "events", True),
    "LLMRoute": ("/apis/llmfailover.dev/v1alpha1", "llmroutes", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "StatefulSet": ("/apis/apps/v1", "statefulsets", True),
    "DaemonSet": ("/apis/apps/v1", "daemonsets", True),
    "CustomResourceDefinition": (
        "/apis/apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        False,
    ),
}
_VERBS = {"get": "GET", "list": "GET", "watch": "GET", "create": "POST", "update": "PUT",
          "patch": "PATCH", "delete": "DELETE", "deletecollection": "DELETE"}  # fmt: skip


class RealCluster:
    """The emulated cluster's test-facing methods (get, objects, apply, delete, requests, …)
    over a real control plane, so one scenario runs against both."""

    real = True

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        pki = plane.certificates
        context = ssl.create_default_context(cafile=str(pki.path("ca.crt")))
        context.load_cert_chain(str(pki.path("admin.crt")), str(pki.path("admin.key")))
        self.http = httpx.Client(base_url=plane.url, verify=context, timeout=30)
        """The admin's HTTP client, for what the emulated cluster's methods do not cover."""

    @property
    def url(self) -> str:
        return self.plane.url

    def close(self) -> None:
        self.http.close()

    def write_kubeconfig(self, path: Path, *, namespace: str = "default") -> Path:
        return self.plane.write_kubeconfig(path, namespace=namespace)

    def add_namespace(self, name: str) -> None:
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def get(
        self, *, group: str, version: str, plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        answer = self.http.get(f"{_collection(group, version, plural, namespace)}/{name}")
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        found: dict[str, Any] = answer.json()
        return found

    def delete_namespaces(self, names: set[str], *, timeout: float = 60) -> None:
        """Delete the namespaces and wait until the namespace controller has removed them (so
        a test can make one of the same name anew)."""
        for name in names:
            self.delete(group="", version="v1", plural="namespaces", namespace=None, name=name)
        deadline = time.monotonic() + timeout
        while any(self.exists("namespaces", name) for name in names):
            if time.monotonic() > deadline:
                raise AssertionError(f"namespaces {sorted(names)} not deleted in {timeout:.0f} s")
            time.sleep(0.2)

    def exists(self, plural: str, name: str) -> bool:
        """Whether the cluster-scoped core object (a namespace, say) exists."""
        return (
            self.get(group="", version="v1", plural=plural, namespace=None, name=name) is not None
        )

    def objects(
        self, *, group: str, version: str, plural: str, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        answer = self.http.get(_collection(group, version, plural, namespace))
        answer.raise_for_status()
        items: list[dict[str, Any]] = answer.json().get("items", [])
        return items

    def apply(self, obj: Mapping[str, Any]) -> None:
        """Create, or replace what exists (retrying on conflicts with the operator's writes).
        A status given here is written through the status subresource, as a fixture would."""
        body = copy.deepcopy(dict(obj))
        prefix, plural, namespaced = _KINDS[body["kind"]]
        meta = body.setdefault("metadata", {})
        namespace = (meta.get("namespace") or "default") if namespaced else None
        if namespaced:
            meta["namespace"] = namespace
        collection = prefix + (f"/namespaces/{namespace}" if namespaced else "") + f"/{plural}"
        status = body.pop("status", None)
        for _ in range(10):
            current = self.http.get(f"{collection}/{meta['name']}")
            if current.status_code == 404:
                meta.pop("resourceVersion", None)
                answer = self.http.post(collection, json=body)
            else:
                meta["resourceVersion"] = current.json()["metadata"]["resourceVersion"]
                answer = self.http.put(f"{collection}/{meta['name']}", json=body)
            if answer.status_code != 409:
                break
        _check(answer)
        if status is not None and body["kind"] == "LLMRoute":
            _check(
                self.http.patch(
                    f"{collection}/{meta['name']}/status",
                    json={"status": status},
                    headers={"Content-Type": "application/merge-patch+json"},
                )
            )

    def delete(
        self, *, group: str, version: str, plural: str, namespace: str | None, name: str
    ) -> bool:
        answer = self.http.delete(
            f"{_collection(group, version, plural, namespace)}/{name}",
            params={"propagationPolicy": "Background"},
        )
        if answer.status_code == 404:
            return False
        _check(answer)
        return True

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(HTTP method, path) of every request the API server audited, oldest first."""
        return [(entry.method, entry.path) for entry in self.audited()]

    def audited(self, user: str | None = None) -> list[Audited]:
        """Every request the API server audited (of `user` only, if given), oldest first."""
        found: list[Audited] = []
        if not self.plane.audit_log.exists():
            return found
        for line in self.plane.audit_log.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line being written
            who = str((entry.get("user") or {}).get("username", ""))
            if user is not None and who != user:
                continue
            answer = entry.get("responseStatus") or {}
            received = str(entry.get("requestReceivedTimestamp", "")).replace("Z", "+00:00")
            decision = (entry.get("annotations") or {}).get("authorization.k8s.io/decision")
            found.append(
                Audited(
                    method=_VERBS.get(entry.get("verb"), "GET"),
                    path=str(entry.get("requestURI", "")),
                    user=who,
                    code=int(answer.get("code", 0)),
                    message=str(answer.get("message", "")),
                    denied=decision == "forbid",
                    time=dt.datetime.fromisoformat(received).timestamp() if received else 0.0,
                    user_agent=str(entry.get("userAgent", "")),
                )
            )
        return found

    def token(self, namespace: str, service_account: str) -> str:
        """A token of the ServiceAccount from the TokenRequest API, as `kubectl create token`
        mints it."""
        done = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.plane.kubeconfig), "-n", namespace, "create",
             "token", service_account, "--duration=24h"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"kubectl create token {service_account}: {done.stderr.strip()}")
        return done.stdout.strip()


@dataclass(frozen=True)
class Audited:
    """One request as the API server's audit log has it."""

    method: str
    path: str
    user: str
    code: int  # the HTTP status of the answer
    message: str  # the server's, when it refused
    denied: bool  # by the authorizer (RBAC), unlike other 403s (e.g. a terminating namespace)
    time: float  # when the server received it (epoch seconds)
    user_agent: str = ""  # the operator's names its replica


def _collection(group: str, version: str, plural: str, namespace: str | None) -> str:
    prefix = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    return prefix + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"


def _check(answer: httpx.Response) -> None:
    if answer.status_code >= 400:
        raise RuntimeError(
            f"{answer.request.method} {answer.request.url.path}: "
            f"{answer.status_code} {answer.text[:500]}"
        )
