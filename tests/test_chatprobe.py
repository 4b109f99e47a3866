"""Chat probes that work on every model: the payload per model family, the refusals of the probe's
own parameters (Healthy) told from refusals of the key, the balance, the model or the region, the
`[chat]` table of presets, and the whole path through `Prober` against a loopback stand-in.

Every body is copied from a public report, as collected in docs/research/chat-probes.md; each row's
id names its source. Python-repr renderings are written back as the JSON the provider sent. Rows
marked "shape" put a reported message into the provider's documented envelope; rows marked
"synthetic" pin a rule, not a provider's body.
"""

# ruff: noqa: RUF001  (real bodies carry fullwidth punctuation, kept as sent)

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_failover import classifier
from llm_failover.catalog import (
    COMMON_FILE,
    CatalogError,
    ErrorDictionary,
    ProbeMethod,
    default_catalog,
    load_catalog,
)
from llm_failover.chatprobe import (
    DEFAULT_PROBE,
    MAX_PROBE_TOKENS,
    REASONING_TOKENS,
    ChatProbe,
    Thinking,
    TokenField,
    chat_payload,
    refused_parameter,
)
from llm_failover.classifier import HttpAnswer, classify
from llm_failover.prober import Credential, Endpoint, Prober
from llm_failover.spec import parse_route_spec
from llm_failover.state import ProviderState as S

CHAT = ProbeMethod.CHAT
CATALOG = default_catalog()
REFUSED = "refused, provider up (set the provider's probe.chat, or the preset's [chat])"


def dictionary(preset: str | None) -> ErrorDictionary:
    return CATALOG.dictionary(None if preset is None else CATALOG.get(preset))


def preset_probe(preset: str) -> ChatProbe:
    found = CATALOG.get(preset)
    assert found is not None
    return found.chat


# --- the payload, per model family -----------------------------------------------------------


def test_default_probe_is_one_max_token() -> None:
    assert chat_payload("gpt-4o", DEFAULT_PROBE) == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
        "stream": False,
    }


@pytest.mark.parametrize(
    "model",
    [
        "o1",
        "o1-mini",
        "o1-preview",
        "o3-mini",
        "o3",
        "o4-mini",
        "gpt-5",
        "gpt-5-nano",
        "gpt-5.1",
        "gpt-5.4-mini",
        "openai/o3-mini",  # OpenRouter's vendor prefix
        "O3-MINI",
    ],
)
def test_openai_reasoning_names_get_max_completion_tokens(model: str) -> None:
    # griptape-ai/ComfyUI-Griptape#312, teilomillet/gollm#33, koosoli/ESPHomeDesigner#379;
    # at least 16 as new-api's channel test and LiteLLM#30708.
    payload = chat_payload(model, DEFAULT_PROBE)
    assert payload["max_completion_tokens"] == REASONING_TOKENS
    assert "max_tokens" not in payload
    assert payload["model"] == model


@pytest.mark.parametrize(
    "model",
    ["gpt-4o", "gpt-4.1-mini", "gpt-50", "o1x", "omni-moderation-latest", "qwen-plus", "glm-4.6"],
)
def test_other_names_get_max_tokens(model: str) -> None:
    payload = chat_payload(model, DEFAULT_PROBE)
    assert payload["max_tokens"] == 1
    assert "max_completion_tokens" not in payload


def test_token_field_and_count_from_the_probe() -> None:
    everything = ChatProbe(token_field=TokenField.MAX_COMPLETION_TOKENS)
    assert chat_payload("gpt-4o", everything)["max_completion_tokens"] == 1
    assert chat_payload("o3", everything)["max_completion_tokens"] == REASONING_TOKENS
    assert (
        chat_payload("o3", ChatProbe(token_field=TokenField.MAX_COMPLETION_TOKENS, tokens=64))[
            "max_completion_tokens"
        ]
        == 64
    )
    forced = chat_payload("o3", ChatProbe(token_field=TokenField.MAX_TOKENS, tokens=8))
    assert forced["max_tokens"] == 8
    assert "max_completion_tokens" not in forced


@pytest.mark.parametrize(
    ("thinking", "model", "expected"),
    [
        # DashScope Qwen3 hybrids: infiniflow/ragflow#8972.
        (Thinking.ENABLE_THINKING_FALSE, "qwen3-32b", {"enable_thinking": False}),
        (Thinking.ENABLE_THINKING_FALSE, "qwen-plus", {"enable_thinking": False}),
        # Thinking-only: "restricted to True" (lobehub/lobehub#8613): no switch sent.
        (Thinking.ENABLE_THINKING_FALSE, "qwen3-235b-a22b-thinking-2507", {}),
        # Ark hybrids: Mai-with-u/MaiBot#1044; thinking-only refuses (CherryHQ/cherry-studio#7593).
        (
            Thinking.THINKING_TYPE_DISABLED,
            "doubao-seed-1-6-250615",
            {"thinking": {"type": "disabled"}},
        ),
        (Thinking.THINKING_TYPE_DISABLED, "doubao-seed-1-6-thinking-250715", {}),
        (Thinking.THINKING_TYPE_DISABLED, "Qwen/Qwen3-235B-A22B-Thinking-2507", {}),
        # "thinking" must be a name segment, not any substring.
        (Thinking.THINKING_TYPE_DISABLED, "unthinkingmodel", {"thinking": {"type": "disabled"}}),
        (Thinking.DEFAULT, "glm-4.6", {}),
    ],
)
def test_thinking_switch(thinking: Thinking, model: str, expected: dict[str, Any]) -> None:
    payload = chat_payload(model, ChatProbe(thinking=thinking))
    switches = {k: v for k, v in payload.items() if k in ("enable_thinking", "thinking")}
    assert switches == expected


def test_reasoning_effort_is_sent_only_when_set() -> None:
    assert "reasoning_effort" not in chat_payload("gpt-5", DEFAULT_PROBE)
    assert chat_payload("gpt-5", ChatProbe(reasoning_effort="minimal"))["reasoning_effort"] == (
        "minimal"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tokens": 0},
        {"tokens": MAX_PROBE_TOKENS + 1},
        {"tokens": True},
        {"reasoning_effort": "extreme"},
    ],
)
def test_probe_values_are_bounded(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        ChatProbe(**kwargs)


# What each shipped preset sends for a model it serves (docs/research/chat-probes.md §4).
# fmt: off
PRESET_PAYLOADS = [
    pytest.param("openai", "gpt-4o", {"max_completion_tokens": 1}, id="openai gpt-4o"),
    pytest.param("openai", "o3-mini", {"max_completion_tokens": REASONING_TOKENS}, id="openai o3-mini"),
    pytest.param("azure-openai", "gpt-4o-prod", {"max_tokens": 1}, id="azure gpt-4o deployment"),
    pytest.param("azure-openai", "o3-mini", {"max_completion_tokens": REASONING_TOKENS}, id="azure o3-mini deployment"),
    pytest.param("dashscope", "qwen3-32b", {"max_tokens": 1, "enable_thinking": False}, id="dashscope qwen3"),
    pytest.param("dashscope-intl", "qwen-plus", {"max_tokens": 1, "enable_thinking": False}, id="dashscope-intl qwen-plus"),
    pytest.param("dashscope", "qwen3-235b-a22b-thinking-2507", {"max_tokens": 1}, id="dashscope thinking-only"),
    pytest.param("ark", "doubao-seed-1-6-flash-250615", {"max_tokens": 1, "thinking": {"type": "disabled"}}, id="ark seed flash"),
    pytest.param("ark", "doubao-seed-1-6-thinking-250715", {"max_tokens": 1}, id="ark thinking-only"),
    pytest.param("zhipu", "glm-5.3", {"max_tokens": 1}, id="zhipu glm-5.3: no switch"),
    pytest.param("anthropic", "claude-sonnet-4-5", {"max_tokens": 1}, id="anthropic"),
]
# fmt: on


@pytest.mark.parametrize(("preset", "model", "expected"), PRESET_PAYLOADS)
def test_preset_payloads(preset: str, model: str, expected: dict[str, Any]) -> None:
    payload = chat_payload(model, preset_probe(preset))
    knobs = {k: v for k, v in payload.items() if k not in ("model", "messages", "stream")}
    assert knobs == expected
    assert payload["stream"] is False


# --- refusals of the probe's own parameters: Healthy -------------------------------------------

OPENAI_MAX_TOKENS = '{"error":{"message":"Unsupported parameter: \'max_tokens\' is not supported with this model. Use \'max_completion_tokens\' instead.","type":"invalid_request_error","param":"max_tokens","code":"unsupported_parameter"}}'
AZURE_MAX_TOKENS_CALLSTACK = '{"error":{"code":"unsupported_parameter","type":"invalid_request_error","param":"max_tokens","message":"Unsupported parameter: \'max_tokens\' is not supported with this model. Use \'max_completion_tokens\' instead.","callstack":"  File \\"/usr/local/bin/gunicorn\\", line 8, in <module>\\n    sys.exit(run())\\n"}}'
COPILOT_MAX_TOKENS = '{"error":{"message":"Unsupported parameter: \'max_tokens\' is not supported with this model. Use \'max_completion_tokens\' instead.","code":"invalid_request_body"}}'
OPENAI_BUDGET = '{"error":{"message":"Could not finish the message because max_tokens or model output limit was reached. Please try again with higher max_tokens.","type":"invalid_request_error","param":null,"code":null}}'
AZURE_MAX_COMPLETION_TOKENS = '{"error":{"message":"Unrecognized request argument supplied: max_completion_tokens","type":"invalid_request_error","param":null,"code":null}}'
OPENROUTER_MAX_OUTPUT = '{"error":{"message":"Provider returned error","code":400,"metadata":{"raw":"{\\n  \\"error\\": {\\n    \\"message\\": \\"Invalid \'max_output_tokens\': integer below minimum value. Expected a value >= 16, but got 1 instead.\\",\\n    \\"type\\": \\"invalid_request_error\\",\\n    \\"param\\": \\"max_output_tokens\\",\\n    \\"code\\": \\"integer_below_min_value\\"\\n  }\\n}","provider_name":"OpenAI"}},"user_id":"user_xxxx"}'
DASHSCOPE_ENABLE_THINKING = '{"error":{"code":"invalid_parameter_error","param":null,"message":"parameter.enable_thinking must be set to false for non-streaming calls","type":"invalid_request_error"},"id":"chatcmpl-f5a1f1ee-dac6-9c1b-9bdb-2f0c22b8af45","request_id":"f5a1f1ee-dac6-9c1b-9bdb-2f0c22b8af45"}'
LOBE_DASHSCOPE_THINKING_ONLY = '{"error":{"code":"invalid_parameter_error","type":"invalid_request_error","message":"Provider API error: <400> InternalError.Algo.InvalidParameter: The value of the enable_thinking parameter is restricted to True. (request id: 20250730xxxxxxxxxxxxxxxx)"},"endpoint":"***/v1","provider":"qwen"}'
DASHSCOPE_QWQ_STREAM = '{"error":{"code":"invalid_parameter_error","param":null,"message":"This model only support stream mode, please enable the stream parameter to access the model. ","type":"invalid_request_error"},"id":"chatcmpl-7ed765de-de61-9a89-87f2-da9f2e39f825","request_id":"7ed765de-de61-9a89-87f2-da9f2e39f825"}'
MODELSCOPE_THINKING = '{"error":{"code":"invalid_parameter_error","message":"enable thinking can not be support when `stream=False`.","type":"invalid_request_error"},"request_id":"214720c8-be84-4841-bcd4-5ccbb30921e0"}'
ARK_BOTH_FIELDS = '{"error":{"code":"InvalidParameter","message":"The parameter `max_tokens` specified in the request are not valid: max_tokens and max_completion_tokens cannot be set at the same time. Request id: 021788442465304a10e5427f14403173c1858eb68257f66aa64df","param":"max_tokens","type":"BadRequest"}}'
ARK_ABOVE_MAX = '{"error":{"code":"InvalidParameter","message":"The parameter max_tokens specified in the request is not valid: integer above maximum value, expected a value <= 32768, but got 64000 instead. Request id: 0217724325966514087c9e55f8b322b82cd17f72450d06e16ef7b","param":"max_tokens","type":"BadRequest"}}'
ARK_THINKING_TYPE = '{"error":{"code":"InvalidParameter","message":"Unsupported thinking type for the current model: disabled Request id: xxxx","param":"thinking","type":"BadRequest"}}'
ZHIPU_ALWAYS_THINKS = '{"error":{"code":"1210","message":"This model always engages in thinking and cannot be disabled; please use low, high, or max"}}'
ZHIPU_ALWAYS_THINKS_CN = '{"error":{"code":"1210","message":"该模型始终思考，不支持关闭思考；请使用 low、high 或 max。"}}'
ZHIPU_1214 = '{"error":{"code":"1214","message":"max_tokens参数非法。请检查文档。"}}'
RELAY_MINIMUM_TEXT = "max_tokens value 1 is below minimum allowed 2"
DEEPSEEK_RANGE = '{"error":{"message":"Invalid max_tokens value, the valid range of max_tokens is [1, 8192]","type":"invalid_request_error","param":null,"code":"invalid_request_error"}}'

# fmt: off
REFUSALS = [
    pytest.param("openai", OPENAI_MAX_TOKENS, "max_tokens", id="openai o-series griptape-ai/ComfyUI-Griptape#312"),
    pytest.param("azure-openai", OPENAI_MAX_TOKENS, "max_tokens", id="azure o1 langgenius/dify#9746"),
    pytest.param("azure-openai", AZURE_MAX_TOKENS_CALLSTACK, "max_tokens", id="azure callstack lobehub/lobehub#5909"),
    pytest.param(None, COPILOT_MAX_TOKENS, "max_tokens", id="copilot proxy caozhiyuan/copilot-api#164"),
    pytest.param("openai", OPENAI_BUDGET, "max_tokens", id="openai budget BerriAI/litellm#26987 (shape)"),
    pytest.param("azure-openai", AZURE_MAX_COMPLETION_TOKENS, "max_completion_tokens", id="azure gpt-4o openai/openai-python#1724"),
    pytest.param(None, OPENROUTER_MAX_OUTPUT, "max_output_tokens", id="openrouter musistudio/claude-code-router#994"),
    pytest.param("dashscope", DASHSCOPE_ENABLE_THINKING, "enable_thinking", id="dashscope infiniflow/ragflow#8972"),
    pytest.param("dashscope-intl", DASHSCOPE_ENABLE_THINKING, "enable_thinking", id="dashscope-intl infiniflow/ragflow#8972"),
    pytest.param("dashscope", LOBE_DASHSCOPE_THINKING_ONLY, "enable_thinking", id="dashscope thinking-only lobehub/lobehub#8613"),
    pytest.param("dashscope", DASHSCOPE_QWQ_STREAM, "stream", id="dashscope qwq infiniflow/ragflow#5912"),
    pytest.param(None, MODELSCOPE_THINKING, "thinking", id="modelscope musistudio/claude-code-router#948"),
    pytest.param("ark", ARK_BOTH_FIELDS, "max_tokens", id="ark Tencent/WeKnora#3014"),
    pytest.param("ark", ARK_ABOVE_MAX, "max_tokens", id="ark yiliqi78/TOKENICODE#3"),
    pytest.param("ark", ARK_THINKING_TYPE, "thinking", id="ark CherryHQ/cherry-studio#7593 (shape)"),
    pytest.param("zhipu", ZHIPU_ALWAYS_THINKS, "thinking", id="zhipu 1210 ltmoerdani/opencode-copilot-chat#162 (shape)"),
    pytest.param("zai", ZHIPU_ALWAYS_THINKS_CN, "thinking", id="zai 1210 OpenCSGs/csglite#194 (shape)"),
    pytest.param("zhipu", ZHIPU_1214, "max_tokens", id="zhipu 1214 lobehub/lobehub#1398 (shape)"),
    pytest.param(None, RELAY_MINIMUM_TEXT, "max_tokens", id="relay farion1231/cc-switch#1572"),
    pytest.param("deepseek", DEEPSEEK_RANGE, "max_tokens", id="deepseek pollinations/pollinations#1291"),
]
# fmt: on


@pytest.mark.parametrize(("preset", "body", "parameter"), REFUSALS)
def test_refusal_of_the_probe_is_healthy(preset: str | None, body: str, parameter: str) -> None:
    content_type = "text/plain" if not body.startswith("{") else "application/json"
    answer = HttpAnswer(400, body.encode(), content_type)
    result = classify(answer, errors=dictionary(preset), method=CHAT)
    assert result.state is S.HEALTHY, result.message
    assert result.http_status == 400
    assert result.message.startswith(f"probe's {parameter} {REFUSED}: "), result.message
    assert len(result.message) <= classifier.MESSAGE_LIMIT
    assert "hint:" not in result.message


@pytest.mark.parametrize("status", [413, 422])
def test_other_4xx_refusals_count_too(status: int) -> None:
    # synthetic: the same refusal under a gateway's 422 or 413
    result = classify(
        HttpAnswer(status, OPENAI_MAX_TOKENS.encode()), errors=dictionary("openai"), method=CHAT
    )
    assert result.state is S.HEALTHY


def test_a_models_probe_never_counts_a_refusal() -> None:
    # GET /models sends no parameters: a body like this there is not the probe's doing.
    result = classify(
        HttpAnswer(400, OPENAI_MAX_TOKENS.encode()),
        errors=dictionary("openai"),
        method=ProbeMethod.MODELS,
    )
    assert result.state is S.SERVER_ERROR


@pytest.mark.parametrize("status", [200, 401, 402, 403, 404, 408, 429, 451, 500, 503])
def test_statuses_that_say_who_may_call_are_never_a_refusal(status: int) -> None:
    # synthetic: the refusal's body under a status that means something else
    assert refused_parameter(status, "Unsupported parameter: 'max_tokens' is not supported") is None
    result = classify(
        HttpAnswer(status, OPENAI_MAX_TOKENS.encode()), errors=dictionary("openai"), method=CHAT
    )
    assert result.state is not S.HEALTHY


# --- not the probe's fault: the key, the balance, the model, the region ------------------------

OPENAI_TEMPERATURE = '{"error":{"message":"Unsupported value: \'temperature\' does not support 0.01 with this model. Only the default (1) value is supported.","type":"invalid_request_error","param":"temperature","code":"unsupported_value"}}'
DASHSCOPE_401 = '{"error":{"message":"Incorrect API key provided. For details, see: https://www.alibabacloud.com/help/en/model-studio/error-code#apikey-error","type":"invalid_request_error","param":null,"code":"invalid_api_key"},"request_id":"6ce1ad79-c7e2-9afb-acf8-e68191913351"}'
DASHSCOPE_ARREARAGE = '{"error":{"code":"Arrearage","param":null,"message":"Access denied, please make sure your account is in good standing.","type":"Arrearage"},"id":"chatcmpl-f9fdb027-830c-9e05-8366-ce479a878825","request_id":"f9fdb027-830c-9e05-8366-ce479a878825"}'
DEEPSEEK_402 = '{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}'
OPENAI_MODEL = '{"error":{"message":"The requested model \'gpt-4-1106-preview\' does not exist.","type":"invalid_request_error","param":"model","code":"model_not_found"}}'
QIANFAN_INVALID_MODEL = '{"error":{"code":"invalid_model","message":"The model does not exist or you do not have access to it.","type":"invalid_request_error"},"id":"as-bkv66krfus"}'
ZHIPU_1002 = '{"error":{"code":"1002","message":"Authorization Token非法，请确认Authorization Token正确传递。"}}'
ZHIPU_1113_EN = '{"error":{"code":"1113","message":"Insufficient balance or no resource package. Please recharge."},"request_id":"202603142338501da90b7ebe1d473d"}'
AZURE_DEPLOYMENT = '{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again."}}'
OPENAI_GEO = '{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","param":null,"type":"request_forbidden"}}'
LITELLM_EMPTY = "litellm.BadGatewayError: upstream returned a successful but empty completion"

# fmt: off
NOT_THE_PROBE = [
    pytest.param("openai", 400, OPENAI_TEMPERATURE, S.SERVER_ERROR, id="temperature owndev/Open-WebUI-Functions#98"),
    pytest.param("dashscope", 401, DASHSCOPE_401, S.UNAUTHORIZED, id="key BerriAI/litellm#12571"),
    pytest.param("dashscope", 400, DASHSCOPE_ARREARAGE, S.QUOTA_EXHAUSTED, id="arrears hsliuping/TradingAgents-CN#170"),
    pytest.param("deepseek", 402, DEEPSEEK_402, S.QUOTA_EXHAUSTED, id="balance BerriAI/litellm#10403"),
    pytest.param("openai", 400, OPENAI_MODEL, S.MODEL_UNAVAILABLE, id="model skorokithakis/sysaidmin#9"),
    pytest.param("qianfan", 401, QIANFAN_INVALID_MODEL, S.MODEL_UNAVAILABLE, id="model qianfan pi-go outcome.go"),
    pytest.param("zhipu", 401, ZHIPU_1002, S.UNAUTHORIZED, id="key zhipu FoundationAgents/MetaGPT#1373"),
    pytest.param("zai", 429, ZHIPU_1113_EN, S.QUOTA_EXHAUSTED, id="balance zai 7836246/cursor2api#30"),
    pytest.param("azure-openai", 404, AZURE_DEPLOYMENT, S.MODEL_UNAVAILABLE, id="deployment chatboxai/chatbox#861"),
    pytest.param("openai", 403, OPENAI_GEO, S.GEO_BLOCKED, id="region jlcodes99/cockpit-tools#611"),
]
# fmt: on


@pytest.mark.parametrize(("preset", "status", "body", "state"), NOT_THE_PROBE)
def test_real_failures_are_not_probe_refusals(
    preset: str, status: int, body: str, state: S
) -> None:
    result = classify(HttpAnswer(status, body.encode()), errors=dictionary(preset), method=CHAT)
    assert result.state is state, result.message
    assert REFUSED not in result.message
    # The detector alone says no as well, even were the status a 400.
    message = json.loads(body)["error"]["message"]
    assert refused_parameter(400, message) is None


@pytest.mark.parametrize(
    "text",
    [
        LITELLM_EMPTY,  # "upstream" holds "stream": not the parameter
        "Invalid value for stream_options: must be an object",  # synthetic: stream_options
        "enable_thinking_budget must be at least 128",  # synthetic: not a parameter we send
        "Invalid request: messages must not be empty",  # synthetic: no probe parameter
    ],
)
def test_only_whole_parameter_names_count(text: str) -> None:
    assert refused_parameter(400, text) is None


def test_a_real_failure_wins_over_a_mention_of_the_probe() -> None:
    # synthetic: an empty balance that mentions max_tokens is an empty balance
    body = {"error": {"code": "insufficient_quota", "message": "max_tokens must be at least 1"}}
    result = classify(
        HttpAnswer(400, json.dumps(body).encode()), errors=dictionary("openai"), method=CHAT
    )
    assert result.state is S.QUOTA_EXHAUSTED
    mixed = "Unsupported parameter: 'max_tokens' (your API key is invalid)"
    assert refused_parameter(400, mixed) is None


def test_refusal_message_is_redacted_and_clipped() -> None:
    key = "sk-live-0123456789abcdefghij"
    body = {"error": {"message": f"max_tokens must be at least 2 for {key} " + "x" * 400}}
    result = classify(
        HttpAnswer(400, json.dumps(body).encode()),
        errors=dictionary(None),
        method=CHAT,
        redact=lambda text: text.replace(key, "***"),
    )
    assert result.state is S.HEALTHY
    assert key not in result.message
    assert len(result.message) <= classifier.MESSAGE_LIMIT


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens_" * 6000,
        "_max_tokens" * 6000,
        "upstream" * 8000,
        "unsupported " + "thinkingx" * 7000,
        "a" * 65536,
        "思考" * 30000,
    ],
)
def test_the_detector_stays_linear_on_hostile_text(text: str) -> None:
    started = time.perf_counter()
    for _ in range(20):
        refused_parameter(400, text)
    assert time.perf_counter() - started < 1.0


# --- the [chat] table of presets ---------------------------------------------------------------

GOOD_COMMON = '[codes]\nUnauthorized = ["invalid_api_key"]\n'
GOOD_PRESET = 'id = "p"\ntitle = "P"\nbase_url = "https://p.example/v1"\nsources = ["x/y#1"]\n'


def load(tmp_path: Path, chat: str) -> ChatProbe:
    (tmp_path / COMMON_FILE).write_text(GOOD_COMMON, encoding="utf-8")
    (tmp_path / "p.toml").write_text(GOOD_PRESET + chat, encoding="utf-8")
    found = load_catalog(tmp_path).get("p")
    assert found is not None
    return found.chat


def test_a_preset_without_chat_gets_the_default(tmp_path: Path) -> None:
    assert load(tmp_path, "") == DEFAULT_PROBE


def test_a_chat_table_is_read(tmp_path: Path) -> None:
    probe = load(
        tmp_path,
        '[chat]\ntoken_field = "max_completion_tokens"\ntokens = 8\n'
        'thinking = "thinking.type=disabled"\nreasoning_effort = "low"\n',
    )
    assert probe == ChatProbe(
        TokenField.MAX_COMPLETION_TOKENS, 8, Thinking.THINKING_TYPE_DISABLED, "low"
    )


@pytest.mark.parametrize(
    ("chat", "words"),
    [
        ("[chat]\nmax_tokens = 1\n", "p.toml: chat: unknown key(s) max_tokens"),
        (
            "[chat]\ntokens = 1\nbudget = 2\nextra = 3\n",
            "p.toml: chat: unknown key(s) budget, extra",
        ),
        ("[chat]\ntokens = 0\n", "p.toml: chat: tokens must be 1 to 4096"),
        ('[chat]\ntokens = "1"\n', "p.toml: chat.tokens: expected an integer"),
        ("[chat]\ntokens = true\n", "p.toml: chat.tokens: expected an integer"),
        (
            '[chat]\ntoken_field = "max_output_tokens"\n',
            "p.toml: chat.token_field: 'max_output_tokens' is not one of",
        ),
        ('[chat]\nthinking = "off"\n', "p.toml: chat.thinking: 'off' is not one of"),
        ('[chat]\nreasoning_effort = "extreme"\n', "p.toml: chat: reasoning_effort must be one of"),
        ("[chat]\nreasoning_effort = 1\n", "p.toml: chat.reasoning_effort: expected a string"),
        ('chat = "max_tokens"\n', "p.toml: chat: expected a table"),
    ],
)
def test_a_bad_chat_table_is_refused(tmp_path: Path, chat: str, words: str) -> None:
    with pytest.raises(CatalogError) as info:
        load(tmp_path, chat)
    assert words in str(info.value)


def test_shipped_presets_that_need_it_have_a_chat_table() -> None:
    # docs/research/chat-probes.md §4
    assert preset_probe("openai").token_field is TokenField.MAX_COMPLETION_TOKENS
    assert preset_probe("azure-openai") == DEFAULT_PROBE  # "auto", written out
    for preset in ("dashscope", "dashscope-intl"):
        assert preset_probe(preset).thinking is Thinking.ENABLE_THINKING_FALSE
    assert preset_probe("ark").thinking is Thinking.THINKING_TYPE_DISABLED
    for preset in ("zhipu", "zai", "anthropic", "deepseek", "moonshot", "qianfan", "minimax"):
        assert preset_probe(preset) == DEFAULT_PROBE, preset


def test_the_spec_takes_the_presets_probe() -> None:
    spec = parse_route_spec(
        {
            "providers": [
                {"name": "qwen", "preset": "dashscope", "model": "qwen3-32b"},
                {"name": "own", "baseURL": "https://llm.example/v1", "model": "qwen3-32b"},
            ]
        },
        route_name="chat",
        catalog=CATALOG,
    )
    qwen, own = spec.providers
    assert qwen.chat == preset_probe("dashscope")
    assert own.chat == DEFAULT_PROBE


# --- end to end: Prober against a loopback stand-in --------------------------------------------

KEY = "sk-chatprobe-0123456789abcdef"
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "length"}
    ],
}
INVALID_KEY = {
    "error": {
        "message": "Incorrect API key provided.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}


@dataclass
class ReasoningStandIn:
    """OpenAI-like on 127.0.0.1: o-series-like models refuse `max_tokens`; Qwen3-like models
    refuse to think in a non-streaming call unless told `enable_thinking: false`."""

    refuse_max_tokens: frozenset[str] = frozenset({"reasoner-prod", "o3-mini"})
    hybrid_thinkers: frozenset[str] = frozenset({"qwen3-32b"})
    bodies: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def answer(self, authorization: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.bodies.append(body)
        if authorization != f"Bearer {KEY}":
            return 401, INVALID_KEY
        model = body.get("model")
        if model in self.refuse_max_tokens and "max_tokens" in body:
            return 400, json.loads(OPENAI_MAX_TOKENS)
        if model in self.hybrid_thinkers and body.get("enable_thinking") is not False:
            return 400, json.loads(DASHSCOPE_ENABLE_THINKING)
        return 200, COMPLETION


@pytest.fixture
def stand_in() -> Iterator[ReasoningStandIn]:
    provider = ReasoningStandIn()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            status, answer = provider.answer(self.headers.get("Authorization", ""), body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: object) -> None:
            pass

    provider.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    provider.server.daemon_threads = True
    thread = threading.Thread(target=provider.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        provider.server.shutdown()
        provider.server.server_close()


def endpoint(
    stand_in: ReasoningStandIn, model: str, *, key: str = KEY, chat: ChatProbe = DEFAULT_PROBE
) -> Endpoint:
    return Endpoint.for_provider(
        base_url=stand_in.base_url,
        method=CHAT,
        model=model,
        credential=Credential.of(key),
        auth=CATALOG.get("openai").auth,  # type: ignore[union-attr]
        errors=dictionary("openai"),
        chat=chat,
    )


async def probe(target: Endpoint) -> tuple[S, str]:
    async with httpx.AsyncClient() as client:
        report = await Prober(client=client).probe(target, timeout_seconds=5)
    return report.classification.state, report.classification.message


async def test_a_model_that_refuses_max_tokens_is_healthy(stand_in: ReasoningStandIn) -> None:
    # A deployment whose name hides that it is a reasoning model: the probe sends max_tokens.
    state, message = await probe(endpoint(stand_in, "reasoner-prod"))
    assert stand_in.bodies[-1]["max_tokens"] == 1
    assert state is S.HEALTHY
    assert message.startswith(f"probe's max_tokens {REFUSED}: unsupported_parameter: ")


async def test_a_reasoning_name_is_asked_the_way_it_accepts(stand_in: ReasoningStandIn) -> None:
    state, message = await probe(endpoint(stand_in, "o3-mini"))
    assert stand_in.bodies[-1]["max_completion_tokens"] == REASONING_TOKENS
    assert "max_tokens" not in stand_in.bodies[-1]
    assert (state, message) == (S.HEALTHY, "")


async def test_a_wrong_key_is_still_unauthorized(stand_in: ReasoningStandIn) -> None:
    state, message = await probe(endpoint(stand_in, "reasoner-prod", key="sk-wrong-0000000000000"))
    assert state is S.UNAUTHORIZED
    assert "invalid_api_key" in message
    assert REFUSED not in message


async def test_the_presets_probe_reaches_the_prober(stand_in: ReasoningStandIn) -> None:
    with_preset = await probe(endpoint(stand_in, "qwen3-32b", chat=preset_probe("dashscope")))
    assert stand_in.bodies[-1]["enable_thinking"] is False
    assert with_preset == (S.HEALTHY, "")
    without = await probe(endpoint(stand_in, "qwen3-32b"))
    assert "enable_thinking" not in stand_in.bodies[-1]
    assert without[0] is S.HEALTHY
    assert without[1].startswith(f"probe's enable_thinking {REFUSED}: ")


def test_routes_asking_a_model_differently_get_a_probe_each() -> None:
    base = {
        "base_url": "http://h/v1",
        "method": CHAT,
        "model": "qwen3-32b",
        "credential": Credential.of("k"),
        "auth": CATALOG.get("openai").auth,  # type: ignore[union-attr]
        "errors": CATALOG.common,
    }
    plain = Endpoint.for_provider(**base)  # type: ignore[arg-type]
    switched = Endpoint.for_provider(**base, chat=preset_probe("dashscope"))  # type: ignore[arg-type]
    assert plain.chat == DEFAULT_PROBE
    assert switched.chat == preset_probe("dashscope")
    assert plain != switched
    # The Models method asks no model: its endpoint is the same whatever the preset says.
    models = {**base, "method": ProbeMethod.MODELS}
    assert Endpoint.for_provider(**models) == Endpoint.for_provider(  # type: ignore[arg-type]
        **models, chat=preset_probe("dashscope")
    )
