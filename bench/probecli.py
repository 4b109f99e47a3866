"""`llm-failover probe` on a large `kind: List` (as `kubectl get llmroutes -A -o yaml` writes):
time to the first line of output, total time and peak RSS of the probe process.

    .venv/bin/python bench/probecli.py                       # ~55 MB, this tree
    git worktree add /tmp/old HEAD~1                         # the code before, to compare
    .venv/bin/python bench/probecli.py --compare /tmp/old/operator

The routes' providers point at one loopback stand-in (healthy) and one closed loopback port
(refused at once), so nothing leaves the machine and each distinct endpoint is probed once;
every item carries kubectl's usual metadata (labels, annotations, managedFields).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from llm_failover.sandbox.providers import StandInProvider

ROOT = Path(__file__).resolve().parents[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on return: connections are refused


def item(i: int, healthy: str, refused: str) -> dict[str, Any]:
    name = f"route-{i:06d}"
    return {
        "apiVersion": "llmfailover.dev/v1alpha1",
        "kind": "LLMRoute",
        "metadata": {
            "name": name,
            "namespace": f"team-{i % 97}",
            "uid": f"{i:08x}-1111-2222-3333-444455556666",
            "resourceVersion": str(100000 + i),
            "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": name, "tier": "chat"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 400 + "}"
            },
            "managedFields": [
                {
                    "apiVersion": "llmfailover.dev/v1alpha1",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:providers": {}, "f:healthCheck": {}}},
                    "manager": "kubectl-client-side-apply",
                    "operation": "Update",
                    "time": "2026-01-01T00:00:00Z",
                }
            ],
        },
        "spec": {
            "providers": [
                {"name": "down", "baseURL": refused, "model": "m"},
                {"name": "up", "baseURL": healthy, "model": "gpt-4o"},
            ],
            "healthCheck": {"timeoutSeconds": 2},
        },
    }


def write(path: Path, megabytes: float, healthy: str, refused: str, *, listed: bool) -> int:
    """About `megabytes` MB of routes: a kubectl-style List, or one document each (`---`, which
    the code before could read too); returns the number of routes."""
    sample = yaml.safe_dump([item(0, healthy, refused)], sort_keys=True)
    count = max(1, int(megabytes * 1e6 / len(sample)))
    with path.open("w", encoding="utf-8") as out:
        if listed:
            out.write("apiVersion: v1\nitems:\n")
        for start in range(0, count, 1000):
            chunk = [item(i, healthy, refused) for i in range(start, min(count, start + 1000))]
            if listed:
                out.write(yaml.safe_dump(chunk, sort_keys=True))
            else:
                out.write(yaml.safe_dump_all(chunk, sort_keys=True, explicit_start=True))
        if listed:
            out.write("kind: List\nmetadata:\n  resourceVersion: ''\n")
    return count


def measure(label: str, python_path: Path, manifest: Path, timeout: float) -> None:
    env = {**os.environ, "PYTHONPATH": str(python_path)}
    env = {k: v for k, v in env.items() if not k.startswith("LLMFAILOVER_KEY_")}
    start = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "llm_failover.cli", "probe", str(manifest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert process.stdout is not None
    first: float | None = None
    lines = 0
    deadline = start + timeout
    for _ in iter(process.stdout.readline, b""):
        if first is None:
            first = time.monotonic() - start
        lines += 1
        if time.monotonic() > deadline:
            process.kill()
            break
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    total = time.monotonic() - start
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    shown = f"{first:.2f} s" if first is not None else "none"
    print(
        f"{label:>8}: first line {shown}, total {total:.2f} s, peak RSS {peak:.0f} MiB, "
        f"{lines} lines, exit {process.returncode}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=55.0)
    parser.add_argument(
        "--compare",
        type=Path,
        default=None,
        metavar="OPERATOR_DIR",
        help="also run the llm_failover package under this directory (an older tree's operator/)",
    )
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    with StandInProvider("up", api_key=None) as stand_in, tempfile.TemporaryDirectory() as tmp:
        refused = f"http://127.0.0.1:{closed_port()}/v1"
        for listed in (True, False):
            manifest = Path(tmp) / ("list.yaml" if listed else "documents.yaml")
            routes = write(manifest, args.megabytes, stand_in.base_url, refused, listed=listed)
            size = manifest.stat().st_size / 1e6
            shape = "one kind: List" if listed else "one document each"
            libyaml = yaml.__with_libyaml__
            print(f"{routes} routes, {shape}, {size:.1f} MB (libyaml: {libyaml})", flush=True)
            measure("now", ROOT / "operator", manifest, args.timeout)
            if args.compare is not None:
                measure("compared", args.compare, manifest, args.timeout)
            manifest.unlink()
        print(f"stand-in probes answered: {len(stand_in.requests)}")


if __name__ == "__main__":
    main()
