"""The preset catalog: every preset's dictionary on its provider's real answers, relays, plain-text
and HTML bodies, region-bound keys, and the catalog's structure and generated documentation.

Bodies are copied from public reports and providers' documentation; each row's id names its
source. Python-repr
renderings (`{'error': {... None ...}}`) are written back as the JSON the provider sent. Where the
research quotes a body with an elision ("…"), the elision is kept. Rows marked "shape" use a
documented code in the provider's documented envelope with a placeholder message; rows marked
"derived" apply a relay's documented wrapping (one-api#1692, ai-sdk-provider#187) to a real body;
rows marked "synthetic" pin a rule, for presets whose own bodies the research did not find (n/f).
"""

# ruff: noqa: RUF001  (real bodies carry fullwidth punctuation and typographic quotes, kept as sent)

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from llm_failover import catalog_doc, classifier
from llm_failover.catalog import (
    COMMON_FILE,
    HINT_LIMIT,
    PRESET_DIR,
    CatalogError,
    ErrorDictionary,
    ProbeMethod,
    default_catalog,
    load_catalog,
)
from llm_failover.classifier import (
    Classification,
    HttpAnswer,
    Transport,
    TransportFailure,
    classify,
)
from llm_failover.spec import SpecError, parse_route_spec
from llm_failover.state import ProviderState as S

CHAT = ProbeMethod.CHAT
MODELS = ProbeMethod.MODELS
HTML = "text/html"
TEXT = "text/plain"
REPO = Path(__file__).resolve().parents[1]
CATALOG = default_catalog()
PRESET_IDS = sorted(CATALOG.presets)

REQUIRED = {
    "openai", "azure-openai", "anthropic", "gemini", "qianfan", "dashscope", "dashscope-intl",
    "zhipu", "zai", "moonshot", "moonshot-intl", "deepseek", "hunyuan", "baichuan", "sensenova",
    "spark", "minimax", "yi", "stepfun", "ark", "ai360", "siliconflow",
}  # fmt: skip
# Separate CN and intl hosts whose keys are not interchangeable: a key on the wrong host gets a
# plain 401 that looks like a bad key (litellm#12571, kimi errors page, Step-3.5-Flash#22,
# chatbox#2573, memUBot#7).
REGION_PAIRS = [
    ("dashscope", "dashscope-intl"),
    ("moonshot", "moonshot-intl"),
    ("stepfun", "stepfun-intl"),
    ("siliconflow", "siliconflow-intl"),
    ("minimax", "minimax-intl"),
    ("zhipu", "zai"),
]
REGION_BOUND = {p for pair in REGION_PAIRS for p in pair}


def dictionary(preset: str) -> ErrorDictionary:
    found = CATALOG.get(preset)
    assert found is not None, f"no preset {preset!r}"
    return CATALOG.dictionary(found)


def hint(preset: str, state: S) -> str:
    return dictionary(preset).hint(state)


def method_of(preset: str) -> ProbeMethod:
    found = CATALOG.get(preset)
    assert found is not None
    return found.probe_method


def row(
    source: str,
    preset: str,
    status: int,
    body: str,
    state: S,
    *expect_in: str,
    content_type: str = "application/json",
    method: ProbeMethod | None = None,
) -> object:
    return pytest.param(
        preset,
        HttpAnswer(status, body.encode("utf-8"), content_type),
        method or method_of(preset),
        state,
        expect_in,
        id=f"{preset}: {source}",
    )


def assert_message_shape(result: Classification) -> None:
    assert len(result.message) <= classifier.MESSAGE_LIMIT
    assert "\n" not in result.message
    assert result.message == result.message.strip()


def one_api(body: str, request_id: str = "2024072510422562564674066306279") -> str:
    """one-api's relay of an upstream error: `(request id: …)` appended, `param` set to ""."""
    error = json.loads(body)["error"]
    wrapped = {
        "message": f"{error['message']} (request id: {request_id})",
        "type": error.get("type") or "",
        "param": "",
        "code": error.get("code") or "",
    }
    return json.dumps({"error": wrapped}, ensure_ascii=False)


def openrouter(body: str, status: int, provider_name: str) -> str:
    """OpenRouter's relay: the upstream body as a JSON string in `error.metadata.raw`."""
    metadata = {"raw": body, "provider_name": provider_name}
    error = {"message": "Provider returned error", "code": status, "metadata": metadata}
    return json.dumps({"error": error}, ensure_ascii=False)


# --- OpenAI ---------------------------------------------------------------------------------
OPENAI_GEO = '{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","param":null,"type":"request_forbidden"}}'
ONE_API_GEO = '{"error":{"message":"Country, region, or territory not supported (request id: 2024072510422562564674066306279)","type":"request_forbidden","param":"","code":"unsupported_country_region_territory"}}'
OPENAI_GEO_SDK_TEXT = "Error code: 403 - {'error': {'code': 'unsupported_country_region_territory', 'message': 'Country, region, or territory not supported', 'param': None, 'type': 'request_forbidden'}}"
OPENAI_GEO_CLI_TEXT = "http status 403: Country, region, or territory not supported"
OPENAI_QUOTA = '{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}'
OPENAI_MODEL = '{"error":{"message":"The requested model \'gpt-4-1106-preview\' does not exist.","type":"invalid_request_error","param":"model","code":"model_not_found"}}'
# --- Azure OpenAI ---------------------------------------------------------------------------
AZURE_401 = '{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}'
AZURE_401_WORD = '{"error":{"code":"Unauthorized","message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}'
AZURE_DEPLOYMENT = '{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again."}}'
AZURE_429 = '{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-08-01-preview have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 86400 seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."}}'
AZURE_FILTER = '{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI’s content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766","type":null,"param":"prompt","code":"content_filter","status":400}}'
# --- Anthropic / Bedrock --------------------------------------------------------------------
ANTHROPIC_FORBIDDEN = '{"error":{"type":"forbidden","message":"Request not allowed"}}'
ANTHROPIC_500 = (
    '{"type":"error","error":{"type":"api_error","message":"Overloaded"},"request_id":null}'
)
ANTHROPIC_529 = '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
BEDROCK_GEO_TEXT = "API Error: 400 Access to Anthropic models is not allowed from unsupported countries, regions, or territories. Please refer to https://www.anthropic.com/supported-countries for more information."
ANTHROPIC_451_TEXT = "completion failed with status 451 Unavailable For Legal Reasons: Access to Anthropic models is not available in your region (IM)"
# --- Gemini ---------------------------------------------------------------------------------
GEMINI_GEO = '{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}'
GEMINI_CLI_WRAPPED = r'{"error":{"message":"{\n \"error\": {\n \"code\": 400,\n \"message\": \"User location is not supported for the API use.\",\n \"status\": \"FAILED_PRECONDITION\"\n }\n}\n","code":400,"status":"Bad Request"}}'
OPENROUTER_GEMINI_GEO = r'{"error":{"message":"Provider returned error","code":400,"metadata":{"raw":"{\n \"error\": {\n \"code\": 400,\n \"message\": \"User location is not supported for the API use.\",\n \"status\": \"FAILED_PRECONDITION\"\n }\n}\n","provider_name":"Google AI Studio"}}}'
GEMINI_GEO_TEXT = "User location is not supported for the API use. (Status: FAILED_PRECONDITION)"
GEMINI_GEO_BILLING = '{"error":{"code":400,"message":"User location is not supported for the API use without a billing account linked.","status":"FAILED_PRECONDITION"}}'
# --- DeepSeek -------------------------------------------------------------------------------
DEEPSEEK_401 = '{"error":{"message":"Authentication Fails, Your api key: ****fcc2 is invalid","type":"authentication_error","param":null,"code":"invalid_request_error"}}'
DEEPSEEK_402 = '{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}'
DEEPSEEK_RISK = '{"error":{"message":"Content Exists Risk","type":"invalid_request_error","param":null,"code":"invalid_request_error"}}'
DEEPSEEK_503 = (
    '{"error":{"message":"Server Overloaded","type":"server_error","param":null,"code":null}}'
)
# --- DashScope ------------------------------------------------------------------------------
DASHSCOPE_401 = '{"error":{"message":"Incorrect API key provided. For details, see: https://www.alibabacloud.com/help/en/model-studio/error-code#apikey-error","type":"invalid_request_error","param":null,"code":"invalid_api_key"},"request_id":"6ce1ad79-c7e2-9afb-acf8-e68191913351"}'
DASHSCOPE_NATIVE_401 = '{"code":"InvalidApiKey","message":"Invalid API-key provided.","request_id":"01415ff3-53f4-989d-83c0-3eb61fa1418e"}'
DASHSCOPE_ARREARAGE = '{"error":{"code":"Arrearage","param":null,"message":"Access denied, please make sure your account is in good standing.","type":"Arrearage"},"id":"chatcmpl-f9fdb027-830c-9e05-8366-ce479a878825","request_id":"f9fdb027-830c-9e05-8366-ce479a878825"}'
DASHSCOPE_429 = '{"error":{"message":"Requests rate limit exceeded…","type":"limit_requests","param":null,"code":"limit_requests"}}'
DASHSCOPE_INSPECTION = '{"error":{"code":"data_inspection_failed","param":null,"message":"Input data may contain inappropriate content.","type":"data_inspection_failed"},"id":"chatcmpl-deab386b-2562-9a7b-b8fa-0ba9385a5c28","request_id":"deab386b-2562-9a7b-b8fa-0ba9385a5c28"}'
DASHSCOPE_500 = (
    '{"error":{"code":"InternalError","message":"InternalError","type":"InternalError"}}'
)
# --- Zhipu / Z.ai ---------------------------------------------------------------------------
ZHIPU_1002 = '{"error":{"code":"1002","message":"Authorization Token非法，请确认Authorization Token正确传递。"}}'
ZHIPU_1001 = (
    '{"error":{"code":"1001","message":"Header中未收到Authorization参数，无法进行身份验证。"}}'
)
ZHIPU_401_TEXT_CODE = '{"error":{"code":"401","message":"令牌已过期或验证不正确！"}}'
ZHIPU_1113_CN = '{"error":{"code":"1113","message":"余额不足或无可用资源包,请充值。"}}'
ZHIPU_1113_EN = '{"error":{"code":"1113","message":"Insufficient balance or no resource package. Please recharge."},"request_id":"202603142338501da90b7ebe1d473d"}'
ZHIPU_1302 = '{"error":{"code":"1302","message":"High concurrency usage of this API, please reduce concurrency or contact customer service to increase limits"}}'
ZHIPU_1301 = (
    '{"error":{"code":"1301","message":"系统检测到输入或生成内容可能包含不安全或敏感内容"}}'
)
# --- Moonshot -------------------------------------------------------------------------------
MOONSHOT_401 = (
    '{"error":{"message":"Invalid Authentication","type":"invalid_authentication_error"}}'
)
MOONSHOT_QUOTA = '{"error":{"message":"Your account org-de5241b31b0345aca34d854a6743eacf <ak-f7azbgd8toki11ce3e1i> is suspended due to insufficient balance, please recharge your account or check your plan and billing details","type":"exceeded_current_quota_error"}}'
MOONSHOT_RATE = '{"error":{"message":"Your account org-e664b178c0f74d818f6b62f87efa49f7<ak-f3t8pfk16fki11gzh6i1> request reached organization max RPM: 3, please try again after 1 seconds","type":"rate_limit_reached_error"}}'
MOONSHOT_OVERLOADED = '{"error":{"message":"The engine is currently overloaded, please try again later","type":"engine_overloaded_error"}}'
MOONSHOT_FILTER = '{"error":{"message":"The request was rejected because it was considered high risk","type":"content_filter"}}'
# --- Qianfan --------------------------------------------------------------------------------
QIANFAN_INVALID_MODEL = '{"error":{"code":"invalid_model","message":"The model does not exist or you do not have access to it.","type":"invalid_request_error"},"id":"as-bkv66krfus"}'
QIANFAN_IAM = '{"error":{"code":"invalid_iam_token","message":"invalid_iam_token","type":"invalid_request_error"},"id":"as-r43wh8e35y"}'
QIANFAN_OVERDUE = '{"error":{"code":"account_overdue","message":"Access denied due to overdue account","type":"access_denied"},"id":"as-xp1jmkxe03"}'
QIANFAN_RPM = '{"error":{"code":"rpm_rate_limit_exceeded","message":"Rate limit reached for RPM","type":"rate_limit_exceeded"},"id":"as-wbx23eriqh"}'
QIANFAN_UNSAFE = '{"error":{"code":"image_url_unsafe","message":"image_url_unsafe","type":"unsafe_request"},"id":"as-0"}'
QIANFAN_V1_TOKEN = '{"error_code":110,"error_msg":"Access token invalid or no longer valid"}'
QIANFAN_V1_DAILY = '{"error_code":17,"error_msg":"Open api daily request limit reached"}'
QIANFAN_V1_QPS = '{"error_code":18,"error_msg":"Open api qps request limit reached"}'
# --- Tencent Hunyuan ------------------------------------------------------------------------
HUNYUAN_1001 = '{"error":{"id":"0","message":"messages 中 user（tool） 和 assistant 角色需交替出现…","type":"invalid_request_error","param":null,"code":"1001"}}'
HUNYUAN_NATIVE_AUTH = (
    '{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"…"},"RequestId":"…"}}'
)
HUNYUAN_NATIVE_LIMIT = (
    '{"Response":{"Error":{"Code":"LimitExceeded","Message":"…"},"RequestId":"…"}}'
)
# --- Baichuan -------------------------------------------------------------------------------
BAICHUAN_10105 = '{"error_code":10105,"text":"Invalid Signature parameter in request header","error":{"message":"…","type":"invalid_request_error"}}'
# --- iFlytek Spark --------------------------------------------------------------------------
SPARK_401 = '{"message":"HMAC signature cannot be verified:enforced header \'host\' not used for signature creation"}'
SPARK_11200 = (
    '{"header":{"code":11200,"message":"AppIdNoAuthError:… tokens.total","sid":"…","status":2}}'
)
SPARK_10013 = '{"header":{"code":10013,"message":"…","sid":"…","status":2}}'
SPARK_10007 = '{"header":{"code":10007,"message":"…","sid":"…","status":2}}'
SPARK_10012 = '{"header":{"code":10012,"message":"…","sid":"…","status":2}}'
# --- MiniMax --------------------------------------------------------------------------------
MINIMAX_COMPAT_401 = '{"type":"error","error":{"type":"authorized_error","message":"login fail: Please carry the API secret key in the \'Authorization\' field of the request header (1004)","http_code":"401"},"request_id":"0596b3f8a3d1b4c9e7f2a1d0c3b4a5e6"}'
MINIMAX_1004 = '{"base_resp":{"status_code":1004,"status_msg":"login fail"}}'
MINIMAX_1008 = '{"base_resp":{"status_code":1008,"status_msg":"insufficient balance"}}'
MINIMAX_1002 = '{"base_resp":{"status_code":1002,"status_msg":"…"}}'
MINIMAX_1026 = '{"base_resp":{"status_code":1026,"status_msg":"…"}}'
# --- StepFun --------------------------------------------------------------------------------
STEPFUN_401 = '{"error":{"message":"Incorrect API key provided","type":"invalid_api_key"}}'
# --- Volcengine Ark -------------------------------------------------------------------------
ARK_401 = '{"error":{"code":"AuthenticationError","message":"The API key or AK/SK in the request is missing or invalid. Request id: 021790123456789abcdef","param":"","type":"Unauthorized"}}'
ARK_OVERDUE = '{"code":"AccountOverdueError","message":"The request failed because your account has an overdue balance. Request id: 02175807918128087536ccb70d6c1a12319f6b583ee3463218d67","param":"","type":"Forbidden","request_id":"20250917031941000049CCD20589BB8F4A"}'
ARK_ACCESS_DENIED = '{"error":{"code":"AccessDenied","message":"…","param":"","type":"Forbidden"}}'
ARK_MODEL_NOT_OPEN = '{"error":{"code":"ModelNotOpen","message":"Your account 2127949875 has not activated the model doubao-seed-2-1-turbo-260628. Please activate the model service in the Ark Console. Request id: 02178914782456091be90b70b1bfc3059428bd07e108b7e89a414","param":"","type":"Not Found"}}'
ARK_ENDPOINT = '{"error":{"code":"InvalidEndpointOrModel.NotFound","message":"…","param":"","type":"Not Found"}}'
ARK_RPM = '{"error":{"code":"RateLimitExceeded.EndpointRPMExceeded","message":"The request has exceeded the RPM limit of the endpoint. Request id: 021790123456789abcdef","param":"","type":"TooManyRequests"}}'
ARK_OVERLOADED = '{"error":{"code":"ServerOverloaded","message":"The service is currently overloaded. Request id: 021790123456789abcdef","param":"","type":"TooManyRequests"}}'
ARK_RISK = (
    '{"error":{"code":"InputTextRiskDetection","message":"…","param":"","type":"BadRequest"}}'
)
ARK_500 = '{"error":{"code":"InternalServiceError","message":"…","param":"","type":"InternalServerError"}}'
# --- SiliconFlow ----------------------------------------------------------------------------
SILICONFLOW_30011 = '{"code":30011,"message":"The selected model requires paid balance. Your paid balance is insufficient. Please top up and try again.","data":null}'
SILICONFLOW_429 = '{"message":"Request was rejected due to rate limiting. Details: TPM limit reached.","data":null}'
# --- answers that are not errors ------------------------------------------------------------
MODELS_LIST = '{"object":"list","data":[{"id":"deepseek-chat","object":"model","owned_by":"deepseek"},{"id":"deepseek-reasoner","object":"model","owned_by":"deepseek"}]}'
COMPLETION = '{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"h"},"finish_reason":"length"}]}'
MINIMAX_COMPLETION = '{"id":"03c13c50d5d579fc940572bb6fdf6f0a","choices":[{"finish_reason":"stop","index":0,"message":{"content":"I","role":"assistant"}}],"object":"chat.completion","input_sensitive":false,"output_sensitive":false,"base_resp":{"status_code":0,"status_msg":""}}'
# --- pages ----------------------------------------------------------------------------------
XIAOMI_451 = '<html>\n<head><title>451 Unavailable For Legal Reasons</title></head>\n<body>\n<center><h1>Access denied due to cross-border isolation policy. Please ask the service owner to enable "Allow Cross-border Access" in MiFE.</h1></center>\n<hr><center>MiFE</center>\n</body>\n</html>'
CLOUDFLARE_BLOCK = '<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head><body><h1 data-translate="block_headline">Sorry, you have been blocked</h1><h2><span>You are unable to access</span> openai.com</h2></body></html>'
NGINX_502 = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
HTML_403 = "<title>403</title>403 Forbidden"
SPA_SHELL = '<!doctype html><html><head><title>Console</title><script src="/a.js"></script></head><body><div id="root"></div></body></html>'

REACHABLE = "provider reachable"

# fmt: off
CASES = [
    # --- openai ---------------------------------------------------------------------------
    row("403 geo jlcodes99/cockpit-tools#611", "openai", 403, OPENAI_GEO, S.GEO_BLOCKED, "unsupported_country_region_territory"),
    row("403 geo via one-api songquanpeng/one-api#1692", "openai", 403, ONE_API_GEO, S.GEO_BLOCKED, "request id: 2024072510422562564674066306279"),
    row("403 geo SDK text home-assistant/core#120072", "openai", 403, OPENAI_GEO_SDK_TEXT, S.GEO_BLOCKED, "Country, region, or territory not supported", content_type=TEXT),
    row("403 geo CLI text kardolus/chatgpt-cli#44", "openai", 403, OPENAI_GEO_CLI_TEXT, S.GEO_BLOCKED, content_type=TEXT),
    row("403 Cloudflare block page cloudflare/har-sanitizer#57", "openai", 403, CLOUDFLARE_BLOCK, S.GEO_BLOCKED, "Sorry, you have been blocked", content_type=HTML),
    row("429 insufficient_quota ChatGPTNextWeb/NextChat#3123", "openai", 429, OPENAI_QUOTA, S.QUOTA_EXHAUSTED, "insufficient_quota"),
    row("400 model_not_found skorokithakis/sysaidmin#9", "openai", 400, OPENAI_MODEL, S.MODEL_UNAVAILABLE, "gpt-4-1106-preview"),
    row("GET /models (shape)", "openai", 200, MODELS_LIST, S.HEALTHY),
    # --- azure-openai ---------------------------------------------------------------------
    row("401 SciSharp/BotSharp#386", "azure-openai", 401, AZURE_401, S.UNAUTHORIZED, "invalid subscription key", "hint: an Azure key works only on its own resource"),
    row("401 code word vercel/chatbot#588", "azure-openai", 401, AZURE_401_WORD, S.UNAUTHORIZED, "Unauthorized: Access denied"),
    row("404 DeploymentNotFound chatboxai/chatbox#861", "azure-openai", 404, AZURE_DEPLOYMENT, S.MODEL_UNAVAILABLE, "DeploymentNotFound", "deployment name"),
    row("429 token rate limit vanderschaarlab/climb#1", "azure-openai", 429, AZURE_429, S.RATE_LIMITED, "exceeded token rate limit"),
    row("400 content_filter openai/openai-python#331", "azure-openai", 400, AZURE_FILTER, S.HEALTHY, REACHABLE, "content_filter"),
    row("chat completion (shape)", "azure-openai", 200, COMPLETION, S.HEALTHY),
    # --- anthropic ------------------------------------------------------------------------
    row("403 forbidden anthropics/claude-code#1613", "anthropic", 403, ANTHROPIC_FORBIDDEN, S.GEO_BLOCKED, "forbidden: Request not allowed"),
    row("500 api_error anthropics/claude-code#8132", "anthropic", 500, ANTHROPIC_500, S.SERVER_ERROR, "api_error: Overloaded"),
    row("529 overloaded anthropics/claude-code#2918", "anthropic", 529, ANTHROPIC_529, S.SERVER_ERROR, "overloaded_error"),
    row("Bedrock 400 text anthropics/claude-code#2656", "anthropic", 400, BEDROCK_GEO_TEXT, S.GEO_BLOCKED, "not allowed from unsupported countries", content_type=TEXT),
    row("451 text zed-industries/zed#30496", "anthropic", 451, ANTHROPIC_451_TEXT, S.GEO_BLOCKED, "(IM)", content_type=TEXT),
    row("403 worker HTML jtsang4/claude-to-chatgpt#5", "anthropic", 403, HTML_403, S.UNAUTHORIZED, "403 Forbidden", content_type=HTML),
    # --- gemini ---------------------------------------------------------------------------
    row("400 geo dinobot22/antigravity-ssh-proxy#46", "gemini", 400, GEMINI_GEO, S.GEO_BLOCKED, "FAILED_PRECONDITION", "hint: Gemini refuses some regions"),
    row("400 geo wrapped google-gemini/gemini-cli#24641", "gemini", 400, GEMINI_CLI_WRAPPED, S.GEO_BLOCKED, "User location is not supported"),
    row("400 geo via OpenRouter OpenRouterTeam/ai-sdk-provider#187", "gemini", 400, OPENROUTER_GEMINI_GEO, S.GEO_BLOCKED, "User location is not supported"),
    row("400 geo text google-gemini/gemini-cli#1614", "gemini", 400, GEMINI_GEO_TEXT, S.GEO_BLOCKED, content_type=TEXT),
    row("400 geo billing variant u14app/neo-chat#7", "gemini", 400, GEMINI_GEO_BILLING, S.GEO_BLOCKED, "billing account"),
    # --- deepseek -------------------------------------------------------------------------
    row("401 continuedev/continue#11820", "deepseek", 401, DEEPSEEK_401, S.UNAUTHORIZED, "Authentication Fails"),
    row("402 BerriAI/litellm#10403", "deepseek", 402, DEEPSEEK_402, S.QUOTA_EXHAUSTED, "Insufficient Balance"),
    row("400 Content Exists Risk api-docs.deepseek.com", "deepseek", 400, DEEPSEEK_RISK, S.HEALTHY, REACHABLE, "Content Exists Risk"),
    row("503 Server Overloaded api-docs.deepseek.com", "deepseek", 503, DEEPSEEK_503, S.SERVER_ERROR, "Server Overloaded"),
    row("GET /models api-docs.deepseek.com", "deepseek", 200, MODELS_LIST, S.HEALTHY),
    row("402 via OpenRouter (derived)", "deepseek", 402, openrouter(DEEPSEEK_402, 402, "DeepSeek"), S.QUOTA_EXHAUSTED, "Insufficient Balance"),
    row("401 via one-api (derived)", "deepseek", 401, one_api(DEEPSEEK_401), S.UNAUTHORIZED, "request id"),
    # --- dashscope ------------------------------------------------------------------------
    row("401 BerriAI/litellm#12571", "dashscope", 401, DASHSCOPE_401, S.UNAUTHORIZED, "invalid_api_key: Incorrect API key provided", "hint: keys are region-bound"),
    row("native 401 dinoanderson/qwen_cli_coder#1", "dashscope", 401, DASHSCOPE_NATIVE_401, S.UNAUTHORIZED, "InvalidApiKey"),
    row("Arrearage hsliuping/TradingAgents-CN#170", "dashscope", 400, DASHSCOPE_ARREARAGE, S.QUOTA_EXHAUSTED, "Arrearage: Access denied"),
    row("Arrearage at 403 (docs' status)", "dashscope", 403, DASHSCOPE_ARREARAGE, S.QUOTA_EXHAUSTED, "Arrearage"),
    row("429 limit_requests help.aliyun.com error-code", "dashscope", 429, DASHSCOPE_429, S.RATE_LIMITED, "limit_requests"),
    row("400 data_inspection_failed camel-ai/owl#432", "dashscope", 400, DASHSCOPE_INSPECTION, S.HEALTHY, REACHABLE, "data_inspection_failed"),
    row("500 InternalError (shape)", "dashscope", 500, DASHSCOPE_500, S.SERVER_ERROR, "InternalError"),
    row("GET /models (shape)", "dashscope", 200, MODELS_LIST, S.HEALTHY),
    row("401 via one-api (derived)", "dashscope", 401, one_api(DASHSCOPE_401), S.UNAUTHORIZED, "invalid_api_key", "keys are region-bound"),
    # --- dashscope-intl -------------------------------------------------------------------
    row("401 Beijing key on intl BerriAI/litellm#12571", "dashscope-intl", 401, DASHSCOPE_401, S.UNAUTHORIZED, "invalid_api_key", "dashscope.aliyuncs.com"),
    row("Arrearage hsliuping/TradingAgents-CN#170", "dashscope-intl", 400, DASHSCOPE_ARREARAGE, S.QUOTA_EXHAUSTED, "Arrearage"),
    row("400 data_inspection_failed camel-ai/owl#432", "dashscope-intl", 400, DASHSCOPE_INSPECTION, S.HEALTHY, REACHABLE),
    # --- zhipu ----------------------------------------------------------------------------
    row("401 1002 FoundationAgents/MetaGPT#1373", "zhipu", 401, ZHIPU_1002, S.UNAUTHORIZED, "1002: Authorization Token非法", "api.z.ai"),
    row("401 1001 Mai-with-u/MaiBot#1151", "zhipu", 401, ZHIPU_1001, S.UNAUTHORIZED, "1001"),
    row("401 code 401 chathub-dev/chathub#1047", "zhipu", 401, ZHIPU_401_TEXT_CODE, S.UNAUTHORIZED, "令牌已过期"),
    row("429 1113 docs.bigmodel.cn/cn/api/api-code", "zhipu", 429, ZHIPU_1113_CN, S.QUOTA_EXHAUSTED, "1113", "余额不足"),
    row("429 1302 kaitranntt/ccs#402", "zhipu", 429, ZHIPU_1302, S.RATE_LIMITED, "1302"),
    row("400 1301 docs.bigmodel.cn/cn/api/api-code", "zhipu", 400, ZHIPU_1301, S.HEALTHY, REACHABLE, "1301"),
    row("429 1113 via one-api (derived)", "zhipu", 429, one_api(ZHIPU_1113_CN), S.QUOTA_EXHAUSTED, "1113", "request id"),
    row("429 1113 via OpenRouter (derived)", "zhipu", 429, openrouter(ZHIPU_1113_EN, 429, "Z.AI"), S.QUOTA_EXHAUSTED, "1113: Insufficient balance"),
    # --- zai ------------------------------------------------------------------------------
    row("401 1002 FoundationAgents/MetaGPT#1373", "zai", 401, ZHIPU_1002, S.UNAUTHORIZED, "1002", "open.bigmodel.cn"),
    row("429 1113 7836246/cursor2api#30", "zai", 429, ZHIPU_1113_EN, S.QUOTA_EXHAUSTED, "1113: Insufficient balance"),
    row("429 1302 kaitranntt/ccs#402", "zai", 429, ZHIPU_1302, S.RATE_LIMITED, "High concurrency"),
    row("400 1301 docs.z.ai/api-reference/api-code", "zai", 400, ZHIPU_1301, S.HEALTHY, REACHABLE),
    # --- moonshot / moonshot-intl ---------------------------------------------------------
    row("401 platform.kimi.com/docs/api/errors", "moonshot", 401, MOONSHOT_401, S.UNAUTHORIZED, "invalid_authentication_error", "api.moonshot.ai"),
    row("429 quota 666ghj/BettaFish#524", "moonshot", 429, MOONSHOT_QUOTA, S.QUOTA_EXHAUSTED, "exceeded_current_quota_error"),
    row("403 quota (help page's status)", "moonshot", 403, MOONSHOT_QUOTA, S.QUOTA_EXHAUSTED, "exceeded_current_quota_error"),
    row("429 rate LLM-Red-Team/kimi-cc#16", "moonshot", 429, MOONSHOT_RATE, S.RATE_LIMITED, "max RPM: 3"),
    row("429 overloaded MoonshotAI/MoonshotAI-Cookbook#16", "moonshot", 429, MOONSHOT_OVERLOADED, S.SERVER_ERROR, "engine_overloaded_error"),
    row("400 content_filter platform.kimi.com/docs/api/errors", "moonshot", 400, MOONSHOT_FILTER, S.HEALTHY, REACHABLE, "high risk"),
    row("GET /models (shape)", "moonshot", 200, MODELS_LIST, S.HEALTHY),
    row("429 quota via one-api (derived)", "moonshot", 429, one_api(MOONSHOT_QUOTA), S.QUOTA_EXHAUSTED, "exceeded_current_quota_error", "suspended"),
    row("401 via OpenRouter (derived)", "moonshot", 401, openrouter(MOONSHOT_401, 401, "Moonshot AI"), S.UNAUTHORIZED, "Invalid Authentication"),
    row("401 platform.kimi.ai/docs/api/errors", "moonshot-intl", 401, MOONSHOT_401, S.UNAUTHORIZED, "api.moonshot.cn"),
    row("429 quota MoonshotAI/kimi-code#1857", "moonshot-intl", 429, MOONSHOT_QUOTA, S.QUOTA_EXHAUSTED, "suspended due to insufficient balance"),
    row("429 rate LLM-Red-Team/kimi-cc#16", "moonshot-intl", 429, MOONSHOT_RATE, S.RATE_LIMITED),
    row("429 overloaded MoonshotAI/MoonshotAI-Cookbook#16", "moonshot-intl", 429, MOONSHOT_OVERLOADED, S.SERVER_ERROR),
    row("400 content_filter platform.kimi.ai/docs/api/errors", "moonshot-intl", 400, MOONSHOT_FILTER, S.HEALTHY, REACHABLE),
    # --- qianfan --------------------------------------------------------------------------
    row("401 invalid_model pi-go qianfan/outcome.go", "qianfan", 401, QIANFAN_INVALID_MODEL, S.MODEL_UNAVAILABLE, "invalid_model"),
    row("401 invalid_iam_token pi-go qianfan/outcome.go", "qianfan", 401, QIANFAN_IAM, S.UNAUTHORIZED, "invalid_iam_token", "hint: v2 takes a bce-v3"),
    row("403 account_overdue pi-go qianfan/outcome.go", "qianfan", 403, QIANFAN_OVERDUE, S.QUOTA_EXHAUSTED, "account_overdue"),
    row("429 rpm PaddlePaddle/ERNIE#1031", "qianfan", 429, QIANFAN_RPM, S.RATE_LIMITED, "rpm_rate_limit_exceeded"),
    row("400 unsafe_request ai.baidu.com v2 codes (shape)", "qianfan", 400, QIANFAN_UNSAFE, S.HEALTHY, REACHABLE),
    row("v1 110 ai.baidu.com/ai-doc/WENXINWORKSHOP/tlmyncueh", "qianfan", 200, QIANFAN_V1_TOKEN, S.UNAUTHORIZED, "Access token invalid"),
    row("v1 17 daily limit ai.baidu.com/ai-doc/WENXINWORKSHOP/tlmyncueh", "qianfan", 200, QIANFAN_V1_DAILY, S.QUOTA_EXHAUSTED, "daily request limit"),
    row("v1 18 qps ai.baidu.com/ai-doc/WENXINWORKSHOP/tlmyncueh", "qianfan", 200, QIANFAN_V1_QPS, S.RATE_LIMITED, "qps"),
    # --- hunyuan --------------------------------------------------------------------------
    # Code 1001 here is a malformed request, where Zhipu's 1001 is a missing key: numeric codes
    # stay in their own preset, so this is an unexplained 400 (soft), not Unauthorized (hard).
    row("400 1001 songquanpeng/one-api#1948", "hunyuan", 400, HUNYUAN_1001, S.SERVER_ERROR, "1001"),
    row("native AuthFailure tencentcloud.com 1284/75543", "hunyuan", 401, HUNYUAN_NATIVE_AUTH, S.UNAUTHORIZED, "AuthFailure.SignatureFailure", "SecretId/SecretKey"),
    row("native AuthFailure at 200 tencentcloud.com 1284/75543", "hunyuan", 200, HUNYUAN_NATIVE_AUTH, S.UNAUTHORIZED, "AuthFailure"),
    row("native LimitExceeded tencentcloud.com 1284/75543", "hunyuan", 200, HUNYUAN_NATIVE_LIMIT, S.RATE_LIMITED, "LimitExceeded"),
    row("chat completion (shape)", "hunyuan", 200, COMPLETION, S.HEALTHY),
    # --- baichuan -------------------------------------------------------------------------
    row("legacy 10105 chatchat-space/Langchain-Chatchat#2786", "baichuan", 401, BAICHUAN_10105, S.UNAUTHORIZED),
    row("legacy 10105 at 200 chatchat-space/Langchain-Chatchat#2786", "baichuan", 200, BAICHUAN_10105, S.UNAUTHORIZED),
    row("401 empty (synthetic: bodies n/f)", "baichuan", 401, "", S.UNAUTHORIZED, "HTTP 401"),
    # --- sensenova, yi, ai360: bodies n/f -------------------------------------------------
    row("401 empty (synthetic: bodies n/f)", "sensenova", 401, "", S.UNAUTHORIZED, "HTTP 401"),
    row("429 text (synthetic: bodies n/f)", "sensenova", 429, "Too Many Requests", S.RATE_LIMITED, content_type=TEXT),
    row("chat completion (shape)", "sensenova", 200, COMPLETION, S.HEALTHY),
    row("401 empty (synthetic: bodies n/f)", "yi", 401, "", S.UNAUTHORIZED, "HTTP 401"),
    row("402 empty (synthetic: bodies n/f)", "yi", 402, "", S.QUOTA_EXHAUSTED, "HTTP 402"),
    row("chat completion (shape)", "yi", 200, COMPLETION, S.HEALTHY),
    row("401 empty (synthetic: bodies n/f)", "ai360", 401, "", S.UNAUTHORIZED, "HTTP 401"),
    row("404 empty (synthetic: bodies n/f)", "ai360", 404, "", S.MODEL_UNAVAILABLE),
    row("GET /models (shape)", "ai360", 200, MODELS_LIST, S.HEALTHY),
    # --- spark ----------------------------------------------------------------------------
    row("401 HMAC AstrBotDevs/AstrBot#3090", "spark", 401, SPARK_401, S.UNAUTHORIZED, "HMAC signature cannot be verified", "APIPassword"),
    row("401 HMAC at 400 AstrBotDevs/AstrBot#3090", "spark", 400, SPARK_401, S.UNAUTHORIZED, "HMAC"),
    row("11200 AppIdNoAuthError xfyun.cn 接口说明", "spark", 200, SPARK_11200, S.QUOTA_EXHAUSTED, "AppIdNoAuthError", "no licence"),
    row("10013 moderation xfyun.cn 接口说明 (shape)", "spark", 200, SPARK_10013, S.HEALTHY, REACHABLE, "10013"),
    row("10007 busy xfyun.cn 接口说明 (shape)", "spark", 200, SPARK_10007, S.RATE_LIMITED, "10007"),
    row("10012 engine error xfyun.cn 接口说明 (shape)", "spark", 200, SPARK_10012, S.SERVER_ERROR, "10012"),
    # --- minimax / minimax-intl -----------------------------------------------------------
    row("compat 401 wavetermdev/waveterm#3238", "minimax", 401, MINIMAX_COMPAT_401, S.UNAUTHORIZED, "authorized_error: login fail", "api.minimax.io"),
    row("200 base_resp 1004 platform.minimaxi.com errorcode", "minimax", 200, MINIMAX_1004, S.UNAUTHORIZED, "1004: login fail", "keys are region-bound"),
    row("200 base_resp 1008 platform.minimaxi.com errorcode", "minimax", 200, MINIMAX_1008, S.QUOTA_EXHAUSTED, "1008"),
    row("200 base_resp 1002 platform.minimaxi.com errorcode (shape)", "minimax", 200, MINIMAX_1002, S.RATE_LIMITED, "1002"),
    row("200 base_resp 1026 platform.minimaxi.com errorcode (shape)", "minimax", 200, MINIMAX_1026, S.HEALTHY, REACHABLE, "1026"),
    row("200 completion eolinker/apinto minimax/message.go", "minimax", 200, MINIMAX_COMPLETION, S.HEALTHY),
    row("compat 401 wavetermdev/waveterm#3238", "minimax-intl", 401, MINIMAX_COMPAT_401, S.UNAUTHORIZED, "login fail", "api.minimaxi.com"),
    row("200 base_resp 1008 platform.minimax.io errorcode", "minimax-intl", 200, MINIMAX_1008, S.QUOTA_EXHAUSTED, "insufficient balance"),
    row("200 base_resp 1027 platform.minimax.io errorcode (shape)", "minimax-intl", 200, MINIMAX_1026.replace("1026", "1027"), S.HEALTHY, REACHABLE),
    # --- stepfun / stepfun-intl -----------------------------------------------------------
    row("401 stepfun-ai/Step-3.5-Flash#22", "stepfun", 401, STEPFUN_401, S.UNAUTHORIZED, "invalid_api_key: Incorrect API key provided", "api.stepfun.ai"),
    row("401 stepfun-ai/Step-3.5-Flash#22", "stepfun-intl", 401, STEPFUN_401, S.UNAUTHORIZED, "Incorrect API key provided", "api.stepfun.com"),
    # --- ark ------------------------------------------------------------------------------
    row("401 AuthenticationError volcengine.com/docs/82379/1299023", "ark", 401, ARK_401, S.UNAUTHORIZED, "AuthenticationError"),
    row("403 AccountOverdueError coze-dev/coze-studio#2195", "ark", 403, ARK_OVERDUE, S.QUOTA_EXHAUSTED, "AccountOverdueError", "overdue balance"),
    row("403 AccessDenied volcengine.com/docs/82379/1299023 (shape)", "ark", 403, ARK_ACCESS_DENIED, S.UNAUTHORIZED, "AccessDenied"),
    row("404 ModelNotOpen volcengine.com/docs/82379/1299023", "ark", 404, ARK_MODEL_NOT_OPEN, S.MODEL_UNAVAILABLE, "ModelNotOpen", "hint: activate the model"),
    row("404 InvalidEndpointOrModel.NotFound (shape)", "ark", 404, ARK_ENDPOINT, S.MODEL_UNAVAILABLE, "InvalidEndpointOrModel.NotFound"),
    row("429 EndpointRPMExceeded volcengine.com/docs/82379/1299023", "ark", 429, ARK_RPM, S.RATE_LIMITED, "RateLimitExceeded.EndpointRPMExceeded"),
    row("429 ServerOverloaded volcengine.com/docs/82379/1299023", "ark", 429, ARK_OVERLOADED, S.SERVER_ERROR, "ServerOverloaded"),
    row("400 InputTextRiskDetection (shape)", "ark", 400, ARK_RISK, S.HEALTHY, REACHABLE, "InputTextRiskDetection"),
    row("500 InternalServiceError (shape)", "ark", 500, ARK_500, S.SERVER_ERROR, "InternalServiceError"),
    row("404 ModelNotOpen via one-api (derived)", "ark", 404, one_api(ARK_MODEL_NOT_OPEN), S.MODEL_UNAVAILABLE, "ModelNotOpen", "hint: activate"),
    # --- siliconflow / siliconflow-intl ---------------------------------------------------
    row("401 plain chatboxai/chatbox#2573", "siliconflow", 401, "Invalid token", S.UNAUTHORIZED, "Invalid token", "api.siliconflow.com", content_type=TEXT),
    row("403 30011 FoundationAgents/OpenManus#438", "siliconflow", 403, SILICONFLOW_30011, S.QUOTA_EXHAUSTED, "30011"),
    row("429 AIDotNet/OpenDeepWiki#269", "siliconflow", 429, SILICONFLOW_429, S.RATE_LIMITED, "TPM limit reached"),
    row("GET /models (shape)", "siliconflow", 200, MODELS_LIST, S.HEALTHY),
    row("401 plain chatboxai/chatbox#2573", "siliconflow-intl", 401, "Api key is invalid", S.UNAUTHORIZED, "Api key is invalid", "api.siliconflow.cn", content_type=TEXT),
    row("403 30011 FoundationAgents/OpenManus#438", "siliconflow-intl", 403, SILICONFLOW_30011, S.QUOTA_EXHAUSTED, "paid balance is insufficient"),
    row("429 AIDotNet/OpenDeepWiki#269", "siliconflow-intl", 429, SILICONFLOW_429, S.RATE_LIMITED),
]
# fmt: on


@pytest.mark.parametrize(("preset", "answer", "method", "state", "expect_in"), CASES)
def test_real_bodies(
    preset: str,
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
        assert text in result.message, result.message
    if state is S.HEALTHY and not expect_in:
        assert result.message == ""


def test_every_preset_has_its_own_rows() -> None:
    covered = {param.values[0] for param in CASES}  # type: ignore[attr-defined]
    assert covered == set(PRESET_IDS)


# --- every preset: the rules that hold whatever the provider ---------------------------------

HEALTHY_BODY = {MODELS: MODELS_LIST, CHAT: COMPLETION}

# fmt: off
COMMON_ANSWERS = [
    pytest.param(HttpAnswer(401, b""), S.UNAUTHORIZED, id="401 empty"),
    pytest.param(HttpAnswer(402, b""), S.QUOTA_EXHAUSTED, id="402 empty"),
    pytest.param(HttpAnswer(429, b"Too Many Requests", TEXT), S.RATE_LIMITED, id="429 text"),
    pytest.param(HttpAnswer(503, b"upstream connect error or disconnect/reset before headers", TEXT), S.SERVER_ERROR, id="503 text"),
    pytest.param(HttpAnswer(502, NGINX_502.encode(), HTML), S.SERVER_ERROR, id="502 nginx html"),
    pytest.param(HttpAnswer(451, XIAOMI_451.encode(), HTML), S.GEO_BLOCKED, id="451 html Kilo-Org/kilocode#10872"),
    pytest.param(HttpAnswer(403, CLOUDFLARE_BLOCK.encode(), HTML), S.GEO_BLOCKED, id="403 cloudflare html"),
    pytest.param(HttpAnswer(403, OPENAI_GEO.encode()), S.GEO_BLOCKED, id="403 openai geo body"),
    pytest.param(HttpAnswer(403, ONE_API_GEO.encode()), S.GEO_BLOCKED, id="403 openai geo via one-api"),
    pytest.param(HttpAnswer(400, OPENROUTER_GEMINI_GEO.encode()), S.GEO_BLOCKED, id="400 gemini geo via openrouter"),
    pytest.param(HttpAnswer(200, SPA_SHELL.encode(), HTML), S.SERVER_ERROR, id="200 html shell"),
    pytest.param(HttpAnswer(200, b""), S.SERVER_ERROR, id="200 empty"),
]
# fmt: on


@pytest.mark.parametrize("preset", PRESET_IDS)
@pytest.mark.parametrize(("answer", "state"), COMMON_ANSWERS)
def test_every_preset_on_shared_shapes(preset: str, answer: HttpAnswer, state: S) -> None:
    result = classify(answer, errors=dictionary(preset), method=method_of(preset))
    assert result.state is state, result.message
    assert_message_shape(result)
    assert result.message
    expected_hint = hint(preset, state)
    if expected_hint:
        assert result.message.endswith(f"(hint: {expected_hint})")


@pytest.mark.parametrize("preset", PRESET_IDS)
def test_every_preset_healthy_on_what_its_probe_asks_for(preset: str) -> None:
    method = method_of(preset)
    answer = HttpAnswer(200, HEALTHY_BODY[method].encode())
    result = classify(answer, errors=dictionary(preset), method=method)
    assert result == Classification(S.HEALTHY, "", 200)


@pytest.mark.parametrize("preset", PRESET_IDS)
def test_every_preset_transport_failures(preset: str) -> None:
    errors, method = dictionary(preset), method_of(preset)
    timeout = classify(TransportFailure(Transport.TIMEOUT), errors=errors, method=method)
    reset = classify(
        TransportFailure(Transport.RESET, "read ECONNRESET"), errors=errors, method=method
    )
    assert timeout.state is S.TIMEOUT
    assert reset.state is S.UNREACHABLE


def _declared() -> list[object]:
    cases: list[object] = []
    for preset in CATALOG.presets.values():
        for kind, listing in (("code", preset.codes), ("phrase", preset.phrases)):
            for meaning, items in listing:
                for item in items:
                    cases.append(
                        pytest.param(preset.id, kind, meaning, item, id=f"{preset.id} {item}")
                    )
    return cases


@pytest.mark.parametrize(("preset", "kind", "meaning", "item"), _declared())
def test_every_declared_entry_means_what_it_says(
    preset: str, kind: str, meaning: str, item: str
) -> None:
    """No entry is shadowed by an earlier one (a phrase inside another, a prefix, a shared code)."""
    if kind == "code":
        code = item[:-1] + ".Probe" if item.endswith("*") else item
        body = {"error": {"code": code, "message": "probe"}}
    else:
        body = {"error": {"message": f"probe: {item} (probe)"}}
    answer = HttpAnswer(400, json.dumps(body, ensure_ascii=False).encode())
    result = classify(answer, errors=dictionary(preset), method=CHAT)
    if meaning == "Moderated":
        assert result.state is S.HEALTHY
        assert REACHABLE in result.message
    else:
        assert result.state is S(meaning), result.message


@pytest.mark.parametrize("preset", PRESET_IDS)
def test_no_preset_gives_a_shared_code_another_meaning(preset: str) -> None:
    found = CATALOG.get(preset)
    assert found is not None
    for code, meaning in found.errors.codes.items():
        shared = CATALOG.common.codes.get(code)
        assert shared is None or shared == meaning, f"{preset}: {code}"


# --- moderation refusals are not outages --------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "body"),
    [
        pytest.param("dashscope", DASHSCOPE_INSPECTION, id="dashscope camel-ai/owl#432"),
        pytest.param("deepseek", DEEPSEEK_RISK, id="deepseek Content Exists Risk"),
        pytest.param("zhipu", ZHIPU_1301, id="zhipu 1301"),
        pytest.param("moonshot", MOONSHOT_FILTER, id="moonshot content_filter"),
        pytest.param("azure-openai", AZURE_FILTER, id="azure openai/openai-python#331"),
        pytest.param("ark", ARK_RISK, id="ark InputTextRiskDetection"),
        pytest.param("spark", SPARK_10013, id="spark 10013"),
        pytest.param("minimax", MINIMAX_1026, id="minimax 1026"),
    ],
)
def test_moderation_refusal_on_a_probe_is_healthy(preset: str, body: str) -> None:
    for status in (400, 200, 403):
        result = classify(HttpAnswer(status, body.encode()), errors=dictionary(preset), method=CHAT)
        assert result.state is S.HEALTHY
        assert result.message.startswith("content refusal, provider reachable: ")
        assert "hint:" not in result.message


# --- region-bound keys ------------------------------------------------------------------------


@pytest.mark.parametrize(("preset", "other"), [*REGION_PAIRS, *[(b, a) for a, b in REGION_PAIRS]])
def test_region_bound_key_on_the_wrong_host_gets_a_hint(preset: str, other: str) -> None:
    other_preset = CATALOG.get(other)
    assert other_preset is not None
    assert other_preset.base_url is not None
    text = hint(preset, S.UNAUTHORIZED)
    assert text.startswith("keys are region-bound")
    assert other in text
    host = urlsplit(other_preset.base_url).hostname
    assert host
    assert host in text
    # A key on the wrong host answers a plain 401: with or without a body, the hint is there.
    for body in (b"", b"Invalid token", DASHSCOPE_401.encode(), STEPFUN_401.encode()):
        result = classify(HttpAnswer(401, body), errors=dictionary(preset), method=CHAT)
        assert result.state is S.UNAUTHORIZED
        assert result.message.endswith(f"(hint: {text})")
        assert_message_shape(result)


def test_region_hints_stay_whole_after_a_long_body() -> None:
    body = '{"error":{"code":"invalid_api_key","message":"' + "Incorrect API key. " * 40 + '"}}'
    result = classify(HttpAnswer(401, body.encode()), errors=dictionary("dashscope"), method=MODELS)
    assert len(result.message) <= classifier.MESSAGE_LIMIT
    assert result.message.endswith(f"(hint: {hint('dashscope', S.UNAUTHORIZED)})")
    assert result.message.startswith("invalid_api_key: Incorrect API key.")
    assert "… (hint:" in result.message


def test_hints_are_only_for_their_state() -> None:
    errors = dictionary("dashscope")
    quota = classify(HttpAnswer(400, DASHSCOPE_ARREARAGE.encode()), errors=errors, method=MODELS)
    healthy = classify(HttpAnswer(200, MODELS_LIST.encode()), errors=errors, method=MODELS)
    assert "hint" not in quota.message
    assert healthy.message == ""


def test_presets_without_region_twins_have_no_region_hint() -> None:
    for preset in PRESET_IDS:
        if preset not in REGION_BOUND:
            assert "region-bound" not in hint(preset, S.UNAUTHORIZED), preset


def test_no_preset_hint_is_shared() -> None:
    assert not CATALOG.common.hints  # hints are about one provider: they live in its preset


# --- catalog structure --------------------------------------------------------------------------


def test_required_presets_are_there() -> None:
    assert not REQUIRED - set(PRESET_IDS)
    assert not REGION_BOUND - set(PRESET_IDS)


@pytest.mark.parametrize("preset", PRESET_IDS)
def test_preset_structure(preset: str) -> None:
    found = CATALOG.get(preset)
    assert found is not None
    assert found.title.strip()
    assert found.sources, "every preset cites where its facts come from"
    assert all(s.strip() for s in found.sources)
    assert isinstance(found.probe_method, ProbeMethod)
    assert found.auth.header.strip()
    if found.base_url is None:
        assert found.base_url_note, "a preset without a base URL says why"
    else:
        url = urlsplit(found.base_url)
        assert url.scheme == "https"
        assert url.hostname
        assert "." in url.hostname
        assert not url.query
        assert not url.fragment
        assert not found.base_url.endswith("/")
    for text in found.errors.hints.values():
        assert 0 < len(text) <= HINT_LIMIT


def test_ids_match_file_names() -> None:
    for path in sorted(PRESET_DIR.glob("*.toml")):
        if path.name == COMMON_FILE:
            continue
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        assert data["id"] == path.stem
    assert len(PRESET_IDS) == len(list(PRESET_DIR.glob("*.toml"))) - 1


def test_no_numeric_code_is_shared() -> None:
    data = tomllib.loads((PRESET_DIR / COMMON_FILE).read_text(encoding="utf-8"))
    for meaning, items in data["codes"].items():
        for item in items:
            assert not str(item).strip().isdigit(), f"{COMMON_FILE}: codes.{meaning}: {item}"


def test_models_probe_only_where_get_models_works_with_a_key() -> None:
    # The research: GET /models works with a key at DeepSeek, DashScope, Moonshot, SiliconFlow,
    # 360, OpenAI and Gemini; Zhipu answers 404, Qianfan 403, Yi 400, and the rest are n/f.
    models = {p for p in PRESET_IDS if method_of(p) is MODELS}
    assert models == {
        "openai", "gemini", "deepseek", "dashscope", "dashscope-intl", "moonshot",
        "moonshot-intl", "siliconflow", "siliconflow-intl", "ai360",
    }  # fmt: skip


def test_azure_key_travels_bare_in_api_key() -> None:
    azure = CATALOG.get("azure-openai")
    assert azure is not None
    assert azure.base_url is None
    assert azure.auth.headers("k") == {"api-key": "k"}
    openai = CATALOG.get("openai")
    assert openai is not None
    assert openai.auth.headers("k") == {"Authorization": "Bearer k"}


# --- the loader refuses malformed data --------------------------------------------------------

GOOD_COMMON = '[codes]\nUnauthorized = ["invalid_api_key"]\n'
GOOD_PRESET = 'id = "p"\ntitle = "P"\nbase_url = "https://p.example/v1"\nsources = ["x/y#1"]\n'


@pytest.mark.parametrize(
    ("common", "preset", "words"),
    [
        ('[codes]\nRateLimited = ["1302"]\n', GOOD_PRESET, "numeric code(s) 1302"),
        ('[codez]\nRateLimited = ["a"]\n', GOOD_PRESET, "unknown key(s) codez"),
        (GOOD_COMMON, GOOD_PRESET + "hint = 1\n", "unknown key(s) hint"),
        (
            GOOD_COMMON,
            GOOD_PRESET.replace('base_url = "https://p.example/v1"\n', ""),
            "base_url_note",
        ),
        (GOOD_COMMON, GOOD_PRESET + '[hints]\nHealthy = "x"\n', "not a state a hint"),
        (GOOD_COMMON, GOOD_PRESET + '[hints]\nBroken = "x"\n', "unknown state 'Broken'"),
        (GOOD_COMMON, GOOD_PRESET + f'[hints]\nUnauthorized = "{"x" * 101}"\n', "longer than 100"),
        (GOOD_COMMON, GOOD_PRESET + '[codes]\nFine = ["a"]\n', "unknown meaning 'Fine'"),
        (GOOD_COMMON, GOOD_PRESET.replace('id = "p"', 'id = "q"'), "does not match the file name"),
    ],
)
def test_loader_refuses(tmp_path: Path, common: str, preset: str, words: str) -> None:
    (tmp_path / COMMON_FILE).write_text(common, encoding="utf-8")
    (tmp_path / "p.toml").write_text(preset, encoding="utf-8")
    with pytest.raises(CatalogError, match=None) as info:
        load_catalog(tmp_path)
    assert words in str(info.value)


def test_loader_reads_hints_and_a_missing_base_url(tmp_path: Path) -> None:
    (tmp_path / COMMON_FILE).write_text(GOOD_COMMON, encoding="utf-8")
    preset = GOOD_PRESET.replace('base_url = "https://p.example/v1"\n', 'base_url_note = "own"\n')
    (tmp_path / "p.toml").write_text(preset + '[hints]\nUnauthorized = "check it"\n', "utf-8")
    catalog = load_catalog(tmp_path)
    found = catalog.get("p")
    assert found is not None
    assert found.base_url is None
    assert catalog.dictionary(found).hint(S.UNAUTHORIZED) == "check it"


# --- spec: a preset without a base URL ----------------------------------------------------------


def _route(provider: dict[str, object]) -> object:
    spec = {"providers": [{"name": "azure", "model": "gpt-4o-prod", **provider}]}
    return parse_route_spec(spec, route_name="chat", catalog=CATALOG)


def test_azure_preset_needs_a_base_url() -> None:
    with pytest.raises(SpecError) as info:
        _route({"preset": "azure-openai"})
    assert str(info.value) == (
        'spec.providers[0].baseURL: required: preset "azure-openai" has no base URL (each Azure '
        "resource has its own, e.g. https://RESOURCE.openai.azure.com/openai/v1)"
    )


def test_azure_preset_with_a_base_url() -> None:
    spec = _route(
        {"preset": "azure-openai", "baseURL": "https://contoso.openai.azure.com/openai/v1/"}
    )
    (provider,) = spec.providers  # type: ignore[attr-defined]
    assert provider.base_url == "https://contoso.openai.azure.com/openai/v1"
    assert provider.auth.headers("k") == {"api-key": "k"}
    assert provider.probe_method is CHAT
    assert provider.errors.hint(S.MODEL_UNAVAILABLE).startswith("on Azure, model is the deployment")


# --- the generated documentation ----------------------------------------------------------------


def test_docs_providers_md_is_generated_from_the_data() -> None:
    path = REPO / "docs" / "providers.md"
    rendered = catalog_doc.render_markdown(CATALOG)
    assert path.read_text(encoding="utf-8") == rendered, (
        f"docs/providers.md is stale: regenerate it with `{catalog_doc.REGENERATE}` "
        "(run from the repository root with the project's virtualenv)"
    )


def test_docs_name_every_preset_and_its_sources() -> None:
    rendered = catalog_doc.render_markdown(CATALOG)
    for preset in CATALOG.presets.values():
        assert f"| `{preset.id}` |" in rendered
        assert f"`{preset.auth.header}: {preset.auth.prefix}<key>`" in rendered
        if preset.base_url:
            assert f"`{preset.base_url}`" in rendered
    assert (
        "[songquanpeng/one-api#1692](https://github.com/songquanpeng/one-api/issues/1692)"
        in rendered
    )
    assert "| 451 | `GeoBlocked` |" in rendered
