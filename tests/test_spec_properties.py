"""The spec parser against the CRD (schema with the API server's RE2 patterns, and CEL rules):
on any input it returns a spec or raises SpecError; what it accepts, the CRD accepts too (it
may be stricter, never looser); and every base URL it accepts is one httpx can request."""

from __future__ import annotations

import copy
import re
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llm_failover.catalog import default_catalog
from llm_failover.spec import URL_PATTERN, SpecError, parse_route_spec
from test_crd import CRD, RULES, SCHEMA, VALIDATOR, apply_defaults, check, values_at
from test_spec import EXAMPLE

CATALOG = default_catalog()
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")

BASE = EXAMPLE  # the reference example, every field set
# Where one value is replaced, and by what.
PATHS = [
    ("providers", 0, "name"), ("providers", 0, "preset"), ("providers", 0, "baseURL"),
    ("providers", 0, "model"), ("providers", 0, "apiKeySecretRef", "name"),
    ("providers", 0, "apiKeySecretRef", "key"), ("providers", 0, "notBefore"),
    ("providers", 0, "notAfter"), ("providers", 0, "probe"), ("providers", 0, "probe", "method"),
    ("providers", 1, "name"), ("healthCheck", "intervalSeconds"), ("healthCheck",),
    ("failback",), ("paused",), ("target", "configMapName"), ("target", "secretName"),
    ("target", "restart"), ("target", "restart", 0, "kind"), ("target", "restart", 0, "name"),
    ("providers",), ("providers", 0), ("target",),
]  # fmt: skip


def pick(good: list[str], bad: list[str]) -> st.SearchStrategy[str]:
    """A good value three times in four: a URL is a chain of parts, each must be good."""
    return st.one_of(*[st.sampled_from(good)] * 3, st.sampled_from(bad))


urls = st.builds(
    lambda scheme, user, host, port, path: f"{scheme}{user}{host}{port}{path}",
    pick(["https://", "http://"], ["HTTP://", "ftp://", "https:/", ""]),
    pick([""], ["u:pw@", "@"]),
    pick(
        ["api.openai.com", "localhost", "10.0.0.7", "[::1]", "模型.example.cn", "a..b", "-a-"],
        ["[::1", "::1]", "", "xn--a", "ex ample.com", "a@b", "a%20b", "h\x01", "h\x7f"],
    ),
    pick(["", ":8080", ":1", ":65535"], [":0", ":65536", ":99999", ":8o", ":", ":-1", "::"]),
    pick(
        ["", "/", "/v1", "/api/paas/v4", "//", "/%zz", "/v1/"],
        ["/v 1", "/v1?x=1", "/v1#f", "/v1\n", "/v1\t", "/\u00a0"],
    ),
)
strings = st.one_of(
    st.text(max_size=70),
    st.from_regex(r"[a-z0-9][-a-z0-9.]{0,70}", fullmatch=True),
    st.sampled_from(["Models", "Chat", "Auto", "Manual", "Deployment", "openai", "dashscope",
                     "2024-07-09T00:00:00Z", "2024-07-09T00:00:00+08:00", "2024-07-09",
                     "2024-07-09T00:00:00", "2024-02-30T00:00:00Z", "2024-07-09 00:00:00Z",
                     "2024-07-09T00:00:00z", "2024-07-09T00:00:00.123456789Z", "a\n", "gpt 4o"]),
    urls,
)  # fmt: skip
values = st.one_of(
    strings,
    st.none(),
    st.booleans(),
    st.integers(-5, 5000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(strings, max_size=3),
    st.dictionaries(st.sampled_from(["method", "name", "key", "kind", 1]), strings, max_size=3),
)


def replaced(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASE)
    target: Any = spec
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return spec


def pruned(value: Any) -> Any:
    """As the API server does before defaulting: an object field that is null (and not
    nullable, as none of ours is) is dropped. Nulls inside lists stay, and fail validation."""
    if isinstance(value, dict):
        return {k: pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [pruned(v) for v in value]
    return value


def crd_errors(name: str, spec: Any) -> list[str]:
    obj = apply_defaults(
        SCHEMA,
        pruned(
            {
                "apiVersion": "llmfailover.dev/v1alpha1",
                "kind": "LLMRoute",
                "metadata": {"name": name, "namespace": "shop"},
                "spec": copy.deepcopy(spec),
            }
        ),
    )
    found = [e.message for e in VALIDATOR.iter_errors(obj)]
    if found:
        return found
    for path, rule in RULES:
        for value in values_at(obj, path):
            for k8s_types in (False, True):
                if not check(path, rule, value, k8s_types):
                    found.append(f"{path}: {rule['rule']}")
    return found


def parses(name: str, spec: Any) -> bool:
    try:
        parse_route_spec(spec, route_name=name, catalog=CATALOG)
    except SpecError:
        return False
    return True  # any other exception fails the test


@SETTINGS
@given(path=st.sampled_from(PATHS), value=values)
@example(path=("providers", 0, "baseURL"), value="http://[::1/v1")
@example(path=("providers", 0, "baseURL"), value="https://api.openai.com:99999/v1")
@example(path=("providers", 0, "baseURL"), value="https://xn--a/v1")
@example(path=("providers", 0, "baseURL"), value="https://u:pw@api.openai.com/v1")
@example(path=("providers", 0, "model"), value="gpt-4o\n")
@example(path=("providers", 0, "probe"), value={})
@example(path=("providers", 0), value={1: "x", "name": "a"})
def test_the_parser_is_never_looser_than_the_crd(path: tuple[Any, ...], value: Any) -> None:
    spec = replaced(path, value)
    if parses("chat", spec):
        assert crd_errors("chat", spec) == [], (
            f"the parser accepted what the CRD rejects: {value!r}"
        )


@SETTINGS
@given(name=st.text(max_size=80) | st.from_regex(r"[a-z0-9][-a-z0-9.]{0,80}", fullmatch=True))
def test_every_route_name_the_parser_accepts_makes_valid_names_and_labels(name: str) -> None:
    if not parses(name, BASE):
        return
    assert crd_errors(name, BASE) == []
    assert LABEL_VALUE.fullmatch(name)
    assert len(name) <= 63
    assert len(f"{name}-llm") <= 253  # the default ConfigMap name
    assert len(f"{name}.0123456789ab") <= 253  # an Event's name


@SETTINGS
@given(url=urls)
@example(url="https://模型.example.cn:8443/v1/")
@example(url="http://[::1]:65535//")
def test_every_accepted_base_url_can_be_requested(url: str) -> None:
    if not parses("chat", replaced(("providers", 0, "baseURL"), url)):
        return  # about one URL in eight from `urls` is good; the examples above always are
    assert re.fullmatch(URL_PATTERN, url)
    request = httpx.Request("GET", f"{url.rstrip('/')}/models")
    assert request.url.host
    assert request.url.port is None or 0 < request.url.port < 65536


def test_the_parser_uses_the_crds_url_pattern() -> None:
    item = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    pattern = item["properties"]["providers"]["items"]["properties"]["baseURL"]["pattern"]
    assert pattern == URL_PATTERN


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://api.openai.com:99999/v1", "port 99999"),
        ("https://xn--a/v1", "not a usable URL"),
        ("http://[::1/v1", "is not valid"),
        ("https://u:pw@api.openai.com/v1", "no credentials"),
        ("https://api.openai.com/v1\n", "is not valid"),
    ],
)
def test_urls_the_schema_may_admit_are_invalid_specs_that_say_why(url: str, problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_route_spec(
            replaced(("providers", 0, "baseURL"), url), route_name="c", catalog=CATALOG
        )
    assert caught.value.field == "spec.providers[0].baseURL"
    assert problem in str(caught.value)
