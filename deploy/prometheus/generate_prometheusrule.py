"""Write prometheusrule.yaml: llm-failover-rules.yaml's groups as a PrometheusRule's spec.

The plain rule file is the source; this wraps its text (comments included) under `spec:` so the
two cannot drift. tests/test_alert_rules.py fails when prometheusrule.yaml is out of date. It also
copies the rule file into the Helm chart (files/llm-failover-rules.yaml, a real file so that a
packaged chart carries it), which tests/test_helm.py checks is equal.
Run: python deploy/prometheus/generate_prometheusrule.py
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "llm-failover-rules.yaml"
TARGET = HERE / "prometheusrule.yaml"
CHART_COPY = HERE.parent / "helm" / "llm-failover" / "files" / SOURCE.name

HEADER = """\
# GENERATED from llm-failover-rules.yaml by generate_prometheusrule.py: do not edit by hand.
# The same alerting rules as a PrometheusRule, for prometheus-operator. The Prometheus resource's
# ruleSelector (and ruleNamespaceSelector) must select these labels and this namespace.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: llm-failover
  namespace: llm-failover
  labels:
    app.kubernetes.io/name: llm-failover
    app.kubernetes.io/component: alerting-rules
spec:
"""


def render() -> str:
    lines = SOURCE.read_text(encoding="utf-8").splitlines()
    # Drop the source's own header comment (it is about the plain file); keep everything else.
    start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    body = "".join(f"  {line}\n" if line else "\n" for line in lines[start:])
    return HEADER + body


def main() -> None:
    TARGET.write_text(render(), encoding="utf-8")
    CHART_COPY.write_bytes(SOURCE.read_bytes())


if __name__ == "__main__":
    main()
