"""`llm-failover run` refuses a bad traffic-signal setting before it starts, naming the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_cli_run_cluster import run


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--prometheus-url", "ftp://prometheus:9090"), "--prometheus-url"),
        (("--prometheus-url", "http://"), "--prometheus-url"),
        (("--signal-interval", "0"), "--signal-interval"),
        (("--probe-backoff-max", "-1"), "--probe-backoff-max"),
        (("--alertmanager-token-file", "/nonexistent/token"), "--alertmanager-token-file"),
        (("--prometheus-token-file", "/nonexistent/token"), "--prometheus-token-file"),
    ],
)
def test_a_bad_setting_is_refused_naming_its_flag(args: tuple[str, ...], said: str) -> None:
    done = run(*args)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr


def test_an_empty_token_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    done = run("--alertmanager-token-file", str(empty))
    assert done.returncode == 2
    assert "cannot read a token" in done.stderr
