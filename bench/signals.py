"""Traffic signals and adaptive probes (issue 14): figures, not a test (`make bench`).

The embedded cluster (bench/scale.py's: a process of its own on the second core), stand-in
providers (`llm_failover.sandbox.providers`, threads of this process) and the real
`llm-failover run` pinned to the first core, as deployed (electing itself on its Lease).

A. Time to failover, probe-only and with a traffic signal. Each run is a route of two stand-ins,
primary and backup, `intervalSeconds: 10`, `failureThreshold: 3` (the defaults), each stand-in
on a loopback address of its own (127.0.K.2 and 127.0.K.3: a provider's `${host}` is what the
apps' metrics name). A stand-in app sends `--rate` chat requests a second to the provider the
route's ConfigMap names (it re-reads it every 0.1 s) and exposes what it saw as the
OpenTelemetry GenAI client metric, `gen_ai_client_operation_duration_seconds` (a histogram,
labels `gen_ai_operation_name`, `gen_ai_request_model`, `server_address`, `error_type`: "" or the
HTTP status), on a loopback /metrics. Once the route routes to the primary, after a random wait
(so that T falls anywhere in the probe interval), at T the primary answers HTTP 500 (a soft
failure, `ServerError`) to the probes and to the app alike; measured from T, polled every 0.1 s:
the route's ConfigMap naming the backup; Prometheus's answer to the route's query going above
its threshold (prometheus variant); the operator's log saying the signal fires (it then probes
the primary at once); and the primary's probes (its request log). Variants:

1. probe: no signal; three failing probes in a row eject the primary;
2. prometheus: a real Prometheus (`prometheus` on PATH; Debian's package) scrapes the app every
   second; the operator runs with `--prometheus-url` and `--signal-interval 2`; the route's
   `spec.signal.prometheus` is the app's error ratio for the provider's host over 10 s, threshold
   0.2;
3. alertmanager: at T + `--alert-delay` (1 s: Alertmanager's `group_wait`) the bench posts an
   Alertmanager webhook notification (version 4) for the route (labels `namespace`, `llmroute`;
   no `provider`: the route's active one) to `POST /alertmanager` on the operator's metrics port,
   with the bearer token of `--alertmanager-token-file`.

B. Probes saved. `--routes` routes of 4 providers each, `intervalSeconds: 2`,
`backupIntervalSeconds: 20`, each provider an endpoint of its own (its own key). Providers 1 and
2 are healthy; providers 3 and 4 answer 401 on a quarter of the routes (a hard state: backoff),
429 with `Retry-After: 30` on another quarter (a reset time), and are healthy on the rest (probed
at the backup interval: behind the next in line). Over `--seconds` once every route has its
ConfigMap: the probes sent (the operator's `llmfailover_probes_total`, by state, and the
stand-ins' logs, by kind of provider), what a fixed schedule would have sent (endpoints *
seconds / interval), `llmfailover_probes_saved_total` by reason, and the operator's CPU seconds
and peak RSS.

Every wait is bounded (`--timeout`), every process stopped at the end. Everything listens on
loopback (127.0.0.0/8) and is called there; the one exception is the operator's own metrics and
health ports, which `llm-failover run` binds on every address as in a pod (so in bench/scale.py
too; the benchmark calls them on 127.0.0.1). Run: `make bench` or
`.venv/bin/python bench/signals.py --runs 3 --routes 50 --seconds 120`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml
from scale import (
    LEASE_NAMESPACE,
    ROUTES_API,
    TOTAL_CPUS,
    Cluster,
    Operator,
    free_port,
    pinned,
    wait,
)

from llm_failover.sandbox.providers import Behaviour, StandInProvider

VARIANTS = ("probe", "prometheus", "alertmanager")
POLL_SECONDS = 0.1
SIGNAL_INTERVAL = 2
QUERY = (
    'sum(rate(gen_ai_client_operation_duration_seconds_count{server_address="${host}",'
    'error_type!=""}[10s])) / '
    'sum(rate(gen_ai_client_operation_duration_seconds_count{server_address="${host}"}[10s]))'
)
THRESHOLD = 0.2
BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
"""The GenAI semantic conventions' advised buckets for gen_ai.client.operation.duration."""
METRIC = "gen_ai_client_operation_duration_seconds"
TOKEN = "bench-alertmanager-token-Zk3q"
CATEGORY_NAMES = {
    "first": "1st & 2nd (active, next in line)",
    "healthy": "3rd & 4th, healthy (behind the next in line)",
    "401": "3rd & 4th, 401 (hard: backoff)",
    "429": "3rd & 4th, 429 + Retry-After: 30 (reset time)",
}


def series(text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample of one metric in a /metrics text, by its labels."""
    found: dict[frozenset[tuple[str, str]], float] = {}
    for line in text.splitlines():
        if not line.startswith(name) or line[len(name) : len(name) + 1] not in ("{", " "):
            continue
        head, _, value = line.rpartition(" ")
        found[frozenset(re.findall(r'(\w+)="([^"]*)"', head))] = float(value)
    return found


def scrape(operator: Operator) -> str:
    try:
        return httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return ""


# --- the stand-in app ---------------------------------------------------------------------------


@dataclass
class _Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: float = 0.0
    count: int = 0


class App:
    """An app calling its LLM provider (the one `target` names: base URL, key) `rate` times a
    second, and exposing what it saw as OpenTelemetry GenAI client metrics on /metrics."""

    def __init__(self, rate: float, lifetime: float) -> None:
        self.rate = rate
        self.target: tuple[str, str] | None = None
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str, str], _Histogram] = {}  # (model, host, error_type)
        self._stop = threading.Event()
        self._deadline = time.monotonic() + lifetime
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = app.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="app metrics", daemon=True),
            threading.Thread(target=self._send, name="app traffic", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _send(self) -> None:
        step = 1.0 / self.rate
        began = time.monotonic()
        with httpx.Client(timeout=2.0) as client:
            for n in range(10**9):  # bounded by the deadline (and `stop`) long before
                if self._stop.is_set() or time.monotonic() > self._deadline:
                    return
                target = self.target
                if target is not None:
                    self._call(client, *target)
                pause = began + (n + 1) * step - time.monotonic()
                if pause > 0:
                    self._stop.wait(pause)

    def _call(self, client: httpx.Client, base_url: str, key: str) -> None:
        model = "gpt-4o"
        started = time.monotonic()
        try:
            answer = client.post(
                f"{base_url}/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
            )
            error = "" if answer.is_success else str(answer.status_code)
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        took = time.monotonic() - started
        host = urlsplit(base_url).hostname or ""
        with self._lock:
            seen = self._seen.setdefault((model, host, error), _Histogram())
            seen.count += 1
            seen.total += took
            for i, bound in enumerate(BUCKETS):
                if took <= bound:
                    seen.buckets[i] += 1

    def exposition(self) -> str:
        lines = [
            f"# HELP {METRIC} GenAI operation duration.",
            f"# TYPE {METRIC} histogram",
        ]
        with self._lock:
            for (model, host, error), seen in sorted(self._seen.items()):
                labels = (
                    f'gen_ai_operation_name="chat",gen_ai_request_model="{model}",'
                    f'server_address="{host}",error_type="{error}"'
                )
                for bound, n in zip(BUCKETS, seen.buckets, strict=True):
                    lines.append(f'{METRIC}_bucket{{{labels},le="{bound:g}"}} {n}')
                lines.append(f'{METRIC}_bucket{{{labels},le="+Inf"}} {seen.count}')
                lines.append(f"{METRIC}_sum{{{labels}}} {seen.total:.6f}")
                lines.append(f"{METRIC}_count{{{labels}}} {seen.count}")
        return "\n".join(lines) + "\n"

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)


class Prometheus:
    """A real Prometheus on loopback scraping the app every second (CPU 1)."""

    def __init__(self, binary: str, app_port: int, home: Path, timeout: float) -> None:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "genai-app",
                    "static_configs": [{"targets": [f"127.0.0.1:{app_port}"]}],
                }
            ],
        }
        (home / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        with (home / "prometheus.log").open("wb") as log:
            self.process = subprocess.Popen(
                [binary, f"--config.file={home / 'prometheus.yml'}",
                 f"--storage.tsdb.path={home / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=pinned(1),
            )  # fmt: skip
        wait(self._scraped, timeout, "Prometheus to scrape the app")

    def query(self, expr: str) -> list[Any]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5).json()
        result: list[Any] = answer.get("data", {}).get("result", [])
        return result

    def _scraped(self) -> bool:
        try:
            return bool(self.query('up{job="genai-app"} == 1'))
        except (httpx.HTTPError, ValueError):
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


# --- A: time to failover ------------------------------------------------------------------------


@dataclass
class Run:
    variant: str
    number: int
    phase: float | None = None  # T minus the primary's last probe before T
    above: float | None = None  # Prometheus's answer to the route's query above the threshold
    seen: float | None = None  # the operator's log: "traffic signal fires ... probing it now"
    first_failing: float | None = None  # the primary's first probe after T
    failing_probes: int = 0  # probes of the primary from T to the switch
    switched: float | None = None  # the ConfigMap named the backup
    alert_status: int | None = None
    notes: list[str] = field(default_factory=list)


def route_a(
    name: str, namespace: str, primary: StandInProvider, backup: StandInProvider, variant: str
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "providers": [
            {
                "name": s.name,
                "baseURL": s.base_url,
                "model": "gpt-4o",
                "apiKeySecretRef": {"name": f"{name}-keys", "key": s.name},
            }
            for s in (primary, backup)
        ],
        "healthCheck": {"intervalSeconds": 10, "failureThreshold": 3},
        "target": {"configMapName": f"{name}-llm"},
    }
    if variant == "prometheus":
        spec["signal"] = {"prometheus": {"query": QUERY, "threshold": THRESHOLD}}
    return {
        "apiVersion": "llmfailover.dev/v1alpha1",
        "kind": "LLMRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def alert_body(namespace: str, route: str, status: str) -> dict[str, Any]:
    """An Alertmanager webhook notification (version 4) of one alert naming the route."""
    labels = {"alertname": "LLMProviderErrors", "namespace": namespace, "llmroute": route}
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "version": "4",
        "groupKey": f'{{}}:{{llmroute="{route}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "llm-failover",
        "groupLabels": {"llmroute": route},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {"summary": "the apps' requests to the provider fail"},
                "startsAt": now,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": f"{abs(hash((namespace, route))):016x}"[:16],
            }
        ],
    }


def config_map(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    try:
        answer = cluster.http.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}", timeout=5)
    except httpx.HTTPError:
        return {}
    if answer.status_code != 200:
        return {}
    data: dict[str, str] = answer.json().get("data") or {}
    return data


def one_run_a(
    cluster: Cluster,
    operator: Operator,
    app: App,
    prometheus: Prometheus | None,
    variant: str,
    number: int,
    k: int,
    args: argparse.Namespace,
    rng: random.Random,
) -> Run:
    run = Run(variant, number)
    namespace, name = "signals-a", f"{variant}-{number}"
    primary = StandInProvider(
        "primary", host=f"127.0.{k}.2", api_key=f"sk-primary-{k:03d}-Xq9Lm2Nv8Rt4"
    ).start()
    backup = StandInProvider(
        "backup", host=f"127.0.{k}.3", api_key=f"sk-backup-{k:03d}-Xq9Lm2Nv8Rt4"
    ).start()
    keys = {s.name: s.api_key or "" for s in (primary, backup)}
    urls = {s.name: s.base_url for s in (primary, backup)}
    try:
        cluster.create(
            f"/api/v1/namespaces/{namespace}/secrets",
            {"metadata": {"name": f"{name}-keys"}, "stringData": keys},
        )
        cluster.create(
            f"{ROUTES_API}/namespaces/{namespace}/llmroutes",
            route_a(name, namespace, primary, backup, variant),
        )

        def settled() -> bool:
            data = config_map(cluster, namespace, f"{name}-llm")
            if data.get("LLM_PROVIDER") != "primary":
                return False
            app.target = (urls["primary"], keys["primary"])
            document = json.loads(data.get("route.json", "{}"))
            eligible = [p.get("eligible") for p in document.get("providers", [])]
            return len(eligible) == 2 and all(eligible)

        wait(settled, args.timeout, f"route {name} routed to the primary, both eligible")
        # T anywhere in the probe interval (and the app's traffic in Prometheus for a while).
        time.sleep(3 + rng.uniform(0, 10))
        said = f"{namespace}/{name}: primary: traffic signal fires".encode()
        query = QUERY.replace("${host}", urlsplit(urls["primary"]).hostname or "")
        with operator.log.open("rb") as log:
            log.seek(0, os.SEEK_END)
            heard = b""  # the operator's log since T
            t0 = time.time()
            primary.set(Behaviour.INTERNAL_ERROR)
            for tick in range(int(args.timeout / POLL_SECONDS) + 1):
                due = time.time() >= t0 + args.alert_delay
                if variant == "alertmanager" and run.alert_status is None and due:
                    answer = httpx.post(
                        f"http://127.0.0.1:{operator.metrics_port}/alertmanager",
                        json=alert_body(namespace, name, "firing"),
                        headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=5,
                    )
                    run.alert_status = answer.status_code
                if variant == "prometheus" and run.above is None and prometheus is not None:
                    values = [float(v["value"][1]) for v in prometheus.query(query)]
                    if any(v > THRESHOLD for v in values):
                        run.above = time.time() - t0
                if variant != "probe" and run.seen is None:
                    heard += log.read()
                    if said in heard:
                        run.seen = time.time() - t0
                active = config_map(cluster, namespace, f"{name}-llm").get("LLM_PROVIDER")
                if active in urls:
                    app.target = (urls[active], keys[active])  # the app re-reads its ConfigMap
                if active == "backup":
                    run.switched = time.time() - t0
                    break
                if time.time() - t0 > args.timeout:
                    break
                time.sleep(max(0.0, t0 + (tick + 1) * POLL_SECONDS - time.time()))
        if run.switched is None:
            run.notes.append(f"the ConfigMap did not name the backup within {args.timeout:.0f} s")
        end = t0 + (run.switched if run.switched is not None else args.timeout)
        probes = [r.time for r in list(primary.requests) if r.method == "GET"]
        before = [t for t in probes if t < t0]
        after = [t for t in probes if t0 <= t <= end + 0.05]
        run.phase = t0 - max(before) if before else None
        run.first_failing = min(after) - t0 if after else None
        run.failing_probes = len(after)
        if variant != "probe" and run.seen is None:
            run.notes.append("the operator's log never said the signal fires")
        app.target = None
        return run
    finally:
        app.target = None
        cluster.http.delete(f"{ROUTES_API}/namespaces/{namespace}/llmroutes/{name}")

        def gone() -> bool:
            answer = cluster.http.get(f"{ROUTES_API}/namespaces/{namespace}/llmroutes/{name}")
            return answer.status_code == 404

        try:
            wait(gone, 60, f"route {name} deleted")
        except SystemExit as exc:
            run.notes.append(str(exc))
        primary.stop()
        backup.stop()


def part_a(
    args: argparse.Namespace, cluster: Cluster, where: Path, prometheus_binary: str | None
) -> tuple[list[Run], str]:
    cluster.create("/api/v1/namespaces", {"metadata": {"name": "signals-a"}})
    variants = [v for v in args.variants.split(",") if v]
    app = App(args.rate, lifetime=3 * 3600)
    prometheus = None
    token = where / "alertmanager.token"
    token.write_text(TOKEN + "\n")
    extra = ["--alertmanager-token-file", str(token)]
    operator: Operator | None = None
    runs: list[Run] = []
    try:
        if "prometheus" in variants:
            assert prometheus_binary is not None
            home = where / "prometheus"
            home.mkdir(parents=True, exist_ok=True)
            prometheus = Prometheus(prometheus_binary, app.port, home, args.timeout)
            extra += ["--prometheus-url", prometheus.url, "--signal-interval", str(SIGNAL_INTERVAL)]
        operator = running = Operator(cluster.kubeconfig, where / "operator-a.log", extra)
        wait(lambda: "llmfailover_leader 1.0" in scrape(running), 60, "the operator to lead")
        rng = random.Random(args.seed)
        k = 0
        for number in range(1, args.runs + 1):
            for variant in variants:
                k += 1
                run = one_run_a(cluster, operator, app, prometheus, variant, number, k, args, rng)
                runs.append(run)
                print(f"  A {variant} run {number}: {run}", flush=True)
        text = scrape(operator)
        checks = {
            "signal queries": series(text, "llmfailover_signal_queries_total"),
            "alertmanager notifications": series(
                text, "llmfailover_alertmanager_notifications_total"
            ),
        }
        summary = "; ".join(
            f"{what}: " + ", ".join(f"{dict(labels)} {value:g}" for labels, value in found.items())
            for what, found in checks.items()
        )
        operator.stop()
        operator = None
        return runs, summary
    finally:
        if operator is not None:
            operator.stop()
        if prometheus is not None:
            prometheus.stop()
        app.stop()


def fmt(value: float | None, pattern: str = "{:.1f}") -> str:
    return "-" if value is None else pattern.format(value)


def spread(values: list[float | None]) -> tuple[str, str, str]:
    known = [v for v in values if v is not None]
    if not known:
        return "-", "-", "-"
    return fmt(statistics.median(known)), fmt(min(known)), fmt(max(known))


EXPECTED = {
    "probe": "up to one interval + 2 more: 20-30 s",
    "prometheus": "scrape (1 s) + rate (2 samples) + query (every 2 s) + one probe: 2-5 s",
    "alertmanager": "the alert's delay + one probe: about {delay:g} s",
}


def table_a(runs: list[Run], delay: float) -> str:
    lines = [
        "| variant | runs | T→ConfigMap names the backup, median (s) | min (s) | max (s) | "
        "T→Prometheus above threshold, median (s) | T→operator saw the signal, median (s) | "
        "primary's failing probes to the switch (median) | "
        "expected |",
        "|" + "---|" * 9,
    ]
    for variant in dict.fromkeys(r.variant for r in runs):
        mine = [r for r in runs if r.variant == variant]
        median, low, high = spread([r.switched for r in mine])
        above = spread([r.above for r in mine])[0]
        seen = spread([r.seen for r in mine])[0]
        probes = statistics.median(r.failing_probes for r in mine)
        cells = [
            variant,
            str(len(mine)),
            median,
            low,
            high,
            above,
            seen,
            f"{probes:g}",
            EXPECTED[variant].format(delay=delay),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail_a(runs: list[Run]) -> str:
    lines = [
        "| variant | run | T - primary's last probe before T (s) | T→Prometheus above "
        "threshold (s) | T→operator saw the signal (s) | T→first failing probe (s) | failing "
        "probes to the switch | T→switch (s) |",
        "|" + "---|" * 8,
    ]
    for r in runs:
        cells = [
            r.variant,
            str(r.number),
            fmt(r.phase),
            fmt(r.above, "{:.2f}"),
            fmt(r.seen, "{:.2f}"),
            fmt(r.first_failing, "{:.2f}"),
            str(r.failing_probes),
            fmt(r.switched, "{:.2f}"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- B: probes saved ----------------------------------------------------------------------------


def category(i: int) -> str:
    """What providers 3 and 4 of route i answer."""
    return {0: "401", 1: "429"}.get(i % 4, "healthy")


def key_of(i: int, j: int) -> str:
    return f"sk-r{i}-p{j}-Xq9Lm2Nv8Rt4"


def part_b(args: argparse.Namespace, cluster: Cluster, where: Path) -> dict[str, Any]:
    hosts = {"healthy": "127.0.200.1", "401": "127.0.200.2", "429": "127.0.200.3"}
    stand_ins = {
        "healthy": StandInProvider("healthy", host=hosts["healthy"]),
        "401": StandInProvider("unauthorized", host=hosts["401"], behaviour=Behaviour.UNAUTHORIZED),
        "429": StandInProvider(
            "limited", host=hosts["429"], behaviour=Behaviour.RATE_LIMITED, retry_after="30"
        ),
    }
    for s in stand_ins.values():
        s.start()
    operator: Operator | None = None
    try:
        namespaces = [f"signals-b-{n}" for n in range(5)]
        for namespace in namespaces:
            cluster.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
        for i in range(args.routes):
            namespace = namespaces[i % len(namespaces)]
            cluster.create(
                f"/api/v1/namespaces/{namespace}/secrets",
                {
                    "metadata": {"name": f"r{i}-keys"},
                    "stringData": {f"p{j}": key_of(i, j) for j in range(1, 5)},
                },
            )
            providers = []
            for j in range(1, 5):
                serving = stand_ins["healthy" if j <= 2 else category(i)]
                providers.append(
                    {
                        "name": f"p{j}",
                        "baseURL": serving.base_url,
                        "model": "gpt-4o",
                        "apiKeySecretRef": {"name": f"r{i}-keys", "key": f"p{j}"},
                    }
                )
            cluster.create(
                f"{ROUTES_API}/namespaces/{namespace}/llmroutes",
                {
                    "apiVersion": "llmfailover.dev/v1alpha1",
                    "kind": "LLMRoute",
                    "metadata": {"name": f"r{i}", "namespace": namespace},
                    "spec": {
                        "providers": providers,
                        "healthCheck": {
                            "intervalSeconds": args.interval,
                            "backupIntervalSeconds": args.backup_interval,
                        },
                        "target": {"configMapName": f"r{i}-llm"},
                    },
                },
            )
        operator = Operator(cluster.kubeconfig, where / "operator-b.log")

        def converged() -> bool:
            mine = [
                cm
                for cm in cluster.config_maps()
                if cm["metadata"]["namespace"].startswith("signals-b-")
            ]
            return len(mine) >= int(args.routes)

        wait(converged, args.timeout * 4, "every route's ConfigMap", step=0.5)
        converged_s = time.monotonic() - operator.started
        text0, cpu0, t0 = scrape(operator), operator.cpu_seconds(), time.time()
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            if operator.process.poll() is not None:
                raise SystemExit("the operator exited during part B")
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
        text1, cpu1, t1 = scrape(operator), operator.cpu_seconds(), time.time()
        rss = operator.peak_rss_mb()
        elapsed = t1 - t0

        def delta(name: str, label: str) -> Counter[str]:
            before, after = series(text0, name), series(text1, name)
            found: Counter[str] = Counter()
            for labels, value in after.items():
                found[dict(labels)[label]] += round(value - before.get(labels, 0.0))
            return found

        by_state = delta("llmfailover_probes_total", "state")
        saved = delta("llmfailover_probes_saved_total", "reason")
        # Per kind of provider, from the stand-ins' logs (a probe is a GET; the key names the
        # route and the provider).
        sent: Counter[str] = Counter()
        for s in stand_ins.values():
            for r in list(s.requests):
                found = re.match(r"Bearer sk-r(\d+)-p(\d)-", r.authorization)
                if r.method != "GET" or found is None or not t0 <= r.time < t1:
                    continue
                i, j = int(found.group(1)), int(found.group(2))
                sent["first" if j <= 2 else category(i)] += 1
        endpoints = Counter(
            "first" if j <= 2 else category(i) for i in range(args.routes) for j in range(1, 5)
        )
        notable = [
            line
            for line in operator.log.read_text(errors="replace").splitlines()
            if re.search(r"traceback|exception|\berror\b", line, re.I)
        ]
        operator_stop = operator.stop()
        operator = None
        return {
            "routes": args.routes,
            "elapsed": elapsed,
            "converged_s": converged_s,
            "by_state": by_state,
            "saved": saved,
            "sent": sent,
            "endpoints": endpoints,
            "cpu_s": cpu1 - cpu0,
            "rss_mb": rss,
            "sigterm_s": operator_stop,
            "notable": notable,
        }
    finally:
        if operator is not None:
            operator.stop()
        for s in stand_ins.values():
            s.stop()


def table_b(b: dict[str, Any], interval: int) -> str:
    elapsed = b["elapsed"]
    lines = [
        "| providers | endpoints | probes sent | fixed schedule | sent / fixed |",
        "|---|---|---|---|---|",
    ]
    for kind, title in CATEGORY_NAMES.items():
        n = b["endpoints"][kind]
        if not n:
            continue
        fixed = n * elapsed / interval
        sent = b["sent"][kind]
        lines.append(f"| {title} | {n} | {sent:,} | {fixed:,.0f} | {sent / fixed:.2f} |")
    n = sum(b["endpoints"].values())
    fixed = n * elapsed / interval
    total = sum(b["sent"].values())
    lines.append(f"| all | {n} | {total:,} | {fixed:,.0f} | {total / fixed:.2f} |")
    sent_operator = sum(b["by_state"].values())
    saved = b["saved"]
    lines += [
        "",
        "| routes | window (s) | probes sent (operator) | by state | fixed schedule | "
        "saved (operator) | saved by reason | sent + saved | CPU s | CPU s/min | peak RSS (MiB) |",
        "|" + "---|" * 11,
        f"| {b['routes']} | {elapsed:.0f} | {sent_operator:,} | "
        + ", ".join(f"{k} {v:,}" for k, v in b["by_state"].most_common() if v)
        + f" | {fixed:,.0f} | {sum(saved.values()):,} | "
        + ", ".join(f"{k} {v:,}" for k, v in saved.most_common())
        + f" | {sent_operator + sum(saved.values()):,} | {b['cpu_s']:.1f} | "
        f"{b['cpu_s'] * 60 / elapsed:.2f} | {b['rss_mb']:.0f} |",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", default="a,b", help="a (time to failover), b (probes saved)")
    parser.add_argument("--runs", type=int, default=3, help="A: runs of each variant")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="A: " + ", ".join(VARIANTS))
    parser.add_argument("--rate", type=float, default=20, help="A: the app's requests a second")
    parser.add_argument("--alert-delay", type=float, default=1.0, help="A: T to the alert (s)")
    parser.add_argument("--seed", type=int, default=14, help="A: seed of the random T")
    parser.add_argument("--routes", type=int, default=50, help="B: routes of 4 providers")
    parser.add_argument("--seconds", type=float, default=120, help="B: seconds measured")
    parser.add_argument("--interval", type=int, default=2, help="B: intervalSeconds")
    parser.add_argument("--backup-interval", type=int, default=20, help="B: backupIntervalSeconds")
    parser.add_argument("--timeout", type=float, default=90, help="bound of every wait (s)")
    parser.add_argument("--keep", type=Path, help="keep the logs in this directory")
    args = parser.parse_args()
    parts = {p for p in args.part.split(",") if p}
    if parts - {"a", "b"} or not parts:
        raise SystemExit("--part: a, b or both")
    if set(args.variants.split(",")) - set(VARIANTS):
        raise SystemExit(f"--variants: choose from {', '.join(VARIANTS)}")
    if args.runs < 1 or args.routes < 1 or args.rate <= 0 or args.seconds <= 0:
        raise SystemExit("--runs, --routes, --rate and --seconds must be positive")
    if args.backup_interval < args.interval:
        raise SystemExit("--backup-interval must be at least --interval")
    binary = shutil.which("prometheus")
    if "a" in parts and "prometheus" in args.variants and binary is None:
        raise SystemExit(
            "variant prometheus needs a prometheus binary on PATH (apt-get install prometheus, "
            "as .ci/run does), or --variants probe,alertmanager"
        )
    if TOTAL_CPUS > 1:  # this process, its stand-ins and Prometheus share the cluster's core
        os.sched_setaffinity(0, {1})
    print(
        f"signals: part {','.join(sorted(parts))}; A: {args.runs} runs of {args.variants}, "
        f"interval 10 s, failureThreshold 3, app {args.rate:g} req/s, Prometheus scrape 1 s, "
        f"--signal-interval {SIGNAL_INTERVAL}, alert at T+{args.alert_delay:g} s; B: "
        f"{args.routes} routes of 4 providers, interval {args.interval} s, backup "
        f"{args.backup_interval} s, {args.seconds:.0f} s; operator on CPU 0, the rest on CPU 1 "
        f"({TOTAL_CPUS} CPUs)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-signals-") as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        cluster = Cluster(where)
        runs: list[Run] = []
        checks = ""
        b: dict[str, Any] | None = None
        try:
            cluster.create("/api/v1/namespaces", {"metadata": {"name": LEASE_NAMESPACE}})
            if "a" in parts:
                runs, checks = part_a(args, cluster, where, binary)
            if "b" in parts:
                b = part_b(args, cluster, where)
        finally:
            cluster.stop()
        if runs:
            print("\nA. Time to failover (T: the primary answers HTTP 500):\n")
            print(table_a(runs, args.alert_delay))
            print()
            print(detail_a(runs))
            print(f"\nThe operator's counters at the end of A: {checks}")
            for r in runs:
                for note in r.notes:
                    print(f"  note, {r.variant} run {r.number}: {note}")
                if r.alert_status not in (None, 200):
                    print(
                        f"  note, {r.variant} run {r.number}: POST /alertmanager {r.alert_status}"
                    )
        if b is not None:
            print(
                f"\nB. Probes saved: {b['routes']} routes, converged in {b['converged_s']:.1f} s, "
                f"then {b['elapsed']:.0f} s measured (SIGTERM→exit {b['sigterm_s']:.1f} s):\n"
            )
            print(table_b(b, args.interval))
            if b["notable"]:
                print("\nNotable lines of the operator's log (B):")
                for line in b["notable"][:20]:
                    print(f"  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
