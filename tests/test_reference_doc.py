"""docs/reference.md names everything users write, read and scrape, as the code has it now.

Every spec and status field of the CRD, every provider state, condition reason and Event reason
(with its type), every routing ConfigMap and key Secret key, every metric with its labels and
every command-line option must appear in its section; every metric, field path and link the
reference and the troubleshooting guide mention must exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from llm_failover import cli
from llm_failover.catalog import default_catalog
from llm_failover.metrics import Metrics
from llm_failover.policy import Reason
from llm_failover.routemetrics import Family, HistogramFamily
from llm_failover.routing import KEY_NAMES, routing_output
from llm_failover.spec import parse_route_spec
from llm_failover.state import ProviderState
from llm_failover.status import Event, EventReason

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference.md"
TROUBLESHOOTING = DOCS / "troubleshooting.md"
CRD = yaml.safe_load((ROOT / "crds" / "llmroutes.yaml").read_text(encoding="utf-8"))
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
ANCHORS = (
    "resource",
    "spec",
    "states",
    "status",
    "conditions",
    "events",
    "configmap",
    "metrics",
    "cli",
)


def text(path: Path = REFERENCE) -> str:
    return path.read_text(encoding="utf-8")


def section(title: str) -> str:
    """The body of the reference's `## title` section, up to the next `## `."""
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text(), re.M | re.S)
    assert found is not None, f"docs/reference.md has no section '## {title}'"
    return found.group(1)


def named(name: str, body: str) -> bool:
    """`name` in backticks, alone or as a part of a dotted path (`x.name`, `name[].x`)."""
    part = r"[\w*-]+(?:\[\])?"
    pattern = rf"`(?:{part}\.)*{re.escape(name)}(?:\[\])?(?:\.{part})*`"
    return re.search(pattern, body) is not None


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as '-'."""
    plain = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", plain).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {
        anchor(m.group(1))
        for m in re.finditer(r"^#{1,6} (.+)$", path.read_text(encoding="utf-8"), re.M)
    }


def properties(node: dict[str, Any], path: str) -> Iterator[tuple[str, str]]:
    """(dotted path, property name) of every property under a schema node."""
    if node.get("type") == "array":
        yield from properties(node["items"], f"{path}[]")
        return
    for name, child in (node.get("properties") or {}).items():
        yield f"{path}.{name}", name
        yield from properties(child, f"{path}.{name}")


def test_the_sections_others_link_to_exist() -> None:
    have = anchors(REFERENCE)
    missing = [a for a in ANCHORS if a not in have]
    assert not missing, f"docs/reference.md lacks the sections {missing}"


def test_the_resource_names_are_the_crds() -> None:
    body = section("Resource")
    names = CRD["spec"]["names"]
    for value in (
        CRD["spec"]["group"],
        names["kind"],
        names["listKind"],
        names["plural"],
        names["singular"],
        *names["shortNames"],
        *names["categories"],
        CRD["metadata"]["name"],
        *(v["name"] for v in CRD["spec"]["versions"]),
    ):
        assert named(value, body), f"Resource does not name {value}"
    for column in CRD["spec"]["versions"][0]["additionalPrinterColumns"]:
        assert f"`{column['name']}`" in body, f"printer column {column['name']} missing"


@pytest.mark.parametrize(
    ("path", "name"), sorted(set(properties(SCHEMA["properties"]["spec"], "spec")))
)
def test_every_spec_field_is_described(path: str, name: str) -> None:
    assert named(name, section("Spec")), f"{path} is not in the Spec section"


@pytest.mark.parametrize(
    ("path", "name"), sorted(set(properties(SCHEMA["properties"]["status"], "status")))
)
def test_every_status_field_is_described(path: str, name: str) -> None:
    body = section("Status") + section("Conditions")
    assert named(name, body), f"{path} is not in the Status section"


@pytest.mark.parametrize("state", [s.value for s in ProviderState])
def test_every_state_is_described(state: str) -> None:
    assert re.search(rf"^\| `{state}` \|", section("States"), re.M), f"no row for {state}"


@pytest.mark.parametrize("state", [s for s in ProviderState if s.is_hard or s.is_soft])
def test_each_state_has_its_kind(state: ProviderState) -> None:
    row = re.search(rf"^\| `{state.value}` \| (\w*) \|", section("States"), re.M)
    assert row is not None
    assert row.group(1) == ("hard" if state.is_hard else "soft"), f"{state.value}: {row.group(1)}"


@pytest.mark.parametrize("reason", [r.value for r in Reason])
def test_every_condition_reason_is_named(reason: str) -> None:
    assert f"`{reason}`" in section("Conditions") + section("Status"), f"{reason} missing"


@pytest.mark.parametrize("reason", list(EventReason))
def test_every_event_reason_has_a_row_with_its_type(reason: EventReason) -> None:
    row = re.search(rf"^\| `{reason.value}` \| (\w+) \|", section("Events"), re.M)
    assert row is not None, f"Events has no row for {reason.value}"
    assert row.group(1) == Event(reason, "").type, f"{reason.value} is {Event(reason, '').type}"


def test_no_event_reason_is_invented() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (?:Warning|Normal) \|", section("Events"), re.M)
    assert set(rows) == {r.value for r in EventReason}


def test_every_routing_key_is_described() -> None:
    spec = parse_route_spec(
        {
            "providers": [{"name": "a", "baseURL": "https://a.example/v1", "model": "m"}],
            "target": {"secretName": "k"},
        },
        route_name="r",
        catalog=default_catalog(),
    )
    output = routing_output(spec, active=spec.providers[0], eligible={"a": True}, key="x")
    body = section("ConfigMap")
    assert output.secret is not None
    for key in [*output.config_map, *output.secret, *KEY_NAMES]:
        assert re.search(rf"^\| `{re.escape(key)}` \|", body, re.M) or named(key, body), key


def _metrics() -> list[tuple[str, tuple[str, ...]]]:
    """(exposed name, label names) of every metric the operator serves."""
    metrics = Metrics(CollectorRegistry())
    found = []
    for value in vars(metrics).values():
        if isinstance(value, Family):
            found.append((value.sample, value.labelnames))
        elif isinstance(value, HistogramFamily):
            found.append((value.name, value.labelnames))
        elif isinstance(value, MetricWrapperBase):
            suffix = "_total" if value._type == "counter" else ""
            found.append((value._name + suffix, tuple(value._labelnames)))
    return found


METRICS = _metrics()


@pytest.mark.parametrize(("name", "labels"), METRICS, ids=[m[0] for m in METRICS])
def test_every_metric_has_a_row_naming_its_labels(name: str, labels: tuple[str, ...]) -> None:
    row = re.search(rf"^\| `{name}` \|([^\n]*)$", section("Metrics"), re.M)
    assert row is not None, f"Metrics has no row for {name}"
    for label in labels:
        assert f"`{label}`" in row.group(1), f"{name}: label {label} not in its row"


def test_every_metric_mentioned_exists() -> None:
    real = {name for name, _ in METRICS}
    for doc in (REFERENCE, TROUBLESHOOTING):
        for mentioned in set(re.findall(r"\bllmfailover_\w+", text(doc))):
            stem = re.sub(r"_(bucket|count|sum)$", "", mentioned)
            prefix = mentioned == "llmfailover_route"  # a grep pattern for the route series
            assert stem in real or prefix, f"{doc.name} names {mentioned}, which does not exist"


def _options() -> list[tuple[str, str]]:
    parser = cli._parser()
    found = []
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        for command, sub in action.choices.items():  # type: ignore[union-attr]
            found.append((command, ""))
            for option in sub._actions:
                for string in option.option_strings:
                    if string.startswith("--") and string != "--help":
                        found.append((command, string))
    return found


@pytest.mark.parametrize(("command", "option"), _options())
def test_every_command_and_option_is_in_the_cli_section(command: str, option: str) -> None:
    body = section("CLI")
    assert f"llm-failover {command}" in body, f"{command} is not described"
    if option:
        found = re.search(rf"[`\[ ]{re.escape(option)}[ =`\[\]]", body)
        assert found, f"{command} {option} missing"


@pytest.mark.parametrize("doc", [REFERENCE, TROUBLESHOOTING], ids=lambda p: p.name)
def test_field_paths_exist_in_the_crd(doc: Path) -> None:
    known = {p.replace("[]", "") for p, _ in properties(SCHEMA, "")}
    for path in set(re.findall(r"`((?:spec|status)\.[A-Za-z][\w.\[\]]*)`", text(doc))):
        plain = "." + path.replace("[]", "").rstrip(".")
        assert plain in known, f"{doc.name} names {path}, which the CRD does not have"


@pytest.mark.parametrize("doc", [REFERENCE, TROUBLESHOOTING], ids=lambda p: p.name)
def test_links_resolve(doc: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", text(doc)):
        if re.match(r"https?://", target):
            continue
        file, _, fragment = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        assert path.exists(), f"{doc.name} links to {file}, which does not exist"
        if fragment and path.suffix == ".md":
            assert fragment in anchors(path), f"{doc.name} links to {target}: no such section"
