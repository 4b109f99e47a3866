"""`llm-failover demo` plays its story end to end, and says why when a story does not play."""

from __future__ import annotations

import io
import subprocess
import sys

from llm_failover.demo import Step, run_demo


def test_the_demo_story_plays_and_exits_zero() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llm_failover.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    lines = out.splitlines()
    # The timeline, in order: first routing, then each switch with its reason.
    key_lines = [
        "Routed              openai",
        "FailedOver          qwen     openai → qwen (GeoBlocked)",
        "FailedOver          glm      qwen → glm (ServerError)",
        "FailedBack          qwen     glm → qwen (Failback)",
        "FailedBack          openai   qwen → openai (Failback)",
    ]
    positions = [next(i for i, line in enumerate(lines) if key in line) for key in key_lines]
    assert positions == sorted(positions)
    assert "ProviderEjected" in out
    assert "unsupported_country_region_territory" in out
    assert "kubectl -n demo get llmroute chat" in out
    assert "/metrics" in out
    # The summary: one line per switch, with the measured times.
    assert "openai → qwen   GeoBlocked   switched" in out
    assert "qwen → glm    ServerError  switched" in out
    assert "operator time-to-failover" in out
    assert "The story played as expected: 4 switches" in out


async def test_a_story_that_does_not_play_fails_with_its_reason() -> None:
    out = io.StringIO()
    impossible = [
        Step(
            "glm cannot take over from a healthy openai",
            "glm",
            "server-error",
            expect="glm",
            reason="GeoBlocked",
        )
    ]
    outcome = await run_demo(out=out, story=impossible, step_timeout=3)
    assert not outcome.ok
    assert (
        outcome.failure == "switch to glm (GeoBlocked) after 'glm' server-error: not seen within 3s"
    )
    assert "FAILED: switch to glm (GeoBlocked)" in out.getvalue()
