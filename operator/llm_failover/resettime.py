"""When a refusing provider says it will serve again: the pure parsing half of issue 14 point 2.

A rate limit or a spent quota often comes with the moment it lifts, in a header (`Retry-After`,
OpenAI's `x-ratelimit-reset-*`, Anthropic's `anthropic-ratelimit-*-reset`) or printed in the error
body (Zhipu's "Your limit will reset at 2025-09-24 19:55:49", Gemini's `RetryInfo.retryDelay`,
OpenAI's "Please try again in 6m0s"). `reset_time` turns one probe answer into that moment, so the
operator can keep the provider ejected until then and probe again at that time.

Sources and the reasoning behind each rule are in docs/research/reset-times.md. Everything here
reads provider-controlled bytes: nothing raises, every scan is bounded and linear (no nested or
overlapping regex repetition; patterns are matched at fixed positions or over literal alternations
followed by bounded quantifiers), and the answer is always within `(now, now + MAX_RESET]`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from email.utils import parsedate_to_datetime
from typing import Any

from llm_failover.classifier import json_document

MAX_RESET = timedelta(hours=24)
"""The furthest a reset time is believed: a later one (a weekly or monthly quota, a garbage date)
is clamped to `now + MAX_RESET`, so a spent monthly quota is probed again daily, not never."""

BEIJING = timezone(timedelta(hours=8), "UTC+08:00")
"""Zone of the naive stamps Zhipu (bigmodel.cn) and Z.ai print in 1308/1310 bodies: Beijing time,
on both the Chinese and the international platform (can1357/oh-my-pi#11014)."""

RETRY_AFTER_STATUSES = frozenset({429, 503})
"""Statuses whose `Retry-After` says when to come back (RFC 6585 §4, RFC 9110 §10.2.3)."""

BODY_LIMIT = 64 * 1024  # characters of body looked at: the prober reads at most 64 KiB
_HEADER_LIMIT = 256  # characters of one header value looked at
_TEXT_LIMIT = 16 * 1024  # characters of one JSON string looked at
_NODE_LIMIT = 4096  # JSON values visited
_NESTED_LIMIT = 4  # JSON documents found inside JSON strings (relays nest upstream answers)
_WINDOW = 64  # characters after a trigger phrase in which the duration must be
_CANDIDATE_LIMIT = 256  # trigger phrases tried per body
_MAX_SECONDS = MAX_RESET.total_seconds()

# OpenAI-style reset headers, each with the remaining count that says whether it is the exhausted
# limit: (remaining, reset). Anthropic's resets are RFC 3339 stamps, OpenAI's Go durations.
_PAIRS = (
    ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
    ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
    ("anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"),
    ("anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset"),
    ("anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-input-tokens-reset"),
    ("anthropic-ratelimit-output-tokens-remaining", "anthropic-ratelimit-output-tokens-reset"),
)

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # micro sign, as Go prints it
    "μs": 1e-6,  # Greek mu
    "ms": 1e-3,
    "msec": 1e-3,
    "millisecond": 1e-3,
    "milliseconds": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}

_DIGITS = frozenset("0123456789")
# A decimal number: Retry-After delay-seconds (a fraction allowed, as the SDKs allow it), header
# numbers, the number of a duration. ASCII digits only: float() would also take fullwidth ones.
_NUMBER = re.compile(r"\d{1,20}(?:\.\d{1,12})?", re.ASCII)
# A stamp printed in a body: date, time, optional fraction, optional zone (an abbreviation after
# an offset, as Go's "+0800 CST", is left unread). Always matched at a fixed position.
_STAMP = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"(?: ?(Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?))?",
    re.IGNORECASE | re.ASCII,
)
# Phrases after which a body names the moment (absolute) or the wait (relative). Each is a literal
# alternation followed by bounded whitespace, so finditer stays linear.
_RESET_AT = re.compile(r"\bresets?\s{1,3}at\s{1,3}(?=\d{4}-)", re.IGNORECASE | re.ASCII)
# Zhipu's Chinese wording: "您的限额将在 2025-12-09 18:08:11 重置".
_RESET_AT_CN = re.compile(r"将在\s{0,3}(?=\d{4}-)", re.ASCII)
_CN_RESET_WORDS = ("重置", "刷新", "恢复")  # the stamp must be followed by one of these
_WAIT = re.compile(
    r"\b(?:try\s{1,3}again|retry|resets?)\s{1,3}(?:in|after)\s{1,3}(?:~\s{0,2})?(?=\d)",
    re.IGNORECASE | re.ASCII,
)


def reset_time(
    status: int,
    headers: Mapping[str, str],
    body: str,
    now: datetime,
    *,
    body_zone: tzinfo = BEIJING,
) -> datetime | None:
    """The UTC moment the provider says it will serve this key again, or None.

    `headers` are the answer's headers with lower-case names; `body` its (decoded, capped) text;
    `now` when the answer came (a naive `now` is taken as UTC). The result, when there is one, is
    timezone-aware UTC, strictly after `now` and at most `now + MAX_RESET` (later times are
    clamped to it). None means the answer says nothing usable, or says the provider serves now
    (a time at or before `now`). Never raises.

    Sources, most authoritative first; the first that makes a well-formed statement decides, even
    if that statement is "now" (a malformed one is skipped):

    1. `retry-after-ms` (milliseconds; the OpenAI and Anthropic SDKs read it first), then
       `Retry-After` (RFC 9110: delay-seconds or an HTTP-date), on 429 and 503 answers only.
    2. On 429 answers, the reset headers of the limits that are spent: OpenAI-style
       `x-ratelimit-reset-requests` / `-tokens` (Go durations: "1s", "6m0s", "20ms",
       "23h47m36.648s") and Anthropic's `anthropic-ratelimit-{requests,tokens,input-tokens,
       output-tokens}-reset` (RFC 3339). A reset counts only when its `…-remaining` header is
       present and exactly "0": these headers come on every answer and describe per-minute
       counters, which need not be the limit that refused (a 429 for requests-per-day carries a
       58 s requests reset while the body says "try again in 6h12m"); Azure reports -1 for "not
       applicable". When several are spent, the latest: no request passes before all of them
       have reset. Then a single `x-ratelimit-reset` (OpenRouter: epoch milliseconds; elsewhere
       epoch seconds or a delay in seconds) when `x-ratelimit-remaining` is absent or "0".
    3. The body, on answers of status 400 and above or whose JSON is an error (a top-level
       `error`, or MiniMax's `base_resp` with a non-zero `status_code`, which MiniMax sends with
       200). In order: rate-limit headers a relay copied into the body (OpenRouter's
       `error.metadata.headers`, read as in 2); Gemini's `RetryInfo.retryDelay` ("32s");
       an absolute stamp after "reset(s) at" or between "将在" and "重置" (Zhipu/Z.ai 1308/1310,
       MiniMax 2056, Volcengine Ark `AccountQuotaExceeded`); a wait after "try again in/after",
       "retry in/after" or "reset(s) in/after" (OpenAI, Azure, Moonshot, Gemini).

    A stamp without a zone is read in `body_zone`, Beijing time by default: the only providers
    of the catalog known to print naive stamps are Zhipu and Z.ai, and theirs are UTC+8
    (MiniMax and Ark print an offset). Pass `body_zone=UTC` for a provider known to print UTC.
    """
    try:
        if now.tzinfo is None or now.utcoffset() is None:
            now = now.replace(tzinfo=UTC)
        else:
            now = now.astimezone(UTC)
        seconds = _statement(status, headers, body, now, body_zone)
        if seconds is None or not seconds > 0:
            return None
        return now + timedelta(seconds=min(seconds, _MAX_SECONDS))
    except Exception:  # provider bytes must never break a probe; "nothing usable" is safe
        return None


def _statement(
    status: int, headers: Mapping[str, str], body: str, now: datetime, zone: tzinfo
) -> float | None:
    """Seconds from `now` of the first well-formed statement (possibly <= 0), or None."""
    found = _from_headers(status, headers, now)
    if found is not None:
        return found
    if not isinstance(body, str) or not body:
        return None
    text = body[:BODY_LIMIT]
    document = json_document(text)
    if status < 400 and not _is_error(document):
        return None
    if document is not None:
        strings: list[str] = []
        for node in _walk(document, strings):
            found = _from_node(status, node, now)
            if found is not None:
                return found
        text = "\n".join(strings)
    found = _absolute(text, now, zone)
    if found is not None:
        return found
    return _relative(text)


# --- headers -------------------------------------------------------------------------------------


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    value = headers.get(name)
    if not isinstance(value, str):
        return None
    value = value[:_HEADER_LIMIT].strip()
    return value or None


def _from_headers(status: int, headers: Mapping[str, Any], now: datetime) -> float | None:
    if not isinstance(headers, Mapping):
        return None
    if status in RETRY_AFTER_STATUSES:
        found = _retry_after(headers, now)
        if found is not None:
            return found
    if status == 429:
        return _spent_limits(headers, now)
    return None


def _retry_after(headers: Mapping[str, Any], now: datetime) -> float | None:
    value = _header(headers, "retry-after-ms")
    if value is not None and _NUMBER.fullmatch(value):
        return float(value) / 1000
    value = _header(headers, "retry-after")
    if value is None:
        return None
    if _NUMBER.fullmatch(value):
        return float(value)
    return _http_date(value, now)


def _http_date(value: str, now: datetime) -> float | None:
    if not value[:1].isalpha():  # an HTTP-date starts with the day name; "-5", "1e9" are garbage
        return None
    try:
        moment = parsedate_to_datetime(value)
    except Exception:  # the parser raises TypeError, ValueError, IndexError… on garbage
        return None
    if moment.tzinfo is None:  # "-0000": UTC, as RFC 9110 dates always are
        moment = moment.replace(tzinfo=UTC)
    return (moment - now).total_seconds()


def _spent_limits(headers: Mapping[str, Any], now: datetime) -> float | None:
    latest: float | None = None
    for remaining, reset in _PAIRS:
        if _header(headers, remaining) != "0":
            continue
        found = _reset_value(_header(headers, reset), now)
        if found is not None and (latest is None or found > latest):
            latest = found
    if latest is not None:
        return latest
    if _header(headers, "x-ratelimit-remaining") in (None, "0"):
        return _reset_value(_header(headers, "x-ratelimit-reset"), now)
    return None


def _reset_value(value: str | None, now: datetime) -> float | None:
    """A reset header: a Go duration ("6m0s"), a number (epoch ms, epoch s or delay s), or an
    RFC 3339 stamp."""
    if value is None:
        return None
    if _NUMBER.fullmatch(value):
        number = float(value)
        if number >= 1e12:  # epoch milliseconds (OpenRouter)
            return number / 1000 - now.timestamp()
        if number >= 1e9:  # epoch seconds: a delay of 31+ years is not meant
            return number - now.timestamp()
        return number
    if value[:1] in _DIGITS and "-" not in value:
        parsed = _duration(value, 0, whole=True)
        return parsed[0] if parsed is not None else None
    stamp = _stamp(value, 0, UTC, whole=True)
    return None if stamp is None else (stamp - now).total_seconds()


# --- the body ------------------------------------------------------------------------------------


def _is_error(document: Any) -> bool:
    """Whether a 2xx/3xx answer's JSON is an error (MiniMax answers 200 with `base_resp`)."""
    if not isinstance(document, dict):
        return False
    if document.get("error"):
        return True
    base = document.get("base_resp")
    return isinstance(base, dict) and base.get("status_code") not in (None, 0, "0")


def _walk(document: Any, strings: list[str]) -> Iterator[dict[str, Any]]:
    """Every object in `document`, in document order, and (into `strings`) every string, JSON
    documents nested in strings included; bounded in values visited and documents parsed."""
    stack: list[Any] = [document]
    visited = 0
    nested = 0
    length = 0
    while stack and visited < _NODE_LIMIT:
        node = stack.pop()
        visited += 1
        if isinstance(node, dict):
            yield node
            stack.extend(reversed(list(node.values())[:_NODE_LIMIT]))
        elif isinstance(node, list):
            stack.extend(reversed(node[:_NODE_LIMIT]))
        elif isinstance(node, str) and length < BODY_LIMIT:
            text = node[:_TEXT_LIMIT]
            inner = (
                json_document(text)
                if nested < _NESTED_LIMIT and text.lstrip()[:1] in ("{", "[")
                else None
            )
            if inner is not None:
                nested += 1
                stack.append(inner)
            else:
                strings.append(text)
                length += len(text) + 1


def _from_node(status: int, node: dict[str, Any], now: datetime) -> float | None:
    """A statement made by the structure of one JSON object: relayed headers, Gemini RetryInfo."""
    for key, value in node.items():
        if isinstance(key, str) and key.lower() == "headers" and isinstance(value, dict):
            copied = {
                k.lower(): v
                for k, v in list(value.items())[:64]
                if isinstance(k, str) and isinstance(v, str)
            }
            found = _from_headers(status, copied, now)
            if found is not None:
                return found
    delay = node.get("retryDelay")  # google.rpc.RetryInfo: a protobuf Duration, "34.074824224s"
    if isinstance(delay, str) and delay[:1] in _DIGITS:
        parsed = _duration(delay[:_HEADER_LIMIT], 0, whole=True)
        if parsed is not None:
            return parsed[0]
    return None


def _absolute(text: str, now: datetime, zone: tzinfo) -> float | None:
    tried = 0
    for match in _RESET_AT.finditer(text):
        tried += 1
        if tried > _CANDIDATE_LIMIT:
            return None
        stamp = _stamp(text, match.end(), zone)
        if stamp is not None:
            return (stamp - now).total_seconds()
    for match in _RESET_AT_CN.finditer(text):
        tried += 1
        if tried > _CANDIDATE_LIMIT:
            return None
        found = _STAMP.match(text, match.end())
        if found is None:
            continue
        after = text[found.end() : found.end() + 8].lstrip()
        if not after.startswith(_CN_RESET_WORDS):  # "将在 … 下线" is a deprecation, not a reset
            continue
        stamp = _stamp(text, match.end(), zone)
        if stamp is not None:
            return (stamp - now).total_seconds()
    return None


def _relative(text: str) -> float | None:
    for tried, match in enumerate(_WAIT.finditer(text)):
        if tried >= _CANDIDATE_LIMIT:
            return None
        parsed = _duration(text[match.end() : match.end() + _WINDOW], 0)
        if parsed is not None:
            return parsed[0]
    return None


# --- values --------------------------------------------------------------------------------------


def _stamp(text: str, position: int, zone: tzinfo, *, whole: bool = False) -> datetime | None:
    """The stamp at `position` as an aware datetime (naive ones in `zone`), or None. Never
    converted between zones: subtracting aware datetimes cannot overflow near year 1 or 9999."""
    match = _STAMP.match(text, position)
    if match is None or (whole and match.end() != len(text)):
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second or 0),
            micro,
            tzinfo=_zone(offset, zone),
        )
    except (ValueError, OverflowError):
        return None
    return moment


def _zone(offset: str | None, default: tzinfo) -> tzinfo:
    if offset is None:
        return default
    if offset.upper() in ("Z", "UTC", "GMT"):
        return UTC
    digits = offset[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + int(digits[2:4] or 0)
    if minutes >= 24 * 60:
        raise ValueError("offset out of range")
    return timezone(timedelta(minutes=-minutes if offset[0] == "-" else minutes))


def _duration(text: str, position: int, *, whole: bool = False) -> tuple[float, int] | None:
    """Seconds in the duration at `position`, and where it ends: Go style ("1h2m3.5s", "644ms")
    or words ("20 seconds", "5 days 22 hours 11 minutes", "7m12s"). Reads only `text`, which
    callers bound; None if no number-and-unit is there."""
    total = 0.0
    parts = 0
    end = len(text)
    while True:
        number = _NUMBER.match(text, position)
        if number is None:
            break
        cursor = number.end()
        spaces = 0
        while cursor < end and text[cursor] == " " and spaces < 2:
            cursor += 1
            spaces += 1
        start = cursor
        while cursor < end and cursor - start < 12 and (text[cursor].isalpha()):
            cursor += 1
        unit = _UNITS.get(text[start:cursor].lower())
        if unit is None or (cursor < end and text[cursor].isalpha()):
            break
        total += float(number.group()) * unit
        parts += 1
        position = cursor
        # Go durations run on ("6m0s"); words are separated by spaces, commas or "and".
        for separator in ("", " ", ", ", ",", " and "):
            after = position + len(separator)
            if text.startswith(separator, position) and text[after : after + 1] in _DIGITS:
                position = after
                break
        else:
            break
    if parts == 0 or not math.isfinite(total):
        return None
    if whole and position != len(text):
        return None
    return total, position
