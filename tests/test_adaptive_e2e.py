"""The adaptive probe schedule through the operator process and the (emulated) API server:
stand-in providers that print a reset time hold a provider out until then, a revoked key backs
off, and touching the key Secret (a top-up) probes at once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from conftest import Env, OperatorProcess, three_providers, wait_for
from llm_failover.sandbox.providers import Behaviour, StandInProvider


def probes_of(provider: StandInProvider) -> int:
    return provider.count("/chat/completions") + provider.count("/models")


def test_a_reset_time_holds_a_provider_out_and_probes_resume_then(
    operator: OperatorProcess, env: Env, stand_ins: dict[str, StandInProvider]
) -> None:
    env.llm_route("chat", three_providers(stand_ins, env))  # probes every second
    wait_for(lambda: env.data("chat-llm").get("LLM_PROVIDER") == "openai", what="openai")
    openai = stand_ins["openai"]
    openai.retry_after = "3600"
    openai.set(Behaviour.RATE_LIMITED)  # a 429 saying: come back in an hour
    wait_for(lambda: env.data("chat-llm").get("LLM_PROVIDER") == "qwen", what="qwen", timeout=10)
    # The status follows the ConfigMap (written after it).
    wait_for(lambda: "retryAfter" in env.provider_status("chat", "openai"), what="retryAfter")
    entry = env.provider_status("chat", "openai")
    assert entry["state"] == "RateLimited"
    assert entry["ejected"] is True
    assert entry["consecutiveFailures"] == 1, "ejected at once: it said when it serves again"
    until = datetime.fromisoformat(entry["retryAfter"].replace("Z", "+00:00"))
    assert timedelta(minutes=59) < until - datetime.now(UTC) <= timedelta(hours=1)
    asked = probes_of(openai)
    time.sleep(5)  # five intervals
    assert probes_of(openai) == asked, "no probe before the reset time"


def test_a_revoked_key_backs_off_and_a_touched_secret_probes_at_once(
    operator: OperatorProcess, env: Env, stand_ins: dict[str, StandInProvider]
) -> None:
    env.llm_route("chat", three_providers(stand_ins, env))
    wait_for(lambda: env.data("chat-llm").get("LLM_PROVIDER") == "openai", what="openai")
    glm = stand_ins["glm"]
    glm.set(Behaviour.UNAUTHORIZED)
    wait_for(
        lambda: env.provider_status("chat", "glm").get("state") == "Unauthorized",
        what="glm Unauthorized",
    )
    time.sleep(8)  # 1, 2, 4 s: a probe a second would have sent 8
    start = probes_of(glm)
    time.sleep(6)  # the wait is 8 s by now: at most one probe
    assert probes_of(glm) - start <= 1
    # A top-up: the key stays; the Secret is touched. Probed within seconds, not 16 s.
    glm.set(Behaviour.HEALTHY)
    env.kubectl("annotate", "secret", "glm-key", f"llmfailover.dev/touched={time.time():.0f}")
    wait_for(
        lambda: env.provider_status("chat", "glm").get("state") == "Healthy",
        what="glm probed after the touch",
        timeout=4,
    )
