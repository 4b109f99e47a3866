"""Turns one probe outcome (an HTTP answer or a transport failure) into exactly one provider state.

Body codes first, HTTP status second: status codes alone mislead (Zhipu answers 429 for an empty
balance, MiniMax 200 with the error inside `base_resp`, Qianfan 401 for an unknown model).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from llm_failover.catalog import ErrorDictionary, Meaning, ProbeMethod
from llm_failover.state import ProviderState

MESSAGE_LIMIT = 200
"""Characters of provider text kept in a status message: enough to read, too few to leak much."""

_SECRET_LIKE = re.compile(r"\b(sk|ak|bce-v3)[-_/A-Za-z0-9]{12,}")
_TAGS = re.compile(r"<[^>]+>")
# Elements whose text is not what the page says: the head (title included), scripts, styles.
_UNSEEN = re.compile(r"<(head|title|script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")


class Transport(StrEnum):
    """Why no HTTP answer came back."""

    TIMEOUT = "timeout"
    DNS = "dns"
    REFUSED = "refused"
    RESET = "reset"
    TLS = "tls"
    OTHER = "other"


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes  # at most the prober's read cap
    content_type: str = ""


@dataclass(frozen=True)
class TransportFailure:
    kind: Transport
    detail: str = ""


Outcome = HttpAnswer | TransportFailure


@dataclass(frozen=True)
class Classification:
    state: ProviderState
    message: str
    http_status: int | None = None


def classify(outcome: Outcome, *, errors: ErrorDictionary, method: ProbeMethod) -> Classification:
    result = (
        _transport(outcome)
        if isinstance(outcome, TransportFailure)
        else _answer(outcome, errors, method)
    )
    return _with_hint(result, errors.hint(result.state))


def _with_hint(result: Classification, hint: str) -> Classification:
    """The dictionary's hint for the state (e.g. "keys are region-bound"), kept whole."""
    if not hint or result.state is ProviderState.HEALTHY:
        return result
    suffix = f" (hint: {hint})"
    return replace(result, message=_clip(result.message, MESSAGE_LIMIT - len(suffix)) + suffix)


def _answer(outcome: HttpAnswer, errors: ErrorDictionary, method: ProbeMethod) -> Classification:
    status = outcome.status
    text = outcome.body.decode("utf-8", errors="replace")
    document = _json(text)
    codes, messages = _fields(document) if document is not None else ([], [])
    plain = _plain_text(text) if document is None else ""
    detail = _detail(codes, messages, plain)

    for code in codes:
        meaning = errors.code(code)
        if meaning is not None:
            return _from_meaning(meaning, detail, status)
    for message in [*messages, plain]:
        meaning = errors.phrase(message) if message else None
        if meaning is not None:
            return _from_meaning(meaning, detail, status)

    if 200 <= status < 300:
        if document is not None and _sane(document, method):
            return Classification(ProviderState.HEALTHY, "", status)
        return Classification(
            ProviderState.SERVER_ERROR, _clip(f"unexpected answer: {detail or text}"), status
        )
    return Classification(_by_status(status), detail or f"HTTP {status}", status)


def _by_status(status: int) -> ProviderState:
    if status == 451:
        return ProviderState.GEO_BLOCKED
    if status in (401, 403):
        return ProviderState.UNAUTHORIZED
    if status == 402:
        return ProviderState.QUOTA_EXHAUSTED
    if status == 404:
        return ProviderState.MODEL_UNAVAILABLE
    if status == 408:
        return ProviderState.TIMEOUT
    if status == 429:
        return ProviderState.RATE_LIMITED
    # 5xx, unexpected redirects and unexplained 4xx: the same request from an app would fail too,
    # but retrying might help, so they count towards the soft threshold rather than eject.
    return ProviderState.SERVER_ERROR


def _from_meaning(meaning: Meaning, detail: str, status: int) -> Classification:
    if meaning.moderated:
        return Classification(
            meaning.state, _clip(f"content refusal, provider reachable: {detail}"), status
        )
    return Classification(meaning.state, detail or f"HTTP {status}", status)


def _transport(failure: TransportFailure) -> Classification:
    state = (
        ProviderState.TIMEOUT if failure.kind is Transport.TIMEOUT else ProviderState.UNREACHABLE
    )
    text = {
        Transport.TIMEOUT: "no answer within the timeout",
        Transport.DNS: "DNS lookup failed",
        Transport.REFUSED: "connection refused",
        Transport.RESET: "connection reset",
        Transport.TLS: "TLS handshake failed",
        Transport.OTHER: "transport error",
    }[failure.kind]
    return Classification(state, _clip(f"{text}: {failure.detail}" if failure.detail else text))


def _json(text: str) -> Any:
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        return json.loads(stripped)
    except ValueError:
        return None


def _fields(document: Any) -> tuple[list[str], list[str]]:
    codes: list[str] = []
    messages: list[str] = []
    for node in _error_nodes(document, depth=0):
        for key in ("code", "type", "status", "error_code", "status_code", "Code"):
            value = node.get(key)
            if (
                isinstance(value, str | int)
                and not isinstance(value, bool)
                and str(value) not in ("", "0")
            ):
                codes.append(str(value))
        for key in ("message", "msg", "error_msg", "status_msg", "Message", "detail"):
            value = node.get(key)
            if isinstance(value, str) and value.strip():
                messages.append(value)
    return codes, messages


def _error_nodes(node: Any, *, depth: int) -> Iterator[dict[str, Any]]:
    """The objects that may carry a code or message, innermost (most specific) first."""
    if depth > 4:
        return
    if isinstance(node, list):
        for item in node[:4]:
            yield from _error_nodes(item, depth=depth + 1)
        return
    if not isinstance(node, dict):
        return
    error = node.get("error")
    if isinstance(error, dict):
        # Relays nest the upstream answer as a JSON string: OpenRouter in error.metadata.raw,
        # Gemini's own proxy in error.message.
        metadata = error.get("metadata")
        for raw in (
            metadata.get("raw") if isinstance(metadata, dict) else None,
            error.get("message"),
        ):
            if isinstance(raw, str):
                inner = _json(raw)
                if inner is not None:
                    yield from _error_nodes(inner, depth=depth + 1)
        yield error
    elif isinstance(error, str):
        yield {"message": error}
    for wrapper in ("base_resp", "header"):  # MiniMax native, iFlytek Spark
        inner = node.get(wrapper)
        if isinstance(inner, dict):
            yield inner
    response = node.get("Response")  # Tencent Cloud native
    if isinstance(response, dict) and isinstance(response.get("Error"), dict):
        yield response["Error"]
    # The top level itself (SiliconFlow's `{"code", "message"}`, Qianfan v1's `error_code`),
    # but not a successful list or completion whose `object`/`data` look like fields.
    yield {k: v for k, v in node.items() if k not in ("error", "data", "choices", "object")}


def _sane(document: Any, method: ProbeMethod) -> bool:
    if not isinstance(document, dict):
        return False
    if method is ProbeMethod.MODELS:
        return isinstance(document.get("data"), list) or isinstance(document.get("models"), list)
    return isinstance(document.get("choices"), list)


def _plain_text(text: str) -> str:
    """What an HTML page says (its title only if it says nothing else); other text as it is.

    The title of an error page mostly repeats the status ("451 Unavailable For Legal Reasons"),
    while the body says why (Xiaomi's "cross-border isolation policy", Cloudflare's "Sorry, you
    have been blocked"): the body is what phrases must match and what a human must read.
    """
    visible = _SPACE.sub(" ", html.unescape(_TAGS.sub(" ", _UNSEEN.sub(" ", text)))).strip()
    if visible:
        return visible
    title = _TITLE.search(text)
    return _SPACE.sub(" ", html.unescape(title.group(1))).strip() if title else ""


def _detail(codes: list[str], messages: list[str], plain: str) -> str:
    message = messages[0] if messages else plain
    code = next(
        (c for c in codes if not c.isdigit() or len(c) != 3), ""
    )  # skip echoed HTTP statuses
    if code and message:
        return _clip(f"{code}: {message}")
    return _clip(code or message)


def _clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """One line, bounded, with anything that looks like a key masked."""
    line = _SECRET_LIKE.sub("***", _SPACE.sub(" ", text)).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"
