"""The embedded Kubernetes API serves the kubernetes client, kubectl and kopf like a real one."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import kubernetes
import pytest
import yaml
from kopf.testing import KopfRunner

from llm_failover.sandbox.cluster import EmulatedCluster

REPO_CRD = Path(__file__).resolve().parents[1] / "crds" / "llmroutes.yaml"
GROUP, VERSION, PLURAL = "llmfailover.dev", "v1alpha1", "llmroutes"
NS = "shop"

# Used only if the repository's CRD is missing: the names docs/reference.md fixes, a status
# subresource, and printer columns.
MINIMAL_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "llmroutes.llmfailover.dev"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "kind": "LLMRoute",
            "plural": PLURAL,
            "singular": "llmroute",
            "shortNames": ["llmr"],
            "categories": ["llm"],
        },
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "ACTIVE", "type": "string", "jsonPath": ".status.activeProvider"}
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}

_T = TypeVar("_T")


def wait_for(check: Callable[[], _T | None], *, what: str, timeout: float = 15.0) -> _T:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def route(name: str = "chat", model: str = "gpt-4o") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LLMRoute",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"providers": [{"name": "openai", "preset": "openai", "model": model}]},
    }


@pytest.fixture
def crd_path(tmp_path: Path) -> Path:
    if REPO_CRD.exists():
        return REPO_CRD
    path = tmp_path / "crd.yaml"
    path.write_text(yaml.safe_dump(MINIMAL_CRD), encoding="utf-8")
    return path


@pytest.fixture
def cluster(crd_path: Path) -> Iterator[EmulatedCluster]:
    with EmulatedCluster(crd_paths=[crd_path]) as cluster:
        cluster.add_namespace(NS)
        yield cluster


@pytest.fixture
def kubeconfig(cluster: EmulatedCluster, tmp_path: Path) -> Path:
    return cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)


@pytest.fixture
def api(kubeconfig: Path) -> Iterator[kubernetes.client.ApiClient]:
    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    yield client
    client.close()


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [binary, "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "kc")]
        done = subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=60, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr}")
        return done

    return run


def get_route(cluster: EmulatedCluster, name: str = "chat") -> dict[str, Any] | None:
    return cluster.get(group=GROUP, version=VERSION, plural=PLURAL, namespace=NS, name=name)


# --- the kubernetes client --------------------------------------------------------------------


def test_configmap_create_read_and_patch(
    cluster: EmulatedCluster, api: kubernetes.client.ApiClient
) -> None:
    core = kubernetes.client.CoreV1Api(api)
    body = {"metadata": {"name": "routing"}, "data": {"LLM_PROVIDER": "openai", "old": "x"}}
    created = core.create_namespaced_config_map(NS, body)
    assert created.metadata.uid
    assert created.metadata.creation_timestamp

    # The client sends a dict patch as a strategic merge patch; then an explicit merge patch.
    core.patch_namespaced_config_map("routing", NS, {"data": {"LLM_PROVIDER": "qwen"}})
    patched = core.patch_namespaced_config_map(
        "routing", NS, {"data": {"old": None}}, _content_type="application/merge-patch+json"
    )

    assert patched.data == {"LLM_PROVIDER": "qwen"}
    assert core.read_namespaced_config_map("routing", NS).data == {"LLM_PROVIDER": "qwen"}
    versions = [created.metadata.resource_version, patched.metadata.resource_version]
    assert int(versions[1]) > int(versions[0])
    assert ("PATCH", f"/api/v1/namespaces/{NS}/configmaps/routing") in cluster.requests


def test_the_cluster_keeps_what_it_serves_not_its_history(
    cluster: EmulatedCluster, api: kubernetes.client.ApiClient
) -> None:
    """A demo left running for days: two versions per object at most, a bounded request log;
    and a read of one object among thousands is a lookup (the answer is the right object)."""
    core = kubernetes.client.CoreV1Api(api)
    for i in range(300):
        core.create_namespaced_config_map(NS, {"metadata": {"name": f"cm-{i}"}, "data": {}})
    for n in range(20):
        core.patch_namespaced_config_map("cm-7", NS, {"data": {"n": str(n)}})
    assert core.read_namespaced_config_map("cm-7", NS).data == {"n": "19"}
    assert core.read_namespaced_config_map("cm-299", NS).metadata.name == "cm-299"
    emulator = cluster._emulator
    assert emulator is not None
    histories = [len(obj.history) for obj in emulator.objects.values()]
    assert max(histories) <= 2
    core.delete_namespaced_config_map("cm-7", NS)
    with pytest.raises(kubernetes.client.ApiException) as gone:
        core.read_namespaced_config_map("cm-7", NS)
    assert gone.value.status == 404
    assert cluster._log.maxlen is not None
    assert len(cluster.requests) <= cluster._log.maxlen


def test_configmap_replace_checks_the_resource_version(api: kubernetes.client.ApiClient) -> None:
    core = kubernetes.client.CoreV1Api(api)
    created = core.create_namespaced_config_map(
        NS, {"metadata": {"name": "cm"}, "data": {"a": "1"}}
    )
    replaced = core.replace_namespaced_config_map(
        "cm", NS, {"metadata": {"name": "cm"}, "data": {"b": "2"}}
    )
    assert replaced.data == {"b": "2"}
    stale = {"metadata": {"name": "cm", "resourceVersion": created.metadata.resource_version}}
    with pytest.raises(kubernetes.client.ApiException) as error:
        core.replace_namespaced_config_map("cm", NS, stale)
    assert error.value.status == 409


def test_secret_string_data_is_stored_as_base64_data(
    cluster: EmulatedCluster, api: kubernetes.client.ApiClient
) -> None:
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_secret(
        NS, {"metadata": {"name": "key"}, "stringData": {"api-key": "s3"}}
    )
    core.patch_namespaced_secret("key", NS, {"stringData": {"other": "o"}})

    secret = core.read_namespaced_secret("key", NS)
    assert secret.data == {
        "api-key": base64.b64encode(b"s3").decode(),
        "other": base64.b64encode(b"o").decode(),
    }
    stored = cluster.get(group="", version="v1", plural="secrets", namespace=NS, name="key")
    assert stored is not None
    assert "stringData" not in stored
    assert stored["type"] == "Opaque"


def test_route_status_goes_through_the_status_subresource_only(
    api: kubernetes.client.ApiClient, cluster: EmulatedCluster
) -> None:
    custom = kubernetes.client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, route())

    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, NS, PLURAL, "chat", {"status": {"activeProvider": "openai"}}
    )
    # As on a real server: status written to the main resource is dropped, spec to /status too.
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "chat", {"status": {"activeProvider": "ignored"}}
    )
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, NS, PLURAL, "chat", {"spec": {"paused": True}}
    )

    obj = custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "chat")
    assert obj["status"] == {"activeProvider": "openai"}
    assert obj["spec"].get("paused") is not True
    assert obj["metadata"]["generation"] == 1

    custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "chat", {"spec": {"paused": True}}
    )
    stored = get_route(cluster)
    assert stored is not None
    assert stored["metadata"]["generation"] == 2
    assert stored["spec"]["paused"] is True


def test_json_patch_with_a_stale_resource_version_is_rejected(
    api: kubernetes.client.ApiClient,
) -> None:
    custom = kubernetes.client.CustomObjectsApi(api)
    created = custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, route())
    version = created["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": version},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.com/x"]},
    ]
    json_patch = "application/json-patch+json"  # the client would label a list a merge patch
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "chat", ops, _content_type=json_patch
    )
    with pytest.raises(kubernetes.client.ApiException) as error:  # kopf relies on this 422
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, "chat", ops, _content_type=json_patch
        )
    assert error.value.status == 422


def test_core_event_is_created_and_found_by_field_selector(
    api: kubernetes.client.ApiClient,
) -> None:
    core = kubernetes.client.CoreV1Api(api)
    involved = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "LLMRoute", "name": "chat"}
    for name in ("chat", "other"):
        core.create_namespaced_event(
            NS,
            {
                "metadata": {"generateName": f"{name}."},
                "involvedObject": {**involved, "name": name, "namespace": NS},
                "type": "Warning",
                "reason": "FailedOver",
                "message": "openai -> qwen",
            },
        )
    found = core.list_namespaced_event(NS, field_selector="involvedObject.name=chat").items
    assert [e.reason for e in found] == ["FailedOver"]
    assert found[0].metadata.name.startswith("chat.")


def test_deployment_pod_template_annotation_is_patched(
    api: kubernetes.client.ApiClient, cluster: EmulatedCluster
) -> None:
    apps = kubernetes.client.AppsV1Api(api)
    labels = {"app": "api"}
    apps.create_namespaced_deployment(
        NS,
        {
            "metadata": {"name": "api"},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "api", "image": "example/api:1"}]},
                },
            },
        },
    )
    patch = {"spec": {"template": {"metadata": {"annotations": {"llmfailover.dev/rev": "abc"}}}}}
    apps.patch_namespaced_deployment("api", NS, patch)

    stored = cluster.get(group="apps", version="v1", plural="deployments", namespace=NS, name="api")
    assert stored is not None
    template = stored["spec"]["template"]
    assert template["metadata"] == {"labels": labels, "annotations": {"llmfailover.dev/rev": "abc"}}
    assert template["spec"]["containers"] == [{"name": "api", "image": "example/api:1"}]
    assert stored["metadata"]["generation"] == 2


def test_owned_objects_are_garbage_collected_after_finalizers(
    api: kubernetes.client.ApiClient, cluster: EmulatedCluster
) -> None:
    custom = kubernetes.client.CustomObjectsApi(api)
    core = kubernetes.client.CoreV1Api(api)
    body = route()
    body["metadata"]["finalizers"] = ["llmfailover.dev/cleanup"]
    owner = custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)
    reference = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LLMRoute",
        "name": "chat",
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }
    core.create_namespaced_config_map(
        NS, {"metadata": {"name": "chat-llm", "ownerReferences": [reference]}, "data": {}}
    )

    custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "chat")
    marked = get_route(cluster)
    assert marked is not None
    assert marked["metadata"]["deletionTimestamp"]
    assert cluster.objects(group="", version="v1", plural="configmaps", namespace=NS)

    custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "chat", {"metadata": {"finalizers": None}}
    )
    assert get_route(cluster) is None
    assert cluster.objects(group="", version="v1", plural="configmaps", namespace=NS) == []


def test_watch_streams_changes_from_a_resource_version(api: kubernetes.client.ApiClient) -> None:
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "before"}})
    listed = core.list_namespaced_config_map(NS)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "gap", "labels": {"x": "1"}}})

    seen: list[tuple[str, str]] = []
    watch = kubernetes.watch.Watch()
    stream = watch.stream(
        core.list_namespaced_config_map,
        NS,
        resource_version=listed.metadata.resource_version,
        label_selector="x",
        timeout_seconds=10,
    )
    for event in stream:
        seen.append((event["type"], event["object"].metadata.name))
        if seen == [("ADDED", "gap")]:
            core.patch_namespaced_config_map("gap", NS, {"data": {"k": "v"}})
            core.create_namespaced_config_map(NS, {"metadata": {"name": "unlabelled"}})
        elif len(seen) == 2:
            core.delete_namespaced_config_map("gap", NS)
        elif len(seen) == 3:
            watch.stop()
    assert seen == [("ADDED", "gap"), ("MODIFIED", "gap"), ("DELETED", "gap")]


def test_namespaces_are_served(cluster: EmulatedCluster, api: kubernetes.client.ApiClient) -> None:
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "extra"}})
    names = [ns.metadata.name for ns in core.list_namespace().items]
    assert {"default", NS, "extra"} <= set(names)
    assert core.read_namespace("extra").status.phase == "Active"

    cluster.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "extra"}}
    )
    core.delete_namespace("extra")
    assert cluster.objects(group="", version="v1", plural="configmaps", namespace="extra") == []


# --- the helpers, and use from another event loop ------------------------------------------


def test_apply_writes_fixtures_including_status(cluster: EmulatedCluster) -> None:
    body = route()
    body["status"] = {"activeProvider": "openai"}
    cluster.apply(body)
    first = get_route(cluster)
    assert first is not None
    assert first["status"] == {"activeProvider": "openai"}

    cluster.apply(body)  # identical: nothing changes
    again = get_route(cluster)
    assert again == first

    cluster.apply(route(model="gpt-5"))
    changed = get_route(cluster)
    assert changed is not None
    assert changed["metadata"]["uid"] == first["metadata"]["uid"]
    assert changed["metadata"]["generation"] == 2
    assert "status" not in changed

    listed = cluster.objects(group=GROUP, version=VERSION, plural=PLURAL)
    assert [obj["metadata"]["name"] for obj in listed] == ["chat"]
    assert cluster.delete(group=GROUP, version=VERSION, plural=PLURAL, namespace=NS, name="chat")
    assert not cluster.delete(
        group=GROUP, version=VERSION, plural=PLURAL, namespace=NS, name="chat"
    )
    assert get_route(cluster) is None


async def test_usable_from_another_event_loop(cluster: EmulatedCluster) -> None:
    cluster.apply(route())
    url = f"{cluster.url}/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}"
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            listed = await response.json()
        async with session.get(url, params={"watch": "true", "timeoutSeconds": "1"}) as response:
            assert response.content_type == "application/json"
            lines = [json.loads(line) async for line in response.content if line.strip()]
    assert listed["kind"] == "LLMRouteList"
    assert [item["metadata"]["name"] for item in listed["items"]] == ["chat"]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in lines] == [("ADDED", "chat")]


# --- kubectl --------------------------------------------------------------------------------


def test_kubectl_apply_get_describe(
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    api: kubernetes.client.ApiClient,
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "route.yaml"
    manifest.write_text(yaml.safe_dump(route()), encoding="utf-8")
    assert "created" in kubectl("apply", "-f", str(manifest)).stdout
    manifest.write_text(yaml.safe_dump(route(model="gpt-5")), encoding="utf-8")
    assert "configured" in kubectl("apply", "-f", str(manifest)).stdout
    conflict = kubectl("create", "-f", str(manifest), check=False)
    assert conflict.returncode != 0
    assert "AlreadyExists" in conflict.stderr

    got = yaml.safe_load(kubectl("get", "llmroute", "chat", "-o", "yaml").stdout)
    assert got["spec"]["providers"][0]["model"] == "gpt-5"

    custom = kubernetes.client.CustomObjectsApi(api)
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, NS, PLURAL, "chat", {"status": {"activeProvider": "qwen"}}
    )
    table = kubectl("get", "llmroutes").stdout.splitlines()
    assert table[0].split()[:2] == ["NAME", "ACTIVE"]
    assert table[1].split()[:2] == ["chat", "qwen"]
    assert "chat" in kubectl("get", "llmr", "-A").stdout
    assert "chat" in kubectl("get", "llm").stdout

    kubernetes.client.CoreV1Api(api).create_namespaced_event(
        NS,
        {
            "metadata": {"name": "chat.1"},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "LLMRoute",
                "name": "chat",
                "namespace": NS,
                "uid": got["metadata"]["uid"],
            },
            "type": "Warning",
            "reason": "FailedOver",
            "message": "openai is geo-blocked",
        },
    )
    described = kubectl("describe", "llmroute", "chat").stdout
    assert "Name:         chat" in described
    assert "FailedOver" in described
    assert "openai is geo-blocked" in described


# --- kopf -----------------------------------------------------------------------------------

OPERATOR = """
    import kopf

    @kopf.on.login()
    def login(**kwargs):
        # kopf's default login goes through the kubernetes client, which read KUBECONFIG when
        # it was first imported; this reads it now.
        return kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.create("llmfailover.dev", "v1alpha1", "llmroutes")
    def created(body, spec, patch, **_):
        patch.status["activeProvider"] = spec["providers"][0]["name"]
        kopf.info(body, reason="Routed", message="routing to the first provider")
"""


def test_kopf_sees_a_route_and_patches_its_status(
    cluster: EmulatedCluster,
    kubeconfig: Path,
    api: kubernetes.client.ApiClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    operator = tmp_path / "operator.py"
    operator.write_text(textwrap.dedent(OPERATOR), encoding="utf-8")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    args = ["run", "--standalone", "--namespace", NS, str(operator)]
    with KopfRunner(args, timeout=60) as runner:
        wait_for(
            lambda: (
                ("GET", f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}") in cluster.requests
            ),
            what="kopf to list the routes",
        )
        custom = kubernetes.client.CustomObjectsApi(api)
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, route())
        status = wait_for(
            lambda: (get_route(cluster) or {}).get("status"), what="kopf to patch the status"
        )
        events = wait_for(
            lambda: cluster.objects(group="", version="v1", plural="events", namespace=NS),
            what="kopf to post an event",
        )
    assert runner.exit_code == 0, runner.output
    assert status["activeProvider"] == "openai"
    assert [(e["reason"], e["involvedObject"]["name"]) for e in events] == [("Routed", "chat")]
    assert ("PATCH", f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/chat/status") in (
        cluster.requests
    )


def test_kubectl_create_namespace_secret_configmap_sent_as_protobuf(
    kubectl: Callable[..., subprocess.CompletedProcess[str]], cluster: EmulatedCluster
) -> None:
    """kubectl's typed generators send protobuf (and never fall back to JSON)."""
    assert kubectl("create", "namespace", "extra").stdout.strip() == "namespace/extra created"
    created = kubectl(
        "-n", "extra", "create", "secret", "generic", "openai",
        "--from-literal=api-key=sk-x", "--from-literal=empty=",
    )  # fmt: skip
    assert created.stdout.strip() == "secret/openai created"
    assert kubectl(
        "-n", "extra", "create", "configmap", "routing", "--from-literal=LLM_PROVIDER=qwen"
    ).stdout.strip() == "configmap/routing created"  # fmt: skip
    assert kubectl("create", "namespace", "labelled", "-o", "name").stdout.strip() == (
        "namespace/labelled"
    )

    namespace = cluster.get(
        group="", version="v1", plural="namespaces", namespace=None, name="extra"
    )
    assert namespace is not None
    assert namespace["status"] == {"phase": "Active"}
    secret = cluster.get(group="", version="v1", plural="secrets", namespace="extra", name="openai")
    assert secret is not None
    assert secret["data"] == {"api-key": base64.b64encode(b"sk-x").decode(), "empty": ""}
    assert secret["type"] == "Opaque"
    assert set(secret["metadata"]) == {
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "resourceVersion",
        "generation",
    }  # fmt: skip  (no empty fields the protobuf carried)
    config_map = cluster.get(
        group="", version="v1", plural="configmaps", namespace="extra", name="routing"
    )
    assert config_map is not None
    assert config_map["data"] == {"LLM_PROVIDER": "qwen"}

    again = kubectl("create", "namespace", "extra", check=False)
    assert again.returncode != 0
    assert "AlreadyExists" in again.stderr


def _pb_varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 as protobuf writes it: two's complement, 10 bytes if < 0
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _pb_field(number: int, payload: bytes) -> bytes:
    return _pb_varint(number << 3 | 2) + _pb_varint(len(payload)) + payload


def test_protobuf_bodies_other_than_the_generators_kinds_are_refused() -> None:
    from llm_failover.sandbox.emulator import protobuf

    type_meta = _pb_field(1, b"apps/v1") + _pb_field(2, b"Deployment")
    body = protobuf.MAGIC + _pb_field(1, type_meta) + _pb_field(2, b"")
    with pytest.raises(Exception, match="not apps/v1/Deployment") as refused:
        protobuf.decode(body)
    assert getattr(refused.value, "status", None) == 415
    for broken in (b"{}", protobuf.MAGIC + b"\x0a\x05ab", protobuf.MAGIC + b"\x08" + b"\xff" * 11):
        with pytest.raises(Exception, match="protobuf body") as bad:
            protobuf.decode(broken)
        assert getattr(bad.value, "status", None) == 400
    # Labels, owner references, times and negative numbers as the generated code writes them.
    owner = _pb_field(1, b"LLMRoute") + _pb_field(3, b"chat") + bytes([6 << 3, 1])
    meta = (
        _pb_field(1, b"c")
        + _pb_field(11, _pb_field(1, b"app") + _pb_field(2, b"x"))
        + _pb_field(13, owner)
        + _pb_field(8, _pb_varint(1 << 3) + _pb_varint(1_720_519_680))  # a Time, in seconds
        + _pb_varint(10 << 3) + _pb_varint(-1)  # deletionGracePeriodSeconds
    )  # fmt: skip
    raw = _pb_field(1, meta) + _pb_field(2, _pb_field(1, b"k") + _pb_field(2, b"v"))
    type_meta = _pb_field(1, b"v1") + _pb_field(2, b"ConfigMap")
    decoded = protobuf.decode(protobuf.MAGIC + _pb_field(1, type_meta) + _pb_field(2, raw))
    assert decoded == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "c",
            "labels": {"app": "x"},
            "ownerReferences": [{"kind": "LLMRoute", "name": "chat", "controller": True}],
            "creationTimestamp": "2024-07-09T10:08:00Z",
            "deletionGracePeriodSeconds": -1,
        },
        "data": {"k": "v"},
    }


def test_kubectl_get_shows_the_api_servers_columns_for_built_in_kinds(
    kubectl: Callable[..., subprocess.CompletedProcess[str]], api: kubernetes.client.ApiClient
) -> None:
    """As kube-apiserver prints them (checked against v1.36 with the same kubectl)."""
    core = kubernetes.client.CoreV1Api(api)
    involved = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "LLMRoute", "name": "chat"}
    core.create_namespaced_event(
        NS,
        {
            "metadata": {"name": "chat.1"},
            "involvedObject": {**involved, "namespace": NS},
            "type": "Warning",
            "reason": "FailedOver",
            "message": "openai → qwen (GeoBlocked)",
            "source": {"component": "llm-failover"},
            "firstTimestamp": "2024-07-09T10:00:00Z",
            "lastTimestamp": "2024-07-09T10:00:00Z",
            "count": 1,
        },
    )
    core.create_namespaced_event(
        NS,
        {
            "metadata": {"name": "chat.2"},
            "involvedObject": {"kind": "LLMRoute", "name": "chat", "namespace": NS},
            "type": "Normal",
            "reason": "Kopf",
            "message": "  hello  ",
            "reportingComponent": "kopf",
            "reportingInstance": "i",
            "eventTime": "2024-07-09T10:00:00.000000Z",
            "action": "x",
        },
    )
    rows = [line.split("   ") for line in kubectl("get", "events").stdout.splitlines()]
    cells = [[cell.strip() for cell in row if cell.strip()] for row in rows]
    assert cells[0] == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert cells[1][1:] == ["Warning", "FailedOver", "llmroute/chat", "openai → qwen (GeoBlocked)"]
    assert cells[2][1:] == ["Normal", "Kopf", "llmroute/chat", "hello"]
    assert re.fullmatch(r"\d+y\d*d?", cells[1][0]), cells[1][0]  # 2024: years ago
    wide = kubectl("get", "events", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == [
        "LAST", "SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE", "MESSAGE",
        "FIRST", "SEEN", "COUNT", "NAME",
    ]  # fmt: skip
    assert "kopf, i" in wide[2]
    assert wide[1].split()[-2:] == ["1", "chat.1"]
    assert kubectl("get", "events", "-A").stdout.split()[:3] == ["NAMESPACE", "LAST", "SEEN"]

    core.create_namespaced_config_map(NS, {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    core.create_namespaced_secret(NS, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    configmaps = kubectl("get", "configmaps").stdout.splitlines()
    assert configmaps[0].split() == ["NAME", "DATA", "AGE"]
    assert configmaps[1].split()[:2] == ["cm", "1"]
    secrets = kubectl("get", "secrets").stdout.splitlines()
    assert secrets[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert secrets[1].split()[:3] == ["s", "Opaque", "1"]
    namespaces = kubectl("get", "namespaces").stdout.splitlines()
    assert namespaces[0].split() == ["NAME", "STATUS", "AGE"]
    assert [NS, "Active"] in [line.split()[:2] for line in namespaces]
    assert kubectl("get", "configmaps", "-A").stdout.split()[:4] == [
        "NAMESPACE", "NAME", "DATA", "AGE",
    ]  # fmt: skip
    crds = kubectl("get", "crd").stdout.splitlines()
    assert crds[0].split() == ["NAME", "CREATED", "AT"]
    assert crds[1].split()[0] == "llmroutes.llmfailover.dev"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (125, "2m5s"),
        (600, "10m"), (10_799, "179m"), (10_800, "3h"), (11_100, "3h5m"), (8 * 3600, "8h"),
        (48 * 3600, "2d"), (50 * 3600, "2d2h"), (8 * 86400, "8d"), (2 * 365 * 86400, "2y"),
        (2 * 365 * 86400 + 146 * 86400, "2y146d"), (9 * 365 * 86400, "9y"),
    ],
)  # fmt: skip
def test_ages_read_as_kubectl_prints_them(seconds: int, shown: str) -> None:
    from llm_failover.sandbox.emulator.tables import human_duration

    assert human_duration(seconds) == shown
