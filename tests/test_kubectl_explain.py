"""kubectl explain shows an LLMRoute's fields as the CRD documents them, as on a real cluster."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_failover.sandbox.cluster import EmulatedCluster

CRD = Path(__file__).resolve().parents[1] / "crds" / "llmroutes.yaml"


def crd_schema() -> Mapping[str, Any]:
    """The openAPIV3Schema of the CRD's storage version, as the file says it."""
    crd = yaml.safe_load(CRD.read_text(encoding="utf-8"))
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema: Mapping[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def field_schema(path: str) -> Mapping[str, Any]:
    """The schema of a dotted field path such as ``spec.healthCheck``."""
    schema = crd_schema()
    for name in path.split("."):
        schema = schema["properties"][name]
    return schema


def subfields(schema: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    """What explain lists under FIELDS: the properties, or those of an array's items."""
    fields: Mapping[str, Mapping[str, Any]] = (schema.get("items") or schema)["properties"]
    return fields


def words(text: str) -> str:
    """Text with its whitespace collapsed: explain wraps descriptions at its own width."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def explain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], str]]:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed")
    home = tmp_path_factory.mktemp("explain")
    with EmulatedCluster(crd_paths=[CRD]) as cluster:
        kubeconfig = cluster.write_kubeconfig(home / "kubeconfig")

        def run(resource_path: str) -> str:
            command = [binary, "--kubeconfig", str(kubeconfig), "--cache-dir", str(home / "kc")]
            done = subprocess.run(
                [*command, "explain", resource_path],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, f"kubectl explain {resource_path}: {done.stderr}"
            return words(done.stdout)

        yield run


@pytest.mark.parametrize("path", ["spec", "spec.providers", "spec.healthCheck"])
def test_explain_shows_the_crd_descriptions_of_a_field_and_its_fields(
    explain: Callable[[str], str], path: str
) -> None:
    shown = explain(f"llmroute.{path}")
    schema = field_schema(path)

    assert "KIND: LLMRoute" in shown
    assert words(schema["description"]) in shown
    for name, field in subfields(schema).items():
        assert f"{name} <" in shown
        assert words(field.get("description", "<no description>")) in shown


def test_explain_shows_the_probe_interval_and_the_failback_modes(
    explain: Callable[[str], str],
) -> None:
    interval = field_schema("spec.healthCheck.intervalSeconds")
    failback = field_schema("spec.failback")

    assert words(interval["description"]) in explain("llmroute.spec.healthCheck")
    assert f"failback <string> enum: {', '.join(failback['enum'])}" in explain("llmroute.spec")
