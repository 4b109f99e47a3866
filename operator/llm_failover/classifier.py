"""Turns one probe outcome (an HTTP answer or a transport failure) into exactly one provider state.

Body codes first, HTTP status second: status codes alone mislead (Zhipu answers 429 for an empty
balance, MiniMax 200 with the error inside `base_resp`, Qianfan 401 for an unknown model). A Chat
probe's 4xx that refuses only the probe's own parameters (`chatprobe.refused_parameter`) comes
after them: the provider is up, the catalog's probe must change.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from llm_failover.catalog import ErrorDictionary, Meaning, ProbeMethod
from llm_failover.chatprobe import refused_parameter
from llm_failover.state import ProviderState

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 200
"""Characters of provider text kept in a status message: enough to read, too few to leak much."""

# Every pattern here runs on provider text and must stay linear: no nested or overlapping
# repetition (HTML is taken apart by `_visible_text`, not by regular expressions).
_SECRET_LIKE = re.compile(r"\b(sk|ak|bce-v3)[-_/A-Za-z0-9]{12,}")
_SPACE = re.compile(r"\s+")
# Elements whose text is not what the page says: the head (title included), scripts, styles.
_UNSEEN = ("head", "title", "script", "style")
_TAG_NAME = re.compile(r"/?([A-Za-z][A-Za-z0-9]*)")

Redact = Callable[[str], str]


def _unchanged(text: str) -> str:
    return text


class Transport(StrEnum):
    """Why no HTTP answer came back."""

    TIMEOUT = "timeout"
    DNS = "dns"
    REFUSED = "refused"
    RESET = "reset"
    TLS = "tls"
    OTHER = "other"
    INTERNAL = "internal"  # the probe itself raised: an operator bug, or a value it cannot send


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes  # at most the prober's read cap
    content_type: str = ""
    truncated: bool = False  # the body went on beyond the cap
    note: str = ""  # why the body could not be read whole, e.g. an unsupported encoding


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


def classify(
    outcome: Outcome,
    *,
    errors: ErrorDictionary,
    method: ProbeMethod,
    redact: Redact = _unchanged,
) -> Classification:
    """Exactly one state for any outcome, bytes or status; never raises.

    `redact` masks what must not be shown (the key just sent, URL credentials); it runs on the
    message before it is clipped, so no cut can leave a fragment it would have caught.
    """
    try:
        result = (
            _transport(outcome, redact)
            if isinstance(outcome, TransportFailure)
            else _answer(outcome, errors, method, redact)
        )
        return _with_hint(result, errors.hint(result.state))
    except Exception as exc:  # a bug here must cost one probe its detail, not the probe loop
        log.error("could not classify a probe answer", exc_info=True)
        status = outcome.status if isinstance(outcome, HttpAnswer) else None
        return Classification(
            ProviderState.SERVER_ERROR,
            f"unclassifiable answer ({type(exc).__name__}; see the operator log)",
            status,
        )


def _with_hint(result: Classification, hint: str) -> Classification:
    """The dictionary's hint for the state (e.g. "keys are region-bound"), kept whole."""
    if not hint or result.state is ProviderState.HEALTHY:
        return result
    suffix = f" (hint: {hint})"
    return replace(result, message=_clip(result.message, MESSAGE_LIMIT - len(suffix)) + suffix)


def _answer(
    outcome: HttpAnswer, errors: ErrorDictionary, method: ProbeMethod, redact: Redact
) -> Classification:
    status = outcome.status
    text = outcome.body.decode("utf-8", errors="replace")
    document = json_document(text)
    if (
        document is None
        and outcome.truncated
        and 200 <= status < 300
        and method is ProbeMethod.MODELS
        and _starts_a_model_list(text)
    ):
        return Classification(ProviderState.HEALTHY, "", status)  # a long list, read in part
    codes, messages = _fields(document) if document is not None else ([], [])
    plain = _plain_text(text) if document is None else ""
    detail = _detail(codes, messages, plain or outcome.note, redact)

    for code in codes:
        meaning = errors.code(code)
        if meaning is not None:
            return _from_meaning(meaning, detail, status)
    for message in [*messages, plain]:
        meaning = errors.phrase(message) if message else None
        if meaning is not None:
            return _from_meaning(meaning, detail, status)
    if method is ProbeMethod.CHAT:
        # Only once no code or phrase named a real failure (a key, a balance, a model): a 4xx
        # refusing the probe's own parameters came after the key and the model were accepted.
        for message in [*messages, plain]:
            parameter = refused_parameter(status, message) if message else None
            if parameter is not None:
                return Classification(
                    ProviderState.HEALTHY,
                    _clip(
                        f"probe's {parameter} refused, provider up (set the provider's "
                        f"probe.chat, or the preset's [chat]): {detail}",
                        redact=redact,
                    ),
                    status,
                )

    if 200 <= status < 300:
        if document is not None and _sane(document, method):
            return Classification(ProviderState.HEALTHY, "", status)
        return Classification(
            ProviderState.SERVER_ERROR,
            _clip(f"unexpected answer: {detail or text}", redact=redact),
            status,
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


def _transport(failure: TransportFailure, redact: Redact) -> Classification:
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
        Transport.INTERNAL: "probe failed",
    }[failure.kind]
    return Classification(
        state, _clip(f"{text}: {failure.detail}" if failure.detail else text, redact=redact)
    )


def json_document(text: str) -> Any:
    """The JSON document in `text`, or None. Depth is bounded by the interpreter's recursion
    limit (a RecursionError, caught), size by the prober's read cap."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return None


_DECODER = json.JSONDecoder()


def _starts_a_model_list(text: str) -> bool:
    """Whether a cut-off body begins like a model list: an object whose `data` or `models`
    member opens an array. Reads keys and skips whole values only, so it is linear."""
    position = _skip_space(text, 0)
    if not text.startswith("{", position):
        return False
    position += 1
    while True:
        position = _skip_space(text, position)
        if not text.startswith('"', position):
            return False
        try:
            key, position = json.decoder.scanstring(text, position + 1)  # type: ignore[attr-defined]
        except (ValueError, RecursionError):
            return False
        position = _skip_space(text, position)
        if not text.startswith(":", position):
            return False
        position = _skip_space(text, position + 1)
        if key in ("data", "models") and text.startswith("[", position):
            return True
        try:
            _, position = _DECODER.raw_decode(text, position)
        except (ValueError, RecursionError):
            return False  # the cut fell inside this value
        position = _skip_space(text, position)
        if not text.startswith(",", position):
            return False
        position += 1


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


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
                inner = json_document(raw)
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
    pieces, title = _visible_text(text)
    visible = _SPACE.sub(" ", html.unescape(" ".join(pieces))).strip()
    if visible:
        return visible
    return _SPACE.sub(" ", html.unescape(title)).strip()


def _visible_text(text: str) -> tuple[list[str], str]:
    """The text outside tags and outside head/title/script/style elements, and the first title.

    One pass with `str.find`: every search starts where the last one ended, and a closing tag
    searched for and not found is remembered as absent, so the cost stays linear for any input
    (`<` repeated 64 KiB times, a thousand unclosed `<script>`s).
    """
    lower = text.lower()
    pieces: list[str] = []
    title = ""
    closes: dict[str, int] = {}  # element → position of its next closing tag (-1: none left)
    position = 0
    while position < len(text):
        opening = text.find("<", position)
        if opening < 0:
            pieces.append(text[position:])
            break
        pieces.append(text[position:opening])
        end = text.find(">", opening + 1)
        if end < 0:  # an unclosed "<" is text, and so is everything after it
            pieces.append(text[opening:])
            break
        if end == opening + 1:  # "<>" is text too
            pieces.append("<>")
            position = end + 1
            continue
        position = end + 1
        name = _TAG_NAME.match(text, opening + 1, end)
        element = name.group(1).lower() if name and not name.group(0).startswith("/") else ""
        if element not in _UNSEEN:
            pieces.append(" ")
            continue
        close = _closing_tag(lower, element, position, closes)
        if close < 0:  # never closed: only the tag itself goes
            pieces.append(" ")
            continue
        if element == "title" and not title:
            title = text[position:close]
        close_end = text.find(">", close)
        position = len(text) if close_end < 0 else close_end + 1
        pieces.append(" ")
    return pieces, title


def _closing_tag(lower: str, element: str, start: int, closes: dict[str, int]) -> int:
    """Position of the first `</element>` at or after `start`, or -1. Searches resume where the
    last one for this element stopped, so all searches together read the text once."""
    close = closes.get(element)
    if close is not None and (close < 0 or close >= start):
        return close
    needle = f"</{element}"
    close = lower.find(needle, start)
    while close >= 0 and lower[close + len(needle) : close + len(needle) + 1] not in (
        ">",
        " ",
        "\t",
        "\r",
        "\n",
        "",
    ):
        close = lower.find(needle, close + 1)  # `</header` is not `</head`
    closes[element] = close
    return close


def _detail(codes: list[str], messages: list[str], plain: str, redact: Redact) -> str:
    message = messages[0] if messages else plain
    code = next(
        (c for c in codes if not c.isdigit() or len(c) != 3), ""
    )  # skip echoed HTTP statuses
    if code and message:
        return _clip(f"{code}: {message}", redact=redact)
    return _clip(code or message, redact=redact)


def _clip(text: str, limit: int = MESSAGE_LIMIT, *, redact: Redact = _unchanged) -> str:
    """One line, bounded, with keys and anything that looks like one masked.

    Only a window of the text is looked at (four times what is kept), so the cost does not grow
    with the body; redaction runs on that window before the cut.
    """
    line = redact(_SPACE.sub(" ", text[: 4 * MESSAGE_LIMIT]))
    line = _SECRET_LIKE.sub("***", line).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"
