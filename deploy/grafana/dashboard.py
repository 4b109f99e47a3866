#!/usr/bin/env python3
"""Generate deploy/grafana/llm-failover.json, the Grafana dashboard of the operator's metrics.

Edit this file, never the JSON: `python deploy/grafana/dashboard.py` rewrites the JSON, and
tests/test_dashboard.py fails while the two differ. One function per panel, each holding its PromQL;
the metrics are those of operator/llm_failover/metrics.py (docs/reference.md#metrics).

Built with the Grafana Foundation SDK (grafana-foundation-sdk on PyPI).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import (
    bargauge,
    prometheus,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from llm_failover.state import ProviderState

OUTPUT = Path(__file__).resolve().with_name("llm-failover.json")
# The Helm chart carries a real copy (a packaged chart cannot follow a link out of itself).
CHART_COPY = OUTPUT.parents[1] / "helm" / "llm-failover" / "files" / OUTPUT.name

# Every query goes to the data source the `datasource` variable picks.
DATASOURCE = models.DataSourceRef(type_val="prometheus", uid="${datasource}")
# Label matchers of route-level series (probe series carry only `endpoint` and `state`).
ROUTE = 'namespace=~"$namespace", route=~"$route"'
ROUTE_LEGEND = "{{namespace}}/{{route}}"
PROVIDER_LEGEND = "{{namespace}}/{{route}}: {{provider}}"


# --- Helpers -------------------------------------------------------------------------------------


def query(
    expr: str, legend: str = "", *, ref: str = "A", instant: bool = False, as_table: bool = False
) -> prometheus.Dataquery:
    """A Prometheus query on `${datasource}`: a range query unless `instant` (or `as_table`)."""
    target = prometheus.Dataquery().ref_id(ref).expr(expr).datasource(DATASOURCE)
    if legend:
        target = target.legend_format(legend)
    if as_table:
        return target.instant().format(PromQueryFormat.TABLE)
    return target.instant() if instant else target.range()


def thresholds(*steps: tuple[float | None, str]) -> builders.ThresholdsConfig:
    """Absolute thresholds; the first step's value is None (the base colour)."""
    return (
        builders.ThresholdsConfig()
        .mode(models.ThresholdsMode.ABSOLUTE)
        .steps([models.Threshold(value=value, color=color) for value, color in steps])
    )


def fixed_color(color: str) -> builders.FieldColor:
    return builders.FieldColor().mode(models.FieldColorModeId.FIXED).fixed_color(color)


def value_mappings(texts: dict[str, tuple[str, str]]) -> list[models.ValueMapping]:
    """Map raw values to (display text, colour)."""
    options = {
        value: models.ValueMappingResult(text=text, color=color, index=index)
        for index, (value, (text, color)) in enumerate(texts.items())
    }
    return [models.ValueMap(options=options)]


def state_color(state: ProviderState) -> str:
    """Healthy green, hard states (a human must act) red, soft states orange, Unknown neutral."""
    if state is ProviderState.HEALTHY:
        return "green"
    if state.is_hard:
        return "red"
    if state.is_soft:
        return "orange"
    return "text"


def increase(selector: str, window: str) -> str:
    """`increase(selector[window])` that also counts the series born inside the window.

    prometheus_client creates a labelled counter's series at its first increment, already at 1,
    so plain `increase` never sees a route's first failover of a kind (or first ConfigMap write):
    a series absent `window` ago contributes its whole value instead.
    """
    return f"(({selector} unless {selector} offset {window}) or increase({selector}[{window}]))"


def organize(*, exclude: list[str], rename: dict[str, str]) -> models.DataTransformerConfig:
    """Grafana's "Organize fields" transformation: hide and rename table columns."""
    return models.DataTransformerConfig(
        id_val="organize",
        options={
            "excludeByName": dict.fromkeys(exclude, True),
            "indexByName": {name: index for index, name in enumerate(rename)},
            "renameByName": rename,
        },
    )


def legend_table(*calcs: str) -> common_builders.VizLegendOptions:
    return (
        common_builders.VizLegendOptions()
        .show_legend(True)
        .display_mode(common.LegendDisplayMode.TABLE)
        .placement(common.LegendPlacement.BOTTOM)
        .calcs(list(calcs))
    )


def hidden_legend() -> common_builders.VizLegendOptions:
    return (
        common_builders.VizLegendOptions()
        .show_legend(False)
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
    )


def big_number(title: str, description: str) -> stat.Panel:
    """A stat panel showing the latest value of instant queries, without sparkline: a quarter of
    the width, for the Overview row's four."""
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(6)
        .height(4)
    )


# --- Overview ------------------------------------------------------------------------------------


def operator_up() -> stat.Panel:
    return (
        big_number(
            "Operator up",
            "Operator processes scraped, by version (llmfailover_build_info): one per replica, "
            "so 2 with leader election (the leader and a standby: see Leader), 1 with "
            "--leader-elect=false. 0 when none is: routing then stays as last written. "
            "Not filtered by namespace or route.",
        )
        .with_target(
            query("sum by (version) (llmfailover_build_info)", "{{version}}", instant=True)
        )
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .no_value("0")
        .thresholds(thresholds((None, "red"), (1, "green")))
    )


def leader() -> stat.Panel:
    # By pod and instance: the pod name where Prometheus attaches one (prometheus-operator does),
    # the instance always, so that two replicas never merge into one row. The leader comes first.
    expr = "sort_desc(max by (pod, instance) (llmfailover_leader))"
    return (
        big_number(
            "Leader",
            "Which replica holds the Lease and may write (llmfailover_leader: 1 on the leader, 0 "
            "on a standby; 1 with --leader-elect=false). Only the leader exports the route "
            "series the other panels show; the standby probes too but writes nothing. No leader "
            "for a minute: LLMFailoverNoLeader; two: LLMFailoverSeveralLeaders. Not filtered by "
            "namespace or route.",
        )
        .with_target(query(expr, "{{pod}} {{instance}}", instant=True))
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .mappings(value_mappings({"1": ("leader", "green"), "0": ("standby", "blue")}))
        .no_value("none scraped")
    )


def routes_managed() -> stat.Panel:
    return (
        big_number(
            "Routes managed",
            "LLMRoutes the operator manages (llmfailover_routes, from the leader: a standby "
            "exports no route series). Not filtered by namespace or route.",
        )
        .with_target(query("sum(llmfailover_routes)", "routes", instant=True))
        .color_mode(common.BigValueColorMode.NONE)
        .unit("short")
        .decimals(0)
        .no_value("0")
    )


def routes_failed_over() -> stat.Panel:
    return (
        big_number(
            "Routes failed over now",
            "Routes whose active provider is not their first (the FailedOver condition, "
            "llmfailover_route_failed_over).",
        )
        .with_target(
            query(f"sum(llmfailover_route_failed_over{{{ROUTE}}})", "routes", instant=True)
        )
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .unit("short")
        .decimals(0)
        .no_value("0")
        .thresholds(thresholds((None, "green"), (1, "orange")))
    )


# --- Routing -------------------------------------------------------------------------------------


def active_provider() -> statetimeline.Panel:
    expr = (
        f"max by (namespace, route, provider) (llmfailover_route_active_provider{{{ROUTE}}}) == 1"
    )
    return (
        statetimeline.Panel()
        .title("Active provider per route")
        .description(
            "One row per route and provider; a bar while that provider is the one the route's "
            "ConfigMap names (llmfailover_route_active_provider == 1)."
        )
        .datasource(DATASOURCE)
        .with_target(query(expr, PROVIDER_LEGEND))
        .mappings(value_mappings({"1": ("active", "green")}))
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
        .row_height(0.8)
        .fill_opacity(80)
        .legend(hidden_legend())
        .span(24)
        .height(8)
    )


def provider_state() -> table.Panel:
    expr = (
        f"max by (namespace, route, provider, state) (llmfailover_provider_state{{{ROUTE}}} == 1)"
    )
    state_cells = [
        models.DynamicConfigValue(
            id_val="mappings",
            value=value_mappings(
                {state.value: (state.value, state_color(state)) for state in ProviderState}
            ),
        ),
        models.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"}),
    ]
    return (
        table.Panel()
        .title("Provider state")
        .description(
            "Current state of every provider of every route (llmfailover_provider_state == 1): "
            "red states need a human, orange ones may heal by themselves."
        )
        .datasource(DATASOURCE)
        .with_target(query(expr, as_table=True))
        .with_transformation(
            organize(
                exclude=["Time", "Value"],
                rename={
                    "namespace": "Namespace",
                    "route": "Route",
                    "provider": "Provider",
                    "state": "State",
                },
            )
        )
        .override_by_name("State", state_cells)
        .sort_by([common_builders.TableSortByFieldState().display_name("Route")])
        .span(12)
        .height(9)
    )


def provider_eligibility() -> statetimeline.Panel:
    expr = f"max by (namespace, route, provider) (llmfailover_provider_up{{{ROUTE}}})"
    return (
        statetimeline.Panel()
        .title("Provider eligibility")
        .description(
            "Whether each provider may be routed to: trusted and inside its window "
            "(llmfailover_provider_up)."
        )
        .datasource(DATASOURCE)
        .with_target(query(expr, PROVIDER_LEGEND))
        .mappings(value_mappings({"0": ("ineligible", "red"), "1": ("eligible", "green")}))
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
        .row_height(0.8)
        .fill_opacity(80)
        .legend(hidden_legend())
        .span(12)
        .height(9)
    )


# --- Failovers -----------------------------------------------------------------------------------


def counts(title: str, description: str, expr: str, legend: str) -> bargauge.Panel:
    """Horizontal bars of counts over the selected time range, one per `legend` value."""
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(query(expr, legend, instant=True))
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.BASIC)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .unit("short")
        .decimals(0)
        .min(0)
    )


def failovers_by_reason() -> bargauge.Panel:
    expr = f"sum by (reason) {increase(f'llmfailover_failovers_total{{{ROUTE}}}', '$__range')}"
    return (
        counts(
            "Failovers by reason",
            "Switches of active provider in the selected time range, failbacks included, by the "
            "reason of the switch (llmfailover_failovers_total).",
            expr,
            "{{reason}}",
        )
        .color_scheme(fixed_color("orange"))
        .no_value("no failovers")
        .span(8)
        .height(8)
    )


def time_to_failover() -> stat.Panel:
    panel = big_number(
        "Time to failover",
        "From the first failing probe of the active provider to the routing output switched, "
        "over the selected time range (llmfailover_failover_duration_seconds).",
    )
    for ref, quantile in (("A", 0.5), ("B", 0.9), ("C", 0.99)):
        # `>= 0` drops the NaN that histogram_quantile returns when the range holds no failover.
        buckets = increase(f"llmfailover_failover_duration_seconds_bucket{{{ROUTE}}}", "$__range")
        expr = f"histogram_quantile({quantile}, sum by (le) {buckets}) >= 0"
        panel = panel.with_target(query(expr, f"p{round(quantile * 100)}", ref=ref, instant=True))
    return (
        panel.text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common.BigValueColorMode.VALUE)
        .color_scheme(fixed_color("blue"))
        .unit("s")
        .no_value("no failovers")
        .span(8)
        .height(8)
    )


def last_failover() -> table.Panel:
    expr = (
        f"max by (namespace, route) (llmfailover_last_failover_timestamp_seconds{{{ROUTE}}}) * 1000"
    )
    return (
        table.Panel()
        .title("Last failover")
        .description(
            "When each route last switched active provider "
            "(llmfailover_last_failover_timestamp_seconds); routes that never did are absent."
        )
        .datasource(DATASOURCE)
        .with_target(query(expr, as_table=True))
        .with_transformation(
            organize(
                exclude=["Time"],
                rename={"namespace": "Namespace", "route": "Route", "Value": "Last failover"},
            )
        )
        .unit("dateTimeFromNow")
        .sort_by([common_builders.TableSortByFieldState().display_name("Last failover").desc(True)])
        .span(8)
        .height(8)
    )


def configmap_writes() -> timeseries.Panel:
    writes = increase(f"llmfailover_configmap_writes_total{{{ROUTE}}}", "$__rate_interval")
    expr = f"sum by (namespace, route) {writes}"
    return (
        timeseries.Panel()
        .title("ConfigMap writes")
        .description(
            "Writes (creates and updates) of each route's routing ConfigMap "
            "(llmfailover_configmap_writes_total), by the leader. Expect one per failover: more "
            "means something else edits the ConfigMap and the operator puts it back (or two "
            "replicas both lead: see Leader)."
        )
        .datasource(DATASOURCE)
        .with_target(query(expr, ROUTE_LEGEND))
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
        .unit("short")
        .min(0)
        .legend(legend_table("sum"))
        .span(24)
        .height(7)
    )


# --- Probes --------------------------------------------------------------------------------------


def probe_latency() -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title("Probe latency by endpoint")
        .description(
            "Probe round trip p50/p95/p99 per endpoint host (llmfailover_probe_duration_seconds), "
            "over the probes of every replica: the standby probes too. Probe series carry no "
            "namespace or route: not filtered by them."
        )
        .datasource(DATASOURCE)
    )
    for ref, quantile in (("A", 0.5), ("B", 0.95), ("C", 0.99)):
        expr = (
            f"histogram_quantile({quantile}, sum by (le, endpoint) "
            "(rate(llmfailover_probe_duration_seconds_bucket[$__rate_interval])))"
        )
        legend = f"{{{{endpoint}}}} p{round(quantile * 100)}"
        panel = panel.with_target(query(expr, legend, ref=ref))
    return (
        panel.unit("s").min(0).legend(legend_table("mean", "max", "lastNotNull")).span(12).height(9)
    )


def stacked_rates(
    title: str, description: str, counter: str, label: str, colors: Mapping[str, str]
) -> timeseries.Panel:
    """A counter's per-second rate by one label, stacked, each value in its colour."""
    expr = f"sum by ({label}) (rate({counter}[$__rate_interval]))"
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(query(expr, f"{{{{{label}}}}}"))
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
        .fill_opacity(40)
        .unit("ops")
        .min(0)
        .legend(legend_table("mean", "lastNotNull"))
    )
    return series_colors(panel, colors)


def probe_outcomes() -> timeseries.Panel:
    return (
        stacked_rates(
            "Probe outcomes by state",
            "Probes per second by resulting provider state, all endpoints "
            "(llmfailover_probes_total), summed over the replicas: the standby probes every "
            "provider too, so with leader election this is twice what one replica sends. "
            "Not filtered by namespace or route.",
            "llmfailover_probes_total",
            "state",
            {state.value: state_color(state) for state in ProviderState},
        )
        .span(12)
        .height(9)
    )


def probes_saved() -> timeseries.Panel:
    return (
        stacked_rates(
            "Probes saved",
            "Probes per second not sent, against a probe of every endpoint every intervalSeconds "
            "(llmfailover_probes_saved_total), by reason: backup (a provider behind the next in "
            "line, probed at its route's backupIntervalSeconds), backoff (a hard state without a "
            "reset time: the wait doubles up to --probe-backoff-max), reset (the provider said "
            "when it serves again: probed then). Summed over the replicas: each probes on its own. "
            "Not filtered by namespace or route. docs/signals.md.",
            "llmfailover_probes_saved_total",
            "reason",
            {"backup": "blue", "backoff": "red", "reset": "orange"},
        )
        .span(24)
        .height(7)
    )


# --- Traffic signals -----------------------------------------------------------------------------


def signals_firing() -> statetimeline.Panel:
    expr = f"max by (namespace, route, provider) (llmfailover_provider_signal_firing{{{ROUTE}}})"
    return (
        statetimeline.Panel()
        .title("Traffic signals firing")
        .description(
            "Whether each provider's traffic signal fires: its Prometheus query above the "
            "threshold, or an Alertmanager alert naming the route "
            "(llmfailover_provider_signal_firing). Only providers with a signal have a row: a "
            "provider's own spec.providers[].signal, and the route's spec.signal on the active "
            "provider. A firing signal probes the provider at once; it never switches the route "
            "by itself (with trust: Signal it ejects the provider, reason TrafficErrors). From "
            "the leader. docs/signals.md."
        )
        .datasource(DATASOURCE)
        .with_target(query(expr, PROVIDER_LEGEND))
        .mappings(value_mappings({"0": ("quiet", "green"), "1": ("firing", "red")}))
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
        .row_height(0.8)
        .fill_opacity(80)
        .legend(hidden_legend())
        .span(24)
        .height(8)
    )


def signal_queries_failing() -> timeseries.Panel:
    expr = 'sum(rate(llmfailover_signal_queries_total{result="error"}[$__rate_interval]))'
    return (
        timeseries.Panel()
        .title("Signal queries failing")
        .description(
            "Traffic-signal queries per second that Prometheus did not answer with a number "
            '(llmfailover_signal_queries_total{result="error"}): unreachable, a timeout, a '
            "refused or malformed query, no --prometheus-url. Summed over the replicas (each "
            "asks every distinct query once per --signal-interval). Probes alone decide "
            "meanwhile; the routes concerned have a SignalUnavailable Event. Alert: "
            "LLMFailoverSignalQueriesFailing. Not filtered by namespace or route."
        )
        .datasource(DATASOURCE)
        .with_target(query(expr, "failing"))
        .color_scheme(fixed_color("red"))
        .unit("ops")
        .min(0)
        .no_value("0")
        .legend(legend_table("mean", "max"))
        .span(12)
        .height(7)
    )


def alertmanager_notifications() -> timeseries.Panel:
    expr = "sum by (result) " + increase(
        "llmfailover_alertmanager_notifications_total", "$__rate_interval"
    )
    panel = (
        timeseries.Panel()
        .title("Alertmanager notifications")
        .description(
            "Posts to POST /alertmanager on the metrics port, by result "
            "(llmfailover_alertmanager_notifications_total): accepted (by the leader), standby "
            "(503: Alertmanager retries until the leader has it), unauthorized (no or a wrong "
            "bearer token, with --alertmanager-token-file), invalid (not an Alertmanager "
            "notification). Summed over the replicas: a post reaches whichever replica the "
            "Service picks. Not filtered by namespace or route."
        )
        .datasource(DATASOURCE)
        .with_target(query(expr, "{{result}}"))
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
        .unit("short")
        .min(0)
        .legend(legend_table("sum"))
        .span(12)
        .height(7)
    )
    colors = {"accepted": "green", "standby": "blue", "unauthorized": "red", "invalid": "orange"}
    return series_colors(panel, colors)


# --- Operator health -----------------------------------------------------------------------------


def internal_errors() -> timeseries.Panel:
    expr = "sum by (task) " + increase("llmfailover_internal_errors_total", "$__rate_interval")
    return (
        timeseries.Panel()
        .title("Internal errors")
        .description(
            "Unexpected exceptions by task (llmfailover_internal_errors_total): probe (a probe "
            "raised and counted as Unreachable), probe_loop and route (a loop crashed and was "
            "restarted with backoff), watch (a watch event not handled), leader_election (the "
            "Lease loop raised and tried again). Summed over the replicas, the standby included. "
            "Anything above zero is a bug to report, with the log of the replica that counted it."
        )
        .datasource(DATASOURCE)
        .with_target(query(expr, "{{task}}"))
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .unit("short")
        .min(0)
        .legend(legend_table("sum"))
        .span(12)
        .height(7)
    )


def api_requests() -> timeseries.Panel:
    expr = "sum by (verb, resource) (rate(llmfailover_api_requests_total[$__rate_interval])) * 60"
    return (
        timeseries.Panel()
        .title("Kubernetes API calls")
        .description(
            "The operator's own calls to the Kubernetes API per minute, by verb and resource, "
            "summed over the replicas (llmfailover_api_requests_total; kopf's lists and watches "
            "aside). Only the leader writes; the standby reads. Leader election adds, whatever "
            "the number of routes, about 30 a minute on the leader (replace lease: it renews the "
            "Lease every 2 s) and 60 on a standby (get lease: it looks every second or so). "
            "The rest stays near zero at rest: writes come with changes "
            "and heartbeats (5 a second at most), key Secrets come from a watch and are read "
            "again once per Secret and resync period."
        )
        .datasource(DATASOURCE)
        .with_target(query(expr, "{{verb}} {{resource}}"))
        .unit("short")
        .min(0)
        .legend(legend_table("mean"))
        .span(12)
        .height(7)
    )


def loop_lag() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Event loop lag")
        .description(
            "Worst delay of the operator's event loop over ten seconds, of the worst replica "
            "(llmfailover_event_loop_lag_seconds): probe timeouts and API calls wait behind it. "
            "Above a second, probes may time out because the operator, not the provider, is slow."
        )
        .datasource(DATASOURCE)
        .with_target(query("max(llmfailover_event_loop_lag_seconds)", "lag"))
        .unit("s")
        .min(0)
        .thresholds(thresholds((None, "green"), (1, "red")))
        .legend(legend_table("mean", "max"))
        .span(12)
        .height(7)
    )


def leader_changes() -> bargauge.Panel:
    expr = "sum by (change) " + increase("llmfailover_leader_changes_total", "$__range")
    panel = (
        counts(
            "Leadership changes",
            "Changes of leader in the selected time range, summed over the replicas "
            "(llmfailover_leader_changes_total): acquired (a replica became the leader), lost "
            "(it could not renew the Lease in time, or another took it), released (it gave the "
            "Lease up on SIGTERM). A rollout shows one acquired per new leader; a released "
            "counted just before the process exits may never be scraped. Lost, or acquired "
            "without a rollout, is worth a look: the log of the replica that lost says why.",
            expr,
            "{{change}}",
        )
        .color_scheme(fixed_color("blue"))
        .no_value("no changes")
        .span(12)
        .height(7)
    )
    return series_colors(panel, {"acquired": "green", "lost": "red", "released": "blue"})


class _Overridable(Protocol):
    def override_by_name(self, name: str, properties: list[models.DynamicConfigValue]) -> Self: ...


Colored = TypeVar("Colored", bound=_Overridable)


def series_colors(panel: Colored, colors: Mapping[str, str]) -> Colored:
    """A fixed colour for each series of these names (a legend value)."""
    for name, color in colors.items():
        fixed = {"mode": "fixed", "fixedColor": color}
        panel = panel.override_by_name(
            name, [models.DynamicConfigValue(id_val="color", value=fixed)]
        )
    return panel


# --- Dashboard -----------------------------------------------------------------------------------


def route_variable(name: str, label: str, expr: str) -> builders.QueryVariable:
    return (
        builders.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(expr)
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(models.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def build() -> models.Dashboard:
    dashboard = (
        builders.Dashboard("LLM failover")
        .uid("llm-failover")
        .description(
            "Routes, providers, failovers, probes and traffic signals of the llm-failover operator."
        )
        .tags(["llm-failover", "kubernetes", "operator"])
        .refresh("30s")
        .time("now-1h", "now")
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .with_variable(
            builders.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
        .with_variable(
            route_variable(
                "namespace",
                "Namespace",
                "label_values(llmfailover_route_active_provider, namespace)",
            )
        )
        .with_variable(
            route_variable(
                "route",
                "Route",
                'label_values(llmfailover_route_active_provider{namespace=~"$namespace"}, route)',
            )
        )
        .with_row(builders.Row("Overview"))
        .with_panel(operator_up())
        .with_panel(leader())
        .with_panel(routes_managed())
        .with_panel(routes_failed_over())
        .with_row(builders.Row("Routing"))
        .with_panel(active_provider())
        .with_panel(provider_state())
        .with_panel(provider_eligibility())
        .with_row(builders.Row("Failovers"))
        .with_panel(failovers_by_reason())
        .with_panel(time_to_failover())
        .with_panel(last_failover())
        .with_panel(configmap_writes())
        .with_row(builders.Row("Probes"))
        .with_panel(probe_latency())
        .with_panel(probe_outcomes())
        .with_panel(probes_saved())
        .with_row(builders.Row("Traffic signals"))
        .with_panel(signals_firing())
        .with_panel(signal_queries_failing())
        .with_panel(alertmanager_notifications())
        .with_row(builders.Row("Operator health"))
        .with_panel(internal_errors())
        .with_panel(loop_lag())
        .with_panel(api_requests())
        .with_panel(leader_changes())
        .build()
    )
    # Ids in layout order, so that adding a panel never needs a hand-picked number.
    for number, panel in enumerate(dashboard.panels or [], start=1):
        panel.id_val = number
    return dashboard


def render() -> str:
    """The dashboard as the committed JSON: pretty-printed, sorted keys, trailing newline."""
    return json.dumps(build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the LLM failover Grafana dashboard.")
    parser.add_argument(
        "--stdout", action="store_true", help="print the JSON instead of writing it"
    )
    parser.add_argument(
        "--check", action="store_true", help=f"exit 1 if {OUTPUT.name} differs from the output"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.stdout:
        sys.stdout.write(text)
    elif args.check:
        stale = [p for p in (OUTPUT, CHART_COPY) if not p.exists() or p.read_text() != text]
        for path in stale:
            print(f"{path} is stale: run python deploy/grafana/dashboard.py", file=sys.stderr)
        return 1 if stale else 0
    else:
        for path in (OUTPUT, CHART_COPY):
            path.write_text(text)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
