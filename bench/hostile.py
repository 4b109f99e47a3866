"""What a hostile provider can cost the operator: figures, not a test (`make bench`).

Part 1, one probe: the prober (in this process) against each behaviour of the hostile provider
(in its own process): wall time, CPU time and Python-heap peak of one probe, over several runs.

Part 2, the operator: the real `llm-failover run` process against the embedded cluster, first
with calm providers, then with every hostile behaviour probed each second: its CPU seconds, peak
RSS, worst event-loop lag and API calls by verb, and the state each hostile provider ended in.

Everything listens on 127.0.0.1 only. Run: `make bench` or `.venv/bin/python bench/hostile.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from llm_failover.catalog import AuthScheme, ProbeMethod, default_catalog
from llm_failover.credentials import Credential
from llm_failover.prober import Endpoint, Prober
from llm_failover.sandbox.cluster import EmulatedCluster
from llm_failover.sandbox.hostile import HostileProvider, Hostility

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "llmroutes.yaml"
TIMEOUT = 2.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def endpoint(base_url: str) -> Endpoint:
    catalog = default_catalog()
    return Endpoint.for_provider(
        base_url=base_url,
        method=ProbeMethod.MODELS,
        model="m",
        credential=Credential.of("sk-bench-0123456789abcdef"),
        auth=AuthScheme(),
        errors=catalog.dictionary(catalog.get("openai")),
    )


async def one_probe_costs(runs: int) -> None:
    print(f"1. One probe (of {runs}): wall ms, CPU ms, Python-heap peak KiB, min/median/max\n")
    print(f"   {'behaviour':14} {'state':13} {'wall ms':>16} {'cpu ms':>16} {'peak KiB':>18}")
    with HostileProvider() as hostile:
        async with httpx.AsyncClient() as client:
            prober = Prober(client=client)
            for behaviour in Hostility:
                hostile.set(behaviour)
                walls, cpus, peaks, state = [], [], [], ""
                for _ in range(runs):
                    wall, cpu = time.perf_counter(), time.process_time()
                    report = await prober.probe(endpoint(hostile.base_url), timeout_seconds=TIMEOUT)
                    walls.append((time.perf_counter() - wall) * 1000)
                    cpus.append((time.process_time() - cpu) * 1000)
                    state = report.classification.state.value
                    # Memory in a run of its own: tracing slows allocation-heavy code tenfold.
                    tracemalloc.start()
                    await prober.probe(endpoint(hostile.base_url), timeout_seconds=TIMEOUT)
                    peaks.append(tracemalloc.get_traced_memory()[1] / 1024)
                    tracemalloc.stop()
                print(
                    f"   {behaviour.value:14} {state:13} {spread(walls):>16} {spread(cpus):>16} "
                    f"{spread(peaks):>18}"
                )


def spread(values: list[float]) -> str:
    return f"{min(values):.0f}/{statistics.median(values):.0f}/{max(values):.0f}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Operator:
    def __init__(self, kubeconfig: Path, log: Path) -> None:
        self.metrics_port = free_port()
        self.health_port = free_port()
        args = [sys.executable, "-m", "llm_failover.cli", "run"]
        args += ["--metrics-port", str(self.metrics_port), "--health-port", str(self.health_port)]
        args += ["--leader-elect=false"]  # one process: its probes are measured, not a Lease
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        with log.open("wb") as out:
            self.process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime

    def memory_mb(self, field: str) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(rf"{field}:\s+(\d+) kB", status)
        return int(match.group(1)) / 1024 if match else 0.0

    def lag(self) -> float:
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return 0.0
        match = re.search(r"^llmfailover_event_loop_lag_seconds (\S+)$", text, re.M)
        return float(match.group(1)) if match else 0.0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def route(name: str, namespace: str, providers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "llmfailover.dev/v1alpha1",
        "kind": "LLMRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "providers": providers,
            "healthCheck": {"intervalSeconds": 1, "timeoutSeconds": int(TIMEOUT)},
        },
    }


def measure(
    cluster: EmulatedCluster, operator: Operator, seconds: float, label: str
) -> dict[str, Any]:
    calls_before = len(cluster.requests)
    cpu_before = operator.cpu_seconds()
    lags = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        lags.append(operator.lag())
        time.sleep(0.5)
    calls = Counter(method for method, _ in cluster.requests[calls_before:])
    return {
        "phase": label,
        "cpu": operator.cpu_seconds() - cpu_before,
        "rss": operator.memory_mb("VmRSS"),
        "peak": operator.memory_mb("VmHWM"),
        "lag": max(lags, default=0.0),
        "calls": dict(sorted(calls.items())),
    }


def operator_costs(seconds: float) -> None:
    print(
        f"\n2. The operator process, {seconds:.0f} s per phase, every provider probed each second\n"
    )
    hostile = {b: HostileProvider(behaviour=b).start() for b in Hostility}
    calm = [HostileProvider().start() for _ in range(len(Hostility))]
    with tempfile.TemporaryDirectory() as tmp, EmulatedCluster(crd_paths=[CRD]) as cluster:
        kubeconfig = cluster.write_kubeconfig(Path(tmp) / "config")
        cluster.add_namespace("bench")
        operator = Operator(kubeconfig, Path(tmp) / "operator.log")
        try:
            time.sleep(3)  # start-up
            providers = [
                {"name": f"calm-{i}", "baseURL": server.base_url, "model": "m"}
                for i, server in enumerate(calm)
            ]
            for start in range(0, len(providers), 16):
                cluster.apply(route(f"calm-{start}", "bench", providers[start : start + 16]))
            rows = [measure(cluster, operator, seconds, "calm")]
            providers = [
                {"name": behaviour.value, "baseURL": server.base_url, "model": "m"}
                for behaviour, server in hostile.items()
            ]
            for start in range(0, len(providers), 16):
                cluster.apply(route(f"hostile-{start}", "bench", providers[start : start + 16]))
            rows.append(measure(cluster, operator, seconds, "calm + hostile"))
            states = {
                entry["name"]: entry["state"]
                for obj in cluster.objects(
                    group="llmfailover.dev", version="v1alpha1", plural="llmroutes"
                )
                for entry in (obj.get("status") or {}).get("providers", [])
            }
        finally:
            operator.stop()
            for server in [*hostile.values(), *calm]:
                server.stop()
    print(
        f"   {'phase':15} {'CPU s':>6} {'RSS MiB':>8} {'peak MiB':>9} {'max lag s':>10}  API calls"
    )
    for row in rows:
        print(
            f"   {row['phase']:15} {row['cpu']:6.1f} {row['rss']:8.0f} {row['peak']:9.0f} "
            f"{row['lag']:10.3f}  {row['calls']}"
        )
    print("\n   state of each hostile provider at the end:")
    for behaviour in Hostility:
        print(f"     {behaviour.value:14} {states.get(behaviour.value, '?')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="probes per behaviour in part 1")
    parser.add_argument("--seconds", type=float, default=15, help="length of each phase in part 2")
    args = parser.parse_args()
    asyncio.run(one_probe_costs(args.runs))
    operator_costs(args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
