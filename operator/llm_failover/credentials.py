"""API keys as read from Secrets: normalised, checked to be sendable, and never shown.

A key comes from a Secret's bytes, which a tenant controls: `echo KEY > f; kubectl create secret
--from-file` adds a newline, an editor may add a BOM or a CRLF, a paste may carry a non-breaking
space. Surrounding whitespace is stripped, as `kubectl` users expect; a value that still cannot
travel in an HTTP header is a problem that names the Secret and key, never the value.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

_STRIPPED = b" \t\r\n\v\f"
_BOM = b"\xef\xbb\xbf"
MAX_KEY_BYTES = 8192
"""Longer than any provider's key or token (JWT-style keys are about 1 KiB)."""


@dataclass(frozen=True)
class Credential:
    """An API key. Compared and shown by fingerprint only: the value never reaches a repr or log."""

    value: str = field(repr=False, compare=False)
    fingerprint: str = ""

    @classmethod
    def of(cls, value: str | None) -> Credential:
        if not value:
            return NO_CREDENTIAL
        return cls(value=value, fingerprint=hashlib.sha256(value.encode()).hexdigest()[:16])


NO_CREDENTIAL = Credential(value="", fingerprint="")


@dataclass(frozen=True)
class KeyValue:
    """What a Secret's entry yields: the key to send, or why there is none (never both)."""

    key: str | None
    problem: str | None = None


def read_key(raw: bytes) -> KeyValue:
    """The key in `raw` (a Secret's decoded bytes), or a problem saying what is wrong with it."""
    value = raw.removeprefix(_BOM).strip(_STRIPPED)
    if not value:
        return KeyValue(None, "is empty")
    if len(value) > MAX_KEY_BYTES:
        return KeyValue(None, f"is longer than {MAX_KEY_BYTES} bytes")
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return KeyValue(
            None,
            "holds bytes outside printable ASCII (an API key is sent in an HTTP header; "
            "check for a pasted non-breaking space, a BOM or the wrong file)",
        )
    if not text.isprintable():
        return KeyValue(
            None,
            "holds control characters (an API key is sent in an HTTP header; check for an "
            "embedded newline or tab)",
        )
    return KeyValue(text)
