"""The Grafana dashboard: generated, importable, and querying only metrics the operator exports."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from llm_failover.metrics import Metrics
from llm_failover.state import ProviderState
from promql import (
    DASHBOARD,
    dashboard_queries,
    iter_panels,
    load_dashboard,
    raw_queries,
    substitute,
)

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / "deploy" / "grafana" / "dashboard.py"
METRIC = re.compile(r"llmfailover_[a-z_]+")
# A metric name and its label matchers, if any: `name{...}`.
SELECTOR = re.compile(r"(?P<name>llmfailover_[a-z_]+)(?:\{(?P<matchers>[^}]*)\})?")
# Sample suffixes under which PromQL sees each metric type.
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
DATASOURCE_UID = "${datasource}"
# Labels Prometheus gives each scraped operator replica (`pod` where the scrape config adds it).
REPLICA_LABELS = {"pod", "instance"}


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llm_failover_dashboard", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def exported_series() -> dict[str, str]:
    """Each name PromQL can query (`_total`, `_bucket`, ... included) → its metric's name."""
    registry = CollectorRegistry()
    Metrics(registry)
    series = {}
    for family in registry.collect():
        for suffix in SUFFIXES.get(family.type, ("",)):
            series[family.name + suffix] = family.name
    return series


def exported_labels() -> dict[str, set[str]]:
    """Each metric's label names, from one call of every Metrics method."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.route_state(
        namespace="ns",
        route="chat",
        providers=[("primary", ProviderState.HEALTHY, True)],
        active="primary",
        failed_over=False,
        signals={"primary": True},
    )
    metrics.failed_over(
        namespace="ns",
        route="chat",
        source="primary",
        target="backup",
        reason="GeoBlocked",
        at=1.0,
        duration_seconds=0.5,
    )
    metrics.probed(endpoint="api.example.com", state=ProviderState.HEALTHY, seconds=0.1)
    metrics.config_map_written(namespace="ns", route="chat")
    return {
        family.name: {label for sample in family.samples for label in sample.labels} - {"le"}
        for family in registry.collect()
    }


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


# --- Generated, never hand-edited ----------------------------------------------------------------


def test_json_is_what_the_generator_writes() -> None:
    generated = load_generator().render()
    committed = DASHBOARD.read_text()
    assert committed == generated, (
        f"{DASHBOARD.relative_to(ROOT)} differs from what deploy/grafana/dashboard.py generates: "
        "edit the generator, never the JSON, then run `python deploy/grafana/dashboard.py`"
    )


def test_json_is_pretty_printed_with_sorted_keys(dashboard: dict[str, Any]) -> None:
    assert DASHBOARD.read_text() == json.dumps(dashboard, indent=2, sort_keys=True) + "\n"


# --- Importable ----------------------------------------------------------------------------------


def test_dashboard_identity(dashboard: dict[str, Any]) -> None:
    assert dashboard["title"] == "LLM failover"
    assert dashboard["uid"] == "llm-failover"
    assert dashboard["tags"]
    assert dashboard["refresh"] == "30s"
    assert dashboard["time"] == {"from": "now-1h", "to": "now"}
    assert isinstance(dashboard["schemaVersion"], int)
    # An id would tie the file to one Grafana's database; import needs none.
    assert dashboard.get("id") is None


def test_panels_have_unique_ids_and_fit_the_grid(dashboard: dict[str, Any]) -> None:
    panels = list(iter_panels(dashboard))
    ids = [panel["id"] for panel in panels]
    assert all(isinstance(panel_id, int) and panel_id > 0 for panel_id in ids)
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    for panel in panels:
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= grid.keys(), panel["title"]
        assert grid["h"] > 0, panel["title"]
        assert grid["w"] > 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["title"], panel


def test_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in iter_panels(dashboard):
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_variables(dashboard: dict[str, Any]) -> None:
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert list(variables) == ["datasource", "namespace", "route"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "route"):
        variable = variables[name]
        assert variable["type"] == "query"
        assert variable["datasource"]["uid"] == DATASOURCE_UID
        assert variable["multi"] is True
        assert variable["includeAll"] is True
    assert variables["namespace"]["query"] == (
        "label_values(llmfailover_route_active_provider, namespace)"
    )
    assert variables["route"]["query"] == (
        'label_values(llmfailover_route_active_provider{namespace=~"$namespace"}, route)'
    )


def test_every_query_uses_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    found = 0
    for panel, target in targets(dashboard):
        found += 1
        assert target["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, panel["title"]
        assert panel["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
        assert target["refId"], panel["title"]
        assert target["expr"], panel["title"]
    assert found


def test_ref_ids_are_unique_within_a_panel(dashboard: dict[str, Any]) -> None:
    for panel in iter_panels(dashboard):
        refs = [target["refId"] for target in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]


# --- Queries match the metrics -------------------------------------------------------------------


def test_queries_name_only_exported_metrics() -> None:
    exported = exported_series()
    for title, expr in raw_queries():
        for name in METRIC.findall(expr):
            assert name in exported, (
                f"panel {title!r} queries {name}, which llm_failover.metrics does not export "
                f"(exported: {sorted(exported)})"
            )


def test_every_exported_metric_has_a_panel() -> None:
    used = {
        exported_series().get(name) for _, expr in raw_queries() for name in METRIC.findall(expr)
    }
    missing = set(exported_series().values()) - used
    assert not missing, f"metrics no panel shows: {sorted(missing)}"


def test_route_level_queries_follow_the_namespace_and_route_variables() -> None:
    exported = exported_series()
    labels = exported_labels()
    for title, expr in raw_queries():
        for match in SELECTOR.finditer(expr):
            metric_labels = labels.get(exported.get(match["name"], ""), set())
            matchers = match["matchers"] or ""
            for label in ("namespace", "route"):
                if label in metric_labels:
                    assert f'{label}=~"${label}"' in matchers, (
                        f"panel {title!r}: {match['name']} is not filtered by ${label}"
                    )


def test_only_the_leader_panel_tells_replicas_apart() -> None:
    """With leader election two replicas are scraped: every query aggregates over them (a
    standby's per-process series summed with the leader's, a route's series from whichever pod
    led), but the Leader panel's, which is about which replica leads."""
    for title, expr in raw_queries():
        assert re.match(r"(sort_desc\()?(sum|max|histogram_quantile)\b", expr), (
            f"panel {title!r} does not aggregate over the replicas: {expr}"
        )
        kept = {
            label.strip()
            for labels in re.findall(r"\bby \(([^)]*)\)", expr)
            for label in labels.split(",")
        }
        if title == "Leader":
            assert kept >= REPLICA_LABELS, f"the Leader panel merges replicas: {expr}"
        else:
            assert not kept & REPLICA_LABELS, f"panel {title!r} splits by replica: {expr}"


def test_histogram_quantiles_keep_the_le_label() -> None:
    for title, expr in raw_queries():
        if "histogram_quantile" in expr:
            assert re.search(r"by \(le\b", expr), f"panel {title!r} aggregates le away"


# --- The PromQL helper for end-to-end tests -------------------------------------------------------


def test_dashboard_queries_cover_every_target(dashboard: dict[str, Any]) -> None:
    queries = dashboard_queries()
    assert len(queries) == sum(1 for _ in targets(dashboard))
    for title, expr in queries:
        assert "$" not in expr, f"panel {title!r} keeps a Grafana variable: {expr}"
        assert title


def test_substitute() -> None:
    assert (
        substitute('rate(x{route=~"$route", namespace=~"${namespace}"}[$__rate_interval])')
        == 'rate(x{route=~".*", namespace=~".*"}[1m])'
    )
    assert substitute("increase(x[$__range]) + y[$__interval]") == "increase(x[5m]) + y[15s]"
    with pytest.raises(ValueError, match="__range_s"):
        substitute("x / $__range_s")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_queries_parse_as_promql(tmp_path: Path) -> None:
    """promtool parses each query as the expression of a recording rule."""
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{index}", "expr": expr}
                    for index, (_, expr) in enumerate(dashboard_queries())
                ],
            }
        ]
    }
    path = tmp_path / "rules.yaml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
