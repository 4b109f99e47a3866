"""`/metrics`: the per-route series are kept rendered (a scrape at 10,000 routes joins bytes),
and what is served says exactly what prometheus_client would say."""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llm_failover.metrics import Metrics
from llm_failover.runtime import serve_metrics
from llm_failover.state import ProviderState as S


def samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def busy() -> Metrics:
    m = Metrics(CollectorRegistry())
    odd = 'we"ird\\name\nwith newline'  # label values are escaped
    for i, route in enumerate(("chat", "summarize", odd)):
        m.route_state(
            namespace="shop",
            route=route,
            providers=[("openai", S.GEO_BLOCKED, False), ("qwen", S.HEALTHY, True)],
            active="qwen",
            failed_over=True,
        )
        m.failed_over(
            namespace="shop",
            route=route,
            source="openai",
            target="qwen",
            reason="GeoBlocked",
            at=1_796_000_000.5 + i,
            duration_seconds=0.3 * (i + 1),
        )
        m.config_map_written(namespace="shop", route=route)
    m.probed(endpoint="api.openai.com", state=S.GEO_BLOCKED, seconds=0.2)
    m.route_removed(namespace="shop", route="summarize")
    m.route_state(
        namespace="shop",
        route="chat",
        providers=[("openai", S.HEALTHY, True), ("qwen", S.HEALTHY, True)],
        active="openai",
        failed_over=False,
    )
    return m


def test_the_served_text_says_what_prometheus_client_would() -> None:
    m = busy()
    served = samples(m.exposition())
    assert served == samples(generate_latest(m.registry))
    assert served[("llmfailover_failovers_total", frozenset({
        ("namespace", "shop"), ("route", 'we"ird\\name\nwith newline'), ("from_provider", "openai"),
        ("to_provider", "qwen"), ("reason", "GeoBlocked")}))] == 1  # fmt: skip
    routes = {dict(labels).get("route") for _, labels in served}
    assert "summarize" not in routes  # a removed route leaves nothing behind
    states = [dict(found) for n, found in served if n == "llmfailover_provider_state"]
    assert {(s["route"], s["provider"], s["state"]) for s in states if s["route"] == "chat"} == {
        ("chat", "openai", "Healthy"),
        ("chat", "qwen", "Healthy"),
    }


def test_the_metrics_server_serves_it() -> None:
    m = busy()
    server, thread = serve_metrics(0, m.exposition, host="127.0.0.1")
    try:
        answer = httpx.get(f"http://127.0.0.1:{server.server_address[1]}/metrics", timeout=10)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert samples(answer.content) == samples(m.exposition())
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
