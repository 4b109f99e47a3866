"""What the real-cluster suite applies, checked here without a cluster (part of `make test`).

So that `make e2e` does not rot between the runs someone makes against kind: its kustomize overlay
renders deploy/ with the image under test, its objects pass the Kubernetes schemas, its LLMRoute
passes the CRD and the operator, and the stand-ins serve and switch as its pod runs them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from test_real_cluster import (
    KEYS,
    NO_CLUSTER,
    NO_CLUSTER_EXIT,
    image_override,
    route,
    stand_ins,
    switch_command,
    write_overlay,
)

from conftest import ROOT, free_port, kustomize
from llm_failover.catalog import default_catalog
from llm_failover.spec import parse_route_spec
from test_crd import errors

NAMESPACE = "e2e-check"


def validate(objects: list[dict[str, Any]]) -> None:
    version = kubernetes_validate.latest_version()
    for obj in objects:
        if obj["apiVersion"].startswith(("monitoring.coreos.com/", "llmfailover.dev/")):
            continue  # custom resources: no schema in kubernetes-validate
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("ghcr.io/llm-failover/llm-failover:0.1.0", {"newTag": "0.1.0"}),
        ("localhost:5000/llmf:dev", {"newName": "localhost:5000/llmf", "newTag": "dev"}),
        ("localhost:5000/llmf", {"newName": "localhost:5000/llmf", "newTag": "latest"}),
        ("llmf@sha256:0123", {"newName": "llmf", "digest": "sha256:0123"}),
    ],
)
def test_image_override(image: str, expected: dict[str, str]) -> None:
    entry = image_override(image)
    assert entry["name"] == "ghcr.io/llm-failover/llm-failover"
    assert expected.items() <= entry.items()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
@pytest.mark.parametrize("prometheus_operator", [True, False])
def test_the_overlay_renders_deploy_with_the_image(
    tmp_path: Path, prometheus_operator: bool
) -> None:
    write_overlay(tmp_path, "localhost:5000/llmf:dev", prometheus_operator=prometheus_operator)
    objects = kustomize(tmp_path)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "localhost:5000/llmf:dev"
    )
    monitoring = {o["kind"] for o in objects if o["apiVersion"].startswith("monitoring.coreos")}
    assert monitoring == ({"ServiceMonitor", "PrometheusRule"} if prometheus_operator else set())
    dashboard = [o for o in objects if o["metadata"]["name"] == "llm-failover-dashboard"]
    assert len(dashboard) == (1 if prometheus_operator else 0)
    kinds = {o["kind"] for o in objects}
    assert {"ClusterRole", "Service", "Deployment"} <= kinds
    assert "CustomResourceDefinition" not in kinds  # applied on its own first, kept afterwards
    validate(objects)


def test_without_a_cluster_make_e2e_fails_saying_why(tmp_path: Path) -> None:
    """`make e2e` (`pytest -m e2e tests/e2e`) with a KUBECONFIG whose server does not answer
    exits non-zero before any test, with one line saying why, instead of passing as skipped."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed: the reason would be that instead")
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "none", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}
                ],
                "users": [{"name": "none", "user": {"token": "x"}}],
                "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
                "current-context": "none",
            }
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "e2e", "tests/e2e", "-p", "no:cacheprovider", "-q"],
        cwd=ROOT,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == NO_CLUSTER_EXIT, done.stdout + done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if NO_CLUSTER in line]
    assert len(lines) == 1, done.stdout + done.stderr
    assert "passed" not in done.stdout
    assert "skipped" not in done.stdout


def test_the_test_objects_are_valid() -> None:
    validate(stand_ins(NAMESPACE) + route(NAMESPACE))
    (llm_route,) = [o for o in route(NAMESPACE) if o["kind"] == "LLMRoute"]
    assert not errors(llm_route)  # the CRD's schema
    spec = parse_route_spec(llm_route["spec"], route_name="chat", catalog=default_catalog())
    assert [p.name for p in spec.providers] == ["openai", "qwen"]


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def test_the_stand_ins_serve_and_switch_as_in_the_pod() -> None:
    container = stand_ins(NAMESPACE)[0]["spec"]["template"]["spec"]["containers"][0]
    ports = {"8080": free_port(), "8081": free_port()}
    args: list[str] = []
    for previous, arg in pairwise(["", *container["args"]]):
        args.append(str(ports[arg]) if previous == "--port" else arg)
        if previous == "--port":
            args += ["--host", "127.0.0.1"]  # loopback only, here
    command = [sys.executable if part == "python" else part for part in container["command"]]
    process = subprocess.Popen([*command, *args], stdout=subprocess.PIPE, text=True)
    try:
        openai, qwen = ports["8080"], ports["8081"]
        wait_listening(openai)
        wait_listening(qwen)
        auth = {"Authorization": f"Bearer {KEYS['openai']}"}
        models = f"http://127.0.0.1:{openai}/v1/models"
        assert httpx.get(models, headers=auth, timeout=5).status_code == 200
        assert httpx.get(models, timeout=5).status_code == 401  # the key is checked
        qwen_models = f"http://127.0.0.1:{qwen}/compatible-mode/v1/models"
        answer = httpx.get(qwen_models, headers={"Authorization": f"Bearer {KEYS['qwen']}"})
        assert answer.json()["data"][0]["id"] == "qwen-max"

        switch = [sys.executable, *switch_command(openai, "geo-blocked")[1:]]
        switched = subprocess.run(switch, capture_output=True, text=True, timeout=20, check=True)
        assert '"behaviour": "geo-blocked"' in switched.stdout
        blocked = httpx.get(models, headers=auth, timeout=5)
        assert blocked.status_code == 403
        assert blocked.json()["error"]["code"] == "unsupported_country_region_territory"
    finally:
        process.terminate()  # SIGTERM, as the kubelet stops the pod
        assert process.wait(timeout=10) == 0
    assert process.stdout is not None
    assert "openai: openai stand-in at http://127.0.0.1" in process.stdout.read()
