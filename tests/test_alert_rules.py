"""The alerting rules of deploy/prometheus: promtool-valid, unit-tested, documented, and only
about metrics the operator really exports."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from llm_failover.metrics import Metrics

ROOT = Path(__file__).resolve().parents[1]
RULES_DIR = ROOT / "deploy" / "prometheus"
RULES = RULES_DIR / "llm-failover-rules.yaml"
PROMETHEUS_RULE = RULES_DIR / "prometheusrule.yaml"
RULE_TESTS = RULES_DIR / "llm-failover-rules.test.yaml"
GENERATOR = RULES_DIR / "generate_prometheusrule.py"
RUNBOOK = ROOT / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/llm-failover/llm-failover/blob/main/docs/runbook.md#"
NO_PROMTOOL = "promtool not installed: apt-get install prometheus"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alerts() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = load(RULES)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


ALERTS = alerts()
ALERT_NAMES = [rule["alert"] for rule in ALERTS]


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip(NO_PROMTOOL)
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_expected_alerts_exist() -> None:
    assert sorted(ALERT_NAMES) == sorted(
        [
            "LLMRouteNoHealthyProvider",
            "LLMRouteFailedOverTooLong",
            "LLMProviderGeoBlocked",
            "LLMProviderNeedsAttention",
            "LLMRouteFlapping",
            "LLMFailoverOperatorAbsent",
            "LLMFailoverNoLeader",
            "LLMFailoverSeveralLeaders",
            "LLMFailoverInternalErrors",
            "LLMFailoverSignalQueriesFailing",
        ]
    )


def test_promtool_check_rules_plain_file() -> None:
    result = run_promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules_prometheusrule_spec(tmp_path: Path) -> None:
    spec_file = tmp_path / "prometheusrule-spec.yaml"
    spec_file.write_text(yaml.safe_dump(load(PROMETHEUS_RULE)["spec"]), encoding="utf-8")
    result = run_promtool("check", "rules", str(spec_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests() -> None:
    result = run_promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheusrule_is_the_plain_file_wrapped() -> None:
    resource = load(PROMETHEUS_RULE)
    assert resource["apiVersion"] == "monitoring.coreos.com/v1"
    assert resource["kind"] == "PrometheusRule"
    assert resource["metadata"]["namespace"] == "llm-failover"
    assert resource["metadata"]["labels"]["app.kubernetes.io/name"] == "llm-failover"
    regenerate = f"regenerate it: {sys.executable} {GENERATOR.relative_to(ROOT)}"
    assert resource["spec"]["groups"] == load(RULES)["groups"], regenerate
    # Byte for byte too, so that the generated file's comments follow the source's.
    spec = importlib.util.spec_from_file_location("generate_prometheusrule", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert generator.render() == PROMETHEUS_RULE.read_text(encoding="utf-8"), regenerate


@pytest.mark.parametrize("rule", ALERTS, ids=ALERT_NAMES)
def test_alert_has_severity_and_annotations(rule: dict[str, Any]) -> None:
    assert rule.get("labels", {}).get("severity") in {"critical", "warning"}
    annotations = rule.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        assert str(annotations.get(key, "")).strip(), f"{rule['alert']} has no {key}"
    assert annotations["runbook_url"] == RUNBOOK_URL + rule["alert"].lower()


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def test_every_alert_has_a_runbook_section() -> None:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", RUNBOOK.read_text(encoding="utf-8"), re.M)
    anchors = {github_anchor(heading) for heading in headings}
    missing = [name for name in ALERT_NAMES if name.lower() not in anchors]
    assert not missing, f"docs/runbook.md has no section for {missing}"


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for case in load(RULE_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    assert set(ALERT_NAMES) <= firing, f"never tested firing: {set(ALERT_NAMES) - firing}"
    assert set(ALERT_NAMES) <= silent, f"never tested silent: {set(ALERT_NAMES) - silent}"


def defined_metric_names() -> set[str]:
    """Metric family names the operator exports (counters without `_total`)."""
    registry = CollectorRegistry()
    Metrics(registry)
    return {family.name for family in registry.collect()}


def normalise(name: str) -> str:
    return re.sub(r"_(total|bucket|count|sum|created)$", "", name)


def test_rule_expressions_use_only_exported_metrics() -> None:
    defined = defined_metric_names()
    assert "llmfailover_route_failed_over" in defined  # the collection works at all
    # The expressions, and the queries that annotation templates run.
    texts = [rule["expr"] for rule in ALERTS]
    texts += [value for rule in ALERTS for value in rule["annotations"].values()]
    used = {normalise(name) for text in texts for name in re.findall(r"llmfailover_[a-z_]+", text)}
    assert used, "no llmfailover_ metric in any expression"
    assert used <= defined, f"not exported by llm_failover.metrics: {used - defined}"
