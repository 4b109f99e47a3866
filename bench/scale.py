"""How the operator's cost grows with routes: figures, not a test (`make bench`).

For each cluster and route count: the cluster in processes of its own pinned to the second core
(the embedded one of `llm_failover.sandbox`, or a real etcd + kube-apiserver +
kube-controller-manager built from tests/controlplane/), 20 stand-in providers (threads of this
process), the real `llm-failover run` pinned to the first core, routes of 3 providers each over
those 20 endpoints (the first provider one of 4 primaries, so each primary is first for a quarter
of the routes), `intervalSeconds: 10`, key Secrets spread over 10 namespaces (one Secret per
namespace and provider: 200). Measured:

- convergence: from the operator's start until every route's ConfigMap exists;
- at rest (nothing changes) over `--rest` seconds (default 300: one status heartbeat, so its
  writes are in the window): probes per interval (per stand-in, over the time its probes span),
  the operator's CPU seconds per minute (and the cluster's), its API calls per minute by verb and
  resource (its own `llmfailover_api_requests_total`), status PATCHes per route per heartbeat,
  false `Timeout`s (probes of healthy stand-ins classified Timeout), the worst event-loop lag,
  the /metrics series and the longest scrape;
- a geo-block of one primary (a quarter of the routes): from the stand-in's first geo-blocked
  answer to each affected ConfigMap naming another provider (p50/p99/max), the ConfigMap writes
  it took per affected route, and the CPU seconds the whole switch took (until the operator's
  API calls stop: statuses and Events included), the operator's and the cluster's;
- peak RSS, and SIGTERM to exit.

The operator runs as deployed: with leader election on, on the Lease `llm-failover` in the
namespace `llm-failover` (created first). It is the only replica, so it leads at once; its API
calls include its Lease renewals (a PUT every retry period: 30 a minute), and SIGTERM to exit
includes releasing the Lease. Takeover by a standby: bench/takeover.py.

Everything listens on 127.0.0.1 only. Run: `make bench` or
`.venv/bin/python bench/scale.py --routes 100,1000 --cluster embedded --rest 60`.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import yaml

from llm_failover.sandbox.cluster import MAX_LOGGED, EmulatedCluster
from llm_failover.sandbox.providers import Behaviour, StandInProvider
from llm_failover.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "llmroutes.yaml"
ROUTES_API = "/apis/llmfailover.dev/v1alpha1"
MANAGED = "app.kubernetes.io/managed-by=llm-failover"
LEASE_NAMESPACE = "llm-failover"
"""Where the operator's Lease lives (deploy/'s namespace); created in every cluster first."""
LEASE_RENEWALS_PER_MINUTE = 60 / Settings.retry_period_seconds
ENDPOINTS, PRIMARIES, NAMESPACES = 20, 4, 10
TOTAL_CPUS = os.cpu_count() or 1
HEARTBEAT_SECONDS = Settings.status_heartbeat_seconds
OWN = (
    "llmfailover_api_requests_total",
    "llmfailover_probes_total",
    "llmfailover_event_loop_lag_seconds",
)
"""The operator's series the benchmark reads."""


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: int) -> Any:
    """A preexec_fn pinning the child to one CPU (when the machine has it)."""

    def pin() -> None:
        if cpu < TOTAL_CPUS:
            os.sched_setaffinity(0, {cpu})

    return pin


# --- the cluster, in a process of its own -----------------------------------------------------


class WriteLog(collections.deque[tuple[str, str]]):
    """The emulator's request log, that also appends each write request, and each read of a
    Lease, to a file with the time it arrived: `epoch-seconds<TAB>METHOD<TAB>path` a line
    (bench/takeover.py reads it as the real API server's audit log is read)."""

    def __init__(self, path: Path) -> None:
        super().__init__(maxlen=MAX_LOGGED)
        self._file = path.open("a", buffering=1, encoding="utf-8")

    def append(self, request: tuple[str, str]) -> None:
        super().append(request)
        method, path = request
        if method != "GET" or "/leases" in path:
            self._file.write(f"{time.time():.6f}\t{method}\t{path}\n")


def serve_cluster(url_file: Path, request_log: Path | None = None) -> int:
    """Child mode: serve the embedded cluster until SIGTERM; its URL goes to `url_file`, its
    write requests to `request_log` (when given)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    cluster = EmulatedCluster(crd_paths=[CRD])
    if request_log is not None:
        cluster._log = WriteLog(request_log)  # the deque the emulator appends each request to
    with cluster:
        url_file.write_text(cluster.url)
        stop.wait()
    return 0


class Cluster:
    """The embedded cluster (`llm_failover.sandbox`), in a process of its own on CPU 1."""

    name = "embedded"

    def __init__(self, tmp: Path) -> None:
        url_file = tmp / "cluster.url"
        url_file.unlink(missing_ok=True)
        self.request_log = tmp / "requests.log"
        """Every write request, with its arrival time (`WriteLog`)."""
        self.request_log.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-cluster", str(url_file),
             "--request-log", str(self.request_log)],
            preexec_fn=pinned(1),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not url_file.exists() or not url_file.read_text():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit("the embedded cluster did not start")
            time.sleep(0.1)
        self.url = url_file.read_text()
        self.http = httpx.Client(base_url=self.url, timeout=60)
        self.kubeconfig = tmp / "kubeconfig"
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "bench", "cluster": {"server": self.url}}],
                    "users": [{"name": "bench", "user": {}}],
                    "contexts": [
                        {"name": "bench", "context": {"cluster": "bench", "user": "bench"}}
                    ],
                    "current-context": "bench",
                }
            )
        )

    def client(self, timeout: float | None) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def create(self, path: str, obj: dict[str, Any]) -> None:
        answer = self.http.post(path, json=obj)
        if answer.status_code >= 300:
            raise SystemExit(f"POST {path}: {answer.status_code} {answer.text[:300]}")

    def config_maps(self) -> list[dict[str, Any]]:
        answer = self.http.get("/api/v1/configmaps", params={"labelSelector": MANAGED})
        items: list[dict[str, Any]] = answer.json().get("items", [])
        return items

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(timeout=30)


class RealControlPlane(Cluster):
    """etcd + kube-apiserver + kube-controller-manager built from the official Kubernetes Go
    modules (tests/controlplane/, built once into the cache), on CPU 1; the operator uses the
    admin's kubeconfig (the RBAC it runs under in a cluster is tested in tests/test_rbac.py)."""

    name = "real"

    def __init__(self, tmp: Path) -> None:
        sys.path.insert(0, str(ROOT / "tests"))
        from controlplane import ControlPlane, build

        self.plane = ControlPlane(build(lambda line: print(f"  {line}", flush=True))).start()
        for process in self.plane.processes.values():  # every thread, the ones to come too
            for task in Path(f"/proc/{process.pid}/task").iterdir():
                os.sched_setaffinity(int(task.name), {1} if TOTAL_CPUS > 1 else {0})
        self.url = self.plane.url
        self.kubeconfig = self.plane.kubeconfig
        self.http = self.client(60)
        kubectl = ["kubectl", "--kubeconfig", str(self.kubeconfig)]
        subprocess.run([*kubectl, "apply", "-f", str(CRD)], check=True, capture_output=True)
        subprocess.run(
            [*kubectl, "wait", "--for=condition=Established", "--timeout=60s",
             "crd/llmroutes.llmfailover.dev"],
            check=True,
            capture_output=True,
        )  # fmt: skip

    def client(self, timeout: float | None) -> httpx.Client:
        pki = self.plane.certificates
        context = ssl.create_default_context(cafile=str(pki.path("ca.crt")))
        context.load_cert_chain(str(pki.path("admin.crt")), str(pki.path("admin.key")))
        return httpx.Client(base_url=self.url, verify=context, timeout=timeout)

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.plane.processes.values())

    def stop(self) -> None:
        self.http.close()
        self.plane.remove()


CLUSTERS: dict[str, type[Cluster]] = {"embedded": Cluster, "real": RealControlPlane}


# --- the operator -------------------------------------------------------------------------------


class Operator:
    """`llm-failover run` pinned to CPU 0, electing itself on the Lease in `LEASE_NAMESPACE`
    (as deployed) unless `extra` says otherwise."""

    def __init__(self, kubeconfig: Path, log: Path, extra: Sequence[str] = ()) -> None:
        self.metrics_port, self.health_port = free_port(), free_port()
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "llm_failover.cli", "run",
                 "--metrics-port", str(self.metrics_port),
                 "--health-port", str(self.health_port),
                 "--leader-elect-resource-namespace", LEASE_NAMESPACE, *extra],
                env={**os.environ, "KUBECONFIG": str(kubeconfig)},
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=pinned(0),
            )  # fmt: skip
        self.started = time.monotonic()

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        found = re.search(r"VmHWM:\s+(\d+) kB", status)
        return int(found.group(1)) / 1024 if found else 0.0

    def scrape(self) -> tuple[str, float]:
        """The /metrics text, and the seconds the scrape took (as Prometheus would see it)."""
        began = time.monotonic()
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=30).text
        return text, time.monotonic() - began

    def metrics(
        self, text: str | None = None
    ) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """The operator's series the benchmark reads (`OWN`): parsing all 110,000 lines of
        10,000 routes would cost this process seconds, on a core the operator needs."""
        if text is None:
            text, _ = self.scrape()
        found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for line in text.splitlines():
            if not line.startswith(OWN) or " " not in line:
                continue
            series, _, value = line.rpartition(" ")
            name = series.split("{", 1)[0]
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', series))
            found[(name, labels)] = float(value)
        return found

    def stop(self) -> float:
        """SIGTERM; seconds until it exited."""
        began = time.monotonic()
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return float("inf")
        return time.monotonic() - began


def api_calls(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> Counter[str]:
    calls: Counter[str] = Counter()
    for (name, labels), value in metrics.items():
        if name == "llmfailover_api_requests_total":
            found = dict(labels)
            calls[f"{found['verb']} {found['resource']}"] += int(value)
    return calls


def without_lease(calls: Counter[str]) -> Counter[str]:
    """The calls but the Lease's (its renewals go on, one per retry period)."""
    return Counter({kind: n for kind, n in calls.items() if not kind.endswith(" lease")})


def timeouts(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> int:
    return int(
        sum(
            value
            for (name, labels), value in metrics.items()
            if name == "llmfailover_probes_total" and ("state", "Timeout") in labels
        )
    )


# --- one run ------------------------------------------------------------------------------------


def route(i: int, stand_ins: list[StandInProvider], interval: int) -> dict[str, Any]:
    primary = i % PRIMARIES
    backups = [PRIMARIES + (i + k) % (ENDPOINTS - PRIMARIES) for k in (0, 1)]
    return {
        "apiVersion": "llmfailover.dev/v1alpha1",
        "kind": "LLMRoute",
        "metadata": {"name": f"route-{i}", "namespace": f"bench-{i % NAMESPACES}"},
        "spec": {
            "providers": [
                {
                    "name": f"s{j}",
                    "baseURL": stand_ins[j].base_url,
                    "model": "gpt-4o",
                    "apiKeySecretRef": {"name": f"key-{j}", "key": "api-key"},
                }
                for j in (primary, *backups)
            ],
            "healthCheck": {"intervalSeconds": interval, "timeoutSeconds": 5},
            "target": {"configMapName": f"route-{i}-llm"},
        },
    }


def wait(check: Callable[[], object], timeout: float, what: str, step: float = 0.2) -> float:
    """Until `check()` is true; seconds waited. SystemExit after `timeout`."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - began


def watch_switches(
    cluster: Cluster, names: set[str], provider: str, switched: dict[str, float]
) -> threading.Thread:
    """Record when each ConfigMap in `names` first names a provider other than `provider`."""
    listed = cluster.http.get("/api/v1/configmaps", params={"labelSelector": MANAGED}).json()
    version = listed["metadata"].get("resourceVersion", "")

    def run() -> None:
        params = {"watch": "true", "labelSelector": MANAGED, "resourceVersion": version}
        with (
            cluster.client(None) as http,
            http.stream("GET", "/api/v1/configmaps", params=params) as stream,
        ):
            for line in stream.iter_lines():
                if not line:
                    continue
                obj = json.loads(line).get("object", {})
                name = obj.get("metadata", {}).get("name")
                named = (obj.get("data") or {}).get("LLM_PROVIDER")
                if name in names and name not in switched and named not in (None, provider):
                    switched[name] = time.time()
                if len(switched) == len(names):
                    return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def one_run(
    kind: str, routes: int, interval: int, rest: float, tmp: Path, profile: str | None
) -> dict[str, Any]:
    stand_ins = [
        StandInProvider(f"s{j}", api_key=f"sk-bench-{j:02d}-Xq9Lm2Nv8Rt4", slow_seconds=30).start()
        for j in range(ENDPOINTS)
    ]
    cluster = CLUSTERS[kind](tmp)
    operator: Operator | None = None
    figures: dict[str, Any] = {"cluster": kind, "routes": routes}
    try:
        cluster.create("/api/v1/namespaces", {"metadata": {"name": LEASE_NAMESPACE}})
        for n in range(NAMESPACES):
            cluster.create("/api/v1/namespaces", {"metadata": {"name": f"bench-{n}"}})
            for j, stand_in in enumerate(stand_ins):
                cluster.create(
                    f"/api/v1/namespaces/bench-{n}/secrets",
                    {"metadata": {"name": f"key-{j}"}, "stringData": {"api-key": stand_in.api_key}},
                )

        def create_route(i: int) -> None:
            body = route(i, stand_ins, interval)
            namespace = body["metadata"]["namespace"]
            cluster.create(f"{ROUTES_API}/namespaces/{namespace}/llmroutes", body)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create_route, range(routes)))

        operator = Operator(cluster.kubeconfig, tmp / f"operator-{routes}.log")
        wait(lambda: len(cluster.config_maps()) >= routes, 600, "every ConfigMap", step=0.5)
        figures["converged_s"] = time.monotonic() - operator.started
        time.sleep(2 * interval)  # backups' first probes land; route.json settles

        # At rest.
        before_cpu, before = operator.cpu_seconds(), operator.metrics()
        cluster_before = cluster.cpu_seconds()
        before_probes = {s.name: len(s.requests) for s in stand_ins}
        lag = scrape = 0.0
        series = 0
        spy = None
        if profile is not None:  # where the operator's time goes at rest
            spy = subprocess.Popen(
                [profile, "record", "--pid", str(operator.process.pid), "--duration",
                 str(int(rest)), "--format", "speedscope", "--output",
                 str(tmp / f"profile-{routes}.json")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        began = time.monotonic()
        while time.monotonic() - began < rest:
            time.sleep(min(10, rest))  # the gauge is the worst of the last 10 s; a Prometheus
            # scrapes about as often (every scrape of /metrics costs the operator CPU too)
            text, took = operator.scrape()
            scrape = max(scrape, took)
            series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
            for (name, _), value in operator.metrics(text).items():
                if name == "llmfailover_event_loop_lag_seconds":
                    lag = max(lag, value)
        elapsed = time.monotonic() - began
        after_cpu, after = operator.cpu_seconds(), operator.metrics()
        cluster_after = cluster.cpu_seconds()
        if spy is not None:
            spy.wait(timeout=60)
            figures["profile"] = str(tmp / f"profile-{routes}.json")
        # Per endpoint, the probes in the window over the time they span: exact whatever the
        # window's edges cut off (a count over the window would be off by up to one per endpoint).
        probes = 0.0
        for stand_in in stand_ins:
            times = [r.time for r in stand_in.requests[before_probes[stand_in.name] :]]
            if len(times) >= 2:
                probes += (len(times) - 1) * interval / (times[-1] - times[0])
        calls = api_calls(after) - api_calls(before)
        per_minute = 60 / elapsed
        figures.update(
            cpu_s_per_min=(after_cpu - before_cpu) * per_minute,
            cluster_cpu_s_per_min=(cluster_after - cluster_before) * per_minute,
            calls_per_min=sum(calls.values()) * per_minute,
            calls_by_kind={k: round(v * per_minute) for k, v in calls.most_common()},
            status_patch_per_route_heartbeat=calls["patch custom_object_status"]
            / routes
            / (elapsed / HEARTBEAT_SECONDS),
            probes_per_interval=probes,
            false_timeouts=timeouts(after) - timeouts(before),
            worst_lag_s=lag,
            series=series,
            scrape_s=scrape,
        )

        # A geo-block of the first primary: a quarter of the routes.
        affected = {f"route-{i}-llm" for i in range(routes) if i % PRIMARIES == 0}
        switched: dict[str, float] = {}
        watcher = watch_switches(cluster, affected, "s0", switched)
        writes_before = api_calls(operator.metrics())["patch config_map"]
        spy = None
        if profile is not None:  # where the operator's time goes during the switch
            spy = subprocess.Popen(
                [profile, "record", "--pid", str(operator.process.pid), "--duration", "30",
                 "--format", "speedscope", "--output", str(tmp / f"switch-{routes}.json")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1)
        switch_cpu = operator.cpu_seconds(), cluster.cpu_seconds()
        blocked_at = time.time()
        stand_ins[0].set(Behaviour.GEO_BLOCKED)
        wait(
            lambda: len(switched) == len(affected),
            300,
            "every affected ConfigMap switched",
            step=0.5,
        )
        watcher.join(timeout=5)
        # The statuses and Events of the switches follow the ConfigMaps: wait until the
        # operator's API calls stop (2 s without one, at most 120 s; the Lease renewals, one
        # every 2 s, go on and are not counted), then count the cost.
        calls, quiet_since = api_calls(operator.metrics()), time.monotonic()
        deadline = quiet_since + 120
        while time.monotonic() - quiet_since < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            now_calls = api_calls(operator.metrics())
            if without_lease(now_calls) != without_lease(calls):
                calls, quiet_since = now_calls, time.monotonic()
        figures.update(
            switch_cpu_s=operator.cpu_seconds() - switch_cpu[0],
            switch_cluster_cpu_s=cluster.cpu_seconds() - switch_cpu[1],
        )
        if spy is not None:
            spy.wait(timeout=60)
        answered = min(r.time for r in stand_ins[0].requests if r.time >= blocked_at)
        delays = [t - answered for t in switched.values()]
        figures.update(
            switch_p50_s=percentile(delays, 50),
            switch_p99_s=percentile(delays, 99),
            switch_max_s=max(delays),
            writes_per_switched_route=(calls["patch config_map"] - writes_before) / len(affected),
            peak_rss_mb=operator.peak_rss_mb(),
        )
        figures["sigterm_s"] = operator.stop()
        operator = None
    finally:
        if operator is not None:
            operator.stop()
        cluster.stop()
        for stand_in in stand_ins:
            stand_in.stop()
    return figures


def table(rows: list[dict[str, Any]]) -> str:
    columns = [
        ("cluster", "cluster", "{}"),
        ("routes", "routes", "{:,d}"),
        ("converged_s", "converged (s)", "{:.1f}"),
        ("cpu_s_per_min", "CPU s/min at rest", "{:.1f}"),
        ("cluster_cpu_s_per_min", "cluster CPU s/min at rest", "{:.1f}"),
        ("calls_per_min", "API calls/min at rest", "{:,.0f}"),
        ("status_patch_per_route_heartbeat", "status PATCH/route/300 s", "{:.2f}"),
        ("probes_per_interval", f"probes/interval (of {ENDPOINTS})", "{:.1f}"),
        ("false_timeouts", "false Timeouts", "{:d}"),
        ("worst_lag_s", "worst loop lag (s)", "{:.2f}"),
        ("series", "/metrics series", "{:,d}"),
        ("scrape_s", "/metrics scrape (s)", "{:.2f}"),
        ("peak_rss_mb", "peak RSS (MiB)", "{:.0f}"),
        ("switch_p50_s", "switch p50 (s)", "{:.2f}"),
        ("switch_p99_s", "switch p99 (s)", "{:.2f}"),
        ("switch_max_s", "switch max (s)", "{:.2f}"),
        ("writes_per_switched_route", "CM writes/switched route", "{:.2f}"),
        ("switch_cpu_s", "switch CPU s (all writes)", "{:.1f}"),
        ("switch_cluster_cpu_s", "switch cluster CPU s", "{:.1f}"),
        ("sigterm_s", "SIGTERM→exit (s)", "{:.1f}"),
    ]
    lines = ["| " + " | ".join(title for _, title, _ in columns) + " |"]
    lines.append("|" + "---|" * len(columns))
    for row in rows:
        lines.append("| " + " | ".join(fmt.format(row[key]) for key, _, fmt in columns) + " |")
    lines.append(
        "\nAPI calls/min at rest include the leader's Lease renewals "
        f"({LEASE_RENEWALS_PER_MINUTE:.0f} a minute: one `replace lease` every "
        f"{Settings.retry_period_seconds:g} s retry period); "
        "SIGTERM→exit includes releasing the Lease."
    )
    for row in rows:
        lines.append(
            f"\nAPI calls/min at rest, {row['cluster']} cluster, {row['routes']:,} routes: "
            f"{row['calls_by_kind']}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", default="100,1000,10000", help="route counts, comma-separated")
    parser.add_argument(
        "--cluster",
        default="embedded,real",
        help="embedded (llm_failover.sandbox), real (tests/controlplane/, built with Go on first "
        "use), or both, comma-separated",
    )
    parser.add_argument("--interval", type=int, default=10, help="intervalSeconds of every route")
    parser.add_argument(
        "--rest",
        type=float,
        default=HEARTBEAT_SECONDS,
        help="seconds measured at rest (default: one status heartbeat)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help="keep a py-spy profile of the operator at rest in DIR (pip install py-spy)",
    )
    parser.add_argument("--serve-cluster", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--request-log", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_cluster is not None:
        return serve_cluster(args.serve_cluster, args.request_log)
    if (
        TOTAL_CPUS > 1
    ):  # this process and its stand-ins share the cluster's core, not the operator's
        os.sched_setaffinity(0, {1})
    counts = [int(n) for n in args.routes.split(",") if n]
    kinds = [k for k in args.cluster.split(",") if k]
    if unknown := set(kinds) - set(CLUSTERS):
        raise SystemExit(f"--cluster: unknown {sorted(unknown)}; choose from {sorted(CLUSTERS)}")
    print(
        f"scale: {kinds} clusters, {counts} routes, {ENDPOINTS} endpoints, 3 providers per "
        f"route, interval {args.interval} s, {args.rest:.0f} s at rest; operator on CPU 0, "
        f"cluster on CPU 1 ({TOTAL_CPUS} CPUs)",
        flush=True,
    )
    spy = None
    if args.profile is not None:
        spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
        if spy is None:
            raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
        args.profile.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for kind in kinds:
            for count in counts:
                run = args.profile or Path(tmp)
                run = run / f"{kind}-{count}"
                run.mkdir(parents=True, exist_ok=True)
                rows.append(one_run(kind, count, args.interval, args.rest, run, spy))
                print(f"  {kind} cluster, {count} routes done: {rows[-1]}", flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
