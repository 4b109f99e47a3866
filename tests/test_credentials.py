"""Keys as read from Secret bytes: normalised as kubectl users expect, or a problem without them."""

from __future__ import annotations

import pytest

from llm_failover.credentials import MAX_KEY_BYTES, Credential, read_key


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b"sk-abc123", "sk-abc123"),
        (b"sk-abc123\n", "sk-abc123"),  # echo KEY > f; kubectl create secret --from-file
        (b"sk-abc123\r\n", "sk-abc123"),  # the same on Windows
        (b"  sk-abc123\t", "sk-abc123"),
        (b"\xef\xbb\xbfsk-abc123", "sk-abc123"),  # a BOM from an editor
        (b"glm.key-0003.secret", "glm.key-0003.secret"),
        (b"Bearer sk abc", "Bearer sk abc"),  # inner spaces travel in a header
    ],
)
def test_keys_are_normalised(raw: bytes, key: str) -> None:
    found = read_key(raw)
    assert (found.key, found.problem) == (key, None)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"", "is empty"),
        (b"\n \t", "is empty"),
        ("sk-\u00a0abc".encode(), "outside printable ASCII"),  # a pasted non-breaking space
        (b"sk-\xff\xfeabc", "outside printable ASCII"),  # not even UTF-8
        ("密钥".encode(), "outside printable ASCII"),
        (b"sk-abc\ndef", "control characters"),  # two keys, one per line
        (b"sk-abc\x00", "control characters"),
        (b"k" * (MAX_KEY_BYTES + 1), "longer than"),
    ],
)
def test_unsendable_keys_are_a_problem_that_hides_the_value(raw: bytes, problem: str) -> None:
    found = read_key(raw)
    assert found.key is None
    assert found.problem is not None
    assert problem in found.problem
    assert "abc" not in found.problem
    assert "密钥" not in found.problem


def test_credentials_show_only_a_fingerprint() -> None:
    credential = Credential.of("sk-very-secret-value")
    assert "sk-very-secret-value" not in repr(credential)
    assert credential == Credential.of("sk-very-secret-value")
    assert credential != Credential.of("sk-other")
    assert Credential.of(None) == Credential.of("")
