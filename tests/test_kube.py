"""The Kubernetes client's contract with the controller: failures are KubeError (a connection
failure too, not only an API answer), a route whose status answers 404 is RouteGone, and every
string written into a status or an Event passes the redactor."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import kubernetes
import pytest

from conftest import CRD, GROUP, PLURAL, VERSION
from llm_failover.kube import KubeClient, KubeError, LeaseClient, NotLeader, RouteGone, RouteRef
from llm_failover.leader import Leadership, LeaseConflict
from llm_failover.redact import Redactor
from llm_failover.sandbox.cluster import EmulatedCluster

KEY = "sk-kube-Xq9Lm2Nv8Rt4Wp6Z"


def client(kubeconfig: Path, redactor: Redactor) -> KubeClient:
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(kubeconfig), client_configuration=configuration
    )
    return KubeClient(kubernetes.client.ApiClient(configuration), redact=redactor)


async def test_an_unreachable_api_server_is_a_kube_error() -> None:
    configuration = kubernetes.client.Configuration(host="http://127.0.0.1:1")
    configuration.retries = 0
    kube = KubeClient(kubernetes.client.ApiClient(configuration))
    with pytest.raises(KubeError, match=r"MaxRetryError|refused"):
        await kube.read_config_map("shop", "chat-llm")
    kube.close()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[tuple[EmulatedCluster, Path]]:
    """A cluster of its own: the session's has an operator that would write these statuses."""
    with EmulatedCluster(crd_paths=[CRD]) as cluster:
        yield cluster, cluster.write_kubeconfig(tmp_path / "config")


async def test_status_of_a_deleted_route_is_route_gone_and_writes_are_redacted(
    own_cluster: tuple[EmulatedCluster, Path],
) -> None:
    cluster, kubeconfig = own_cluster
    namespace = f"k-{uuid.uuid4().hex[:8]}"
    cluster.add_namespace(namespace)
    redactor = Redactor()
    redactor.remember([KEY])
    kube = client(kubeconfig, redactor)
    try:
        with pytest.raises(RouteGone):
            await kube.patch_route_status(namespace, "nope", {"failoverCount": 0})
        cluster.apply(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "LLMRoute",
                "metadata": {"name": "chat", "namespace": namespace},
                "spec": {"providers": [{"name": "p", "baseURL": "http://a", "model": "m"}]},
            }
        )
        route = cluster.get(
            group=GROUP, version=VERSION, plural=PLURAL, namespace=namespace, name="chat"
        )
        assert route is not None
        message = f"invalid_api_key: Incorrect API key provided: {KEY[:14]}…"
        await kube.patch_route_status(
            namespace, "chat", {"providers": [{"name": "p", "message": message}]}
        )
        ref = RouteRef(namespace, "chat", route["metadata"]["uid"])
        await kube.post_event(
            ref, type="Warning", reason="ProviderEjected", message=message, now=datetime.now(UTC)
        )
        stored = cluster.get(
            group=GROUP, version=VERSION, plural=PLURAL, namespace=namespace, name="chat"
        )
        assert stored is not None
        shown = stored["status"]["providers"][0]["message"]
        assert shown == "invalid_api_key: Incorrect API key provided: ***…"
        events = cluster.objects(group="", version="v1", plural="events", namespace=namespace)
        assert [e["message"] for e in events] == [shown]
    finally:
        kube.close()


async def test_every_call_is_counted_by_verb_resource_and_answer(
    own_cluster: tuple[EmulatedCluster, Path],
) -> None:
    cluster, kubeconfig = own_cluster
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(kubeconfig), client_configuration=configuration
    )
    configuration.retries = 0
    counted: list[tuple[str, str, str]] = []
    kube = KubeClient(
        kubernetes.client.ApiClient(configuration),
        count=lambda verb, resource, code: counted.append((verb, resource, code)),
    )
    cluster.add_namespace("counted")
    try:
        assert await kube.read_config_map("counted", "nope") is None
        with pytest.raises(RouteGone):
            await kube.patch_route_status("counted", "nope", {"failoverCount": 0})
        await kube.create_config_map(
            RouteRef("counted", "chat", "uid-1"), "chat-llm", {"LLM_PROVIDER": "p"}
        )
    finally:
        kube.close()
    assert counted == [
        ("read", "config_map", "4xx"),
        ("patch", "custom_object_status", "4xx"),
        ("create", "config_map", "2xx"),
    ]
    unreachable = kubernetes.client.Configuration(host="http://127.0.0.1:1")
    unreachable.retries = 0
    lost: list[tuple[str, str, str]] = []
    kube = KubeClient(kubernetes.client.ApiClient(unreachable), count=lambda *c: lost.append(c))
    with pytest.raises(KubeError):
        await kube.read_secret("counted", "keys")
    assert lost == [("read", "secret", "none")]


async def test_writes_wait_for_the_lease_and_reads_do_not(
    own_cluster: tuple[EmulatedCluster, Path],
) -> None:
    """The gate sits in the client, in the thread, right before a request is sent: a standby
    (or a leader past its renew deadline) sends no write at all; reads go on."""
    cluster, kubeconfig = own_cluster
    namespace = f"k-{uuid.uuid4().hex[:8]}"
    cluster.add_namespace(namespace)
    now = [100.0]
    leadership = Leadership(margin_seconds=5, clock=lambda: now[0])
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(kubeconfig), client_configuration=configuration
    )
    kube = KubeClient(kubernetes.client.ApiClient(configuration), leadership=leadership)
    route = RouteRef(namespace, "chat", "uid-1")
    try:
        sent = len(cluster.requests)
        with pytest.raises(NotLeader):
            await kube.create_config_map(route, "chat-llm", {"LLM_PROVIDER": "qwen"})
        assert await kube.read_config_map(namespace, "chat-llm") is None
        assert [m for m, _ in cluster.requests[sent:]] == ["GET"]  # the write never left
        leadership.hold(until=110.0)
        await kube.create_config_map(route, "chat-llm", {"LLM_PROVIDER": "qwen"})
        now[0] = 110.0  # the renew deadline, not renewed
        with pytest.raises(NotLeader):
            await kube.patch_config_map(namespace, "chat-llm", {"LLM_PROVIDER": "openai"})
        found = await kube.read_config_map(namespace, "chat-llm")
        assert found is not None
        assert found["data"] == {"LLM_PROVIDER": "qwen"}
        assert kube.drained(within=0)
    finally:
        kube.close()


async def test_the_lease_client_creates_replaces_and_conflicts(
    own_cluster: tuple[EmulatedCluster, Path],
) -> None:
    cluster, kubeconfig = own_cluster
    cluster.add_namespace("llm-failover")
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(kubeconfig), client_configuration=configuration
    )
    leases = LeaseClient(kubernetes.client.ApiClient(configuration))
    try:
        assert leases.get_lease("llm-failover", "llm-failover", timeout=5) is None
        body = {"metadata": {"name": "llm-failover"}, "spec": {"holderIdentity": "a"}}
        created = leases.create_lease("llm-failover", body, timeout=5)
        with pytest.raises(LeaseConflict):
            leases.create_lease("llm-failover", body, timeout=5)
        renewed = leases.replace_lease(
            "llm-failover",
            "llm-failover",
            {**created, "spec": {"holderIdentity": "a", "leaseTransitions": 1}},
            timeout=5,
        )
        assert renewed["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
        with pytest.raises(LeaseConflict):  # written over a version since replaced
            leases.replace_lease(
                "llm-failover", "llm-failover", {**created, "spec": {"holderIdentity": "b"}},
                timeout=5,
            )  # fmt: skip
        found = leases.get_lease("llm-failover", "llm-failover", timeout=5)
        assert found is not None
        assert found["spec"]["holderIdentity"] == "a"
    finally:
        leases.close()
