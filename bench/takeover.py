"""How long a pending failover waits when the leader dies: figures, not a test (`make bench`).

For each cluster (the embedded one, or a real etcd + kube-apiserver + kube-controller-manager:
bench/scale.py's classes, in processes of their own on the second core) and each run: two
`llm-failover run` processes on one Lease (`llm-failover/llm-failover`, deploy/'s defaults:
lease 15 s, renew deadline 10 s, retry 2 s), both pinned to the first core; A starts first and
leads, B stands by (it watches and probes, writes nothing). `--routes` routes (default 20) in a
namespace of the run's own, each over two or three stand-in providers on loopback (s0 first, s1
second, s2 third on every other route), `intervalSeconds` `--interval`, `failureThreshold: 3`.
Once every route is routed to s0, settled (every candidate eligible in route.json and in the
status) and the writes have stopped, at t0 A gets SIGKILL and s0 turns geo-blocked at once: a
failover is pending and its leader is dead. Measured from t0:

- kill→acquired: B's `acquireTime` on the Lease (and, as a check, when B's `llmfailover_leader`
  turned 1, polled every 50 ms); also A's last renewal before t0 and B's first read of the Lease
  after it, so that where the time goes shows: the lease duration counts from when B saw the
  last renewal; a standby looks twice per retry period (with up to 20 % jitter) and once more
  at the moment the Lease it saw lapses;
- kill→first write: B's first write that is not the Lease's (the embedded cluster's request log,
  bench/scale.py `WriteLog`; the real API server's audit log, by user agent: A is dead, so it
  is B's);
- kill→all failed over: until every route's ConfigMap names s1 (a watch), and the ConfigMap
  writes per route since t0 (exactly 1 each is the target);
- the target of issue 13: the pending failover done within the lease duration plus one probe
  interval after the leader dies, per run.

Then one SIGTERM run per cluster: A releases the Lease on its way out; SIGTERM→B leads (at the
standby's next look, about a second, not the lease duration). (On the embedded cluster, whose
log names no client, a write A still drained after its SIGTERM would count as B's; the real
server's log tells them apart.) Every wait is bounded (`--timeout`); every process is stopped at
the end. Everything listens on 127.0.0.1 only. Run: `make bench` or
`.venv/bin/python bench/takeover.py --runs 5 --cluster embedded,real`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from scale import (
    CLUSTERS,
    LEASE_NAMESPACE,
    MANAGED,
    ROOT,
    ROUTES_API,
    TOTAL_CPUS,
    Cluster,
    Operator,
    RealControlPlane,
    wait,
    watch_switches,
)

from llm_failover.sandbox.providers import Behaviour, StandInProvider
from llm_failover.settings import Settings

LEASE_SECONDS = Settings.lease_seconds
RETRY_SECONDS = Settings.retry_period_seconds
LEASE_PATH = (
    f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{Settings.lease_name}"
)
POLL_SECONDS = 0.05
WRITES = ("POST", "PUT", "PATCH", "DELETE")
NOTABLE = re.compile(r"traceback|error|exception|lost the leadership|could not|\bfailed\b", re.I)
"""Lines of a replica's log worth reading (the log has no levels: kopf's plain format)."""


# --- the replicas -------------------------------------------------------------------------------


class Replica(Operator):
    """One `llm-failover run` on the shared Lease (bench/scale.py's Operator: CPU 0)."""

    def __init__(self, name: str, kubeconfig: Path, log: Path) -> None:
        super().__init__(kubeconfig, log)
        self.name = name
        self._identity: str | None = None

    def sample(self, series: str) -> float | None:
        """One series of its /metrics (name and labels as printed), or None."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=1).text
        except httpx.HTTPError:
            return None
        for line in text.splitlines():
            if line.startswith(series + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def leader(self) -> float | None:
        return self.sample("llmfailover_leader")

    def probes(self) -> float:
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return 0.0
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("llmfailover_probes_total{")
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def identity(self) -> str:
        """The replica's identity, as its log says it elects itself (its user agent names it)."""
        if self._identity is None:
            found = re.search(r"electing a leader as (\S+)", self.text())
            if found is None:
                raise SystemExit(f"replica {self.name} did not say its identity")
            self._identity = found.group(1)
        return self._identity

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.wait(timeout=30)

    def notable(self) -> list[str]:
        return [line for line in self.text().splitlines() if NOTABLE.search(line)]


# --- what the API server was asked -------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    time: float  # epoch seconds, when the server received it
    method: str
    path: str
    agent: str = ""  # the real server's audit log only
    code: int = 0  # the real server's audit log only


class Requests:
    """Write requests the cluster received: the embedded cluster's `WriteLog` file, or the real
    API server's audit log (tests/controlplane.py `RealCluster.audited`)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.real: Any = None
        if isinstance(cluster, RealControlPlane):
            sys.path.insert(0, str(ROOT / "tests"))
            from controlplane import RealCluster

            self.real = RealCluster(cluster.plane)

    def writes(self, since: float = 0.0, *, lease_reads: bool = False) -> list[Write]:
        """Writes received since `since` (epoch seconds), and GETs of Leases if asked."""
        found: list[Write] = []
        if self.real is not None:
            for entry in self.real.audited():
                wanted = entry.method in WRITES or (
                    lease_reads and entry.method == "GET" and "/leases" in entry.path
                )
                if wanted and entry.time >= since:
                    found.append(
                        Write(entry.time, entry.method, entry.path, entry.user_agent, entry.code)
                    )
            return found
        path: Path = self.cluster.request_log
        if not path.exists():
            return found
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) != 3 or (parts[1] == "GET" and not lease_reads):
                continue
            if float(parts[0]) >= since:
                found.append(Write(float(parts[0]), parts[1], parts[2]))
        return found

    def close(self) -> None:
        if self.real is not None:
            self.real.close()


def is_lease(write: Write) -> bool:
    return "/leases" in write.path


def kind_of(write: Write) -> str:
    """`PATCH configmaps`, `PATCH llmroutes/status`, `POST events`, ..."""
    parts = write.path.split("?")[0].strip("/").split("/")
    if "namespaces" in parts and len(parts) > parts.index("namespaces") + 2:
        rest = parts[parts.index("namespaces") + 2 :]
        resource = rest[0] + ("/" + rest[2] if len(rest) > 2 else "")
    else:
        resource = parts[-1]
    return f"{write.method} {resource}"


def operators(writes: list[Write]) -> list[Write]:
    """The operators' writes (on the real server: by user agent; on the embedded one the bench
    writes nothing while it measures)."""
    return [w for w in writes if not w.agent or w.agent.startswith("llm-failover/")]


# --- one run -------------------------------------------------------------------------------------


@dataclass
class Run:
    cluster: str
    number: int
    signal: str
    last_renewal: float | None = None  # A's last Lease write, seconds before t0 (negative)
    seen: float | None = None  # B's first read of the Lease after that renewal, from t0
    acquired: float | None = None  # B's acquireTime on the Lease, from t0
    acquired_polled: float | None = None  # B's llmfailover_leader turning 1, from t0
    first_write: float | None = None
    first_write_what: str = ""
    failed_over: float | None = None  # every ConfigMap names s1, from t0
    cm_writes: list[int] = field(default_factory=list)  # per route, since t0
    other_writers: list[str] = field(default_factory=list)  # writes after t0 not B's
    written: Counter[str] = field(default_factory=Counter)  # non-Lease writes after t0, by kind
    notes: list[str] = field(default_factory=list)

    def met(self, interval: float) -> bool | None:
        if self.failed_over is None:
            return None
        return self.failed_over <= LEASE_SECONDS + interval


def route(
    i: int, namespace: str, run: int, stand_ins: list[StandInProvider], interval: int
) -> dict[str, Any]:
    chosen = stand_ins[:3] if i % 2 == 0 else stand_ins[:2]
    return {
        "apiVersion": "llmfailover.dev/v1alpha1",
        "kind": "LLMRoute",
        "metadata": {"name": f"route-{i}", "namespace": namespace},
        "spec": {
            "providers": [
                {
                    "name": s.name,
                    "baseURL": s.base_url,
                    "model": "gpt-4o",
                    "apiKeySecretRef": {"name": f"key-{s.name}", "key": "api-key"},
                }
                for s in chosen
            ],
            "healthCheck": {
                "intervalSeconds": interval,
                "timeoutSeconds": 1,
                "failureThreshold": 3,
            },
            "target": {"configMapName": f"r{run}-{i}-llm"},
        },
    }


def config_maps(cluster: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    answer = cluster.http.get(
        f"/api/v1/namespaces/{namespace}/configmaps", params={"labelSelector": MANAGED}
    )
    answer.raise_for_status()
    return {cm["metadata"]["name"]: cm for cm in answer.json().get("items", [])}


def settled(cluster: Cluster, namespace: str, routes: int, run: int) -> bool:
    """Every ConfigMap names s0 with every candidate eligible in route.json, and every status
    agrees (the status is written after the ConfigMap)."""
    found = config_maps(cluster, namespace)
    for i in range(routes):
        data = (found.get(f"r{run}-{i}-llm") or {}).get("data") or {}
        if data.get("LLM_PROVIDER") != "s0":
            return False
        document = json.loads(data.get("route.json", "{}"))
        eligible = [p.get("eligible") for p in document.get("providers", [])]
        if not eligible or not all(eligible):
            return False
    answer = cluster.http.get(f"{ROUTES_API}/namespaces/{namespace}/llmroutes")
    answer.raise_for_status()
    items = answer.json().get("items", [])
    if len(items) != routes:
        return False
    for item in items:
        status = item.get("status") or {}
        providers = status.get("providers") or []
        if status.get("activeProvider") != "s0" or not providers:
            return False
        if not all(p.get("eligible") for p in providers):
            return False
    return True


def lease(cluster: Cluster) -> dict[str, Any]:
    answer = cluster.http.get(LEASE_PATH)
    answer.raise_for_status()
    spec: dict[str, Any] = answer.json().get("spec") or {}
    return spec


def epoch(micro_time: str) -> float:
    return datetime.fromisoformat(micro_time.replace("Z", "+00:00")).timestamp()


def quiet(requests: Requests, seconds: float, timeout: float) -> None:
    """Until the operators have written nothing but the Lease for `seconds` (at most
    `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recent = [
            w
            for w in operators(requests.writes(time.time() - seconds))
            if not is_lease(w) and w.code < 300
        ]
        if not recent:
            return
        time.sleep(0.5)
    print(f"    (writes had not stopped after {timeout:.0f} s; going on)", flush=True)


def one_run(
    kind: str,
    cluster: Cluster,
    requests: Requests,
    number: int,
    how: str,
    routes: int,
    interval: int,
    timeout: float,
    tmp: Path,
) -> tuple[Run, list[Replica]]:
    """One takeover; `how` is "SIGKILL" or "SIGTERM". Returns the figures and both replicas
    (stopped), whose logs the caller reads."""
    run = Run(kind, number, how)
    namespace = f"takeover-{number}"
    stand_ins = [
        StandInProvider(f"s{j}", api_key=f"sk-bench-{j:02d}-Xq9Lm2Nv8Rt4").start() for j in range(3)
    ]
    a = b = None
    replicas: list[Replica] = []
    try:
        cluster.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
        for s in stand_ins:
            cluster.create(
                f"/api/v1/namespaces/{namespace}/secrets",
                {"metadata": {"name": f"key-{s.name}"}, "stringData": {"api-key": s.api_key}},
            )
        a = Replica("A", cluster.kubeconfig, tmp / f"{kind}-{number}-A.log")
        replicas.append(a)
        wait(lambda: a.leader() == 1, timeout, "A to lead")
        b = Replica("B", cluster.kubeconfig, tmp / f"{kind}-{number}-B.log")
        replicas.append(b)
        wait(
            lambda: b.leader() == 0 and "standing by" in b.text(),
            timeout,
            "B to stand by",
        )
        for i in range(routes):
            body = route(i, namespace, number, stand_ins, interval)
            cluster.create(f"{ROUTES_API}/namespaces/{namespace}/llmroutes", body)
        wait(lambda: settled(cluster, namespace, routes, number), timeout, "every route settled")
        wait(lambda: b.probes() >= 3 * len(stand_ins), timeout, "B's probes of every stand-in")
        quiet(requests, 3.0, timeout)
        if not (a.leader() == 1 and b.leader() == 0):
            raise SystemExit(f"run {number}: A should lead and B stand by before t0")

        names = {f"r{number}-{i}-llm" for i in range(routes)}
        switched: dict[str, float] = {}
        watch_switches(cluster, names, "s0", switched)
        time.sleep(0.5)  # the watch is open
        # t0: the leader goes, and a failover falls due at the same moment.
        t0_wall, t0 = time.time(), time.monotonic()
        if how == "SIGKILL":
            a.process.send_signal(signal.SIGKILL)
        else:
            a.process.send_signal(signal.SIGTERM)
        stand_ins[0].set(Behaviour.GEO_BLOCKED)
        if how == "SIGKILL":
            a.process.wait(timeout=10)

        deadline = t0 + timeout
        while time.monotonic() < deadline:
            now = time.monotonic()
            if run.acquired_polled is None and b.leader() == 1:
                run.acquired_polled = now - t0
            if run.acquired_polled is not None and len(switched) == len(names):
                break
            time.sleep(POLL_SECONDS)
        if len(switched) == len(names):
            run.failed_over = max(switched.values()) - t0_wall
        else:
            run.notes.append(f"only {len(switched)} of {len(names)} ConfigMaps switched")
        if how == "SIGTERM":
            try:
                if (code := a.process.wait(timeout=30)) != 0:
                    run.notes.append(f"A exited with {code} after SIGTERM")
            except subprocess.TimeoutExpired:
                run.notes.append("A did not exit within 30 s of SIGTERM")
                a.kill()
        quiet(requests, 3.0, 30)

        spec = lease(cluster)
        if spec.get("holderIdentity") != b.identity:
            run.notes.append(f"the Lease names {spec.get('holderIdentity')!r}, not B")
        elif spec.get("acquireTime"):
            run.acquired = epoch(spec["acquireTime"]) - t0_wall
        final = config_maps(cluster, namespace)
        wrong = [
            n for n in names if (final.get(n, {}).get("data") or {}).get("LLM_PROVIDER") != "s1"
        ]
        if wrong:
            run.notes.append(f"{len(wrong)} ConfigMaps do not name s1 at the end")

        writes = requests.writes(t0_wall - 3 * RETRY_SECONDS, lease_reads=True)
        renewals = [
            w.time for w in writes if is_lease(w) and w.method != "GET" and w.time < t0_wall
        ]
        if renewals:
            run.last_renewal = max(renewals) - t0_wall
            # B looks at the Lease twice per retry period; the lease duration counts from when it
            # saw the last renewal (on the embedded cluster only B reads it: A renews blind).
            reads = [
                w.time
                for w in writes
                if is_lease(w)
                and w.method == "GET"
                and w.time >= max(renewals)
                and (not w.agent or b.identity in w.agent)
            ]
            if reads:
                run.seen = min(reads) - t0_wall
        writes = [w for w in writes if w.method != "GET"]
        after = [w for w in operators(writes) if w.time >= t0_wall]
        if isinstance(cluster, RealControlPlane):
            released = how == "SIGTERM"  # A's release of the Lease on its way out is expected
            run.other_writers = sorted(
                {
                    f"{w.method} {w.path} ({w.agent})"
                    for w in after
                    if b.identity not in w.agent
                    and not (released and is_lease(w) and a.identity in w.agent)
                }
            )
        theirs = [w for w in after if not is_lease(w)]
        if theirs:
            first = min(theirs, key=lambda w: w.time)
            run.first_write = first.time - t0_wall
            run.first_write_what = (
                f"{first.method} {first.path.split('?')[0].split('/namespaces/')[-1]}"
            )
        run.written = Counter(kind_of(w) for w in theirs)
        prefix = f"/api/v1/namespaces/{namespace}/configmaps"
        run.cm_writes = [
            sum(
                1
                for w in theirs
                if w.method in ("POST", "PUT", "PATCH")
                and w.path.split("?")[0] == f"{prefix}/r{number}-{i}-llm"
            )
            for i in range(routes)
        ]
        creates = sum(1 for w in theirs if w.method == "POST" and w.path.split("?")[0] == prefix)
        if creates:
            run.notes.append(f"{creates} ConfigMap creates after t0")

        # Clean up while B leads (it handles the deletions), then stop it: it releases the
        # Lease, so the next run's A leads at once.
        for i in range(routes):
            cluster.http.delete(f"{ROUTES_API}/namespaces/{namespace}/llmroutes/route-{i}")

        def gone() -> bool:
            answer = cluster.http.get(f"{ROUTES_API}/namespaces/{namespace}/llmroutes")
            return not answer.json().get("items")

        try:
            wait(gone, 60, "the run's routes deleted")
        except SystemExit as exc:
            run.notes.append(str(exc))
        sigterm = b.stop()
        if sigterm == float("inf"):
            run.notes.append("B did not exit within 60 s of SIGTERM (killed)")
        return run, replicas
    finally:
        for replica in replicas:
            if replica.alive():
                replica.kill()
        for s in stand_ins:
            s.stop()


# --- the report ----------------------------------------------------------------------------------


def spread(values: list[float | None], fmt: str = "{:.1f}") -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    if len(known) == 1:
        return fmt.format(known[0])
    return "/".join(fmt.format(v) for v in (min(known), statistics.median(known), max(known)))


def detail(runs: list[Run], interval: float) -> str:
    lines = [
        "| cluster | run | signal | A's last renewal (s) | B saw it (s) | B's wait beyond 15 s "
        "after seeing it (s) | →acquired, Lease (s) | →acquired, polled (s) | →first write (s) "
        "| first write | →all failed over (s) | CM writes/route | ≤ 15 s + interval |",
        "|" + "---|" * 13,
    ]
    for r in runs:
        killed = r.signal == "SIGKILL"
        beyond = (
            r.acquired - r.seen - LEASE_SECONDS
            if r.acquired is not None and r.seen is not None and killed
            else None
        )
        met = r.met(interval)
        cells = [
            r.cluster,
            str(r.number),
            r.signal,
            fmt(r.last_renewal, "{:+.2f}"),
            fmt(r.seen if killed else None, "{:+.2f}"),
            fmt(beyond),
            fmt(r.acquired),
            fmt(r.acquired_polled),
            fmt(r.first_write),
            f"`{r.first_write_what}`" if r.first_write_what else "-",
            fmt(r.failed_over),
            f"{min(r.cm_writes)}-{max(r.cm_writes)}" if r.cm_writes else "-",
            "-" if met is None else ("yes" if met else "no"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fmt(value: float | None, pattern: str = "{:.2f}") -> str:
    return "-" if value is None else pattern.format(value)


def summary(runs: list[Run], interval: float) -> str:
    lines = [
        "| cluster | SIGKILL runs | kill→acquired (s) | B saw A's last renewal (s from kill) "
        "| B's wait beyond 15 s after seeing it (s) | kill→first write (s) | "
        "acquired→first write (s) | kill→all failed over (s) | CM writes/switched route | met ≤ "
        f"{LEASE_SECONDS + interval:g} s | SIGTERM→new leader (s) | SIGTERM→all failed over (s) |",
        "|" + "---|" * 12,
    ]
    for kind in dict.fromkeys(r.cluster for r in runs):
        killed = [r for r in runs if r.cluster == kind and r.signal == "SIGKILL"]
        termed = [r for r in runs if r.cluster == kind and r.signal == "SIGTERM"]
        writes = [n for r in killed for n in r.cm_writes]
        met = [r.met(interval) for r in killed]
        gap = [
            r.first_write - r.acquired
            if r.first_write is not None and r.acquired is not None
            else None
            for r in killed
        ]
        cells = [
            kind,
            str(len(killed)),
            spread([r.acquired for r in killed]),
            spread([r.seen for r in killed], "{:+.1f}"),
            spread(
                [
                    r.acquired - r.seen - LEASE_SECONDS
                    if r.acquired is not None and r.seen is not None
                    else None
                    for r in killed
                ]
            ),
            spread([r.first_write for r in killed]),
            spread(gap, "{:.2f}"),
            spread([r.failed_over for r in killed]),
            f"{statistics.mean(writes):.2f} (min {min(writes)}, max {max(writes)})"
            if writes
            else "-",
            f"{sum(1 for m in met if m)} of {len(met)}",
            spread([r.acquired for r in termed], "{:.2f}"),
            spread([r.failed_over for r in termed], "{:.2f}"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="SIGKILL runs per cluster")
    parser.add_argument(
        "--cluster",
        default="embedded,real",
        help="embedded, real (tests/controlplane/, built with Go on first use), or both",
    )
    parser.add_argument("--routes", type=int, default=20, help="routes per run")
    parser.add_argument("--interval", type=int, default=2, help="intervalSeconds of every route")
    parser.add_argument("--timeout", type=float, default=90, help="bound of every wait (s)")
    parser.add_argument("--keep", type=Path, help="keep the replicas' logs in this directory")
    args = parser.parse_args()
    if TOTAL_CPUS > 1:  # this process and its stand-ins share the cluster's core
        os.sched_setaffinity(0, {1})
    kinds = [k for k in args.cluster.split(",") if k]
    if unknown := set(kinds) - set(CLUSTERS):
        raise SystemExit(f"--cluster: unknown {sorted(unknown)}; choose from {sorted(CLUSTERS)}")
    if args.runs < 1 or args.routes < 1:
        raise SystemExit("--runs and --routes must be at least 1")
    print(
        f"takeover: {kinds} clusters, {args.runs} SIGKILL runs + 1 SIGTERM run each, "
        f"{args.routes} routes over 2-3 stand-ins, interval {args.interval} s, lease "
        f"{LEASE_SECONDS:g} s, retry {RETRY_SECONDS:g} s; replicas on CPU 0, cluster on CPU 1 "
        f"({TOTAL_CPUS} CPUs)",
        flush=True,
    )
    runs: list[Run] = []
    logs: list[tuple[str, Replica]] = []
    with tempfile.TemporaryDirectory(prefix="bench-takeover-") as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        for kind in kinds:
            directory = where / kind
            directory.mkdir(parents=True, exist_ok=True)
            cluster = CLUSTERS[kind](directory)
            requests = Requests(cluster)
            try:
                cluster.create("/api/v1/namespaces", {"metadata": {"name": LEASE_NAMESPACE}})
                plan = ["SIGKILL"] * args.runs + ["SIGTERM"]
                for number, how in enumerate(plan, start=1):
                    run, replicas = one_run(
                        kind,
                        cluster,
                        requests,
                        number,
                        how,
                        args.routes,
                        args.interval,
                        args.timeout,
                        directory,
                    )
                    runs.append(run)
                    logs += [(f"{kind} run {number} {r.name}", r) for r in replicas]
                    print(f"  {kind} run {number} ({how}): {run}", flush=True)
            finally:
                requests.close()
                cluster.stop()
        print()
        print(detail(runs, args.interval))
        print()
        print(summary(runs, args.interval))
        print(
            "\nmin/median/max over the runs; kill→acquired = B saw A's last renewal + 15 s + "
            "B's wait beyond."
        )
        print(
            f"Target (issue 13): a pending failover is done within the lease duration plus "
            f"one probe interval after the leader dies: {LEASE_SECONDS:g} + {args.interval} s."
        )
        for r in runs:
            print(
                f"  {r.cluster} run {r.number} ({r.signal}), the operators' writes after t0 "
                f"but the Lease's: {dict(r.written.most_common())}"
            )
        for r in runs:
            for note in r.notes:
                print(f"  note, {r.cluster} run {r.number}: {note}")
            for other in r.other_writers:
                print(f"  written after t0 by other than B, {r.cluster} run {r.number}: {other}")
        print("\nNotable lines of the replicas' logs (traceback, error, failed, could not):")
        for label, replica in logs:
            for line in replica.notable():
                print(f"  {label}: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
