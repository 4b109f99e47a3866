"""A real Prometheus scrapes the operator through a failover story; every dashboard and rule
expression is then evaluated through Prometheus's HTTP API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from conftest import ROOT, Env, OperatorProcess, three_providers, wait_for
from llm_failover.sandbox.providers import Behaviour, StandInProvider
from promql import PROMETHEUS, dashboard_queries, running_prometheus

RULES = ROOT / "deploy" / "prometheus" / "llm-failover-rules.yaml"
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus not installed: apt-get install prometheus (.ci/run does)"
)


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert answer["status"] == "success", f"{expr}: {answer}"
        return dict(answer["data"])

    def has_data(self, expr: str) -> bool:
        return bool(self.query(expr)["result"])


@pytest.fixture(scope="module")
def prometheus(
    operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    scrape = {
        "job_name": "llm-failover",
        "static_configs": [{"targets": [f"127.0.0.1:{operator.metrics_port}"]}],
    }
    home = tmp_path_factory.mktemp("prometheus")
    with running_prometheus(home, [scrape], rule_files=[str(RULES)]) as url:
        server = Prometheus(url)
        wait_for(
            lambda: server.has_data('up{job="llm-failover"} == 1'),
            what="the operator scraped",
            timeout=30,
        )
        yield server


def rule_expressions() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [
        (rule.get("alert") or rule["record"], rule["expr"])
        for group in groups
        for rule in group["rules"]
    ]


def test_dashboard_and_rules_against_a_real_prometheus(
    prometheus: Prometheus, env: Env, stand_ins: dict[str, StandInProvider]
) -> None:
    # The story: openai geo-blocked, qwen overloaded, glm carries the route, then all recover.
    env.llm_route(
        "chat",
        three_providers(
            stand_ins,
            env,
            healthCheck={"failureThreshold": 2, "successThreshold": 2},
            # A traffic signal this operator cannot ask (it has no --prometheus-url): shown as
            # not firing (and unavailable), never a reason to fail over.
            signal={"prometheus": {"query": "vector(0)", "threshold": 1}},
        ),
    )

    def data() -> str | None:
        return env.data("chat-llm").get("LLM_PROVIDER")

    wait_for(lambda: data() == "openai", what="openai")
    stand_ins["openai"].set(Behaviour.GEO_BLOCKED)
    wait_for(lambda: data() == "qwen", what="qwen")
    stand_ins["qwen"].set(Behaviour.SERVER_ERROR)
    wait_for(lambda: data() == "glm", what="glm")
    stand_ins["openai"].set(Behaviour.HEALTHY)
    stand_ins["qwen"].set(Behaviour.HEALTHY)
    wait_for(lambda: data() == "openai", what="failback to openai")

    ns = env.namespace
    # Prometheus has seen the whole story once the failback to openai is scraped (qwen may be
    # trusted again first: openai's GeoBlocked probes back off, so glm → qwen → openai).
    wait_for(
        lambda: prometheus.has_data(
            f'llmfailover_route_active_provider{{namespace="{ns}",route="chat",'
            'provider="openai"} == 1'
        ),
        what="the failback to openai scraped",
    )
    assert (
        prometheus.query(
            f'llmfailover_route_active_provider{{namespace="{ns}",route="chat"}} == 1'
        )["result"][0]["metric"]["provider"]
        == "openai"
    )
    reasons = {
        r["metric"]["reason"]
        for r in prometheus.query(f'llmfailover_failovers_total{{namespace="{ns}"}}')["result"]
    }
    assert reasons == {"GeoBlocked", "ServerError", "Failback"}
    durations = prometheus.query(
        f'llmfailover_failover_duration_seconds_count{{namespace="{ns}"}}'
    )["result"]
    assert float(durations[0]["value"][1]) == 2  # the two failures; a failback has no failing probe

    empty = []
    for title, expr in dashboard_queries():
        if not prometheus.has_data(expr):  # parses (or query() fails), and must return data
            empty.append(f"{title}: {expr}")
    assert not empty, "dashboard panels without data:\n" + "\n".join(empty)

    for _, expr in rule_expressions():
        prometheus.query(expr)  # parses and evaluates
    rules = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {rule["name"]: rule for group in rules for rule in group["rules"]}
    assert set(loaded) == {name for name, _ in rule_expressions()}
    assert all(rule["health"] == "ok" for rule in loaded.values()), loaded
