"""Property tests of the classifier: any bytes, any status, any header give exactly one state, a
bounded one-line message, and never a key; in time that does not grow with nesting or markup."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_failover.catalog import ProbeMethod, default_catalog
from llm_failover.classifier import (
    MESSAGE_LIMIT,
    HttpAnswer,
    Transport,
    TransportFailure,
    classify,
)
from llm_failover.redact import FRAGMENT, Redactor
from llm_failover.state import ProviderState

CATALOG = default_catalog()
DICTIONARIES = [CATALOG.common] + [CATALOG.dictionary(p) for p in CATALOG.presets.values()]
KEY = "sk-Q7w8E9r0T1y2U3i4O5p6A7s8D9f0"
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)
# Words the classifier looks for, so that the generated documents reach its deeper branches.
FIELDS = [
    "error",
    "code",
    "type",
    "message",
    "msg",
    "base_resp",
    "Response",
    "Error",
    "data",
    "choices",
    "models",
    "metadata",
    "raw",
    "status",
    "error_code",
    "header",
    "detail",
]
error_documents = st.recursive(
    st.sampled_from(
        [
            "insufficient_quota",
            "1113",
            "unsupported_country_region_territory",
            "429",
            KEY,
            KEY[3:20],
            "User location is not supported",
            1008,
            0,
            True,
            None,
        ]
    ),
    lambda inner: (
        st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4)
        | st.lists(inner, max_size=3)
        | inner.map(json.dumps)
    ),  # relays nest the upstream answer as a JSON string
    max_leaves=20,
)
markup = st.lists(
    st.sampled_from(
        [
            "<",
            ">",
            "<head>",
            "</head>",
            "<title>",
            "<script>",
            "</script",
            "&amp;",
            "&#x",
            "\x00",
            "\ufffd",
            "sk-",
            KEY,
            " ",
            "\n",
            "[",
            "{",
            '"',
            "\\",
        ]
    ),
    max_size=200,
).map("".join)


def bodies() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=2048),
        json_values.map(lambda v: json.dumps(v).encode()),
        error_documents.map(lambda v: json.dumps(v).encode()),
        markup.map(lambda t: t.encode("utf-8", errors="surrogatepass")),
        st.integers(1, 3000).map(lambda n: b"[" * n),
        st.integers(1, 3000).map(lambda n: b'{"error":' * n),
    )


def check(outcome: HttpAnswer | TransportFailure, *, errors: Any, method: ProbeMethod) -> None:
    redactor = Redactor()
    redactor.remember([KEY])
    result = classify(outcome, errors=errors, method=method, redact=redactor)
    assert isinstance(result.state, ProviderState)
    assert result.state is not ProviderState.UNKNOWN
    assert len(result.message) <= MESSAGE_LIMIT
    assert "\n" not in result.message
    assert "\r" not in result.message
    for start in range(len(KEY) - FRAGMENT + 1):
        assert KEY[start : start + FRAGMENT] not in result.message, result.message
    if result.state is ProviderState.HEALTHY:
        assert isinstance(outcome, HttpAnswer)
        assert 200 <= outcome.status < 300


@SETTINGS
@given(
    status=st.integers(100, 599) | st.sampled_from([200, 401, 403, 429, 451, 503]),
    body=bodies(),
    content_type=st.text(max_size=30),
    truncated=st.booleans(),
    note=st.text(max_size=30),
    errors=st.sampled_from(DICTIONARIES),
    method=st.sampled_from(list(ProbeMethod)),
)
def test_any_answer_gets_exactly_one_state(
    status: int,
    body: bytes,
    content_type: str,
    truncated: bool,
    note: str,
    errors: Any,
    method: ProbeMethod,
) -> None:
    answer = HttpAnswer(status, body, content_type, truncated=truncated, note=note)
    check(answer, errors=errors, method=method)


@SETTINGS
@given(kind=st.sampled_from(list(Transport)), detail=st.text(max_size=500) | markup)
def test_any_transport_failure_gets_exactly_one_state(kind: Transport, detail: str) -> None:
    check(TransportFailure(kind, detail + KEY), errors=CATALOG.common, method=ProbeMethod.MODELS)


@SETTINGS
@given(models=st.lists(st.text(max_size=30), min_size=1, max_size=50), cut=st.integers(1, 4000))
def test_a_model_list_cut_anywhere_after_it_opens_is_healthy(models: list[str], cut: int) -> None:
    body = json.dumps({"object": "list", "data": [{"id": m} for m in models]}).encode()
    opened = body.index(b"[") + 1
    prefix = body[: max(opened, min(cut, len(body) - 1))]
    answer = HttpAnswer(200, prefix, "application/json", truncated=True)
    result = classify(answer, errors=CATALOG.common, method=ProbeMethod.MODELS)
    assert result.state is ProviderState.HEALTHY
    # Cut before the list opens, or no list at all: not recognised as one.
    early = HttpAnswer(200, body[: opened - 1], "application/json", truncated=True)
    assert classify(early, errors=CATALOG.common, method=ProbeMethod.MODELS).state is (
        ProviderState.SERVER_ERROR
    )
