"""Spec parsing: typed values, preset filling, and errors that name the field (docs/reference.md#spec)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from llm_failover.catalog import ProbeMethod, default_catalog
from llm_failover.spec import Failback, SpecError, WorkloadKind, parse_route_spec

EXAMPLE: dict[str, Any] = {
    "providers": [
        {
            "name": "openai",
            "preset": "openai",
            "baseURL": "https://api.openai.com/v1",
            "model": "gpt-4o",
            "apiKeySecretRef": {"name": "openai", "key": "api-key"},
            "notAfter": "2024-07-09T00:00:00Z",
            "notBefore": "2024-06-25T00:00:00Z",
            "probe": {"method": "Models"},
        },
        {
            "name": "qwen",
            "preset": "dashscope",
            "model": "qwen-max",
            "apiKeySecretRef": {"name": "dashscope", "key": "api-key"},
        },
    ],
    "healthCheck": {
        "intervalSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
        "successThreshold": 2,
    },
    "failback": "Auto",
    "paused": False,
    "target": {
        "configMapName": "chat-llm",
        "secretName": "chat-llm-key",
        "restart": [{"kind": "Deployment", "name": "api"}],
    },
}


def parse(raw: Any) -> Any:
    return parse_route_spec(raw, route_name="chat", catalog=default_catalog())


def test_the_contract_example() -> None:
    spec = parse(EXAMPLE)
    openai, qwen = spec.providers
    assert openai.not_after == datetime(2024, 7, 9, tzinfo=UTC)
    assert openai.probe_method is ProbeMethod.MODELS
    assert qwen.base_url == "https://dashscope.aliyuncs.com/compatible-mode/v1"  # from the preset
    assert str(qwen.api_key) == "dashscope/api-key"
    assert spec.failback is Failback.AUTO
    assert spec.target.restart[0].kind is WorkloadKind.DEPLOYMENT
    assert spec.target.secret_name == "chat-llm-key"


def test_defaults() -> None:
    spec = parse({"providers": [{"name": "a", "baseURL": "http://127.0.0.1:9/v1/", "model": "m"}]})
    check = spec.health_check
    assert (
        check.interval_seconds,
        check.timeout_seconds,
        check.failure_threshold,
        check.success_threshold,
    ) == (10, 5, 3, 2)
    assert spec.target.config_map_name == "chat-llm"
    assert spec.target.secret_name is None
    assert spec.providers[0].base_url == "http://127.0.0.1:9/v1"  # trailing slash dropped
    assert spec.providers[0].probe_method is ProbeMethod.MODELS
    assert not spec.paused


def test_preset_probe_method_and_override() -> None:
    zhipu = {"name": "glm", "preset": "zhipu", "model": "glm-5"}
    assert parse({"providers": [zhipu]}).providers[0].probe_method is ProbeMethod.CHAT
    overridden = {**zhipu, "probe": {"method": "Models"}}
    assert parse({"providers": [overridden]}).providers[0].probe_method is ProbeMethod.MODELS


def with_change(path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(EXAMPLE)
    *parents, last = path.split(".")
    node: Any = spec
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is DELETE:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return spec


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        ("providers.1.preset", "nope", "spec.providers[1].preset", "unknown preset 'nope'"),
        ("providers.1.preset", DELETE, "spec.providers[1].baseURL", "required unless a preset"),
        ("providers.1.name", "openai", "spec.providers[1].name", "duplicate"),
        ("providers.0.name", "Open_AI", "spec.providers[0].name", "not valid"),
        ("providers.0.baseURL", "ftp://x", "spec.providers[0].baseURL", "http"),
        ("providers.0.model", DELETE, "spec.providers[0].model", "required"),
        ("providers.0.model", "", "spec.providers[0].model", "non-empty"),
        (
            "providers.0.notBefore",
            "2024-07-10T00:00:00Z",
            "spec.providers[0].notBefore",
            "earlier than notAfter",
        ),
        ("providers.0.notAfter", "next tuesday", "spec.providers[0].notAfter", "RFC 3339"),
        ("providers.0.notAfter", "2024-07-09T00:00:00", "spec.providers[0].notAfter", "time zone"),
        (
            "providers.0.probe",
            {"method": "Head"},
            "spec.providers[0].probe.method",
            "Models | Chat",
        ),
        (
            "providers.0.apiKeySecretRef",
            {"name": "openai"},
            "spec.providers[0].apiKeySecretRef.key",
            "required",
        ),
        ("providers.0.colour", "red", "spec.providers[0].colour", "unknown field"),
        ("providers", [], "spec.providers", "at least one"),
        ("providers", [EXAMPLE["providers"][1]] * 17, "spec.providers", "at most 16"),
        (
            "healthCheck.intervalSeconds",
            0,
            "spec.healthCheck.intervalSeconds",
            "between 1 and 3600",
        ),
        (
            "healthCheck.intervalSeconds",
            3601,
            "spec.healthCheck.intervalSeconds",
            "between 1 and 3600",
        ),
        ("healthCheck.timeoutSeconds", "5", "spec.healthCheck.timeoutSeconds", "integer"),
        (
            "healthCheck.failureThreshold",
            11,
            "spec.healthCheck.failureThreshold",
            "between 1 and 10",
        ),
        ("healthCheck.successThreshold", True, "spec.healthCheck.successThreshold", "integer"),
        ("failback", "Sometimes", "spec.failback", "Auto | Manual"),
        ("paused", "yes", "spec.paused", "true or false"),
        ("target.configMapName", "Chat_LLM", "spec.target.configMapName", "DNS-1123"),
        (
            "target.restart",
            [{"kind": "Job", "name": "x"}],
            "spec.target.restart[0].kind",
            "Deployment | StatefulSet | DaemonSet",
        ),
        (
            "target.restart",
            [{"kind": "Deployment", "name": "a"}] * 2,
            "spec.target.restart[1]",
            "listed twice",
        ),
    ],
)
def test_errors_name_the_field(path: str, value: Any, field: str, words: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse(with_change(path, value))
    assert caught.value.field == field
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"{field}: ")


def test_not_an_object() -> None:
    with pytest.raises(SpecError, match=r"^spec: must be an object"):
        parse(None)


def test_a_provider_may_say_how_its_model_is_probed_over_its_preset() -> None:
    from llm_failover.catalog import default_catalog
    from llm_failover.chatprobe import Thinking, TokenField
    from llm_failover.spec import SpecError, parse_route_spec

    def parse(chat: object) -> object:
        spec = {
            "providers": [
                {
                    "name": "qwen",
                    "preset": "dashscope",
                    "model": "qwen3-32b",
                    "probe": {"method": "Chat", "chat": chat},
                }
            ]
        }
        return parse_route_spec(spec, route_name="r", catalog=default_catalog()).providers[0].chat

    chat = parse({"tokens": 16, "tokenField": "max_completion_tokens"})
    assert chat.tokens == 16  # type: ignore[attr-defined]
    assert chat.token_field is TokenField.MAX_COMPLETION_TOKENS  # type: ignore[attr-defined]
    assert chat.thinking is Thinking.ENABLE_THINKING_FALSE  # type: ignore[attr-defined]  # the preset's
    for bad, field in (
        ({"tokens": 0}, "tokens"),
        ({"tokens": 5000}, "tokens"),
        ({"thinking": "off"}, "thinking"),
        ({"reasoningEffort": "max"}, "reasoningEffort"),
        ({"budget": 1}, "budget"),
    ):
        with pytest.raises(SpecError) as refused:
            parse(bad)
        assert refused.value.field == f"spec.providers[0].probe.chat.{field}"


def test_every_error_is_reported_at_once_each_naming_its_field() -> None:
    raw = copy.deepcopy(EXAMPLE)
    raw["providers"][0].pop("model")
    raw["providers"][0]["notBefore"] = "yesterday"
    raw["providers"][1]["preset"] = "nope"  # no spurious "baseURL: required" beside it
    raw["providers"].append({"name": "Bad Name", "baseURL": "ftp://x", "model": "m", "x": 1})
    raw["healthCheck"]["timeoutSeconds"] = 0
    raw["target"]["restart"] = [{"kind": "Job", "name": "api"}]
    raw["colour"] = "blue"
    with pytest.raises(SpecError) as caught:
        parse(raw)
    fields = [error.field for error in caught.value.errors]
    assert fields == [
        "spec.colour",
        "spec.providers[0].model",
        "spec.providers[0].notBefore",
        "spec.providers[1].preset",
        "spec.providers[2].x",
        "spec.providers[2].name",
        "spec.providers[2].baseURL",
        "spec.healthCheck.timeoutSeconds",
        "spec.target.restart[0].kind",
    ]
    assert caught.value.field == "spec.colour"  # the first one's, as before
    message = str(caught.value)
    assert message.startswith("spec.colour: unknown field")
    shown = [e for e in caught.value.errors if f"{e.field}: {e.problem}" in message]
    assert shown == list(caught.value.errors[: len(shown)])  # the first ones, in order
    if len(shown) < len(fields):  # bounded like an Event's message: the rest are counted
        assert message.endswith(f"; and {len(fields) - len(shown)} more errors")
    assert len(shown) >= 5


def test_a_message_of_many_errors_is_bounded() -> None:
    from llm_failover.spec import MAX_MESSAGE, MAX_PROVIDERS

    raw = {
        "providers": [
            {"name": f"P{i}", "baseURL": "x" * 300, "model": "has space"}
            for i in range(MAX_PROVIDERS)
        ]
    }
    with pytest.raises(SpecError) as caught:
        parse(raw)
    assert len(caught.value.errors) == 3 * MAX_PROVIDERS
    message = str(caught.value)
    assert len(message) <= MAX_MESSAGE
    shown = message.count("; ")  # errors shown in full, then "and N more errors"
    assert message.endswith(f"; and {3 * MAX_PROVIDERS - shown} more errors")
    assert message.startswith("spec.providers[0].name: 'P0' is not valid")


def test_one_error_alone_reads_as_before() -> None:
    raw = copy.deepcopy(EXAMPLE)
    raw["healthCheck"]["timeoutSeconds"] = 0
    with pytest.raises(SpecError) as caught:
        parse(raw)
    assert caught.value.errors == (caught.value,)
    assert str(caught.value) == "spec.healthCheck.timeoutSeconds: must be between 1 and 60, got 0"
