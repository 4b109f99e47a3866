"""`reset_time()` on real provider answers, on hostile ones, and as a property.

Every provider row quotes a public report or a provider's documentation (docs/research/reset-times.md
lists them); its id names the source. Python-repr renderings in reports are written back as the
JSON the provider sent. Where an issue only shows the message, the envelope is the one the
provider documents, and the row says so. Rows marked "synthetic" pin a rule, not a provider body.

`now` is the moment the answer came: taken from the report when it gives one (Zhipu's request ids
start with the Beijing wall clock, e.g. 20260912001903… = 2026-09-11T16:19:03Z).
"""

# ruff: noqa: RUF001  (real bodies carry fullwidth punctuation, kept as sent; fullwidth digits test
# that only ASCII digits count)

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_failover.resettime import BEIJING, MAX_RESET, reset_time


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@dataclass(frozen=True)
class Case:
    id: str
    status: int
    body: str
    now: str
    expected: str | None  # ISO time, "clamped" (now + MAX_RESET), or None
    headers: dict[str, str] = field(default_factory=dict)


def expected_time(case: Case) -> datetime | None:
    if case.expected is None:
        return None
    if case.expected == "clamped":
        return at(case.now) + MAX_RESET
    if case.expected.startswith("+"):
        return at(case.now) + timedelta(seconds=float(case.expected[1:]))
    return at(case.expected)


# --- Zhipu (bigmodel.cn) / Z.ai: naive stamps in Beijing time --------------------------------------

ZAI_1308_ANTHROPIC = (
    '{"type":"error","error":{"type":"rate_limit_error","code":"1308","message":"[1308][Usage '
    "limit reached for 5 hour. Your limit will reset at 2026-09-12 00:35:41]"
    '[20260912001903b4955568412247d7]"},"request_id":"20260912001903b4955568412247d7"}'
)
ZAI_1308_ANTHROPIC_2 = (
    '{"type":"error","error":{"type":"rate_limit_error","code":"1308","message":"[1308][Usage '
    "limit reached for 5 hour. Your limit will reset at 2026-09-14 22:14:42]"
    '[20260914215252bab672259fc54d1f]"},"request_id":"20260914215252bab672259fc54d1f"}'
)
ZAI_1308_OPENAI = (
    '{"error":{"code":"1308","message":"Usage limit reached for 5 hour. Your limit will reset at '
    '2026-09-09 05:38:28"}}'
)
ZHIPU_1308_CN = (
    '{"error":{"code":"1308","message":"已达到 5 小时的使用上限。您的限额将在 2026-08-25 07:41:44 '
    '重置。"}}'
)
# The same body as Zhipu sends it with ensure_ascii JSON: the text is only readable once parsed.
ZHIPU_1308_CN_ESCAPED = json.dumps(json.loads(ZHIPU_1308_CN))
ZAI_1310 = (  # envelope per docs.z.ai/api-reference/api-code; message from openclaw/openclaw#33785
    '{"error":{"code":"1310","message":"Weekly/Monthly Limit Exhausted. Your limit will reset at '
    '2026-03-06 22:19:54"}}'
)
ZHIPU_1310_CN = (  # QuantumNous/new-api TestParsePlanQuotaResetUntil, in the documented envelope
    '{"error":{"code":"1310","message":"您已达到每周/每月使用上限，您的限额将在 2026-06-24 01:20:15 '
    '重置。"}}'
)
ZHIPU_1302_CN = '{"error":{"code":"1302","message":"您的账户已达到速率限制，请您控制请求频率"}}'
ZHIPU_1113_CN = '{"error":{"code":"1113","message":"余额不足或无可用资源包,请充值。"}}'

# --- MiniMax Token Plan (2056), Volcengine Ark coding plan: stamps with an offset ---------------

MINIMAX_2056 = (
    '{"type":"error","error":{"type":"rate_limit_error","message":"usage limit exceeded, 5-hour '
    "usage limit reached for Token Plan Starter (0/0 used), resets at 2026-05-15T15:00:00Z "
    '(2056)"},"request_id":"065651beccc4579e5c7e66c939d1987e"}'
)
MINIMAX_2056_CN = (  # QuantumNous/new-api TestParsePlanQuotaResetUntil, in the OpenAI envelope
    '{"error":{"message":"usage limit exceeded, 5-hour usage limit reached for Token Plan Plus '
    '(6596000/6596000 used), resets at 2026-06-06T05:00:00+08:00 (2056)"}}'
)
MINIMAX_1002 = (
    '{"base_resp":{"status_code":1002,"status_msg":"rate limit, please try again later"}}'
)
ARK_WEEKLY = (
    '{"error":{"code":"AccountQuotaExceeded","message":"You have exceeded the weekly usage quota. '
    'It will reset at 2026-06-29 00:00:00 +0800 CST.","type":"TooManyRequests"}}'
)
ARK_RPM = (
    '{"error":{"code":"RateLimitExceeded.EndpointRPMExceeded","message":"The request has '
    'exceeded the RPM limit of the endpoint. Request id: 021790123456789abcdef","param":"",'
    '"type":"TooManyRequests"}}'
)

# --- OpenAI, Azure OpenAI, Moonshot: waits in prose ---------------------------------------------

OPENAI_TPM_644MS = (
    '{"error":{"message":"Rate limit reached for gpt-4o in organization org-uOtiSEwvUnroadaOnJJquBEC '
    "on tokens per min (TPM): Limit 30000, Used 29937, Requested 385. Please try again in 644ms."
    '","type":"tokens","param":null,"code":"rate_limit_exceeded"}}'
)
OPENAI_TPM_9S = (
    '{"error":{"message":"Rate limit reached for gpt-4 in organization org-uVqpjtJiKqvVJMVfvpaounIh '
    "on tokens per min (TPM): Limit 10000, Used 8554, Requested 3082. Please try again in 9.816s. "
    'Visit https://platform.openai.com/account/rate-limits to learn more.","type":"tokens",'
    '"param":null,"code":"rate_limit_exceeded"}}'
)
OPENAI_RPD = (  # wording of the RPD 429 (the 28m48s sample is in docs/research/reset-times.md)
    '{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-x on requests '
    "per day (RPD): Limit 200, Used 200, Requested 1. Please try again in 7m12s. Visit "
    'https://platform.openai.com/account/rate-limits to learn more.","type":"requests",'
    '"param":null,"code":"rate_limit_exceeded"}}'
)
OPENAI_QUOTA = (
    '{"error":{"message":"You exceeded your current quota, please check your plan and billing '
    'details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}'
)
AZURE_9S = (  # message from microsoft/sample-app-aoai-chatGPT#406; envelope from jasonacox/TinyLLM#17
    '{"error":{"code":"429","message":"Requests to the Creates a completion for the chat message '
    "Operation under Azure OpenAI API version 2023-03-15-preview have exceeded token rate limit of "
    "your current OpenAI S0 pricing tier. Please retry after 9 seconds. Please go here: "
    "https://aka.ms/oai/quotaincrease if you would like to further increase the default rate "
    'limit."}}'
)
AZURE_DAY = (
    '{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure '
    "OpenAI API version 2024-05-01-preview have exceeded token rate limit of your current OpenAI S0 "
    "pricing tier. Please retry after 86400 seconds. Please go here: https://aka.ms/oai/"
    'quotaincrease if you would like to further increase the default rate limit."}}'
)
AZURE_SEARCH_DEMO = "Rate limit is exceeded. Try again in 30 seconds."
MOONSHOT_RPM = (
    '{"error":{"message":"Your account org-e664b178c0f74d818f6b62f87efa49f7'
    "<ak-f3t8pfk16fki11gzh6i1> request reached organization max RPM: 3, please try again after "
    '1 seconds","type":"rate_limit_reached_error"}}'
)
MOONSHOT_TPM = (
    '{"error":{"type":"rate_limit_reached_error","message":"Your account xxxxx / proj-xxxxxx '
    "<ak-xxxxx> request reached project TPM rate limit, current: 1410, limit: 100, see "
    'https://platform.moonshot.cn/docs/pricing/limits"}}'
)
KIMI_CODE_WEEKLY = (
    '{"error":{"message":"You\'ve reached your weekly (7-day) usage limit. Your quota will reset '
    "when the current 7-day window ends. To continue now, purchase extra usage or upgrade your "
    'plan: https://www.kimi.com/membership/subscription?tab=quota","type":"access_terminated_error"}}'
)
QIANFAN_RPM = (
    '{"error":{"code":"rpm_rate_limit_exceeded","message":"Rate limit reached for RPM",'
    '"type":"rate_limit_exceeded"},"id":"as-wbx23eriqh"}'
)
SILICONFLOW_429 = (
    '{"message":"Request was rejected due to rate limiting. Details: TPM limit reached.",'
    '"data":null}'
)
ANTHROPIC_ITPM = (
    '{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the '
    "rate limit for your organization (a22cf6e6-a940-4fff-8c4c-1580816ac7be) of 1,000,000 input "
    "tokens per minute. For details, refer to: https://docs.anthropic.com/en/api/rate-limits. You "
    "can see the response headers for current usage. Please reduce the prompt length or the "
    "maximum tokens requested, or try again later. You may also contact sales at "
    'https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase."}}'
)

# --- Gemini: RetryInfo ------------------------------------------------------------------------------

GEMINI_RETRY_INFO = json.dumps(
    {
        "error": {
            "code": 429,
            "message": "You exceeded your current quota, please check your plan and billing "
            "details. For more information on this error, head to: "
            "https://ai.google.dev/gemini-api/docs/rate-limits.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": "generativelanguage.googleapis.com/"
                            "generate_content_free_tier_input_token_count",
                            "quotaId": "GenerateContentInputTokensPerModelPerMinute-FreeTier",
                            "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
                            "quotaValue": "250000",
                        }
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [
                        {
                            "description": "Learn more about Gemini API quotas",
                            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                        }
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s"},
            ],
        }
    },
    indent=2,
)
# The same answer relayed by a proxy that puts the upstream body in `error.message` as a string.
GEMINI_RELAYED = json.dumps(
    {"error": {"message": GEMINI_RETRY_INFO + "\n", "code": 429, "status": "Too Many Requests"}}
)
GEMINI_PLEASE_RETRY = json.dumps(
    {
        "error": {
            "code": 429,
            "message": "You exceeded your current quota, please check your plan and billing "
            "details. For more information on this error, head to: https://ai.google.dev/gemini-"
            "api/docs/rate-limits. To monitor your current usage, head to: https://ai.dev/usage?"
            "tab=rate-limit. \n* Quota exceeded for metric: generativelanguage.googleapis.com/"
            "generate_content_paid_tier_input_token_count, limit: 4000000\nPlease retry in "
            "47.434392449s.",
            "status": "RESOURCE_EXHAUSTED",
        }
    }
)
# The OpenAI-compatible endpoint wraps the same error in a list.
GEMINI_COMPAT_LIST = json.dumps([json.loads(GEMINI_RETRY_INFO)])

# --- OpenRouter: its rate-limit headers copied into the body ----------------------------------------

OPENROUTER_DAILY = (
    '{"error":{"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 '
    'free model requests per day","code":429,"metadata":{"headers":{"X-RateLimit-Limit":"50",'
    '"X-RateLimit-Remaining":"0","X-RateLimit-Reset":"1779321600000"},"provider_name":null}}}'
)

OPENAI_DOC_HEADERS = {
    "x-ratelimit-limit-requests": "60",
    "x-ratelimit-limit-tokens": "150000",
    "x-ratelimit-remaining-requests": "59",
    "x-ratelimit-remaining-tokens": "149984",
    "x-ratelimit-reset-requests": "1s",
    "x-ratelimit-reset-tokens": "6m0s",
}
ANTHROPIC_HEADERS = {
    "anthropic-ratelimit-requests-limit": "50",
    "anthropic-ratelimit-requests-remaining": "0",
    "anthropic-ratelimit-requests-reset": "2026-07-24T14:32:00Z",
    "anthropic-ratelimit-input-tokens-limit": "20000",
    "anthropic-ratelimit-input-tokens-remaining": "5000",
    "anthropic-ratelimit-input-tokens-reset": "2026-07-24T14:35:00Z",
}

CASES = [
    # --- Zhipu / Z.ai ---------------------------------------------------------------------------
    Case(
        "zai 1308 anthropic-compat can1357/oh-my-pi#11014 (UTC+8 confirmed by usage_history)",
        429,
        ZAI_1308_ANTHROPIC,
        "2026-09-11T16:19:03+00:00",
        "2026-09-11T16:35:41+00:00",
    ),
    Case(
        "zai 1308 can1357/oh-my-pi#11014 (≈21m48s, as its retry-after-ms=1308000)",
        429,
        ZAI_1308_ANTHROPIC_2,
        "2026-09-14T13:52:53+00:00",
        "2026-09-14T14:14:42+00:00",
    ),
    Case(
        "zai 1308 openai envelope hugalafutro/model-hotel#955",
        429,
        ZAI_1308_OPENAI,
        "2026-09-08T20:00:00+00:00",
        "2026-09-08T21:38:28+00:00",
    ),
    Case(
        "zhipu 1308 CN dirge-code/dirge#818",
        429,
        ZHIPU_1308_CN,
        "2026-08-24T19:00:00+00:00",
        "2026-08-24T23:41:44+00:00",
    ),
    Case(
        "zhipu 1308 CN, \\u-escaped JSON (synthetic)",
        429,
        ZHIPU_1308_CN_ESCAPED,
        "2026-08-24T19:00:00+00:00",
        "2026-08-24T23:41:44+00:00",
    ),
    Case(
        "zhipu 1308 CN, answered after the reset: past → None (dirge-code/dirge#818)",
        429,
        ZHIPU_1308_CN,
        "2026-08-25T00:00:00+00:00",
        None,
    ),
    Case(
        "zai 1310 weekly openclaw/openclaw#33785: 3.3 days away → clamped to 24 h",
        429,
        ZAI_1310,
        "2026-03-03T06:15:47+00:00",
        "clamped",
    ),
    Case(
        "zhipu 1310 CN QuantumNous/new-api",
        429,
        ZHIPU_1310_CN,
        "2026-06-23T12:00:00+00:00",
        "2026-06-23T17:20:15+00:00",
    ),
    Case(
        "zhipu 1302 CN zai-org/GLM-5#151: no time",
        429,
        ZHIPU_1302_CN,
        "2026-09-12T00:00:00+00:00",
        None,
    ),
    Case(
        "zhipu 1113 docs.bigmodel.cn/cn/api/api-code: no time",
        429,
        ZHIPU_1113_CN,
        "2026-09-12T00:00:00+00:00",
        None,
    ),
    # --- MiniMax, Ark ---------------------------------------------------------------------------
    Case(
        "minimax 2056 intl MiniMax-AI/MiniMax-M2.7#36",
        429,
        MINIMAX_2056,
        "2026-05-15T12:00:00+00:00",
        "2026-05-15T15:00:00+00:00",
    ),
    Case(
        "minimax 2056 +08:00 QuantumNous/new-api",
        429,
        MINIMAX_2056_CN,
        "2026-06-06T02:30:28+08:00",
        "2026-06-05T21:00:00+00:00",
    ),
    Case(
        "minimax 1002 200-with-error (code: platform.minimaxi.com errorcode; text: fixture): no time",
        200,
        MINIMAX_1002,
        "2026-06-06T00:00:00+00:00",
        None,
    ),
    Case(
        "ark AccountQuotaExceeded weekly '+0800 CST' QuantumNous/new-api",
        429,
        ARK_WEEKLY,
        "2026-06-28T10:00:00+00:00",
        "2026-06-28T16:00:00+00:00",
    ),
    Case(
        "ark RPM volcengine.com/docs/82379/1299023: no time",
        429,
        ARK_RPM,
        "2026-06-28T10:00:00+00:00",
        None,
    ),
    # --- OpenAI ---------------------------------------------------------------------------------
    Case(
        "openai TPM 644ms BuilderIO/micro-agent#86",
        429,
        OPENAI_TPM_644MS,
        "2025-07-09T10:00:00+00:00",
        "+0.644",
    ),
    Case(
        "openai TPM 9.816s FoundationAgents/MetaGPT#523",
        429,
        OPENAI_TPM_9S,
        "2023-12-04T10:00:00+00:00",
        "+9.816",
    ),
    Case(
        "openai RPD 7m12s (wording of the RPD 429)",
        429,
        OPENAI_RPD,
        "2026-01-01T00:00:00+00:00",
        "+432",
    ),
    Case(
        "openai insufficient_quota: no time", 429, OPENAI_QUOTA, "2026-01-01T00:00:00+00:00", None
    ),
    Case(
        "openai doc headers on a 429, no limit at 0: not this refusal's reset",
        429,
        "",
        "2026-01-01T00:00:00+00:00",
        None,
        OPENAI_DOC_HEADERS,
    ),
    Case(
        "openai doc headers, requests spent → requests reset 1s",
        429,
        "",
        "2026-01-01T00:00:00+00:00",
        "+1",
        {**OPENAI_DOC_HEADERS, "x-ratelimit-remaining-requests": "0"},
    ),
    Case(
        "openai doc headers, both spent → the later, 6m0s",
        429,
        "",
        "2026-01-01T00:00:00+00:00",
        "+360",
        {
            **OPENAI_DOC_HEADERS,
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-remaining-tokens": "0",
        },
    ),
    Case(
        "openai TPD reset community.openai.com/t/571736 '23h47m36.648s', tokens spent",
        429,
        "",
        "2026-01-01T00:00:00+00:00",
        "+85656.648",
        {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "23h47m36.648s"},
    ),
    Case(
        "openai headers describe a minute counter, body the RPD wait: body wins (synthetic)",
        429,
        OPENAI_RPD,
        "2026-01-01T00:00:00+00:00",
        "+432",
        {"x-ratelimit-remaining-requests": "120", "x-ratelimit-reset-requests": "58s"},
    ),
    Case(
        "openai headers on a 200: never a reset",
        200,
        '{"choices":[]}',
        "2026-01-01T00:00:00+00:00",
        None,
        {**OPENAI_DOC_HEADERS, "x-ratelimit-remaining-requests": "0"},
    ),
    # --- Azure OpenAI ---------------------------------------------------------------------------
    Case(
        "azure 9s microsoft/sample-app-aoai-chatGPT#406",
        429,
        AZURE_9S,
        "2023-11-21T10:00:00+00:00",
        "+9",
    ),
    Case(
        "azure 86400s alex-wolf-ps/dbchatprov2#2: exactly MAX_RESET",
        429,
        AZURE_DAY,
        "2024-07-16T10:00:00+00:00",
        "clamped",
    ),
    Case(
        "azure 'Try again in 30 seconds' Azure-Samples/azure-search-openai-demo#177",
        429,
        AZURE_SEARCH_DEMO,
        "2023-05-04T10:00:00+00:00",
        "+30",
    ),
    Case(
        "azure -1/0 headers learn.microsoft.com Q&A 5625878: not applicable",
        429,
        "",
        "2025-11-17T20:00:00+00:00",
        None,
        {
            "x-ratelimit-limit-tokens": "-1",
            "x-ratelimit-remaining-tokens": "-1",
            "x-ratelimit-reset-tokens": "0",
        },
    ),
    # --- Moonshot / Kimi, Qianfan, SiliconFlow -------------------------------------------------
    Case(
        "moonshot RPM LLM-Red-Team/kimi-cc#16 'try again after 1 seconds'",
        429,
        MOONSHOT_RPM,
        "2025-07-14T10:00:00+00:00",
        "+1",
    ),
    Case(
        "moonshot TPM LLM-Red-Team/kimi-cc#41: no time",
        429,
        MOONSHOT_TPM,
        "2025-08-04T10:00:00+00:00",
        None,
    ),
    Case(
        "kimi code weekly openclaw/openclaw#142656: no time",
        403,
        KIMI_CODE_WEEKLY,
        "2026-08-04T10:00:00+00:00",
        None,
    ),
    Case(
        "qianfan rpm PaddlePaddle/ERNIE#1031: no time",
        429,
        QIANFAN_RPM,
        "2025-07-16T10:00:00+00:00",
        None,
    ),
    Case(
        "siliconflow TPM AIDotNet/OpenDeepWiki#269: no time",
        429,
        SILICONFLOW_429,
        "2025-07-16T10:00:00+00:00",
        None,
    ),
    # --- Anthropic -------------------------------------------------------------------------------
    Case(
        "anthropic retry-after wins over the reset headers (docs.anthropic.com rate-limits)",
        429,
        ANTHROPIC_ITPM,
        "2026-07-24T14:31:00+00:00",
        "+30",
        {**ANTHROPIC_HEADERS, "retry-after": "30"},
    ),
    Case(
        "anthropic no retry-after: spent requests limit's RFC 3339 reset "
        "(anthropics/anthropic-sdk-typescript#357)",
        429,
        ANTHROPIC_ITPM,
        "2026-07-24T14:31:00+00:00",
        "2026-07-24T14:32:00+00:00",
        ANTHROPIC_HEADERS,
    ),
    Case(
        "anthropic body only stackblitz/bolt.new#8589: 'try again later' has no time",
        429,
        ANTHROPIC_ITPM,
        "2025-04-01T10:00:00+00:00",
        None,
    ),
    # --- Gemini ----------------------------------------------------------------------------------
    Case(
        "gemini RetryInfo 26s RooCodeInc/Roo-Code#3883",
        429,
        GEMINI_RETRY_INFO,
        "2025-06-12T10:00:00+00:00",
        "+26",
    ),
    Case(
        "gemini RetryInfo relayed as a string RooCodeInc/Roo-Code#3883",
        429,
        GEMINI_RELAYED,
        "2025-06-12T10:00:00+00:00",
        "+26",
    ),
    Case(
        "gemini OpenAI-compat list form (synthetic wrapper)",
        429,
        GEMINI_COMPAT_LIST,
        "2025-06-12T10:00:00+00:00",
        "+26",
    ),
    Case(
        "gemini 'Please retry in 47.434392449s.' browserbase/mcp-server-browserbase#129",
        429,
        GEMINI_PLEASE_RETRY,
        "2025-11-07T10:00:00+00:00",
        "+47.434392",
    ),
    # --- OpenRouter ------------------------------------------------------------------------------
    Case(
        "openrouter free-models-per-day Gitlawb/openclaude#936 (epoch ms in metadata.headers)",
        429,
        OPENROUTER_DAILY,
        "2026-05-20T12:00:00+00:00",
        "2026-05-21T00:00:00+00:00",
    ),
    Case(
        "openrouter the same limit as real headers",
        429,
        "",
        "2026-05-20T12:00:00+00:00",
        "2026-05-21T00:00:00+00:00",
        {
            "x-ratelimit-limit": "50",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": "1779321600000",
        },
    ),
    # --- Retry-After (RFC 9110 §10.2.3) ----------------------------------------------------------
    Case(
        "Retry-After delay-seconds RFC 9110 example '120' on a 503",
        503,
        "",
        "2026-01-01T00:00:00+00:00",
        "+120",
        {"retry-after": "120"},
    ),
    Case(
        "Retry-After HTTP-date in the future",
        429,
        "",
        "2026-09-11T14:45:20+00:00",
        "2026-09-11T15:00:00+00:00",
        {"retry-after": "Fri, 11 Sep 2026 15:00:00 GMT"},
    ),
    Case(
        "Retry-After RFC 9110 example date 'Fri, 31 Dec 1999 23:59:59 GMT': past → None",
        503,
        "",
        "2026-01-01T00:00:00+00:00",
        None,
        {"retry-after": "Fri, 31 Dec 1999 23:59:59 GMT"},
    ),
    Case(
        "retry-after-ms first, as openai-python _parse_retry_after_header",
        429,
        "",
        "2026-01-01T00:00:00+00:00",
        "+1.5",
        {"retry-after-ms": "1500", "retry-after": "2"},
    ),
    Case(
        "Retry-After '0': the provider serves now → None, body not consulted",
        429,
        AZURE_SEARCH_DEMO,
        "2026-01-01T00:00:00+00:00",
        None,
        {"retry-after": "0"},
    ),
    Case(
        "Retry-After on a 403 is ignored",
        403,
        "",
        "2026-01-01T00:00:00+00:00",
        None,
        {"retry-after": "30"},
    ),
    Case(
        "malformed Retry-After is skipped, the body speaks",
        429,
        AZURE_SEARCH_DEMO,
        "2026-01-01T00:00:00+00:00",
        "+30",
        {"retry-after": "soon"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_real_answers(case: Case) -> None:
    got = reset_time(case.status, case.headers, case.body, at(case.now))
    want = expected_time(case)
    if want is None:
        assert got is None
        return
    assert got is not None
    assert got.tzinfo is UTC
    assert abs((got - want).total_seconds()) < 1e-3, (got, want)


def test_naive_stamps_take_the_given_zone() -> None:
    now = at("2026-09-08T20:00:00+00:00")
    assert reset_time(429, {}, ZAI_1308_OPENAI, now) == at("2026-09-08T21:38:28+00:00")
    # A provider known to print UTC: the same words are 8 hours later.
    assert reset_time(429, {}, ZAI_1308_OPENAI, now, body_zone=UTC) == at(
        "2026-09-09T05:38:28+00:00"
    )
    assert BEIJING.utcoffset(None) == timedelta(hours=8)


def test_an_explicit_offset_beats_the_default_zone() -> None:
    body = '{"error":{"message":"resets at 2026-06-06T05:00:00-05:00"}}'
    now = at("2026-06-06T00:00:00+00:00")
    assert reset_time(429, {}, body, now, body_zone=BEIJING) == at("2026-06-06T10:00:00+00:00")


def test_a_naive_now_is_utc_and_an_aware_one_is_converted() -> None:
    naive = datetime(2026, 1, 1)
    aware = datetime(2026, 1, 1, 8, tzinfo=timezone(timedelta(hours=8)))
    for now in (naive, aware):
        got = reset_time(429, {"retry-after": "60"}, "", now)
        assert got == at("2026-01-01T00:01:00+00:00")


def test_a_deprecation_date_is_not_a_reset() -> None:
    body = '{"error":{"message":"该模型将在 2026-12-01 00:00:00 下线，请迁移"}}'
    assert reset_time(429, {}, body, at("2026-11-30T00:00:00+00:00")) is None


def test_the_body_of_a_success_is_not_read() -> None:
    body = '{"choices":[{"message":{"content":"please try again in 5 minutes"}}]}'
    assert reset_time(200, {}, body, at("2026-01-01T00:00:00+00:00")) is None


def test_a_200_with_an_error_inside_is_read() -> None:
    body = (
        '{"base_resp":{"status_code":2056,"status_msg":"usage limit exceeded, 5-hour usage limit '
        'reached for Token Plan Plus (0/0 used), resets at 2026-06-06T05:00:00+08:00"}}'
    )
    got = reset_time(200, {}, body, at("2026-06-05T20:00:00+00:00"))
    assert got == at("2026-06-05T21:00:00+00:00")


# --- hostile answers -----------------------------------------------------------------------------

NOW = at("2026-01-01T00:00:00+00:00")

HOSTILE = [
    ("64 KiB of digits", 429, {}, "9" * 65536, None),
    ("64 KiB of digits after a trigger", 429, {}, "retry after " + "9" * 65536, None),
    (
        "retry after 99999999999999 seconds",
        429,
        {},
        "retry after 99999999999999 seconds",
        "clamped",
    ),
    ("Retry-After 99999999999999", 429, {"retry-after": "99999999999999"}, "", "clamped"),
    ("Retry-After 4300+ digits", 429, {"retry-after": "9" * 5000}, "", None),
    ("retry-after-ms huge", 429, {"retry-after-ms": "9" * 20}, "", "clamped"),
    ("negative Retry-After", 429, {"retry-after": "-5"}, "", None),
    ("negative retry-after-ms", 429, {"retry-after-ms": "-5000"}, "", None),
    ("Retry-After inf", 429, {"retry-after": "inf"}, "", None),
    ("Retry-After nan", 429, {"retry-after": "NaN"}, "", None),
    ("Retry-After 1e9", 429, {"retry-after": "1e9"}, "", None),
    (
        "Retry-After HTTP-date year 9999",
        429,
        {"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"},
        "",
        "clamped",
    ),
    (
        "Retry-After HTTP-date year 0001",
        429,
        {"retry-after": "Mon, 01 Jan 0001 00:00:00 GMT"},
        "",
        None,
    ),
    ("Retry-After garbage date", 429, {"retry-after": "Fri, 99 Foo 2026 99:99:99 GMT"}, "", None),
    ("Retry-After non-ASCII", 429, {"retry-after": "３０"}, "", None),
    ("stamp year 9999", 429, {}, '{"error":{"message":"reset at 9999-12-31 23:59:59"}}', "clamped"),
    (
        "stamp year 9999 west of UTC",
        429,
        {},
        '{"error":{"message":"reset at 9999-12-31 23:59:59-23:59"}}',
        "clamped",
    ),
    (
        "stamp year 0001 east of UTC",
        429,
        {},
        '{"error":{"message":"will reset at 0001-01-01 00:00:00"}}',
        None,
    ),
    ("stamp 2026-02-30", 429, {}, '{"error":{"message":"reset at 2026-02-30 10:00:00"}}', None),
    ("stamp hour 25", 429, {}, '{"error":{"message":"reset at 2026-01-02 25:00:00"}}', None),
    (
        "stamp offset +99:00",
        429,
        {},
        '{"error":{"message":"reset at 2026-01-02 10:00:00+99:00"}}',
        None,
    ),
    ("CN stamp without 重置", 429, {}, "您的限额将在 2026-01-01 10:00:00", None),
    (
        "anthropic reset garbage",
        429,
        {"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": "x"},
        "",
        None,
    ),
    ("x-ratelimit-reset negative", 429, {"x-ratelimit-reset": "-1"}, "", None),
    ("x-ratelimit-reset epoch ms past", 429, {"x-ratelimit-reset": "1000000000000"}, "", None),
    (
        "x-ratelimit-reset-requests '1h2m3x'",
        429,
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1h2m3x"},
        "",
        None,
    ),
    ("retryDelay negative", 429, {}, '{"error":{"details":[{"retryDelay":"-5s"}]}}', None),
    ("retryDelay garbage", 429, {}, '{"error":{"details":[{"retryDelay":"soon"}]}}', None),
    ("retryDelay not a string", 429, {}, '{"error":{"details":[{"retryDelay":30}]}}', None),
    ("headers not strings", 429, {"retry-after": None, "x-ratelimit-reset": 5}, "", None),
    ("non-ASCII digits in the body", 429, {}, "try again in ٣٠ seconds", None),
    ("unit never ends", 429, {}, "try again in 5 " + "s" * 100, None),
    ("unknown unit", 429, {}, "try again in 5 fortnights", None),
    ("no number", 429, {}, "please try again later", None),
    ("lone surrogate", 429, {}, "try again in \ud800 5s", None),
    ("deep JSON", 429, {}, "[" * 65536, None),
    ("deep error objects", 429, {}, '{"error":' * 20000, None),
    ("JSON with a 5000-digit number", 429, {}, '{"error":{"code":' + "9" * 5000 + "}}", None),
]


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_hostile_answers(
    status: int, headers: dict[str, object], body: str, expected: str | None
) -> None:
    got = reset_time(status, headers, body, NOW)  # type: ignore[arg-type]
    assert got == (NOW + MAX_RESET if expected == "clamped" else None)


def test_garbage_arguments_never_raise() -> None:
    assert reset_time("429", {}, "", NOW) is None  # type: ignore[arg-type]
    assert reset_time(429, None, "try again in 5s", NOW) == NOW + timedelta(seconds=5)  # type: ignore[arg-type]
    assert reset_time(429, {}, None, NOW) is None  # type: ignore[arg-type]
    assert reset_time(429, {}, "try again in 5s", None) is None  # type: ignore[arg-type]
    assert reset_time(429, {"retry-after": "60"}, "", datetime.max.replace(tzinfo=UTC)) is None


# Bodies built to make a backtracking parser or a naive scan slow: each must still be read in
# linear time (the whole set well under a second on a slow machine; 64 KiB each).
SLOW_BODIES = [
    "try again in " * 5042,
    "retry after 1 " * 4681,
    "try again in 1" + " 1" * 32767,
    "resets at 2026-" * 4369,
    "将在 2026-01-01 00:00:00 " * 2730,
    "reset at " + "2026-01-01 00:00:00 " * 3276,
    '{"error":{"message":"' + "try again in 9" * 4000 + '"}}',
    '{"a":"{\\"b\\":\\"' + "x" * 60000 + '\\"}"}',
    json.dumps(["try again in"] * 5000),
    json.dumps([{"retryDelay": "x" * 10, "headers": {"retry-after": "x"}}] * 2000),
    "<" * 65536,
    "1" * 65536,
    "\ufffd" * 65536,
]


@pytest.mark.parametrize("body", SLOW_BODIES, ids=range(len(SLOW_BODIES)))
def test_adversarial_bodies_are_read_in_bounded_time(body: str) -> None:
    started = time.perf_counter()
    for _ in range(3):
        got = reset_time(429, {}, body, NOW)
        assert got is None or NOW < got <= NOW + MAX_RESET
    assert time.perf_counter() - started < 1.5


# --- property ------------------------------------------------------------------------------------

WORDS = [
    "try again in ",
    "retry after ",
    "Please retry in ",
    "reset at ",
    "resets at ",
    "您的限额将在 ",
    " 重置",
    "2026-01-01 ",
    "9999-12-31 ",
    "0001-01-01 ",
    "23:59:59",
    "00:00:00",
    "T",
    "Z",
    "+08:00",
    "-0800",
    " CST",
    "1",
    "0",
    "99999999999999",
    ".5",
    "h",
    "m",
    "s",
    "ms",
    " seconds",
    " minutes",
    " and ",
    "~",
    " ",
    "\n",
    '"',
    "{",
    "}",
    "[",
    "-",
]
texts = st.lists(st.sampled_from(WORDS), max_size=40).map("".join) | st.text(max_size=200)
json_bodies = st.recursive(
    texts | st.integers() | st.none(),
    lambda inner: (
        st.dictionaries(
            st.sampled_from(
                [
                    "error",
                    "message",
                    "details",
                    "retryDelay",
                    "headers",
                    "base_resp",
                    "status_code",
                    "X-RateLimit-Reset",
                    "x-ratelimit-remaining",
                ]
            ),
            inner,
            max_size=4,
        )
        | st.lists(inner, max_size=3)
        | inner.map(json.dumps)
    ),
    max_leaves=15,
).map(json.dumps)
HEADER_NAMES = [
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-reset",
    "x-ratelimit-remaining",
    "x-ratelimit-reset-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-tokens",
    "x-ratelimit-remaining-tokens",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-requests-remaining",
]
header_maps = st.dictionaries(
    st.sampled_from(HEADER_NAMES),
    texts
    | st.sampled_from(
        [
            "0",
            "1s",
            "6m0s",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "1779321600000",
            "2026-07-24T14:32:00Z",
        ]
    ),
    max_size=5,
)
nows = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(9000, 1, 1),
    timezones=st.sampled_from([UTC, BEIJING, timezone(timedelta(hours=-11))]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=st.sampled_from([200, 400, 403, 429, 500, 503]) | st.integers(0, 999),
    headers=header_maps,
    body=texts | json_bodies,
    now=nows,
)
def test_never_raises_and_stays_in_the_window(
    status: int, headers: dict[str, str], body: str, now: datetime
) -> None:
    got = reset_time(status, headers, body, now)
    if got is not None:
        assert got.tzinfo is UTC
        assert now < got <= now + MAX_RESET
