"""The one redaction step: API keys, long fragments of them and URL credentials out of any text.

Everything that can reach a status, an Event, a log line or a terminal passes through a `Redactor`:
the prober's classification messages, the Kubernetes client's status and Event writes, and every
log record (through `install_log_redaction`). The redactor knows the keys the operator holds right
now (each user remembers and forgets its own, counted, so two routes sharing a key are fine).

A provider may echo part of a key ("Incorrect API key provided: sk-abc…xyz"): any run of at least
`FRAGMENT` characters that also occurs in a known key is masked, not just the whole value. Costs
are linear in the text: one set lookup per position, however many keys are known.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable

FRAGMENT = 8
"""Characters of a key that may not appear together anywhere: fewer than any provider's own
key hint shows (OpenAI prints the last four), more than chance makes a 32-hex request id share."""

MASK = "***"


class Redactor:
    """Known keys, refcounted; calling it returns the text with every key fragment masked."""

    def __init__(self) -> None:
        self._keys: Counter[str] = Counter()
        self._grams: Counter[str] = Counter()
        self._short: Counter[str] = Counter()  # keys shorter than FRAGMENT: masked whole
        self._lock = threading.Lock()  # log records are made in worker threads too

    def remember(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                if not key:
                    continue
                self._keys[key] += 1
                if self._keys[key] == 1:
                    self._count(key, +1)

    def forget(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                if self._keys.get(key, 0) <= 0:
                    continue
                self._keys[key] -= 1
                if self._keys[key] == 0:
                    del self._keys[key]
                    self._count(key, -1)

    def _count(self, key: str, delta: int) -> None:
        if len(key) < FRAGMENT:
            self._short[key] += delta
            if self._short[key] <= 0:
                del self._short[key]
            return
        for gram in {key[i : i + FRAGMENT] for i in range(len(key) - FRAGMENT + 1)}:
            self._grams[gram] += delta
            if self._grams[gram] <= 0:
                del self._grams[gram]

    def __call__(self, text: str) -> str:
        text = without_userinfo(text)
        with self._lock:
            grams = self._grams
            short = list(self._short)
            if not grams and not short:
                return text
            for key in short:
                text = text.replace(key, MASK)
            if not grams or len(text) < FRAGMENT:
                return text
            covered = bytearray(len(text))
            hit = False
            for i in range(len(text) - FRAGMENT + 1):
                if text[i : i + FRAGMENT] in grams:
                    covered[i : i + FRAGMENT] = b"\x01" * FRAGMENT
                    hit = True
        if not hit:
            return text
        out: list[str] = []
        i = 0
        while i < len(text):
            if covered[i]:
                out.append(MASK)
                while i < len(text) and covered[i]:
                    i += 1
            else:
                start = i
                while i < len(text) and not covered[i]:
                    i += 1
                out.append(text[start:i])
        return "".join(out)


def without_userinfo(text: str) -> str:
    """`scheme://user:pass@host` → `scheme://***@host`, in linear time for any text."""
    if "@" not in text:
        return text
    out: list[str] = []
    start = 0
    at = text.find("://")
    while at >= 0:
        authority = at + 3
        end = authority
        while end < len(text) and text[end] not in "/?#@ \t\r\n\"'<>":
            end += 1
        if end < len(text) and text[end] == "@" and end > authority:
            out.append(text[start:authority])
            out.append(MASK)
            start = end
        at = text.find("://", end)
    out.append(text[start:])
    return "".join(out)


def install_log_redaction(redact: Callable[[str], str]) -> Callable[[], None]:
    """Redact every log record of this process as it is made; returns the undo.

    A record factory (not a handler filter) covers every logger and handler, kopf's and httpx's
    included, and the traceback text of `exc_info` too.
    """
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: keep what we can show safely
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
    return lambda: logging.setLogRecordFactory(previous)
