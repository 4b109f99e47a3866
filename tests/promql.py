"""The Grafana dashboard's PromQL, made runnable against a plain Prometheus.

`dashboard_queries()` reads deploy/grafana/llm-failover.json (which tests/test_dashboard.py keeps
equal to what deploy/grafana/dashboard.py generates) and returns every panel query with the
Grafana variables replaced by values Prometheus accepts, so that an end-to-end test can evaluate
each one against a Prometheus that scrapes the operator:

    for title, expr in dashboard_queries():
        result = prometheus_instant_query(expr)  # e.g. GET /api/v1/query?query=...

Multi-value variables become the match-anything regex their "All" value stands for, and interval
variables fixed durations (see `SUBSTITUTIONS`). An unknown `$variable` raises ValueError rather
than reaching Prometheus as a parse error.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import yaml

PROMETHEUS = shutil.which("prometheus")

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "llm-failover.json"

# Grafana variable → what a plain Prometheus query gets instead.
SUBSTITUTIONS: Mapping[str, str] = {
    "namespace": ".*",  # the dashboard's "All" value
    "route": ".*",
    "__rate_interval": "1m",
    "__range": "5m",
    "__interval": "15s",
    "datasource": "",  # names the data source; never part of an expression
}

# `$name` or `${name}` (Grafana's `${name:format}` forms are not used by the dashboard).
_VARIABLE = re.compile(r"\$(?:\{(?P<braced>\w+)\}|(?P<bare>\w+))")


class PanelQuery(NamedTuple):
    """One target of one panel; unpacks as `(title, expr)`."""

    title: str
    expr: str


def substitute(expr: str, values: Mapping[str, str] = SUBSTITUTIONS) -> str:
    """Replace the Grafana variables of `expr`; ValueError names any variable not in `values`."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        if name not in values:
            raise ValueError(f"unknown Grafana variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text())
    return dashboard


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from iter_panels(panel)


def raw_queries(dashboard: Mapping[str, Any] | None = None) -> list[PanelQuery]:
    """Every (panel title, expr) exactly as Grafana sends it, variables unreplaced."""
    source = load_dashboard() if dashboard is None else dashboard
    return [
        PanelQuery(panel["title"], target["expr"])
        for panel in iter_panels(source)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def dashboard_queries(dashboard: Mapping[str, Any] | None = None) -> list[PanelQuery]:
    """Every (panel title, expr) of the dashboard, ready for Prometheus' /api/v1/query."""
    return [PanelQuery(title, substitute(expr)) for title, expr in raw_queries(dashboard)]


@contextlib.contextmanager
def running_prometheus(
    home: Path, scrape_configs: Sequence[Mapping[str, Any]], *, rule_files: Sequence[str] = ()
) -> Iterator[str]:
    """A real Prometheus on loopback scraping every second (its URL), stopped afterwards; its
    log is `home/prometheus.log`."""
    assert PROMETHEUS is not None, "prometheus not installed: apt-get install prometheus"
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": list(rule_files),
        "scrape_configs": list(scrape_configs),
    }
    (home / "prometheus.yml").write_text(yaml.safe_dump(config))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (home / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={home / 'prometheus.yml'}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _ready(url):
            assert time.monotonic() < deadline, f"Prometheus not ready within 30 s: {home}"
            assert process.poll() is None, f"Prometheus exited: {home / 'prometheus.log'}"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
