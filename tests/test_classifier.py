"""`classify()` on real provider answers (docs/reference.md#states: body codes first, HTTP status
second).

Every body below is copied from a public report or a provider's documentation; each row's id names
its source. Python-repr renderings in issue reports (`{'error': {... None ...}}`) are written back
as the JSON the provider sent. Rows marked "synthetic" are not provider bodies: they pin a rule
(status-only fallbacks, key masking, clipping).
"""

from __future__ import annotations

import pytest

from llm_failover import classifier
from llm_failover.catalog import ErrorDictionary, ProbeMethod, default_catalog
from llm_failover.classifier import (
    Classification,
    HttpAnswer,
    Transport,
    TransportFailure,
    classify,
)
from llm_failover.state import ProviderState as S

CHAT = ProbeMethod.CHAT
MODELS = ProbeMethod.MODELS
HTML = "text/html"


def dictionary(preset: str | None) -> ErrorDictionary:
    catalog = default_catalog()
    if preset is None:
        return catalog.dictionary(None)
    found = catalog.get(preset)
    assert found is not None, f"no preset {preset!r}"
    return catalog.dictionary(found)


def row(
    source: str,
    preset: str | None,
    status: int,
    body: str,
    state: S,
    *expect_in: str,
    method: ProbeMethod = CHAT,
    content_type: str = "application/json",
) -> object:
    """One table row: the id is the source plus the dictionary used (`none` = no preset)."""
    return pytest.param(
        preset,
        HttpAnswer(status, body.encode("utf-8"), content_type),
        method,
        state,
        expect_in,
        id=f"{source} [{preset or 'none'}]",
    )


# --- OpenAI geo-block -----------------------------------------------------------------------

OPENAI_GEO = (
    '{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or '
    'territory not supported","param":null,"type":"request_forbidden"}}'
)
ONE_API_GEO = (
    '{"error":{"message":"Country, region, or territory not supported (request id: '
    '2024072510422562564674066306279)","type":"request_forbidden","param":"",'
    '"code":"unsupported_country_region_territory"}}'
)

# --- Gemini geo-block -----------------------------------------------------------------------

GEMINI_GEO = (
    '{"error":{"code":400,"message":"User location is not supported for the API use.",'
    '"status":"FAILED_PRECONDITION"}}'
)
# error.message is itself a JSON document (escapes kept as sent).
GEMINI_CLI_WRAPPED = (
    r'{"error":{"message":"{\n \"error\": {\n \"code\": 400,\n \"message\": \"User location is '
    r'not supported for the API use.\",\n \"status\": \"FAILED_PRECONDITION\"\n }\n}\n",'
    r'"code":400,"status":"Bad Request"}}'
)
OPENROUTER_GEMINI_GEO = (
    r'{"error":{"message":"Provider returned error","code":400,"metadata":{"raw":"{\n \"error\": '
    r"{\n \"code\": 400,\n \"message\": \"User location is not supported for the API use.\",\n "
    r'\"status\": \"FAILED_PRECONDITION\"\n }\n}\n","provider_name":"Google AI Studio"}}}'
)
GEMINI_GEO_BILLING = (
    '{"error":{"code":400,"message":"User location is not supported for the API use without a '
    'billing account linked.","status":"FAILED_PRECONDITION"}}'
)

# --- Anthropic / Bedrock --------------------------------------------------------------------

ANTHROPIC_FORBIDDEN = '{"error":{"type":"forbidden","message":"Request not allowed"}}'
BEDROCK_GEO_TEXT = (
    "Access to Anthropic models is not allowed from unsupported countries, regions, or "
    "territories. Please refer to https://www.anthropic.com/supported-countries for more "
    "information."
)
BEDROCK_GEO_JSON = '{"message":"' + BEDROCK_GEO_TEXT + '"}'

# --- 451 and HTML pages ---------------------------------------------------------------------

XIAOMI_451 = (
    "<html>\n<head><title>451 Unavailable For Legal Reasons</title></head>\n<body>\n<center><h1>"
    "Access denied due to cross-border isolation policy. Please ask the service owner to enable "
    '"Allow Cross-border Access" in MiFE.</h1></center>\n<hr><center>MiFE</center>\n</body>\n'
    "</html>"
)
# Cloudflare's block page, reduced to its structure and its visible text as quoted in
# cloudflare/har-sanitizer#57 (the page a geo-blocked user got from openai.com).
CLOUDFLARE_BLOCK = """<!DOCTYPE html>
<html lang="en-US"><head><title>Attention Required! | Cloudflare</title>
<meta charset="UTF-8" /><style>body{margin:0;padding:0}</style>
<script>(function(){window._cf_chl_opt={cType:'block'};})();</script>
</head><body><div id="cf-wrapper">
<div class="cf-alert cf-alert-error cf-cookie-error" id="cookie-alert">Please enable cookies.</div>
<div id="cf-error-details" class="cf-error-details-wrapper">
<div class="cf-wrapper cf-header cf-error-overview">
<h1 data-translate="block_headline">Sorry, you have been blocked</h1>
<h2 class="cf-subheadline"><span data-translate="unable_to_access">You are unable to access</span>
openai.com</h2></div>
<div class="cf-section cf-wrapper"><h2>Why have I been blocked?</h2>
<p>This website is using a security service to protect itself from online attacks. The action you
just performed triggered the security solution.</p></div>
<script>var cf = {"ray": "8a1b2c3d4e5f6789"};</script>
<p>Cloudflare Ray ID: <strong>8a1b2c3d4e5f6789</strong></p>
</div></div></body></html>"""

# --- domestic providers ---------------------------------------------------------------------

DEEPSEEK_401 = (
    '{"error":{"message":"Authentication Fails, Your api key: ****fcc2 is invalid",'
    '"type":"authentication_error","param":null,"code":"invalid_request_error"}}'
)
DEEPSEEK_401_NO_USER = (
    '{"error":{"message":"Authentication Fails (no such user)","type":"authentication_error",'
    '"param":null,"code":"invalid_request_error"}}'
)
DEEPSEEK_402 = (
    '{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,'
    '"code":"invalid_request_error"}}'
)
DEEPSEEK_RISK = (
    '{"error":{"message":"Content Exists Risk","type":"invalid_request_error","param":null,'
    '"code":"invalid_request_error"}}'
)
DEEPSEEK_503 = (
    '{"error":{"message":"Server Overloaded","type":"server_error","param":null,"code":null}}'
)
DEEPSEEK_MODELS = (
    '{"object":"list","data":[{"id":"deepseek-chat","object":"model","owned_by":"deepseek"},'
    '{"id":"deepseek-reasoner","object":"model","owned_by":"deepseek"}]}'
)
OPENAI_QUOTA = (
    '{"error":{"message":"You exceeded your current quota, please check your plan and billing '
    'details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}'
)
OPENAI_QUOTA_NULL_CODE = (
    '{"error":{"message":"You exceeded your current quota, please check your plan and billing '
    'details.","type":"insufficient_quota","param":null,"code":null}}'
)
OPENAI_MODEL_NOT_FOUND_400 = (
    '{"error":{"message":"The requested model \'gpt-4-1106-preview\' does not exist.",'
    '"type":"invalid_request_error","param":"model","code":"model_not_found"}}'
)
ZHIPU_1113_CN = '{"error":{"code":"1113","message":"余额不足或无可用资源包,请充值。"}}'
ZHIPU_1113_EN = (
    '{"error":{"code":"1113","message":"Insufficient balance or no resource package. Please '
    'recharge."},"request_id":"202603142338501da90b7ebe1d473d"}'
)
ZHIPU_1113_ANTHROPIC = (
    '{"type":"error","error":{"type":"1113","message":"Insufficient balance or no resource '
    'package. Please recharge."},"request_id":"2025111018552386057cb666f04003"}'
)
ZHIPU_1302 = (
    '{"error":{"code":"1302","message":"High concurrency usage of this API, please reduce '
    'concurrency or contact customer service to increase limits"}}'
)
ZHIPU_1301 = (
    '{"error":{"code":"1301","message":"系统检测到输入或生成内容可能包含不安全或敏感内容"}}'
)
MOONSHOT_QUOTA = (
    '{"error":{"message":"Your account org-de5241b31b0345aca34d854a6743eacf '
    "<ak-f7azbgd8toki11ce3e1i> is suspended due to insufficient balance, please recharge your "
    'account or check your plan and billing details","type":"exceeded_current_quota_error"}}'
)
MOONSHOT_RATE = (
    '{"error":{"message":"Your account org-e664b178c0f74d818f6b62f87efa49f7'
    "<ak-f3t8pfk16fki11gzh6i1> request reached organization max RPM: 3, please try again after "
    '1 seconds","type":"rate_limit_reached_error"}}'
)
MOONSHOT_OVERLOADED = (
    '{"error":{"message":"The engine is currently overloaded, please try again later",'
    '"type":"engine_overloaded_error"}}'
)
MOONSHOT_401 = (
    '{"error":{"message":"Invalid Authentication","type":"invalid_authentication_error"}}'
)
MOONSHOT_FILTER = (
    '{"error":{"message":"The request was rejected because it was considered high risk",'
    '"type":"content_filter"}}'
)
QIANFAN_INVALID_MODEL = (
    '{"error":{"code":"invalid_model","message":"The model does not exist or you do not have '
    'access to it.","type":"invalid_request_error"},"id":"as-bkv66krfus"}'
)
QIANFAN_IAM = (
    '{"error":{"code":"invalid_iam_token","message":"invalid_iam_token",'
    '"type":"invalid_request_error"},"id":"as-r43wh8e35y"}'
)
QIANFAN_OVERDUE = (
    '{"error":{"code":"account_overdue","message":"Access denied due to overdue account",'
    '"type":"access_denied"},"id":"as-xp1jmkxe03"}'
)
QIANFAN_RPM = (
    '{"error":{"code":"rpm_rate_limit_exceeded","message":"Rate limit reached for RPM",'
    '"type":"rate_limit_exceeded"},"id":"as-wbx23eriqh"}'
)
QIANFAN_V1_TOKEN = '{"error_code":110,"error_msg":"Access token invalid or no longer valid"}'
MINIMAX_1008 = '{"base_resp":{"status_code":1008,"status_msg":"insufficient balance"}}'
MINIMAX_1004 = '{"base_resp":{"status_code":1004,"status_msg":"login fail"}}'
MINIMAX_COMPAT_401 = (
    '{"type":"error","error":{"type":"authorized_error","message":"login fail: Please carry the '
    "API secret key in the 'Authorization' field of the request header (1004)\","
    '"http_code":"401"},"request_id":"0596b3f8a3d1b4c9e7f2a1d0c3b4a5e6"}'
)
MINIMAX_RELAYED_1008 = (
    '{"error":{"http_code":"429","message":"insufficient balance (1008)",'
    '"type":"insufficient_balance_error"},"request_id":"xxxx"}'
)
MINIMAX_COMPLETION = """{
    "id": "03c13c50d5d579fc940572bb6fdf6f0a",
    "choices": [{"finish_reason": "stop", "index": 0, "message": {
        "content": "I'm a language model, so I can answer questions about language.",
        "role": "assistant", "name": "MM智能助理", "audio_content": ""}}],
    "created": 1735526736, "model": "abab6.5s-chat", "object": "chat.completion",
    "usage": {"total_tokens": 94, "total_characters": 0, "prompt_tokens": 75,
              "completion_tokens": 19},
    "input_sensitive": false, "output_sensitive": false, "input_sensitive_type": 0,
    "output_sensitive_type": 0, "output_sensitive_int": 0,
    "base_resp": {"status_code": 0, "status_msg": ""}
}"""
SILICONFLOW_30011 = (
    '{"code":30011,"message":"The selected model requires paid balance. Your paid balance is '
    'insufficient. Please top up and try again.","data":null}'
)
SILICONFLOW_429 = (
    '{"message":"Request was rejected due to rate limiting. Details: TPM limit reached.",'
    '"data":null}'
)
DASHSCOPE_ARREARAGE = (
    '{"error":{"code":"Arrearage","param":null,"message":"Access denied, please make sure your '
    'account is in good standing.","type":"Arrearage"},'
    '"id":"chatcmpl-f9fdb027-830c-9e05-8366-ce479a878825",'
    '"request_id":"f9fdb027-830c-9e05-8366-ce479a878825"}'
)
DASHSCOPE_401 = (
    '{"error":{"message":"Incorrect API key provided. For details, see: '
    'https://www.alibabacloud.com/help/en/model-studio/error-code#apikey-error",'
    '"type":"invalid_request_error","param":null,"code":"invalid_api_key"},'
    '"request_id":"6ce1ad79-c7e2-9afb-acf8-e68191913351"}'
)
DASHSCOPE_NATIVE_401 = (
    '{"code":"InvalidApiKey","message":"Invalid API-key provided.",'
    '"request_id":"01415ff3-53f4-989d-83c0-3eb61fa1418e"}'
)
DASHSCOPE_INSPECTION = (
    '{"error":{"code":"data_inspection_failed","param":null,"message":"Input data may contain '
    'inappropriate content.","type":"data_inspection_failed"},'
    '"id":"chatcmpl-deab386b-2562-9a7b-b8fa-0ba9385a5c28",'
    '"request_id":"deab386b-2562-9a7b-b8fa-0ba9385a5c28"}'
)
ARK_OVERDUE = (
    '{"code":"AccountOverdueError","message":"The request failed because your account has an '
    'overdue balance. Request id: 02175807918128087536ccb70d6c1a12319f6b583ee3463218d67",'
    '"param":"","type":"Forbidden","request_id":"20250917031941000049CCD20589BB8F4A"}'
)
ARK_401 = (
    '{"error":{"code":"AuthenticationError","message":"The API key or AK/SK in the request is '
    'missing or invalid. Request id: 021790123456789abcdef","param":"","type":"Unauthorized"}}'
)
ARK_MODEL_NOT_OPEN = (
    '{"error":{"code":"ModelNotOpen","message":"Your account 2127949875 has not activated the '
    "model doubao-seed-2-1-turbo-260628. Please activate the model service in the Ark Console. "
    'Request id: 02178914782456091be90b70b1bfc3059428bd07e108b7e89a414","param":"",'
    '"type":"Not Found"}}'
)
ARK_RPM = (
    '{"error":{"code":"RateLimitExceeded.EndpointRPMExceeded","message":"The request has '
    'exceeded the RPM limit of the endpoint. Request id: 021790123456789abcdef","param":"",'
    '"type":"TooManyRequests"}}'
)
ARK_OVERLOADED = (
    '{"error":{"code":"ServerOverloaded","message":"The service is currently overloaded. Request '
    'id: 021790123456789abcdef","param":"","type":"TooManyRequests"}}'
)
STEPFUN_401 = '{"error":{"message":"Incorrect API key provided","type":"invalid_api_key"}}'
SPARK_401 = (
    '{"message":"HMAC signature cannot be verified:enforced header \'host\' not used for '
    'signature creation"}'
)
ANTHROPIC_500 = (
    '{"type":"error","error":{"type":"api_error","message":"Overloaded"},"request_id":null}'
)
ANTHROPIC_529 = '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
GEMINI_404 = """[{
    "error": {
      "code": 404,
      "message": "Requested entity was not found.",
      "errors": [
        {
          "message": "Requested entity was not found.",
          "domain": "global",
          "reason": "notFound"
        }
      ],
      "status": "NOT_FOUND"
    }
  }
  ]"""


NGINX_502 = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    "</h1></center><hr><center>nginx</center></body></html>"
)
SPA_SHELL = (
    '<!doctype html><html><head><title>DeepSeek Platform</title><script src="/a.js">'
    '</script></head><body><div id="root"></div></body></html>'
)


# fmt: off
CASES = [
    # --- GeoBlocked -----------------------------------------------------------------------
    row("openai geo jlcodes99/cockpit-tools#611", "openai", 403, OPENAI_GEO, S.GEO_BLOCKED,
        "unsupported_country_region_territory", "Country, region, or territory not supported"),
    row("openai geo jlcodes99/cockpit-tools#611", None, 403, OPENAI_GEO, S.GEO_BLOCKED,
        "unsupported_country_region_territory"),
    row("openai geo via one-api songquanpeng/one-api#1692", "openai", 403, ONE_API_GEO,
        S.GEO_BLOCKED, "unsupported_country_region_territory",
        "request id: 2024072510422562564674066306279"),
    row("openai geo via one-api songquanpeng/one-api#1692", None, 403, ONE_API_GEO, S.GEO_BLOCKED,
        "unsupported_country_region_territory"),
    row("gemini geo dinobot22/antigravity-ssh-proxy#46", "gemini", 400, GEMINI_GEO, S.GEO_BLOCKED,
        "FAILED_PRECONDITION", "User location is not supported"),
    row("gemini geo dinobot22/antigravity-ssh-proxy#46", None, 400, GEMINI_GEO, S.GEO_BLOCKED,
        "User location is not supported"),
    row("gemini geo wrapped google-gemini/gemini-cli#24641", "gemini", 400, GEMINI_CLI_WRAPPED,
        S.GEO_BLOCKED, "FAILED_PRECONDITION: User location is not supported for the API use."),
    row("gemini geo wrapped google-gemini/gemini-cli#24641", None, 400, GEMINI_CLI_WRAPPED,
        S.GEO_BLOCKED, "User location is not supported"),
    row("gemini geo via openrouter OpenRouterTeam/ai-sdk-provider#187", None, 400,
        OPENROUTER_GEMINI_GEO, S.GEO_BLOCKED, "User location is not supported"),
    row("gemini geo via openrouter OpenRouterTeam/ai-sdk-provider#187", "gemini", 400,
        OPENROUTER_GEMINI_GEO, S.GEO_BLOCKED, "FAILED_PRECONDITION"),
    row("gemini geo billing variant u14app/neo-chat#7", "gemini", 400, GEMINI_GEO_BILLING,
        S.GEO_BLOCKED, "without a billing account linked"),
    row("bedrock geo json anthropics/claude-code#2656", None, 400, BEDROCK_GEO_JSON, S.GEO_BLOCKED,
        "not allowed from unsupported countries"),
    row("bedrock geo json anthropics/claude-code#2656", "anthropic", 400, BEDROCK_GEO_JSON,
        S.GEO_BLOCKED, "not allowed from unsupported countries"),
    row("bedrock geo text aws-samples/generative-bi-using-rag#361", None, 400, BEDROCK_GEO_TEXT,
        S.GEO_BLOCKED, "Access to Anthropic models is not allowed", content_type="text/plain"),
    row("anthropic 403 forbidden anthropics/claude-code#1613", "anthropic", 403,
        ANTHROPIC_FORBIDDEN, S.GEO_BLOCKED, "forbidden: Request not allowed"),
    # Without the preset the generic body proves nothing (anthropics/anthropic-sdk-java#251
    # shows it for an image-size problem): it stays a plain 403.
    row("anthropic 403 forbidden langgenius/dify#5445", None, 403, ANTHROPIC_FORBIDDEN,
        S.UNAUTHORIZED, "forbidden: Request not allowed"),
    row("451 zed-industries/zed#30496", None, 451,
        "Access to Anthropic models is not available in your region (IM)", S.GEO_BLOCKED,
        "not available in your region (IM)", content_type="text/plain"),
    row("451 data centre zed-industries/zed#42158", None, 451,
        "Access to Anthropic models is not available from this data center (HKG)", S.GEO_BLOCKED,
        "data center (HKG)", content_type="text/plain"),
    row("451 xiaomi html Kilo-Org/kilocode#10872", None, 451, XIAOMI_451, S.GEO_BLOCKED,
        "cross-border isolation policy", content_type=HTML),
    row("451 empty body (synthetic: status rule)", "openai", 451, "", S.GEO_BLOCKED, "HTTP 451"),
    row("cloudflare block page cloudflare/har-sanitizer#57", "openai", 403, CLOUDFLARE_BLOCK,
        S.GEO_BLOCKED, "Sorry, you have been blocked", content_type=HTML),
    row("cloudflare block page cloudflare/har-sanitizer#57", None, 403, CLOUDFLARE_BLOCK,
        S.GEO_BLOCKED, "You are unable to access openai.com", content_type=HTML),
    row("cloudflare worker html 403 jtsang4/claude-to-chatgpt#5", "anthropic", 403,
        "<title>403</title>403 Forbidden", S.UNAUTHORIZED, "403 Forbidden", content_type=HTML),
    # --- Unauthorized ---------------------------------------------------------------------
    row("deepseek 401 continuedev/continue#11820", "deepseek", 401, DEEPSEEK_401, S.UNAUTHORIZED,
        "Authentication Fails", "****fcc2"),
    row("deepseek 401 continuedev/continue#11820", None, 401, DEEPSEEK_401, S.UNAUTHORIZED,
        "Authentication Fails"),
    row("deepseek 401 no such user deepseek-ai/DeepSeek-R1#82", "deepseek", 401,
        DEEPSEEK_401_NO_USER, S.UNAUTHORIZED, "no such user"),
    row("dashscope 401 BerriAI/litellm#12571", "dashscope-intl", 401, DASHSCOPE_401, S.UNAUTHORIZED,
        "invalid_api_key: Incorrect API key provided"),
    row("dashscope 401 BerriAI/litellm#12571", None, 401, DASHSCOPE_401, S.UNAUTHORIZED,
        "Incorrect API key provided"),
    row("dashscope native 401 dinoanderson/qwen_cli_coder#1", "dashscope", 401,
        DASHSCOPE_NATIVE_401, S.UNAUTHORIZED, "InvalidApiKey: Invalid API-key provided."),
    row("moonshot 401 platform.kimi.com/docs/api/errors", "moonshot", 401, MOONSHOT_401,
        S.UNAUTHORIZED, "invalid_authentication_error"),
    row("qianfan 401 iam pi-go qianfan/outcome.go", "qianfan", 401, QIANFAN_IAM, S.UNAUTHORIZED,
        "invalid_iam_token"),
    row("qianfan v1 110 ai.baidu.com/ai-doc/WENXINWORKSHOP/tlmyncueh", "qianfan", 200,
        QIANFAN_V1_TOKEN, S.UNAUTHORIZED, "Access token invalid"),
    row("minimax compat 401 wavetermdev/waveterm#3238", "minimax", 401, MINIMAX_COMPAT_401,
        S.UNAUTHORIZED, "authorized_error: login fail"),
    row("minimax compat 401 wavetermdev/waveterm#3238", None, 401, MINIMAX_COMPAT_401,
        S.UNAUTHORIZED, "login fail"),
    row("minimax 200 base_resp 1004 platform.minimaxi.com errorcode", "minimax", 200, MINIMAX_1004,
        S.UNAUTHORIZED, "1004: login fail"),
    row("minimax 200 base_resp 1004 platform.minimaxi.com errorcode", None, 200, MINIMAX_1004,
        S.UNAUTHORIZED, "login fail"),
    row("ark 401 volcengine.com/docs/82379/1299023", None, 401, ARK_401, S.UNAUTHORIZED,
        "AuthenticationError"),
    row("stepfun 401 stepfun-ai/Step-3.5-Flash#22", None, 401, STEPFUN_401, S.UNAUTHORIZED,
        "invalid_api_key: Incorrect API key provided"),
    row("spark 401 AstrBotDevs/AstrBot#3090", None, 401, SPARK_401, S.UNAUTHORIZED,
        "HMAC signature cannot be verified"),
    row("siliconflow 401 plain chatboxai/chatbox#2573", "siliconflow", 401, "Invalid token",
        S.UNAUTHORIZED, "Invalid token", content_type="text/plain"),
    row("siliconflow 401 plain chatboxai/chatbox#2573", None, 401, "Api key is invalid",
        S.UNAUTHORIZED, "Api key is invalid", content_type="text/plain"),
    # --- QuotaExhausted -------------------------------------------------------------------
    row("deepseek 402 BerriAI/litellm#10403", "deepseek", 402, DEEPSEEK_402, S.QUOTA_EXHAUSTED,
        "Insufficient Balance"),
    row("deepseek 402 BerriAI/litellm#10403", None, 402, DEEPSEEK_402, S.QUOTA_EXHAUSTED,
        "Insufficient Balance"),
    row("openai 429 insufficient_quota ChatGPTNextWeb/NextChat#3123", "openai", 429, OPENAI_QUOTA,
        S.QUOTA_EXHAUSTED, "insufficient_quota: You exceeded your current quota"),
    row("openai 429 insufficient_quota ChatGPTNextWeb/NextChat#3123", None, 429, OPENAI_QUOTA,
        S.QUOTA_EXHAUSTED, "insufficient_quota"),
    row("openai 429 code null GaiZhenbiao/ChuanhuChatGPT#792", "openai", 429,
        OPENAI_QUOTA_NULL_CODE, S.QUOTA_EXHAUSTED, "insufficient_quota"),
    row("zhipu 429 1113 docs.bigmodel.cn/cn/api/api-code", "zhipu", 429, ZHIPU_1113_CN,
        S.QUOTA_EXHAUSTED, "1113", "余额不足"),
    row("zhipu 429 1113 docs.bigmodel.cn/cn/api/api-code", None, 429, ZHIPU_1113_CN,
        S.QUOTA_EXHAUSTED, "余额不足"),
    row("zhipu 429 1113 7836246/cursor2api#30", "zhipu", 429, ZHIPU_1113_EN, S.QUOTA_EXHAUSTED,
        "1113: Insufficient balance"),
    row("zhipu 429 1113 anthropic-compat anthropics/claude-code#11345", "zhipu", 429,
        ZHIPU_1113_ANTHROPIC, S.QUOTA_EXHAUSTED, "1113: Insufficient balance"),
    row("moonshot 429 quota 666ghj/BettaFish#524", "moonshot", 429, MOONSHOT_QUOTA,
        S.QUOTA_EXHAUSTED, "exceeded_current_quota_error"),
    row("moonshot 429 quota 666ghj/BettaFish#524", None, 429, MOONSHOT_QUOTA, S.QUOTA_EXHAUSTED,
        "exceeded_current_quota_error"),
    row("qianfan 403 account_overdue pi-go qianfan/outcome.go", "qianfan", 403, QIANFAN_OVERDUE,
        S.QUOTA_EXHAUSTED, "account_overdue: Access denied due to overdue account"),
    row("qianfan 403 account_overdue pi-go qianfan/outcome.go", None, 403, QIANFAN_OVERDUE,
        S.QUOTA_EXHAUSTED, "account_overdue"),
    row("minimax 200 base_resp 1008 platform.minimaxi.com errorcode", "minimax", 200, MINIMAX_1008,
        S.QUOTA_EXHAUSTED, "1008: insufficient balance"),
    row("minimax 200 base_resp 1008 platform.minimaxi.com errorcode", None, 200, MINIMAX_1008,
        S.QUOTA_EXHAUSTED, "insufficient balance"),
    row("minimax 1008 relayed modelscope/modelscope#1691", None, 429, MINIMAX_RELAYED_1008,
        S.QUOTA_EXHAUSTED, "insufficient balance (1008)"),
    row("siliconflow 403 30011 FoundationAgents/OpenManus#438", "siliconflow", 403,
        SILICONFLOW_30011, S.QUOTA_EXHAUSTED, "30011", "paid balance is insufficient"),
    row("siliconflow 403 30011 FoundationAgents/OpenManus#438", None, 403, SILICONFLOW_30011,
        S.QUOTA_EXHAUSTED, "paid balance is insufficient"),
    row("dashscope arrearage hsliuping/TradingAgents-CN#170", "dashscope", 400, DASHSCOPE_ARREARAGE,
        S.QUOTA_EXHAUSTED, "Arrearage: Access denied"),
    row("dashscope arrearage hsliuping/TradingAgents-CN#170", None, 400, DASHSCOPE_ARREARAGE,
        S.QUOTA_EXHAUSTED, "Arrearage"),
    row("ark 403 overdue coze-dev/coze-studio#2195", None, 403, ARK_OVERDUE, S.QUOTA_EXHAUSTED,
        "AccountOverdueError", "overdue balance"),
    # --- ModelUnavailable -----------------------------------------------------------------
    row("qianfan 401 invalid_model pi-go qianfan/outcome.go", "qianfan", 401, QIANFAN_INVALID_MODEL,
        S.MODEL_UNAVAILABLE, "invalid_model: The model does not exist"),
    row("qianfan 401 invalid_model pi-go qianfan/outcome.go", None, 401, QIANFAN_INVALID_MODEL,
        S.MODEL_UNAVAILABLE, "invalid_model"),
    row("openai model_not_found at 400 skorokithakis/sysaidmin#9", "openai", 400,
        OPENAI_MODEL_NOT_FOUND_400, S.MODEL_UNAVAILABLE, "model_not_found", "gpt-4-1106-preview"),
    row("ark 404 ModelNotOpen volcengine.com/docs/82379/1299023", None, 404, ARK_MODEL_NOT_OPEN,
        S.MODEL_UNAVAILABLE, "ModelNotOpen"),
    row("gemini 404 list body google-gemini/gemini-cli#4764", "gemini", 404, GEMINI_404,
        S.MODEL_UNAVAILABLE, "NOT_FOUND: Requested entity was not found."),
    row("404 empty body (synthetic: status rule)", None, 404, "", S.MODEL_UNAVAILABLE, "HTTP 404"),
    # --- RateLimited ----------------------------------------------------------------------
    row("zhipu 429 1302 kaitranntt/ccs#402", "zhipu", 429, ZHIPU_1302, S.RATE_LIMITED,
        "1302: High concurrency usage"),
    row("zhipu 429 1302 kaitranntt/ccs#402", None, 429, ZHIPU_1302, S.RATE_LIMITED,
        "High concurrency usage"),
    row("moonshot 429 rate LLM-Red-Team/kimi-cc#16", "moonshot", 429, MOONSHOT_RATE, S.RATE_LIMITED,
        "rate_limit_reached_error", "max RPM: 3"),
    row("moonshot 429 rate LLM-Red-Team/kimi-cc#16", None, 429, MOONSHOT_RATE, S.RATE_LIMITED,
        "rate_limit_reached_error"),
    row("qianfan 429 rpm PaddlePaddle/ERNIE#1031", "qianfan", 429, QIANFAN_RPM, S.RATE_LIMITED,
        "rpm_rate_limit_exceeded"),
    row("ark 429 EndpointRPMExceeded volcengine.com/docs/82379/1299023", None, 429, ARK_RPM,
        S.RATE_LIMITED, "RateLimitExceeded.EndpointRPMExceeded"),
    row("siliconflow 429 AIDotNet/OpenDeepWiki#269", "siliconflow", 429, SILICONFLOW_429,
        S.RATE_LIMITED, "rejected due to rate limiting"),
    row("siliconflow 429 AIDotNet/OpenDeepWiki#269", None, 429, SILICONFLOW_429, S.RATE_LIMITED,
        "TPM limit reached"),
    # --- ServerError ----------------------------------------------------------------------
    row("moonshot 429 overloaded MoonshotAI/MoonshotAI-Cookbook#16", "moonshot", 429,
        MOONSHOT_OVERLOADED, S.SERVER_ERROR, "engine_overloaded_error"),
    row("moonshot 429 overloaded 666ghj/BettaFish#292", None, 429, MOONSHOT_OVERLOADED,
        S.SERVER_ERROR, "engine_overloaded_error"),
    row("ark 429 ServerOverloaded volcengine.com/docs/82379/1299023", None, 429, ARK_OVERLOADED,
        S.SERVER_ERROR, "ServerOverloaded"),
    # DeepSeek documents 503 "Server Overloaded"; its envelope is assumed from the 401/402 bodies.
    row("deepseek 503 api-docs.deepseek.com/quick_start/error_codes", "deepseek", 503, DEEPSEEK_503,
        S.SERVER_ERROR, "Server Overloaded"),
    row("deepseek 503 api-docs.deepseek.com/quick_start/error_codes", None, 503, DEEPSEEK_503,
        S.SERVER_ERROR, "Server Overloaded"),
    row("anthropic 500 api_error anthropics/claude-code#8132", "anthropic", 500, ANTHROPIC_500,
        S.SERVER_ERROR, "api_error: Overloaded"),
    row("anthropic 529 overloaded anthropics/claude-code#2918", None, 529, ANTHROPIC_529,
        S.SERVER_ERROR, "overloaded_error: Overloaded"),
    row("500 empty body (synthetic: status rule)", "openai", 500, "", S.SERVER_ERROR, "HTTP 500"),
    row("502 gateway html (synthetic: status rule)", None, 502, NGINX_502, S.SERVER_ERROR,
        "502 Bad Gateway", content_type=HTML),
    # --- Healthy: content refusals mean the provider is up --------------------------------
    row("dashscope 400 data_inspection_failed camel-ai/owl#432", "dashscope", 400,
        DASHSCOPE_INSPECTION, S.HEALTHY, "provider reachable", "data_inspection_failed"),
    row("dashscope 400 data_inspection_failed camel-ai/owl#432", None, 400, DASHSCOPE_INSPECTION,
        S.HEALTHY, "provider reachable", "inappropriate content"),
    row("deepseek 400 content risk api-docs.deepseek.com/quick_start/error_codes", "deepseek", 400,
        DEEPSEEK_RISK, S.HEALTHY, "provider reachable", "Content Exists Risk"),
    row("zhipu 400 1301 docs.bigmodel.cn/cn/api/api-code", "zhipu", 400, ZHIPU_1301, S.HEALTHY,
        "provider reachable", "1301"),
    row("moonshot 400 content_filter platform.kimi.com/docs/api/errors", "moonshot", 400,
        MOONSHOT_FILTER, S.HEALTHY, "provider reachable", "high risk"),
    # --- Healthy answers and 200s that are not --------------------------------------------
    row("deepseek GET /models api-docs.deepseek.com", "deepseek", 200, DEEPSEEK_MODELS, S.HEALTHY,
        method=MODELS),
    row("deepseek GET /models api-docs.deepseek.com", None, 200, DEEPSEEK_MODELS, S.HEALTHY,
        method=MODELS),
    row("minimax 200 completion eolinker/apinto minimax/message.go", "minimax", 200,
        MINIMAX_COMPLETION, S.HEALTHY),
    row("minimax 200 completion eolinker/apinto minimax/message.go", None, 200, MINIMAX_COMPLETION,
        S.HEALTHY),
    # A chat completion is no answer to GET /models, and the reverse.
    row("minimax completion on /models (synthetic)", "minimax", 200, MINIMAX_COMPLETION,
        S.SERVER_ERROR, "unexpected answer", method=MODELS),
    row("models list on chat (synthetic)", "deepseek", 200, DEEPSEEK_MODELS, S.SERVER_ERROR,
        "unexpected answer", method=CHAT),
    row("200 html shell (synthetic: base URL points at a web app)", "deepseek", 200, SPA_SHELL,
        S.SERVER_ERROR, "unexpected answer", "DeepSeek Platform", method=MODELS,
        content_type=HTML),
    row("200 json without data (synthetic)", "openai", 200, '{"object":"list"}', S.SERVER_ERROR,
        "unexpected answer", method=MODELS),
    row("200 empty body (synthetic)", None, 200, "", S.SERVER_ERROR, "unexpected answer",
        method=MODELS),
]
# fmt: on


@pytest.mark.parametrize(("preset", "answer", "method", "state", "expect_in"), CASES)
def test_real_bodies(
    preset: str | None,
    answer: HttpAnswer,
    method: ProbeMethod,
    state: S,
    expect_in: tuple[str, ...],
) -> None:
    result = classify(answer, errors=dictionary(preset), method=method)
    assert result.state is state, result.message
    assert result.http_status == answer.status
    assert_message_shape(result)
    for text in expect_in:
        assert text in result.message
    if state is S.HEALTHY and not expect_in:
        assert result.message == ""


def assert_message_shape(result: Classification) -> None:
    assert len(result.message) <= classifier.MESSAGE_LIMIT
    assert "\n" not in result.message
    assert "\r" not in result.message
    assert result.message == result.message.strip()


@pytest.mark.parametrize(
    ("failure", "state", "text"),
    [
        pytest.param(
            TransportFailure(Transport.TIMEOUT, "connect ETIMEDOUT 31.13.70.33:443"),
            S.TIMEOUT,
            "31.13.70.33",
            id="timeout poisoned DNS openai/openai-quickstart-node#79",
        ),
        pytest.param(
            TransportFailure(Transport.RESET, "read ECONNRESET"),
            S.UNREACHABLE,
            "connection reset: read ECONNRESET",
            id="reset Chanzhaoyu/chatgpt-web#614",
        ),
        pytest.param(
            TransportFailure(Transport.DNS, "[Errno -2] Name or service not known"),
            S.UNREACHABLE,
            "DNS lookup failed",
            id="dns",
        ),
        pytest.param(
            TransportFailure(Transport.REFUSED, "Cannot connect to host api.openai.com:443"),
            S.UNREACHABLE,
            "connection refused: Cannot connect to host api.openai.com:443",
            id="refused easychen/openai-api-proxy#17",
        ),
        pytest.param(
            TransportFailure(
                Transport.TLS, "SSLEOFError(8, 'EOF occurred in violation of protocol')"
            ),
            S.UNREACHABLE,
            "TLS handshake failed: SSLEOFError",
            id="tls openai/openai-python#463",
        ),
        pytest.param(TransportFailure(Transport.TIMEOUT), S.TIMEOUT, "timeout", id="timeout bare"),
        pytest.param(
            TransportFailure(Transport.OTHER, "line one\nline two"),
            S.UNREACHABLE,
            "transport error: line one line two",
            id="other multi-line detail",
        ),
    ],
)
def test_transport_failures(failure: TransportFailure, state: S, text: str) -> None:
    result = classify(failure, errors=dictionary("openai"), method=MODELS)
    assert result.state is state
    assert result.http_status is None
    assert text in result.message
    assert_message_shape(result)


def test_echoed_sk_key_is_masked() -> None:
    # Synthetic: OpenAI's 401 wording with the key echoed in full, as a careless relay does.
    key = "sk-81288fd65531aabb8cb157c5b0d729b7c6"
    body = (
        '{"error":{"message":"Incorrect API key provided: ' + key + ". You can find your API key "
        'at https://platform.openai.com/account/api-keys.","type":"invalid_request_error",'
        '"param":null,"code":"invalid_api_key"}}'
    )
    result = classify(HttpAnswer(401, body.encode()), errors=dictionary("openai"), method=MODELS)
    assert result.state is S.UNAUTHORIZED
    assert key not in result.message
    assert "81288fd65531" not in result.message
    assert "Incorrect API key provided: ***" in result.message
    assert result.message.startswith("invalid_api_key: ")


@pytest.mark.parametrize(
    ("body", "secret"),
    [
        pytest.param(MOONSHOT_QUOTA, "ak-f7azbgd8toki11ce3e1i", id="moonshot 666ghj/BettaFish#524"),
        pytest.param(
            MOONSHOT_RATE, "ak-f3t8pfk16fki11gzh6i1", id="moonshot LLM-Red-Team/kimi-cc#16"
        ),
    ],
)
def test_echoed_access_key_id_is_masked(body: str, secret: str) -> None:
    result = classify(HttpAnswer(429, body.encode()), errors=dictionary("moonshot"), method=CHAT)
    assert secret not in result.message
    assert "<***>" in result.message
    assert_message_shape(result)


def test_html_message_is_visible_text_not_markup() -> None:
    result = classify(
        HttpAnswer(403, CLOUDFLARE_BLOCK.encode(), HTML), errors=dictionary(None), method=CHAT
    )
    for markup in ("<", ">", "cf-wrapper", "_cf_chl_opt", "margin:0"):
        assert markup not in result.message
    assert_message_shape(result)


def test_long_bodies_are_clipped() -> None:
    body = '{"error":{"code":"server_error","message":"' + "overloaded " * 100 + '"}}'
    result = classify(HttpAnswer(503, body.encode()), errors=dictionary(None), method=CHAT)
    assert result.state is S.SERVER_ERROR
    assert len(result.message) == classifier.MESSAGE_LIMIT
    assert result.message.endswith("…")
    assert result.message.startswith("server_error: overloaded")


def test_undecodable_body_does_not_raise() -> None:
    result = classify(HttpAnswer(502, b"\xff\xfe\x00garbage"), errors=dictionary(None), method=CHAT)
    assert result.state is S.SERVER_ERROR
    assert_message_shape(result)
