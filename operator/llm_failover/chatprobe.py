"""How a `Chat` probe asks each model family, and how to tell a refusal of the probe's own
parameters from a refusal of the provider's service.

A one-token `max_tokens: 1` completion suits most chat models, but not all of them: OpenAI's
o-series and GPT-5 refuse `max_tokens` (they take `max_completion_tokens`, and answer a budget
used up by reasoning with a 400), Qwen3 on DashScope refuses to think in a non-streaming call,
some relays refuse a budget of 1. Such a refusal comes after the key and the model were accepted:
the provider is up, only the probe asked wrongly. `refused_parameter` recognises it, so that the
classifier reports the provider `Healthy` (saying the catalog's probe needs fixing) instead of
counting a healthy provider's answers towards a failover. Sources: docs/research/chat-probes.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

MAX_PROBE_TOKENS = 4096
"""Most tokens a preset may give the probe: a probe must stay cheap whatever the model."""

REASONING_TOKENS = 16
"""Least `max_completion_tokens` sent to an OpenAI reasoning model (o1, o3, o4, GPT-5): new-api's
channel test and LiteLLM's health check both settled on 16 for these families."""

PROMPT = "ping"


class TokenField(StrEnum):
    """Which body field carries the probe's token budget."""

    AUTO = "auto"  # max_completion_tokens for OpenAI reasoning model names, max_tokens otherwise
    MAX_TOKENS = "max_tokens"
    MAX_COMPLETION_TOKENS = "max_completion_tokens"


class Thinking(StrEnum):
    """How the probe switches a hybrid model's thinking off (the value is what it sends)."""

    DEFAULT = "default"  # nothing sent: the model's own default
    ENABLE_THINKING_FALSE = "enable_thinking=false"  # {"enable_thinking": false}: DashScope Qwen3
    THINKING_TYPE_DISABLED = "thinking.type=disabled"  # {"thinking": {"type": "disabled"}}: Ark


REASONING_EFFORTS = frozenset({"", "none", "minimal", "low", "medium", "high"})
"""Values `reasoning_effort` may take ("" sends none). Which ones a model accepts varies by model
(GPT-5 alone takes "minimal", GPT-5.1 and later alone "none"), so no shipped preset sets one."""


@dataclass(frozen=True)
class ChatProbe:
    """How one provider's (or preset's) models are probed by `POST /chat/completions`.

    The default is what works for most non-reasoning chat models: `max_tokens: 1`, with OpenAI
    reasoning model names given `max_completion_tokens` (see `chat_payload`).
    """

    token_field: TokenField = TokenField.AUTO
    tokens: int = 1
    thinking: Thinking = Thinking.DEFAULT
    reasoning_effort: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.tokens, bool) or not 1 <= self.tokens <= MAX_PROBE_TOKENS:
            raise ValueError(f"tokens must be 1 to {MAX_PROBE_TOKENS}, got {self.tokens!r}")
        if self.reasoning_effort not in REASONING_EFFORTS:
            known = ", ".join(sorted(e for e in REASONING_EFFORTS if e))
            raise ValueError(
                f"reasoning_effort must be one of {known}, got {self.reasoning_effort!r}"
            )

    def describe(self) -> str:
        """One line for the catalog's documentation, e.g. `max_tokens: 1, enable_thinking=false`."""
        parts = [f"{self.token_field.value}: {self.tokens}"]
        if self.thinking is not Thinking.DEFAULT:
            parts.append(self.thinking.value)
        if self.reasoning_effort:
            parts.append(f"reasoning_effort={self.reasoning_effort}")
        return ", ".join(parts)


DEFAULT_PROBE = ChatProbe()
"""The probe of providers whose preset has no `[chat]` table, and of providers without a preset."""


def chat_payload(model: str, probe: ChatProbe) -> dict[str, Any]:
    """The JSON body of the probe's chat completion for `model`.

    Two model-name rules apply whatever the preset says:
    - OpenAI reasoning families (`o1`, `o3`, `o4`, `gpt-5`, after any `vendor/` prefix) refuse
      `max_tokens`: with `auto` they get `max_completion_tokens`, and at least
      `REASONING_TOKENS` whenever that field is sent.
    - A model whose name says it only thinks (a `thinking` name segment, e.g.
      `qwen3-235b-a22b-thinking-2507`, `doubao-seed-1-6-thinking-250715`) refuses to have its
      thinking switched off, so no switch is sent to it.
    """
    name = _bare_name(model)
    reasoning = _openai_reasoning(name)
    field = probe.token_field
    if field is TokenField.AUTO:
        field = TokenField.MAX_COMPLETION_TOKENS if reasoning else TokenField.MAX_TOKENS
    tokens = probe.tokens
    if field is TokenField.MAX_COMPLETION_TOKENS and reasoning:
        tokens = max(tokens, REASONING_TOKENS)
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        field.value: tokens,
        "stream": False,
    }
    if not _thinking_only(name):
        if probe.thinking is Thinking.ENABLE_THINKING_FALSE:
            payload["enable_thinking"] = False
        elif probe.thinking is Thinking.THINKING_TYPE_DISABLED:
            payload["thinking"] = {"type": "disabled"}
    if probe.reasoning_effort:
        payload["reasoning_effort"] = probe.reasoning_effort
    return payload


_OPENAI_REASONING = ("o1", "o3", "o4", "gpt-5")


def _bare_name(model: str) -> str:
    """The model name without a relay's `vendor/` prefix (`openai/o3-mini`), in lower case."""
    return model.rpartition("/")[2].strip().lower()


def _openai_reasoning(name: str) -> bool:
    return any(
        name == family or name.startswith((f"{family}-", f"{family}."))
        for family in _OPENAI_REASONING
    )


def _thinking_only(name: str) -> bool:
    return "thinking" in _segments(name)


def _segments(name: str) -> list[str]:
    """`a-b.c_d` → [a, b, c, d]: one pass, no regular expression."""
    out: list[str] = []
    start = 0
    for i, char in enumerate(name):
        if not char.isalnum():
            if i > start:
                out.append(name[start:i])
            start = i + 1
    if len(name) > start:
        out.append(name[start:])
    return out


# --- refusals of the probe's own parameters ---------------------------------------------------

# The parameters a probe sends (and `max_output_tokens`, what a relay turns `max_tokens` into for
# OpenAI's Responses API). Longest first, so that a message's first mention is named precisely.
_PARAMETERS = (
    "max_completion_tokens",
    "max_output_tokens",
    "reasoning_effort",
    "enable_thinking",
    "max_tokens",
    "thinking",
    "stream",
    "思考",  # "thinking", in Chinese messages (Zhipu GLM-5.3 via relays)
)

# Words that say a parameter was refused (lower case).
_REFUSALS = (
    "unsupported",
    "not supported",
    "unrecognized",
    "unknown parameter",
    "unknown field",
    "not valid",
    "invalid",
    "must be",
    "at least",
    "minimum",
    "valid range",
    "cannot be",
    "can not be",
    "restricted to",
    "only support",
    "could not finish the message",
    "非法",  # "illegal" (Zhipu 1214)
    "不支持",  # "not supported"
)

# Words that say something other than the probe was refused: the key, the account, the model,
# the caller's region. Any of them and the answer is not the probe's fault, whatever else it says.
_NOT_THE_PROBE = (
    "api key",
    "api-key",
    "apikey",
    "access denied",
    "authenticat",
    "authoriz",
    "permission",
    "balance",
    "quota",
    "billing",
    "arrear",
    "overdue",
    "does not exist",
    "not found",
    "no access",
    "country",
    "region",
    "territory",
    "令牌",  # token, the credential (Zhipu 401)
    "余额",  # balance
    "欠费",  # arrears
    "不存在",  # does not exist
)

# Statuses that are never a parameter refusal: they say who may call, not how the call was asked.
_NOT_A_REFUSAL_STATUS = frozenset({401, 402, 403, 404, 407, 408, 429, 451})

_TEXT_LIMIT = 4096
"""Characters of one message looked at: a refusal names the parameter near the start, and the
cost stays bounded by this, not by the body."""


def refused_parameter(status: int, text: str) -> str | None:
    """The probe parameter a 4xx answer's message refuses, or None when it refuses anything else
    (the key, the account, the model, the region) or nothing recognisable.

    Linear in the text: lower-casing and `str.find` from left to right, no regular expression.
    """
    if not 400 <= status < 500 or status in _NOT_A_REFUSAL_STATUS:
        return None
    lower = text[:_TEXT_LIMIT].lower()
    if not any(word in lower for word in _REFUSALS):
        return None
    if any(word in lower for word in _NOT_THE_PROBE):
        return None
    first: tuple[int, str] | None = None
    for parameter in _PARAMETERS:
        position = _find_word(lower, parameter)
        if position >= 0 and (first is None or position < first[0]):
            first = (position, parameter)
    return None if first is None else ("thinking" if first[1] == "思考" else first[1])


def _find_word(text: str, word: str) -> int:
    """Where `word` first stands alone in `text` (not inside `upstream`, `enable_thinking`,
    `streaming`), or -1. Each search resumes after the last hit, so the cost stays linear."""
    start = 0
    while (position := text.find(word, start)) >= 0:
        end = position + len(word)
        if not _identifier(text, position - 1) and not _identifier(text, end):
            return position
        start = position + 1
    return -1


def _identifier(text: str, index: int) -> bool:
    """Whether the character at `index` would continue an ASCII identifier."""
    if not 0 <= index < len(text):
        return False
    char = text[index]
    return char == "_" or ("a" <= char <= "z") or ("0" <= char <= "9")
