"""`llm-failover run`: which cluster (--kubeconfig, --context, KUBECONFIG, none at all), JSON logs
with keys masked, and where its requests go when HTTPS_PROXY/HTTP_PROXY are set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from conftest import Env, OperatorProcess, free_port, shared_operator_stopped, wait_for
from llm_failover import kubeconfig
from llm_failover.redact import FRAGMENT
from llm_failover.sandbox.cluster import EmulatedCluster
from llm_failover.sandbox.hostile import HostileProvider, Hostility
from llm_failover.sandbox.providers import StandInProvider

PROXIED_HOST = "openai.proxy-test.invalid"
"""A provider host no resolver knows: only the recording proxy maps it (to loopback)."""


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llm_failover.cli", "run", "--leader-elect=false", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """No KUBECONFIG, an empty HOME, no KUBERNETES_SERVICE_* (not a pod), our Python path."""
    keep = ("PATH", "PYTHONPATH", "LANG", "SYSTEMROOT", "VIRTUAL_ENV")
    environ = {k: v for k, v in os.environ.items() if k in keep}
    return {**environ, "HOME": str(home), **extra}


def two_contexts(path: Path, live: str, dead: str, current: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "live", "cluster": {"server": live}},
            {"name": "dead", "cluster": {"server": dead}},
        ],
        "users": [{"name": "u", "user": {"token": "emulated"}}],
        "contexts": [
            {"name": "live", "context": {"cluster": "live", "user": "u"}},
            {"name": "dead", "context": {"cluster": "dead", "user": "u"}},
        ],
        "current-context": current,
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("args", "extra", "said"),
    [
        (
            (),
            {},
            "no cluster config: no --kubeconfig, KUBECONFIG is not set, {home}/.kube/config does "
            "not exist, and this is not a pod with a service account; pass --kubeconfig FILE or "
            "set KUBECONFIG",
        ),
        (("--kubeconfig", "/nonexistent/config"), {}, "--kubeconfig /nonexistent/config: no such"),
        ((), {"KUBECONFIG": "/nonexistent/a"}, "KUBECONFIG=/nonexistent/a: no such file"),
        (("--context", "prod"), {}, "--context prod: no kubeconfig to find it in"),
        (("--kubeconfig", "{two}", "--context", "prod"), {}, "--context prod: no such context"),
        (
            ("--kubeconfig", "{home}"),
            {},
            "--kubeconfig {home}: it is a directory, not a kubeconfig",
        ),
    ],
)
def test_no_usable_cluster_config_is_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], extra: dict[str, str], said: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    two = two_contexts(tmp_path / "two", "http://127.0.0.1:1", "http://127.0.0.1:2", "live")
    args = tuple(a.format(home=home, two=two) for a in args)
    done = run(*args, env=clean_env(home, **extra))
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith(f"llm-failover run: error: {said.format(home=home)}")
    assert done.stderr.count("\n") == 1
    if args[-2:] == ("--context", "prod") and "--kubeconfig" in args:
        assert "(contexts: dead, live)" in done.stderr


def test_bare_run_without_a_cluster_names_the_cluster_first(tmp_path: Path) -> None:
    """`llm-failover run` as a new user types it (leader election on, outside a pod): the missing
    cluster config is what it says, not the Lease's namespace, which depends on it."""
    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "llm_failover.cli", "run"],
        capture_output=True, text=True, timeout=60, env=clean_env(home), check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("llm-failover run: error: no cluster config:")
    assert done.stderr.count("\n") == 1


def test_context_picks_the_cluster_for_watches_and_writes(
    emulated_cluster: EmulatedCluster, env: Env, tmp_path: Path
) -> None:
    """The kubeconfig's current context is a dead port; --context live must be what both
    clients use: kopf's watch sees the route, the kubernetes client writes its ConfigMap."""
    dead = f"http://127.0.0.1:{free_port()}"
    config = two_contexts(tmp_path / "config", emulated_cluster.url, dead, current="dead")
    nowhere = two_contexts(tmp_path / "nowhere", dead, dead, current="dead")
    with StandInProvider("openai", api_key=None) as up, shared_operator_stopped(env.cluster):
        process = OperatorProcess(
            nowhere,  # KUBECONFIG: --kubeconfig wins over it
            tmp_path / "operator.log",
            extra_args=("--kubeconfig", str(config), "--context", "live"),
        ).start()
        try:
            env.llm_route(
                "chat",
                {"providers": [{"name": "up", "baseURL": up.base_url, "model": up.model}]},
            )
            wait_for(lambda: env.data("chat-llm").get("LLM_PROVIDER") == "up", what="routing")
        finally:
            process.stop()
    log = process.log()
    assert f"cluster: --kubeconfig {config}, context live: {emulated_cluster.url} (direct)" in log


def test_json_logs_carry_object_context_and_no_key(
    emulated_cluster: EmulatedCluster, env: Env, tmp_path: Path
) -> None:
    echoed = "sk-echo-Jq72LmN0pQrStUv9753WxYz"
    with HostileProvider() as hostile, shared_operator_stopped(env.cluster):
        hostile.set(Hostility.ECHO_KEY)
        env.key_secret("echo-key", echoed)
        process = OperatorProcess(
            emulated_cluster.write_kubeconfig(tmp_path / "config"),
            tmp_path / "operator.log",
            extra_args=("--log-format", "json"),
        ).start()
        try:
            env.llm_route(
                "chat",
                {
                    "providers": [
                        {
                            "name": "echo",
                            "baseURL": hostile.base_url,
                            "model": "m",
                            "apiKeySecretRef": {"name": "echo-key", "key": "api-key"},
                        }
                    ],
                    "healthCheck": {"intervalSeconds": 1, "timeoutSeconds": 1},
                },
            )
            wait_for(
                lambda: "***" in json.dumps(env.status("chat")), what="the masked echo in status"
            )
            wait_for(lambda: "***" in process.log(), what="a log line with the masked echo")
        finally:
            process.stop()
    lines = [json.loads(line) for line in process.log().splitlines() if line.strip()]
    assert lines, "no log lines"
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
        assert line["time"].endswith("Z")
    assert any(line.get("namespace") == env.namespace and line.get("name") for line in lines)
    assert any(line["logger"].startswith("kopf") for line in lines)
    assert any(line["logger"].startswith("llm_failover") for line in lines)
    text = process.log()
    for start in range(len(echoed) - FRAGMENT + 1):
        assert echoed[start : start + FRAGMENT] not in text


# --- proxies --------------------------------------------------------------------------------


class RecordingProxy:
    """A loopback HTTP proxy stand-in: records each request's absolute-form target and forwards
    it, mapping PROXIED_HOST to 127.0.0.1 (which only it can do)."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def _forward(self) -> None:
                proxy.targets.append(self.path)
                url = urlsplit(self.path)
                host = "127.0.0.1" if url.hostname == PROXIED_HOST else url.hostname
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                upstream = HTTPConnection(host or "", url.port or 80, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                upstream.request(self.command, url.path or "/", body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    found = RecordingProxy()
    yield found
    found.close()


def proxied_route(stand_in: StandInProvider) -> dict[str, Any]:
    port = urlsplit(stand_in.base_url).port
    return {
        "providers": [
            {"name": "up", "baseURL": f"http://{PROXIED_HOST}:{port}/v1", "model": stand_in.model}
        ],
        "healthCheck": {"intervalSeconds": 1, "timeoutSeconds": 2},
    }


@pytest.mark.parametrize("bypass", [False, True])
def test_probe_goes_through_the_proxy_unless_no_proxy_says(
    tmp_path: Path, proxy: RecordingProxy, bypass: bool
) -> None:
    with StandInProvider("openai", api_key=None) as up:
        port = urlsplit(up.base_url).port
        manifest = tmp_path / "route.yaml"
        manifest.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "llmfailover.dev/v1alpha1",
                    "kind": "LLMRoute",
                    "metadata": {"name": "chat"},
                    "spec": proxied_route(up),
                }
            )
        )
        environ = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        environ.update(HTTP_PROXY=proxy.url, HTTPS_PROXY=proxy.url)
        if bypass:
            environ["NO_PROXY"] = ".proxy-test.invalid"
        done = subprocess.run(
            [sys.executable, "-m", "llm_failover.cli", "probe", str(manifest), "-o", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            env=environ,
            check=False,
        )
    (provider,) = json.loads(done.stdout)["routes"][0]["providers"]
    assert provider["host"] == PROXIED_HOST
    if bypass:  # straight to a name no resolver knows
        assert provider["state"] == "Unreachable"
        assert proxy.targets == []
    else:
        assert provider["state"] == "Healthy", provider
        assert proxy.targets == [f"http://{PROXIED_HOST}:{port}/v1/models"]


def test_run_probes_through_the_proxy_and_talks_to_the_api_directly(
    emulated_cluster: EmulatedCluster, env: Env, tmp_path: Path, proxy: RecordingProxy
) -> None:
    """HTTP_PROXY and HTTPS_PROXY set, NO_PROXY empty (the API server is http://127.0.0.1:N):
    probes go via the proxy, and not one Kubernetes API request does (kopf's watches nor the
    kubernetes client's writes), yet the route is routed: the API was reached directly."""
    # The shared operator restarts when `shared_operator_stopped` ends, with this process's
    # environment: the proxy variables must be gone by then (outer `with`, inner `finally`).
    with StandInProvider("openai", api_key=None) as up, shared_operator_stopped(env.cluster):
        saved = {k: os.environ.pop(k) for k in list(os.environ) if "proxy" in k.lower()}
        os.environ.update(HTTP_PROXY=proxy.url, HTTPS_PROXY=proxy.url)
        try:
            process = OperatorProcess(
                emulated_cluster.write_kubeconfig(tmp_path / "config"), tmp_path / "operator.log"
            ).start()
        finally:
            for key in ("HTTP_PROXY", "HTTPS_PROXY"):
                os.environ.pop(key, None)
            os.environ.update(saved)
        try:
            env.llm_route("chat", proxied_route(up))
            wait_for(lambda: env.data("chat-llm").get("LLM_PROVIDER") == "up", what="routing")
        finally:
            process.stop()
    api = urlsplit(emulated_cluster.url).netloc
    assert proxy.targets, "no probe went through the proxy"
    assert all(PROXIED_HOST in target for target in proxy.targets), proxy.targets
    assert not [t for t in proxy.targets if api in t]
    log = process.log()
    assert f"probes and Prometheus queries go through a proxy: https:// via {proxy.url}" in log
    assert f"{emulated_cluster.url} (direct)" in log


def test_the_api_clients_use_the_kubeconfigs_proxy_url_and_never_the_environments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://egress.invalid:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://egress.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    path = two_contexts(tmp_path / "config", "https://10.0.0.1:6443", "http://x:1", "live")
    plain = kubeconfig.locate(str(path))
    assert kubeconfig.configuration(plain).proxy is None  # HTTPS_PROXY is for egress
    assert kubeconfig.connection_info(plain).proxy_url is None
    assert kubeconfig.connection_info(plain).trust_env is False
    config = yaml.safe_load(path.read_text())
    config["clusters"][0]["cluster"]["proxy-url"] = "http://user:pw@api-proxy.invalid:8080"
    path.write_text(yaml.safe_dump(config))
    proxied = kubeconfig.locate(str(path))
    assert kubeconfig.configuration(proxied).proxy == "http://user:pw@api-proxy.invalid:8080"
    assert kubeconfig.connection_info(proxied).proxy_url == "http://user:pw@api-proxy.invalid:8080"
    assert "through proxy-url http://***@api-proxy.invalid:8080" in proxied.describe()
    assert "pw" not in proxied.describe()
