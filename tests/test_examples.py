"""Every LLMRoute under examples/ is one the API server and the operator accept.

Each YAML document under examples/ (any depth, found by glob, so new files are covered) that is an
LLMRoute is checked three ways: against the CRD's OpenAPI schema (also strictly, as
`kubectl apply --validate=strict` would, so a misspelt field fails), against every CEL rule of the
CRD, and by the operator's own parser with the shipped preset catalog (so an unknown preset fails).
Other documents (a Secret, say) are skipped.

Migration files (examples/migrations/*.yaml) follow a convention, checked here: one route per model
tier, labelled `llmfailover.dev/tier: gpt-4o` or `gpt-4o-mini`, its name ending in `-<tier>`, and
labelled `llmfailover.dev/migration: <file stem>`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from llm_failover.catalog import default_catalog
from llm_failover.spec import parse_route_spec
from test_crd import FORMAT_CHECKER, RULES, SCHEMA, apply_defaults, check, errors, values_at, walk

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MIGRATIONS = EXAMPLES / "migrations"

TIER_LABEL = "llmfailover.dev/tier"
MIGRATION_LABEL = "llmfailover.dev/migration"
TIERS = ("gpt-4o", "gpt-4o-mini")

Json = dict[str, Any]


@dataclass(frozen=True)
class Document:
    path: Path
    index: int
    body: Json

    @property
    def id(self) -> str:
        name = self.body.get("metadata", {}).get("name", "?")
        return f"{self.path.relative_to(EXAMPLES)}#{self.index}:{name}"


def load_documents() -> list[Document]:
    files = sorted(p for ext in ("yaml", "yml") for p in EXAMPLES.rglob(f"*.{ext}"))
    docs = []
    for path in files:
        for i, body in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if body is not None:
                docs.append(Document(path, i, body))
    return docs


def is_route(body: Json) -> bool:
    return body.get("kind") == "LLMRoute"


DOCUMENTS = load_documents()
ROUTES = [d for d in DOCUMENTS if is_route(d.body)]
MIGRATION_FILES = sorted(MIGRATIONS.glob("*.yaml"))


def _strict_schema() -> Json:
    """The schema with unknown fields forbidden, as `kubectl apply --validate=strict` does."""
    strict = copy.deepcopy(SCHEMA)
    for path, node in walk(strict):
        if node.get("type") == "object" and path != "metadata" and "properties" in node:
            node["additionalProperties"] = False
    return strict


STRICT = jsonschema.Draft202012Validator(_strict_schema(), format_checker=FORMAT_CHECKER)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_examples_hold_routes() -> None:
    assert (EXAMPLES / "chat-route.yaml") in {d.path for d in ROUTES}
    assert MIGRATION_FILES, "no migration examples"
    for path in MIGRATION_FILES:
        assert any(d.path == path for d in ROUTES), f"{path.name} holds no LLMRoute"


def test_every_document_has_a_kind() -> None:
    for doc in DOCUMENTS:
        assert isinstance(doc.body, dict), doc.id
        assert doc.body.get("apiVersion"), doc.id
        assert doc.body.get("kind"), doc.id


@pytest.mark.parametrize("doc", ROUTES, ids=[d.id for d in ROUTES])
def test_route_matches_the_crd_schema(doc: Document) -> None:
    assert doc.body["apiVersion"] == "llmfailover.dev/v1alpha1"
    assert not errors(doc.body)
    assert not errors(doc.body, STRICT)
    metadata = doc.body["metadata"]
    assert _DNS_LABEL.match(metadata["name"]), "a route name should be a DNS-1123 label"
    assert metadata.get("namespace"), "examples name their namespace, where the Secrets are"


@pytest.mark.parametrize("k8s_types", [False, True], ids=["json-strings", "k8s-types"])
@pytest.mark.parametrize("doc", ROUTES, ids=[d.id for d in ROUTES])
def test_route_passes_every_cel_rule(doc: Document, k8s_types: bool) -> None:
    obj = apply_defaults(SCHEMA, copy.deepcopy(doc.body))
    for path, rule in RULES:
        for value in values_at(obj, path):
            assert check(path, rule, value, k8s_types), f"{path}: {rule['rule']}"


@pytest.mark.parametrize("doc", ROUTES, ids=[d.id for d in ROUTES])
def test_route_is_accepted_by_the_operator(doc: Document) -> None:
    spec = parse_route_spec(
        doc.body["spec"], route_name=doc.body["metadata"]["name"], catalog=default_catalog()
    )
    assert [p.name for p in spec.providers] == [p["name"] for p in doc.body["spec"]["providers"]]


@pytest.mark.parametrize("doc", ROUTES, ids=[d.id for d in ROUTES])
def test_secrets_are_created_in_the_header(doc: Document) -> None:
    """Every referenced Secret key is in the file's `kubectl create secret` commands."""
    text = doc.path.read_text(encoding="utf-8")
    for provider in doc.body["spec"]["providers"]:
        ref = provider.get("apiKeySecretRef")
        if ref is None:
            continue
        assert f"create secret generic {ref['name']}" in text, ref
        assert f"--from-literal={ref['key']}=" in text, ref


@pytest.mark.parametrize("path", MIGRATION_FILES, ids=[p.name for p in MIGRATION_FILES])
def test_migration_has_one_route_per_tier(path: Path) -> None:
    routes = [d.body for d in ROUTES if d.path == path]
    tiers = sorted(r["metadata"].get("labels", {}).get(TIER_LABEL, "") for r in routes)
    assert tiers == sorted(TIERS), f"{path.name}: tiers {tiers}"
    for route in routes:
        labels = route["metadata"]["labels"]
        assert route["metadata"]["name"].endswith(f"-{labels[TIER_LABEL]}")
        assert labels[MIGRATION_LABEL] == path.stem
    # The two tiers are the same move: the same providers in the same order.
    orders = [[p["name"] for p in r["spec"]["providers"]] for r in routes]
    assert orders[0] == orders[1]
    targets = [
        (r["spec"]["target"]["configMapName"], r["spec"]["target"]["secretName"]) for r in routes
    ]
    assert len(set(targets)) == len(targets)


@pytest.mark.parametrize("path", MIGRATION_FILES, ids=[p.name for p in MIGRATION_FILES])
def test_migration_header_and_readme_list_every_model(path: Path) -> None:
    """The mapping tables in the comments and in the README say what the routes do."""
    text = path.read_text(encoding="utf-8")
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    readme = (MIGRATIONS / "README.md").read_text(encoding="utf-8")
    assert path.name in readme
    for route in (d.body for d in ROUTES if d.path == path):
        tier = route["metadata"]["labels"][TIER_LABEL]
        for provider in route["spec"]["providers"]:
            if provider.get("preset") == "openai":
                assert provider["model"] == tier, "the OpenAI model is the tier itself"
            assert re.search(rf"(?<![\w.-]){re.escape(provider['model'])}(?![\w.-])", header), (
                f"{provider['model']} is not in {path.name}'s mapping table"
            )
            assert f"`{provider['model']}`" in readme, f"{provider['model']} not in README.md"


def test_route_names_and_targets_are_unique_across_examples() -> None:
    """All examples can be applied to one namespace without two routes sharing an output."""
    seen: dict[tuple[str, str], str] = {}
    for doc in ROUTES:
        namespace = doc.body["metadata"]["namespace"]
        target = doc.body["spec"].get("target", {})
        names = {
            ("LLMRoute", doc.body["metadata"]["name"]),
            ("ConfigMap", target.get("configMapName", f"{doc.body['metadata']['name']}-llm")),
        }
        if "secretName" in target:
            names.add(("Secret", target["secretName"]))
        for kind, name in names:
            key = (namespace, f"{kind}/{name}")
            assert key not in seen, f"{doc.id} and {seen[key]} both use {key}"
            seen[key] = doc.id
