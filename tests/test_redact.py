"""The one redaction step: whole keys, fragments of them, URL credentials; and every log record."""

from __future__ import annotations

import logging

import pytest

from llm_failover.redact import FRAGMENT, Redactor, install_log_redaction, without_userinfo

KEY = "sk-proj-Zx81qLmN0pQrStUvWxYz2468AbCd"


@pytest.fixture
def redact() -> Redactor:
    redactor = Redactor()
    redactor.remember([KEY])
    return redactor


@pytest.mark.parametrize(
    "text",
    [
        f"Incorrect API key provided: {KEY}",
        f"Bearer {KEY}\n",
        f"key={KEY[:20]}",  # a provider echoing the start of the key
        f"...{KEY[-16:]}",  # or its end
        f"key {KEY[5 : 5 + FRAGMENT]} is invalid",  # or any long enough piece of it
        f"{KEY}{KEY}",
        f"<b>{KEY[:12]}</b><i>{KEY[12:]}</i>",
    ],
)
def test_keys_and_their_fragments_are_masked(redact: Redactor, text: str) -> None:
    masked = redact(text)
    assert "***" in masked
    for start in range(len(KEY) - FRAGMENT + 1):
        assert KEY[start : start + FRAGMENT] not in masked


def test_text_without_keys_is_unchanged(redact: Redactor) -> None:
    text = "Country, region, or territory not supported (request id 0f3a9b2c1d4e5f60)"
    assert redact(text) == text
    assert redact("") == ""
    # Fewer than FRAGMENT characters in common with the key: not a leak worth a mask.
    hint = f"Incorrect API key provided: sk-****{KEY[-4:]}"  # OpenAI's own hint: 4 characters
    assert redact(hint) == hint


def test_keys_are_counted_so_a_shared_key_stays_known() -> None:
    redactor = Redactor()
    redactor.remember([KEY])
    redactor.remember([KEY])  # two routes share it
    redactor.forget([KEY])
    assert KEY not in redactor(KEY)
    redactor.forget([KEY])
    assert redactor(KEY) == KEY  # nobody holds it any more: nothing to hide
    redactor.forget([KEY])  # forgetting more often than remembered is harmless
    assert redactor(KEY) == KEY


def test_short_keys_are_masked_whole() -> None:
    redactor = Redactor()
    redactor.remember(["abc123", ""])
    assert redactor("the key abc123 is wrong") == "the key *** is wrong"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:pw@api.example.com/v1", "https://***@api.example.com/v1"),
        (
            "proxy http://u@p:8080 and https://a:b@c/d",
            "proxy http://***@p:8080 and https://***@c/d",
        ),
        ("mailto a@b.c, https://host/path@x", "mailto a@b.c, https://host/path@x"),
        ("no url here", "no url here"),
        ("://@", "://@"),
    ],
)
def test_url_credentials_are_masked(text: str, expected: str) -> None:
    assert without_userinfo(text) == expected
    assert Redactor()(text) == expected


def test_hostile_text_costs_linear_time(redact: Redactor) -> None:
    """Inputs that make naive patterns quadratic; each is 64 KiB and must simply come back."""
    for text in ("://" * 22000, "a" * 65536 + "@", "https://" + "x" * 65536, KEY[:9] * 7000):
        assert len(redact(text)) <= len(text)


def test_every_log_record_is_redacted(redact: Redactor, caplog: pytest.LogCaptureFixture) -> None:
    undo = install_log_redaction(redact)
    try:
        log = logging.getLogger("llm_failover.test")
        with caplog.at_level(logging.INFO):
            log.info("sending %s to %s", KEY, "https://u:secret@host/v1")
            try:
                raise ValueError(f"Illegal header value b'Bearer {KEY}\\n'")
            except ValueError:
                log.exception("probe raised")
    finally:
        undo()
    text = caplog.text
    assert "probe raised" in text
    assert "Illegal header value" in text  # the traceback is kept, redacted
    assert KEY[:FRAGMENT] not in text
    assert "secret@" not in text
    log = logging.getLogger("llm_failover.test")
    with caplog.at_level(logging.INFO):
        log.info("after undo: %s", KEY)
    assert KEY in caplog.text  # the factory is gone again
