"""Two operator processes on one cluster, as the Deployment runs them: one leader writes, the
standby probes and takes over. On the emulator and on the real control plane.

Each scenario runs its own two `llm-failover run` processes, with deploy/'s Lease and (on the
real control plane) deploy/'s RBAC; the shared operator is stopped meanwhile. Who wrote what is
read from each process's own metrics and, on the real control plane, from the API server's
audit log, where each replica's user agent names it.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from conftest import (
    OPERATOR_NAMESPACE,
    Env,
    OperatorProcess,
    shared_operator_stopped,
    three_providers,
    wait_for,
)
from controlplane import RealCluster
from llm_failover.sandbox.cluster import EmulatedCluster
from llm_failover.sandbox.providers import Behaviour, StandInProvider
from test_operator import routed_to, settled

pytestmark = pytest.mark.parametrize(
    "cluster", ["emulated", "real"], indirect=True, scope="session"
)
Providers = dict[str, StandInProvider]
LEASE = f"/apis/coordination.k8s.io/v1/namespaces/{OPERATOR_NAMESPACE}/leases/llm-failover"
LEASE_SECONDS, RETRY_SECONDS, INTERVAL_SECONDS = 15.0, 2.0, 1.0


def samples(operator: OperatorProcess) -> list[Sample]:
    """Every sample of the process's /metrics (none when it does not answer)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return []
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def sample(operator: OperatorProcess, name: str, **labels: str) -> float | None:
    """One sample of the process's /metrics, or None when it has no such series."""
    return next(
        (
            s.value
            for s in samples(operator)
            if s.name == name and labels.items() <= s.labels.items()
        ),
        None,
    )


def leads(operator: OperatorProcess) -> bool:
    return sample(operator, "llmfailover_leader") == 1


def writes_sent(operator: OperatorProcess) -> float:
    """The process's answered writes (2xx), Leases aside."""
    return sum(
        s.value
        for s in samples(operator)
        if s.name == "llmfailover_api_requests_total"
        and s.labels.get("verb") in {"create", "patch", "replace", "delete"}
        and s.labels.get("resource") != "lease"
        and s.labels.get("code") == "2xx"
    )


def route_series(operator: OperatorProcess) -> int:
    return sum(1 for s in samples(operator) if "route" in s.labels)


def lease(env: Env) -> dict[str, Any]:
    found = env.cluster.get(
        group="coordination.k8s.io",
        version="v1",
        plural="leases",
        namespace=OPERATOR_NAMESPACE,
        name="llm-failover",
    )
    assert found is not None, "no Lease"
    return dict(found["spec"])


def config_map_writes(env: Env, name: str = "chat-llm") -> int:
    path = f"/api/v1/namespaces/{env.namespace}/configmaps"
    return sum(
        1
        for method, p in env.cluster.requests
        if method in ("POST", "PUT", "PATCH") and p.split("?")[0] in (path, f"{path}/{name}")
    )


def identity(operator: OperatorProcess) -> str:
    """The replica's identity, as its log says it elects itself."""
    for line in operator.log().splitlines():
        if "electing a leader as " in line:
            return line.rsplit("electing a leader as ", 1)[1].strip()
    raise AssertionError("the operator did not say its identity")


class Blackhole:
    """A loopback TCP proxy to the API server that can stop answering: while cut it reads and
    drops what either side sends (as a partition drops packets) and forwards nothing; healed,
    it closes the connections the cut broke, so the client connects afresh."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.cut = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def heal(self) -> None:
        with self._lock:
            self.cut = False
            broken, self._sockets = self._sockets, set()
        for sock in broken:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.heal()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)  # a watch is quiet for minutes
            with self._lock:
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                break
            if not data:
                break
            if self.cut:
                continue  # dropped on the floor
            try:
                sink.sendall(data)
            except OSError:
                break
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.close()


@dataclass
class Pair:
    env: Env
    first: OperatorProcess
    second: OperatorProcess


@pytest.fixture
def pair(
    env: Env,
    operator_kubeconfig: Path,
    tmp_path: Path,
    cluster: EmulatedCluster | RealCluster,
    request: pytest.FixtureRequest,
) -> Iterator[Pair]:
    """Two replicas: `first` started first, so it leads; `second` stands by. `first` reaches
    the API server through a Blackhole (`request.node.blackhole`) that the test may cut."""
    if not isinstance(cluster, RealCluster):
        cluster.add_namespace(OPERATOR_NAMESPACE)
    config = yaml.safe_load(operator_kubeconfig.read_text())
    server = httpx.URL(config["clusters"][0]["cluster"]["server"])
    hole = Blackhole((server.host, server.port or 443))
    config["clusters"][0]["cluster"]["server"] = f"{server.scheme}://127.0.0.1:{hole.port}"
    proxied = tmp_path / "first.kubeconfig"
    proxied.write_text(yaml.safe_dump(config))
    request.node.blackhole = hole
    with shared_operator_stopped(cluster):  # it releases the Lease on SIGTERM
        first = OperatorProcess(proxied, tmp_path / "first.log", leader_elect=True).start()
        second = None
        try:
            wait_for(lambda: leads(first), what="the first replica to lead", timeout=30)
            second = OperatorProcess(
                operator_kubeconfig, tmp_path / "second.log", leader_elect=True
            ).start()
            wait_for(
                lambda: sample(second, "llmfailover_leader") == 0,
                what="the second replica to stand by",
            )
            yield Pair(env, first, second)
        finally:
            hole.heal()  # so that the first can release the Lease
            for process in (first, second):
                if process is not None and process.process is not None:
                    process.stop()
            hole.close()


def route(pair: Pair, stand_ins: Providers) -> None:
    """A route over the three stand-ins, routed to openai with every backup eligible."""
    env = pair.env
    env.llm_route("chat", three_providers(stand_ins, env))
    routed_to(env, "openai")
    settled(env)
    wait_for(
        lambda: all(p.get("eligible") for p in env.status("chat").get("providers", [])),
        what="every provider eligible in the status",
    )


def audited_writes_by(cluster: EmulatedCluster | RealCluster, agent_part: str, since: float):
    """Writes the real API server accepted from the replica named in its user agent."""
    assert isinstance(cluster, RealCluster)
    return [
        f"{a.method} {a.path}"
        for a in cluster.audited()
        if agent_part in a.user_agent
        and a.time >= since
        and a.method in ("POST", "PUT", "PATCH", "DELETE")
        and "/leases/" not in a.path
        and a.code < 300
    ]


def test_only_the_leader_writes(pair: Pair, stand_ins: Providers) -> None:
    route(pair, stand_ins)
    stand_ins["openai"].set(Behaviour.GEO_BLOCKED)
    routed_to(pair.env, "qwen")
    assert writes_sent(pair.first) > 0
    assert writes_sent(pair.second) == 0
    # The standby probes (it is ready to take over) but exports no route series.
    assert (sample(pair.second, "llmfailover_probes_total") or 0) > 0
    assert route_series(pair.second) == 0
    assert route_series(pair.first) > 0
    spec = lease(pair.env)
    assert spec["holderIdentity"] == identity(pair.first)
    assert spec["leaseDurationSeconds"] == 15
    if isinstance(pair.env.cluster, RealCluster):
        assert audited_writes_by(pair.env.cluster, identity(pair.second), 0) == []
        assert audited_writes_by(pair.env.cluster, identity(pair.first), 0) != []
    # Alertmanager's posts are the leader's to take: the standby answers 503, which
    # Alertmanager retries (through the Service, to either replica) until the leader has it.
    notification = {"version": "4", "status": "firing", "alerts": []}
    for process, status in ((pair.second, 503), (pair.first, 200)):
        url = f"http://127.0.0.1:{process.metrics_port}/alertmanager"
        assert httpx.post(url, json=notification, timeout=10).status_code == status


def test_sigkill_of_the_leader_while_a_provider_is_geo_blocked(
    pair: Pair, stand_ins: Providers
) -> None:
    """The leader dies, and the active provider is geo-blocked at that moment: the standby
    takes the Lease once it lapses and fails the route over, with one ConfigMap write."""
    env = pair.env
    route(pair, stand_ins)
    writes = config_map_writes(env)
    assert pair.first.process is not None
    killed = time.monotonic()
    pair.first.process.send_signal(signal.SIGKILL)
    pair.first.process.wait(10)
    pair.first.process = None
    stand_ins["openai"].set(Behaviour.GEO_BLOCKED)
    wait_for(
        lambda: env.data("chat-llm").get("LLM_PROVIDER") == "qwen",
        what="the standby to take over and fail over",
        timeout=LEASE_SECONDS + 2 * RETRY_SECONDS + INTERVAL_SECONDS + 10,
    )
    switched = time.monotonic() - killed
    assert leads(pair.second)
    routed_to(env, "qwen")
    assert config_map_writes(env) - writes == 1, "exactly one ConfigMap write for the switch"
    # Within the lease duration, a standby's look (1.2 s at most), one probe interval, and slack.
    assert switched < LEASE_SECONDS + RETRY_SECONDS + INTERVAL_SECONDS + 3, switched
    assert (sample(pair.second, "llmfailover_leader_changes_total", change="acquired")) == 1
    reasons = env.event_reasons()
    assert reasons.count("FailedOver") == 1
    assert lease(env)["holderIdentity"] == identity(pair.second)
    assert lease(env)["leaseTransitions"] >= 1


def test_sigterm_hands_over_without_a_gap(pair: Pair, stand_ins: Providers) -> None:
    """A rollout: the leader releases the Lease on SIGTERM and the standby takes it at its next
    look, not after the lease duration; a failover due meanwhile is done at once."""
    env = pair.env
    route(pair, stand_ins)
    writes = config_map_writes(env)
    assert pair.first.process is not None
    stopping = time.monotonic()
    pair.first.process.send_signal(signal.SIGTERM)
    stand_ins["openai"].set(Behaviour.GEO_BLOCKED)
    wait_for(lambda: leads(pair.second), what="the standby to lead", timeout=LEASE_SECONDS)
    handed_over = time.monotonic() - stopping
    assert pair.first.process.wait(20) == 0
    pair.first.process = None
    wait_for(lambda: env.data("chat-llm").get("LLM_PROVIDER") == "qwen", what="the failover")
    switched = time.monotonic() - stopping
    assert "released" in pair.first.log()
    assert handed_over < 1.2 * RETRY_SECONDS + 3, handed_over  # not the lease duration
    assert switched < LEASE_SECONDS, switched
    routed_to(env, "qwen")
    assert config_map_writes(env) - writes == 1


def test_a_leader_cut_off_from_the_api_server_stops_writing_before_the_other_starts(
    pair: Pair, stand_ins: Providers, request: pytest.FixtureRequest
) -> None:
    env = pair.env
    hole: Blackhole = request.node.blackhole
    route(pair, stand_ins)
    written = writes_sent(pair.first)
    cut = time.monotonic()
    cut_wall = time.time()
    hole.cut = True
    stand_ins["openai"].set(Behaviour.GEO_BLOCKED)  # the cut-off leader would write a failover
    stopped = began = None
    deadline = cut + LEASE_SECONDS + 3 * RETRY_SECONDS + 15
    while (stopped is None or began is None) and time.monotonic() < deadline:
        now = time.monotonic()
        if stopped is None and sample(pair.first, "llmfailover_leader") == 0:
            stopped = now
        if began is None and leads(pair.second):
            began = now
            assert stopped is not None, "two leaders: the cut-off one had not stopped"
        time.sleep(0.05)
    assert stopped is not None, "the cut-off leader never stopped leading"
    assert began is not None, "the standby never took over"
    assert stopped - cut <= 10.5, stopped - cut  # the renew deadline
    assert began - stopped >= 3, began - stopped  # the lease's margin, at least
    wait_for(lambda: env.data("chat-llm").get("LLM_PROVIDER") == "qwen", what="the failover")
    hole.heal()
    # Reconnected, the old leader finds the Lease taken: it stays a standby and writes nothing.
    wait_for(lambda: "standing by" in pair.first.log().split("lost the leadership")[-1],
             what="the old leader to see the new one", timeout=30)  # fmt: skip
    time.sleep(2 * RETRY_SECONDS)
    assert not leads(pair.first)
    assert writes_sent(pair.first) == written
    assert route_series(pair.first) == 0
    if isinstance(env.cluster, RealCluster):
        assert audited_writes_by(env.cluster, identity(pair.first), cut_wall) == []
