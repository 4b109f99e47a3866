"""Traffic signals end to end: a stand-in app exports OpenTelemetry GenAI client metrics, a real
Prometheus scrapes it, and the operator (`--prometheus-url`) fails a route over on what the
app's traffic says, confirmed by one probe, long before its probes alone would; an Alertmanager
notification posted to the operator probes a provider at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import (
    Env,
    OperatorProcess,
    shared_operator_stopped,
    three_providers,
    wait_for,
)
from llm_failover.sandbox.providers import Behaviour, StandInProvider
from promql import PROMETHEUS, running_prometheus

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus not installed: apt-get install prometheus (.ci/run does)"
)
TOKEN = "am-0123456789"
# The error ratio of the app's calls to the provider's model: the OpenTelemetry GenAI client
# histogram as Prometheus names it (gen_ai.client.operation.duration → ..._seconds_count).
ERROR_RATIO = (
    'sum(rate(gen_ai_client_operation_duration_seconds_count{gen_ai_request_model="${model}",'
    'error_type!=""}[5s])) / sum(rate(gen_ai_client_operation_duration_seconds_count'
    '{gen_ai_request_model="${model}"}[5s]))'
)


class App:
    """A stand-in app calling its LLM 20 times a second: /metrics counts the calls per model,
    and the failed ones with their error.type, as an OpenTelemetry SDK's Prometheus export does."""

    RATE = 20.0

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.failing: dict[str, float] = {}  # model → since when its calls fail
        self.lock = threading.Lock()
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = app.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, model: str) -> None:
        with self.lock:
            self.failing[model] = time.monotonic()

    def exposition(self) -> str:
        now = time.monotonic()
        lines = ["# TYPE gen_ai_client_operation_duration_seconds histogram"]
        with self.lock:
            for model in ("gpt-4o", "qwen-max", "glm-5"):
                calls = (now - self.started) * self.RATE
                since = self.failing.get(model)
                errors = (now - since) * self.RATE if since is not None else 0.0
                base = (
                    'gen_ai_operation_name="chat",gen_ai_provider_name="openai",'
                    f'gen_ai_request_model="{model}",server_address="127.0.0.1"'
                )
                for error_type, count in (("", calls - errors), ("500", errors)):
                    labels = base + (f',error_type="{error_type}"' if error_type else "")
                    lines.append(
                        f'gen_ai_client_operation_duration_seconds_bucket{{{labels},le="+Inf"}} '
                        f"{count:.0f}"
                    )
                    lines.append(
                        f"gen_ai_client_operation_duration_seconds_count{{{labels}}} {count:.0f}"
                    )
                    lines.append(
                        f"gen_ai_client_operation_duration_seconds_sum{{{labels}}} {count * 0.8:.1f}"
                    )
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    stand_in = App()
    yield stand_in
    stand_in.close()


@pytest.fixture(scope="module")
def prometheus_url(app: App, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("prometheus-signals")
    scrape = {"job_name": "app", "static_configs": [{"targets": [f"127.0.0.1:{app.port}"]}]}
    with running_prometheus(home, [scrape]) as url:

        def scraped() -> bool:
            query = {"query": 'up{job="app"}'}
            try:
                answer = httpx.get(f"{url}/api/v1/query", params=query, timeout=2)
                return bool(answer.json()["data"]["result"])
            except (httpx.HTTPError, ValueError, KeyError):
                return False

        wait_for(scraped, what="Prometheus scraping the app", timeout=30)
        yield url


@pytest.fixture
def operator_with_signals(
    prometheus_url: str, env: Env, kubeconfig: Path, tmp_path: Path
) -> Iterator[OperatorProcess]:
    token = tmp_path / "alertmanager-token"
    token.write_text(TOKEN + "\n")
    with shared_operator_stopped(env.cluster):
        process = OperatorProcess(
            kubeconfig,
            tmp_path / "operator.log",
            extra_args=(
                "--prometheus-url",
                prometheus_url,
                "--signal-interval",
                "1",
                "--alertmanager-token-file",
                str(token),
            ),
        ).start()
        try:
            yield process
        finally:
            process.stop()


def test_traffic_fails_a_route_over_long_before_its_probes_would(
    operator_with_signals: OperatorProcess,
    env: Env,
    app: App,
    stand_ins: dict[str, StandInProvider],
) -> None:
    # Probes every 30 s, three failures to eject: alone, they would take a minute or more.
    spec = three_providers(
        stand_ins,
        env,
        healthCheck={"intervalSeconds": 30, "timeoutSeconds": 2, "failureThreshold": 3},
        signal={"prometheus": {"query": ERROR_RATIO, "threshold": 0.2}},
    )
    env.llm_route("chat", spec)
    wait_for(lambda: env.data("chat-llm").get("LLM_PROVIDER") == "openai", what="openai")
    started = time.monotonic()
    stand_ins["openai"].set(Behaviour.SERVER_ERROR)
    app.fail("gpt-4o")
    wait_for(
        lambda: env.data("chat-llm").get("LLM_PROVIDER") == "qwen",
        what="the failover on the traffic signal",
        timeout=25,
    )
    took = time.monotonic() - started
    assert took < 25, took
    assert "SignalFiring" in env.event_reasons()
    # The status follows the ConfigMap (written after it).
    wait_for(lambda: "lastFailover" in env.status("chat"), what="the failover in the status")
    assert env.status("chat")["lastFailover"]["reason"] == "ServerError"
    openai = env.provider_status("chat", "openai")
    assert openai["ejected"] is True
    assert openai["consecutiveFailures"] < 3, "one confirming probe, not the threshold"
    metrics = httpx.get(f"http://127.0.0.1:{operator_with_signals.metrics_port}/metrics").text
    assert 'llmfailover_signal_queries_total{result="ok"}' in metrics

    # Alertmanager says qwen's traffic fails: it is probed at once (not in 30 s), and a
    # revoked key ejects it at once.
    stand_ins["qwen"].set(Behaviour.UNAUTHORIZED)
    hook = f"http://127.0.0.1:{operator_with_signals.metrics_port}/alertmanager"
    alert = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "LLMErrors",
                    "namespace": env.namespace,
                    "llmroute": "chat",
                    "provider": "qwen",
                },
                "startsAt": "2026-12-02T09:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
    }
    assert httpx.post(hook, json=alert).status_code == 401  # no token: refused
    answer = httpx.post(hook, json=alert, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    wait_for(
        lambda: env.data("chat-llm").get("LLM_PROVIDER") == "glm",
        what="the failover on the alert",
        timeout=10,
    )
    wait_for(  # the status follows the ConfigMap
        lambda: (
            env.provider_status("chat", "qwen").get("signal", {}).get("source") == "Alertmanager"
        ),
        what="the alert in qwen's status",
    )
