"""The LLMRoute CRD (crds/llmroutes.yaml) against its documented spec and status (docs/reference.md).

Three layers are checked without a cluster:
- the CRD's shape (names, scope, subresource, printer columns, structural-schema rules);
- the OpenAPI schema, run by `jsonschema` over sample objects (the `x-kubernetes-*` keywords are
  unknown to it and ignored, as the bounds they do not cover are checked separately);
- every CEL rule in `x-kubernetes-validations`, run by `celpy` on valid and invalid samples, with
  values typed both as plain JSON and as the API server types them (`format: date-time` strings
  become CEL timestamps there).
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import yaml
from celpy import celtypes
from celpy.adapter import json_to_cel

CRD_PATH = Path(__file__).resolve().parent.parent / "crds" / "llmroutes.yaml"
CRD: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text(encoding="utf-8"))
VERSION: dict[str, Any] = CRD["spec"]["versions"][0]
SCHEMA: dict[str, Any] = VERSION["schema"]["openAPIV3Schema"]
SPEC_SCHEMA: dict[str, Any] = SCHEMA["properties"]["spec"]

Json = dict[str, Any]

# An example spec with every field set (docs/reference.md#spec describes each).
CONTRACT_EXAMPLE: Json = yaml.safe_load(
    """
apiVersion: llmfailover.dev/v1alpha1
kind: LLMRoute
metadata: {name: chat, namespace: shop}
spec:
  providers:
    - name: openai
      preset: openai
      baseURL: https://api.openai.com/v1
      model: gpt-4o
      apiKeySecretRef: {name: openai, key: api-key}
      notAfter: "2024-07-09T00:00:00Z"
      notBefore: "2024-06-25T00:00:00Z"
      probe: {method: Models}
    - name: qwen
      preset: dashscope
      model: qwen-max
      apiKeySecretRef: {name: dashscope, key: api-key}
  healthCheck:
    intervalSeconds: 10
    timeoutSeconds: 5
    failureThreshold: 3
    successThreshold: 2
  failback: Auto
  paused: false
  target:
    configMapName: chat-llm
    secretName: chat-llm-key
    restart:
      - {kind: Deployment, name: api}
"""
)

# A status as docs/reference.md#status describes it, with its times filled in.
CONTRACT_STATUS: Json = yaml.safe_load(
    """
observedGeneration: 3
activeProvider: qwen
activeSince: "2026-11-21T09:30:00Z"
failoverCount: 2
lastFailover: {time: "2026-11-21T09:30:00Z", from: openai, to: qwen, reason: GeoBlocked}
providers:
  - {name: openai, state: GeoBlocked, eligible: false, consecutiveFailures: 4,
     consecutiveSuccesses: 0, requiredSuccesses: 2, lastProbeTime: "2026-11-21T09:31:00Z",
     lastTransitionTime: "2026-11-21T09:30:00Z", latencyMilliseconds: 182, httpStatus: 403,
     message: "unsupported_country_region_territory: Country, region, or territory not supported"}
  - {name: qwen, state: Healthy, eligible: true, consecutiveFailures: 0, consecutiveSuccesses: 12,
     requiredSuccesses: 2, lastProbeTime: "2026-11-21T09:31:00Z",
     lastTrustedTime: "2026-11-20T08:00:00.5+08:00", latencyMilliseconds: 95, httpStatus: 200}
  - {name: spare, state: Unknown, eligible: false}
conditions:
  - {type: Ready, status: "True", reason: ProviderActive, message: "routing to qwen",
     lastTransitionTime: "2026-11-21T09:30:00Z", observedGeneration: 3}
  - {type: FailedOver, status: "True", reason: GeoBlocked, message: "openai: GeoBlocked",
     lastTransitionTime: "2026-11-21T09:30:00Z", observedGeneration: 3}
routingHash: 9f2c0d4b
message: "routing to qwen: openai is GeoBlocked"
"""
)

# The documented defaults (docs/reference.md#spec), by field path under spec.
CONTRACT_DEFAULTS: dict[str, Any] = {
    "healthCheck.intervalSeconds": 10,
    "healthCheck.timeoutSeconds": 5,
    "healthCheck.failureThreshold": 3,
    "healthCheck.successThreshold": 2,
    "failback": "Auto",
    "paused": False,
}

# The documented bounds (docs/reference.md#spec), by field path under spec: (minimum, maximum).
CONTRACT_BOUNDS: dict[str, tuple[int, int]] = {
    "healthCheck.intervalSeconds": (1, 3600),
    "healthCheck.timeoutSeconds": (1, 60),
    "healthCheck.failureThreshold": (1, 10),
    "healthCheck.successThreshold": (1, 10),
}


# ---------------------------------------------------------------------------------------------
# helpers


def walk(node: Json, path: str = "") -> Iterator[tuple[str, Json]]:
    """Every schema node with its path: `spec.providers[]` is an item of `spec.providers`."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}" if path else name)
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")


def node_at(path: str) -> Json:
    node = SCHEMA
    for part in re.findall(r"[^.\[\]]+|\[\]", path):
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


def values_at(obj: Any, path: str) -> Iterator[Any]:
    """Every value in `obj` at a schema path (lists fan out)."""
    parts = re.findall(r"[^.\[\]]+|\[\]", path)

    def go(value: Any, i: int) -> Iterator[Any]:
        if i == len(parts):
            yield value
        elif parts[i] == "[]":
            for item in value:
                yield from go(item, i + 1)
        elif isinstance(value, dict) and parts[i] in value:
            yield from go(value[parts[i]], i + 1)

    yield from go(obj, 0)


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
FORMAT_CHECKER = jsonschema.FormatChecker(formats=())


def _is_date_time(value: object) -> bool:
    """RFC 3339 date-time, as the API server's `format: date-time` (no rfc3339 package needed)."""
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    dt.datetime.fromisoformat(value.upper())  # raises on 2024-02-30 and the like
    return True


FORMAT_CHECKER.checks("date-time", raises=ValueError)(_is_date_time)


def re2(pattern: str) -> re.Pattern[str]:
    """A CRD pattern with the API server's (RE2's) meaning: ASCII classes such as `\\s`, and
    `$` only at the very end (Python's also matches before a final newline)."""
    assert pattern.count("$") == pattern.endswith("$"), f"$ inside {pattern}"
    return re.compile("(?a)" + pattern.removesuffix("$") + (r"\Z" if pattern.endswith("$") else ""))


def _re2_pattern(
    validator: Any, pattern: str, instance: Any, schema: Json
) -> Iterator[jsonschema.ValidationError]:
    if isinstance(instance, str) and not re2(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


Re2Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"pattern": _re2_pattern}
)
VALIDATOR = Re2Validator(SCHEMA, format_checker=FORMAT_CHECKER)


def errors(obj: Json, validator: jsonschema.protocols.Validator = VALIDATOR) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in validator.iter_errors(obj)
    ]


def error_paths(obj: Json) -> list[str]:
    return [".".join(str(p) for p in e.absolute_path) for e in VALIDATOR.iter_errors(obj)]


def route(spec: Json) -> Json:
    return {
        "apiVersion": "llmfailover.dev/v1alpha1",
        "kind": "LLMRoute",
        "metadata": {"name": "chat", "namespace": "shop"},
        "spec": spec,
    }


def provider(name: str = "p", **fields: Any) -> Json:
    return {"name": name, "baseURL": "https://llm.example.com/v1", "model": "m", **fields}


def apply_defaults(schema: Json, value: Any) -> Any:
    """Structural defaulting as the API server does it: a defaulted object gets its own defaults."""
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(sub, value[name])
    elif isinstance(value, list) and "items" in schema:
        value[:] = [apply_defaults(schema["items"], item) for item in value]
    return value


_DELETE = object()


@dataclass(frozen=True)
class Patch:
    """A mutation: set (or with _DELETE, remove) the value at a dotted path such as `a.0.b`."""

    path: str
    value: Any

    def __call__(self, obj: Json) -> None:
        *parents, last = self.path.split(".")
        target: Any = obj
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        key: Any = int(last) if isinstance(target, list) else last
        if self.value is _DELETE:
            del target[key]
        else:
            target[key] = copy.deepcopy(self.value)

    def is_blamed(self, error_paths: list[str], root: str) -> bool:
        """Whether some error is on the patched field, or on its parent (a missing property)."""
        full = f"{root}.{self.path}"
        parent = full.rpartition(".")[0]
        return any(p in (full, parent) for p in error_paths)


# ---------------------------------------------------------------------------------------------
# names, scope, subresource, printer columns


def test_names_and_scope() -> None:
    assert CRD["apiVersion"] == "apiextensions.k8s.io/v1"
    assert CRD["kind"] == "CustomResourceDefinition"
    assert CRD["metadata"]["name"] == "llmroutes.llmfailover.dev"
    spec = CRD["spec"]
    assert spec["group"] == "llmfailover.dev"
    assert spec["scope"] == "Namespaced"
    names = spec["names"]
    assert names["kind"] == "LLMRoute"
    assert names["plural"] == "llmroutes"
    assert names["singular"] == "llmroute"
    assert names["shortNames"] == ["llmr"]
    assert names["categories"] == ["llm"]


def test_one_served_storage_version_with_status_subresource() -> None:
    versions = CRD["spec"]["versions"]
    assert [v["name"] for v in versions] == ["v1alpha1"]
    assert VERSION["served"] is True
    assert VERSION["storage"] is True
    assert VERSION["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    columns = {c["name"]: c for c in VERSION["additionalPrinterColumns"]}
    assert list(columns) == ["ACTIVE", "READY", "FAILED-OVER", "FAILOVERS", "AGE", "MESSAGE"]
    expected = {
        "ACTIVE": ("string", ".status.activeProvider"),
        "READY": ("string", '.status.conditions[?(@.type=="Ready")].status'),
        "FAILED-OVER": ("string", '.status.conditions[?(@.type=="FailedOver")].status'),
        "FAILOVERS": ("integer", ".status.failoverCount"),
        "AGE": ("date", ".metadata.creationTimestamp"),
        "MESSAGE": ("string", '.status.conditions[?(@.type=="Ready")].message'),
    }
    for name, (type_, json_path) in expected.items():
        assert columns[name]["type"] == type_, name
        assert columns[name]["jsonPath"] == json_path, name
    assert columns["MESSAGE"]["priority"] == 1  # shown with -o wide only
    assert all("priority" not in columns[n] for n in expected if n != "MESSAGE")


# ---------------------------------------------------------------------------------------------
# structural schema


def test_schema_is_structural() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["type"] == "object"
    # Root metadata may only be `type: object` (the API server forbids even a description there).
    assert SCHEMA["properties"]["metadata"] == {"type": "object"}
    for path, node in walk(SCHEMA):
        assert "type" in node, f"{path or '<root>'} has no type"
        assert "x-kubernetes-preserve-unknown-fields" not in node, path
        for keyword in ("anyOf", "oneOf", "allOf", "not", "$ref", "nullable"):
            assert keyword not in node, f"{path}: {keyword} is not used in this schema"
        if node["type"] == "array":
            assert "items" in node, f"{path} has no items"
        if node["type"] == "object":
            assert "properties" in node or path == "metadata", f"{path} has no properties"
            for required in node.get("required", []):
                assert required in node["properties"], f"{path}: unknown required {required}"
        if node.get("x-kubernetes-list-type") == "map":
            item = node["items"]
            assert item["type"] == "object", path
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in item.get("required", []) or "default" in item["properties"][key], (
                    f"{path}: list-map key {key} must be required"
                )
        if "pattern" in node:
            re.compile(node["pattern"])
            assert "(?" not in node["pattern"], f"{path}: RE2 has no lookarounds"
        if "default" in node:
            sub = jsonschema.Draft202012Validator(node, format_checker=FORMAT_CHECKER)
            assert not list(sub.iter_errors(node["default"])), f"{path}: invalid default"


def test_every_property_is_described() -> None:
    undocumented = [
        path
        for path, node in walk(SCHEMA)
        if path != "metadata" and not str(node.get("description", "")).strip()
    ]
    assert not undocumented, f"no description (kubectl explain shows nothing): {undocumented}"


def test_spec_strings_and_lists_are_bounded() -> None:
    """CEL's cost estimate and etcd both need bounds: every spec string and list has one."""
    for path, node in walk(SPEC_SCHEMA, "spec"):
        if node["type"] == "string" and "enum" not in node and node.get("format") != "date-time":
            assert "maxLength" in node, f"{path} has no maxLength"
        if node["type"] == "array":
            assert "maxItems" in node, f"{path} has no maxItems"


def test_list_types() -> None:
    providers = node_at("spec.providers")
    assert (providers["minItems"], providers["maxItems"]) == (1, 16)
    assert providers["x-kubernetes-list-type"] == "map"
    assert providers["x-kubernetes-list-map-keys"] == ["name"]
    restart = node_at("spec.target.restart")
    assert restart["maxItems"] == 32
    assert restart["x-kubernetes-list-type"] == "map"
    assert restart["x-kubernetes-list-map-keys"] == ["kind", "name"]
    conditions = node_at("status.conditions")
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_enums() -> None:
    assert node_at("spec.providers[].probe.method")["enum"] == ["Models", "Chat"]
    assert node_at("spec.failback")["enum"] == ["Auto", "Manual"]
    assert node_at("spec.target.restart[].kind")["enum"] == [
        "Deployment",
        "StatefulSet",
        "DaemonSet",
    ]
    assert node_at("status.providers[].state")["enum"] == [
        "Healthy",
        "GeoBlocked",
        "Unauthorized",
        "QuotaExhausted",
        "ModelUnavailable",
        "RateLimited",
        "ServerError",
        "Timeout",
        "Unreachable",
        "Unknown",
    ]
    assert node_at("status.conditions[].status")["enum"] == ["True", "False", "Unknown"]


# ---------------------------------------------------------------------------------------------
# defaults


@pytest.mark.parametrize(("field", "value"), CONTRACT_DEFAULTS.items())
def test_schema_default_matches_contract(field: str, value: Any) -> None:
    assert node_at(f"spec.{field}")["default"] == value


@pytest.mark.parametrize(("field", "bounds"), CONTRACT_BOUNDS.items())
def test_schema_bounds_match_contract(field: str, bounds: tuple[int, int]) -> None:
    node = node_at(f"spec.{field}")
    assert node["type"] == "integer"
    assert (node["minimum"], node["maximum"]) == bounds


def test_defaulting_fills_an_omitted_health_check_and_target() -> None:
    spec = apply_defaults(SPEC_SCHEMA, {"providers": [provider()]})
    assert spec["healthCheck"] == {
        "intervalSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
        "successThreshold": 2,
    }
    assert spec["failback"] == "Auto"
    assert spec["paused"] is False
    # The ConfigMap name defaults to "<route name>-llm": computed by the operator, not the schema.
    assert spec["target"] == {}
    assert "default" not in node_at("spec.target.configMapName")
    assert not errors(route(spec))


def test_defaulting_keeps_given_values() -> None:
    spec = apply_defaults(
        SPEC_SCHEMA, {"providers": [provider()], "healthCheck": {"intervalSeconds": 60}}
    )
    assert spec["healthCheck"]["intervalSeconds"] == 60
    assert spec["healthCheck"]["timeoutSeconds"] == 5


# ---------------------------------------------------------------------------------------------
# OpenAPI validation of sample objects


def test_contract_example_is_valid() -> None:
    assert not errors(CONTRACT_EXAMPLE)


def test_contract_example_uses_only_known_fields() -> None:
    """Like `kubectl apply --validate=strict`: every field of the example is in the schema."""
    strict = copy.deepcopy(SCHEMA)
    for path, node in walk(strict):
        if node["type"] == "object" and path != "metadata":
            node["additionalProperties"] = False
    validator = jsonschema.Draft202012Validator(strict, format_checker=FORMAT_CHECKER)
    assert not errors(CONTRACT_EXAMPLE, validator)
    assert not errors({**CONTRACT_EXAMPLE, "status": CONTRACT_STATUS}, validator)
    typo = copy.deepcopy(CONTRACT_EXAMPLE)
    typo["spec"]["providers"][0]["baseUrl"] = typo["spec"]["providers"][0].pop("baseURL")
    assert errors(typo, validator)


def test_contract_status_example_is_valid() -> None:
    assert not errors({**CONTRACT_EXAMPLE, "status": CONTRACT_STATUS})


VALID_SPECS: dict[str, Json] = {
    "minimal": {"providers": [provider()]},
    "preset-only": {"providers": [{"name": "qwen", "preset": "dashscope", "model": "qwen-max"}]},
    "sixteen-providers": {"providers": [provider(f"p{i}") for i in range(16)]},
    "http-localhost-port": {"providers": [provider(baseURL="http://localhost:8080/v1/")]},
    "ip-host-no-path": {"providers": [provider(baseURL="http://10.0.0.7:11434")]},
    "ipv6-host": {"providers": [provider(baseURL="http://[::1]:8080/v1")]},
    "international-host": {"providers": [provider(baseURL="https://模型.example.cn/v1")]},
    "model-with-slashes-and-colon": {
        "providers": [
            provider("a", model="accounts/fireworks/models/llama-v3p1-8b-instruct"),
            provider("b", model="anthropic.claude-3-5-sonnet-20240620-v1:0"),
        ]
    },
    "times-with-offset-and-fraction": {
        "providers": [
            provider(notBefore="2024-06-25T00:00:00.250+08:00", notAfter="2024-07-09T00:00:00Z")
        ]
    },
    "probe-chat": {"providers": [provider(probe={"method": "Chat"})]},
    "bounds-low": {
        "providers": [provider()],
        "healthCheck": {
            "intervalSeconds": 1,
            "timeoutSeconds": 1,
            "failureThreshold": 1,
            "successThreshold": 1,
        },
    },
    "bounds-high": {
        "providers": [provider()],
        "healthCheck": {
            "intervalSeconds": 3600,
            "timeoutSeconds": 60,
            "failureThreshold": 10,
            "successThreshold": 10,
        },
    },
    "manual-paused": {"providers": [provider()], "failback": "Manual", "paused": True},
    "restart-all-kinds": {
        "providers": [provider()],
        "target": {
            "restart": [
                {"kind": "Deployment", "name": "api"},
                {"kind": "StatefulSet", "name": "api"},
                {"kind": "DaemonSet", "name": "agent.v2"},
            ]
        },
    },
    "secret-key-with-dots": {
        "providers": [provider(apiKeySecretRef={"name": "keys.prod", "key": "openai.api_key-1"})]
    },
}


@pytest.mark.parametrize("spec", VALID_SPECS.values(), ids=VALID_SPECS.keys())
def test_valid_spec_is_accepted(spec: Json) -> None:
    assert not errors(route(spec))


INVALID_SPECS: dict[str, Patch] = {
    "17 providers": Patch("providers", [provider(f"p{i}") for i in range(17)]),
    "0 providers": Patch("providers", []),
    "no providers": Patch("providers", _DELETE),
    "name Open_AI": Patch("providers.0.name", "Open_AI"),
    "name with capitals": Patch("providers.0.name", "OpenAI"),
    "name starts with dash": Patch("providers.0.name", "-openai"),
    "name 64 chars": Patch("providers.0.name", "a" * 64),
    "name missing": Patch("providers.0.name", _DELETE),
    "preset with capitals": Patch("providers.0.preset", "OpenAI"),
    "baseURL ftp": Patch("providers.0.baseURL", "ftp://x"),
    "baseURL without scheme": Patch("providers.0.baseURL", "api.openai.com/v1"),
    "baseURL without host": Patch("providers.0.baseURL", "https://"),
    "baseURL with credentials": Patch("providers.0.baseURL", "https://u:pw@api.openai.com/v1"),
    "baseURL with query": Patch("providers.0.baseURL", "https://api.openai.com/v1?x=1"),
    "baseURL with space": Patch("providers.0.baseURL", "https://api.openai.com/v 1"),
    "baseURL with fragment": Patch("providers.0.baseURL", "https://api.openai.com/v1#x"),
    "baseURL port with letters": Patch("providers.0.baseURL", "https://api.openai.com:8o/v1"),
    "baseURL port of 6 digits": Patch("providers.0.baseURL", "https://api.openai.com:123456/v1"),
    "baseURL unbalanced bracket": Patch("providers.0.baseURL", "http://[::1/v1"),
    "baseURL control character": Patch("providers.0.baseURL", "https://api.openai.com/v\x011"),
    "baseURL trailing newline": Patch("providers.0.baseURL", "https://api.openai.com/v1\n"),
    "model missing": Patch("providers.0.model", _DELETE),
    "model empty": Patch("providers.0.model", ""),
    "model with space": Patch("providers.0.model", "gpt 4o"),
    "model 257 chars": Patch("providers.0.model", "m" * 257),
    "secret ref without key": Patch("providers.0.apiKeySecretRef", {"name": "openai"}),
    "secret ref without name": Patch("providers.0.apiKeySecretRef", {"key": "api-key"}),
    "secret name Bad_Name": Patch("providers.0.apiKeySecretRef.name", "Bad_Name"),
    "secret key with space": Patch("providers.0.apiKeySecretRef.key", "api key"),
    "notAfter not a time": Patch("providers.0.notAfter", "tomorrow"),
    "notBefore date only": Patch("providers.0.notBefore", "2024-06-25"),
    "notBefore no zone": Patch("providers.0.notBefore", "2024-06-25T00:00:00"),
    "notAfter impossible day": Patch("providers.0.notAfter", "2024-02-30T00:00:00Z"),
    "probe method Head": Patch("providers.0.probe.method", "Head"),
    "probe without method": Patch("providers.0.probe", {}),
    "intervalSeconds 0": Patch("healthCheck.intervalSeconds", 0),
    "intervalSeconds 3601": Patch("healthCheck.intervalSeconds", 3601),
    "intervalSeconds string": Patch("healthCheck.intervalSeconds", "10"),
    "timeoutSeconds 0": Patch("healthCheck.timeoutSeconds", 0),
    "timeoutSeconds 61": Patch("healthCheck.timeoutSeconds", 61),
    "failureThreshold 0": Patch("healthCheck.failureThreshold", 0),
    "failureThreshold 11": Patch("healthCheck.failureThreshold", 11),
    "successThreshold 0": Patch("healthCheck.successThreshold", 0),
    "successThreshold 11": Patch("healthCheck.successThreshold", 11),
    "failback Sometimes": Patch("failback", "Sometimes"),
    "paused yes": Patch("paused", "yes"),
    "configMapName Chat_LLM": Patch("target.configMapName", "Chat_LLM"),
    "secretName empty": Patch("target.secretName", ""),
    "restart kind Job": Patch("target.restart.0.kind", "Job"),
    "restart name missing": Patch("target.restart.0", {"kind": "Deployment"}),
    "restart 33 entries": Patch(
        "target.restart", [{"kind": "Deployment", "name": f"w{i}"} for i in range(33)]
    ),
}


@pytest.mark.parametrize("mutate", INVALID_SPECS.values(), ids=INVALID_SPECS.keys())
def test_invalid_spec_is_rejected(mutate: Patch) -> None:
    obj = copy.deepcopy(CONTRACT_EXAMPLE)
    mutate(obj["spec"])
    found = error_paths(obj)
    assert found, "accepted"
    assert mutate.is_blamed(found, "spec"), f"rejected for another reason: {errors(obj)}"


def test_route_without_spec_is_rejected() -> None:
    obj = copy.deepcopy(CONTRACT_EXAMPLE)
    del obj["spec"]
    assert errors(obj)


INVALID_STATUSES: dict[str, Patch] = {
    "state Broken": Patch("providers.0.state", "Broken"),
    "provider without name": Patch("providers.0.name", _DELETE),
    "failoverCount negative": Patch("failoverCount", -1),
    "activeSince not a time": Patch("activeSince", "yesterday"),
    "condition status yes": Patch("conditions.0.status", "yes"),
    "condition without type": Patch("conditions.0.type", _DELETE),
    "condition reason with space": Patch("conditions.0.reason", "Provider Active"),
}


@pytest.mark.parametrize("mutate", INVALID_STATUSES.values(), ids=INVALID_STATUSES.keys())
def test_invalid_status_is_rejected(mutate: Patch) -> None:
    status = copy.deepcopy(CONTRACT_STATUS)
    mutate(status)
    obj = {**CONTRACT_EXAMPLE, "status": status}
    found = error_paths(obj)
    assert found, "accepted"
    assert mutate.is_blamed(found, "status"), f"rejected for another reason: {errors(obj)}"


# ---------------------------------------------------------------------------------------------
# CEL rules (x-kubernetes-validations)

CEL_ENV = celpy.Environment()

RULES: list[tuple[str, Json]] = [
    (path, rule) for path, node in walk(SCHEMA) for rule in node.get("x-kubernetes-validations", [])
]


def to_cel(value: Any, schema: Json, k8s_types: bool) -> Any:
    """A JSON value as CEL sees it; with k8s_types, `format: date-time` strings are timestamps."""
    if isinstance(value, dict):
        props = schema.get("properties", {})
        return celtypes.MapType(
            {
                celtypes.StringType(k): to_cel(v, props.get(k, {}), k8s_types)
                for k, v in value.items()
            }
        )
    if isinstance(value, list):
        return celtypes.ListType([to_cel(v, schema.get("items", {}), k8s_types) for v in value])
    if k8s_types and schema.get("format") == "date-time" and isinstance(value, str):
        return celtypes.TimestampType(value)
    return json_to_cel(value)


def evaluate(expression: str, value: Any, schema: Json, k8s_types: bool) -> Any:
    program = CEL_ENV.program(CEL_ENV.compile(expression))
    return program.evaluate({"self": to_cel(value, schema, k8s_types)})


def check(path: str, rule: Json, value: Any, k8s_types: bool) -> bool:
    result = evaluate(rule["rule"], value, node_at(path), k8s_types)
    assert isinstance(result, celtypes.BoolType), f"{rule['rule']} gave {result!r}"
    return bool(result)


_A = provider("a")
_B = provider("b")

# Each rule, by (schema path, rule text): valid values, invalid values, and the field the
# message must name. A new rule in the CRD fails test_every_rule_has_cases until it is added here.
CEL_CASES: dict[tuple[str, str], tuple[list[Any], list[Any], str]] = {
    ("", "self.metadata.name.size() <= 63"): (
        [CONTRACT_EXAMPLE, {**CONTRACT_EXAMPLE, "metadata": {"name": "r" * 63}}],
        [{**CONTRACT_EXAMPLE, "metadata": {"name": "r" * 64, "namespace": "shop"}}],
        "metadata.name",
    ),
    (
        "spec.providers",
        "self.all(p, self.exists_one(q, q.name == p.name))",
    ): (
        [[_A], [_A, _B], CONTRACT_EXAMPLE["spec"]["providers"]],
        [[_A, _A], [_A, _B, provider("a", model="other")], [_B, _A, _B, _A]],
        "providers",
    ),
    (
        "spec.providers[]",
        "has(self.baseURL) || has(self.preset)",
    ): (
        [
            _A,
            {"name": "q", "preset": "dashscope", "model": "qwen-max"},
            {**_A, "preset": "openai"},
        ],
        [{"name": "x", "model": "m"}, {"name": "x", "model": "m", "probe": {"method": "Chat"}}],
        "baseURL",
    ),
    (
        "spec.providers[]",
        "!has(self.notBefore) || !has(self.notAfter) || "
        "timestamp(self.notBefore) < timestamp(self.notAfter)",
    ): (
        [
            _A,
            {**_A, "notBefore": "2024-06-25T00:00:00Z"},
            {**_A, "notAfter": "2024-06-25T00:00:00Z"},
            {**_A, "notBefore": "2024-06-25T00:00:00Z", "notAfter": "2024-07-09T00:00:00Z"},
            # 23:00 UTC on the 24th is before midnight UTC on the 25th, though it sorts after.
            {**_A, "notBefore": "2024-06-25T01:00:00+02:00", "notAfter": "2024-06-25T00:00:00Z"},
        ],
        [
            {**_A, "notBefore": "2024-07-09T00:00:00Z", "notAfter": "2024-06-25T00:00:00Z"},
            {**_A, "notBefore": "2024-06-25T00:00:00Z", "notAfter": "2024-06-25T00:00:00Z"},
            {**_A, "notBefore": "2024-06-25T00:00:00Z", "notAfter": "2024-06-25T01:00:00+02:00"},
        ],
        "notBefore",
    ),
    (
        "spec.target.restart",
        "self.all(w, self.exists_one(v, v.kind == w.kind && v.name == w.name))",
    ): (
        [
            [],
            [{"kind": "Deployment", "name": "api"}],
            [{"kind": "Deployment", "name": "api"}, {"kind": "StatefulSet", "name": "api"}],
            [{"kind": "Deployment", "name": "api"}, {"kind": "Deployment", "name": "web"}],
        ],
        [
            [{"kind": "Deployment", "name": "api"}, {"kind": "Deployment", "name": "api"}],
            [
                {"kind": "DaemonSet", "name": "a"},
                {"kind": "Deployment", "name": "api"},
                {"kind": "DaemonSet", "name": "a"},
            ],
        ],
        "restart",
    ),
    (
        "spec.healthCheck",
        "!has(self.backupIntervalSeconds) || "
        "self.backupIntervalSeconds >= (has(self.intervalSeconds) ? self.intervalSeconds : 10)",
    ): (
        [
            {},
            {"intervalSeconds": 30},
            {"backupIntervalSeconds": 10},
            {"backupIntervalSeconds": 60},
            {"intervalSeconds": 30, "backupIntervalSeconds": 30},
        ],
        [
            {"backupIntervalSeconds": 9},
            {"intervalSeconds": 30, "backupIntervalSeconds": 20},
        ],
        "backupIntervalSeconds",
    ),
}

CEL_IDS = [f"{path}: {rule[:40]}" for path, rule in CEL_CASES]


def test_every_rule_has_cases() -> None:
    assert RULES, "the CRD has no x-kubernetes-validations"
    in_crd = {(path, " ".join(rule["rule"].split())) for path, rule in RULES}
    assert in_crd == set(CEL_CASES)


@pytest.mark.parametrize(("path", "rule"), RULES, ids=[f"{p}: {r['rule'][:40]}" for p, r in RULES])
def test_rule_is_well_formed(path: str, rule: Json) -> None:
    node = node_at(path)
    assert rule.get("message") or rule.get("messageExpression"), "a rule needs a message"
    for key in ("message", "messageExpression"):
        assert "\n" not in rule.get(key, ""), f"{key} must be one line"
    if "fieldPath" in rule:
        field = rule["fieldPath"]
        assert field.startswith("."), field
        assert field[1:] in node["properties"], f"{field} is not a field of {path}"
    if "reason" in rule:
        assert rule["reason"] in {
            "FieldValueInvalid",
            "FieldValueForbidden",
            "FieldValueRequired",
            "FieldValueDuplicate",
        }
    # Nested iteration over a list is only affordable within the CEL cost budget when the list
    # is bounded; string comparisons need bounded strings too.
    if node["type"] == "array":
        assert node["maxItems"] <= 32
        for name in node["items"]["properties"]:
            sub = node["items"]["properties"][name]
            # (a date-time is a CEL timestamp on the server: its size is fixed)
            if sub["type"] == "string" and sub.get("format") != "date-time":
                assert "maxLength" in sub or "enum" in sub, f"{path}[].{name} is unbounded"


@pytest.mark.parametrize("k8s_types", [False, True], ids=["json-strings", "k8s-types"])
@pytest.mark.parametrize(("path", "rule_text"), CEL_CASES, ids=CEL_IDS)
def test_rule_accepts_valid_and_rejects_invalid(path: str, rule_text: str, k8s_types: bool) -> None:
    rule = next(r for p, r in RULES if p == path and " ".join(r["rule"].split()) == rule_text)
    valid, invalid, field = CEL_CASES[(path, rule_text)]
    assert valid
    assert invalid
    for value in valid:
        assert check(path, rule, value, k8s_types), f"wrongly rejected: {value}"
    for value in invalid:
        assert not check(path, rule, value, k8s_types), f"wrongly accepted: {value}"
        message = rule.get("message", "")
        if "messageExpression" in rule:
            message = evaluate(rule["messageExpression"], value, node_at(path), k8s_types)
            assert isinstance(message, str), message
        assert field in message, f"message {message!r} does not name {field}"


@pytest.mark.parametrize("k8s_types", [False, True], ids=["json-strings", "k8s-types"])
def test_every_rule_accepts_the_contract_example(k8s_types: bool) -> None:
    spec = apply_defaults(SCHEMA, copy.deepcopy(CONTRACT_EXAMPLE))
    for path, rule in RULES:
        for value in values_at(spec, path):
            assert check(path, rule, value, k8s_types), f"{path}: {rule['rule']}"


def test_provider_message_names_the_provider() -> None:
    path = "spec.providers[]"
    rule = next(r for p, r in RULES if p == path and r["rule"].startswith("has(self.baseURL)"))
    message = evaluate(rule["messageExpression"], {"name": "qwen", "model": "m"}, {}, False)
    assert message == 'provider "qwen" needs baseURL, or a preset that supplies one'


@pytest.mark.parametrize(
    "copy_path",
    ["deploy/helm/llm-failover/crds/llmroutes.yaml", "operator/llm_failover/crds/llmroutes.yaml"],
)
def test_crd_copies_equal_the_source(copy_path: str) -> None:
    """The chart (a real file, not a symlink: a packaged chart has no checkout around it) and the
    wheel (`llm-failover demo` after `pip install`) carry copies of crds/llmroutes.yaml."""
    copy_file = CRD_PATH.parent.parent / copy_path
    assert not copy_file.is_symlink(), f"{copy_path} must be a real file"
    assert copy_file.read_bytes() == CRD_PATH.read_bytes(), f"{copy_path} differs: run `make crds`"
