"""`llm-failover probe` end to end against loopback stand-ins: states, output shapes, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_failover.sandbox.providers import Behaviour, StandInProvider

KEYS = {"openai": "sk-probe-openai-1", "qwen": "sk-probe-qwen-2", "glm": "probe-glm-3"}


def run(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`llm-failover probe ARGS`, without any key of this environment but those of `env`."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LLMFAILOVER_KEY_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "llm_failover.cli", "probe", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        check=False,
    )


def route(name: str, providers: list[dict[str, Any]], namespace: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "llmfailover.dev/v1alpha1",
        "kind": "LLMRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"providers": providers, "healthCheck": {"timeoutSeconds": 1}},
    }


def provider(
    name: str, stand_in: StandInProvider, preset: str = "openai", **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "preset": preset,
        "baseURL": stand_in.base_url,
        "model": stand_in.model,
        **extra,
    }


@pytest.fixture
def stand_ins() -> Iterator[dict[str, StandInProvider]]:
    found = {
        "openai": StandInProvider("openai", api_key=KEYS["openai"], slow_seconds=3),
        "qwen": StandInProvider(
            "qwen",
            flavour="dashscope",
            prefix="/compatible-mode/v1",
            api_key=KEYS["qwen"],
            slow_seconds=3,
        ),
        "glm": StandInProvider(
            "glm", flavour="zhipu", prefix="/api/paas/v4", api_key=KEYS["glm"], slow_seconds=3
        ),
    }
    for stand_in in found.values():
        stand_in.start()
    yield found
    for stand_in in found.values():
        stand_in.stop()


def write(tmp_path: Path, *documents: dict[str, Any], name: str = "route.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(documents))
    return str(path)


def keys() -> dict[str, str]:
    return {f"LLMFAILOVER_KEY_{name.upper()}": key for name, key in KEYS.items()}


def test_json_output_and_where_the_route_would_go(
    tmp_path: Path, stand_ins: dict[str, StandInProvider]
) -> None:
    stand_ins["openai"].set(Behaviour.GEO_BLOCKED)
    manifest = write(
        tmp_path,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "keys"},
        },  # other kinds are skipped
        route(
            "chat",
            [
                provider("openai", stand_ins["openai"]),
                provider("qwen", stand_ins["qwen"], "dashscope"),
                provider("glm", stand_ins["glm"], "zhipu"),
            ],
        ),
    )
    result = run(manifest, "--output", "json", env=keys())
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    (chat,) = answer["routes"]
    assert (chat["namespace"], chat["name"], chat["wouldRouteTo"]) == ("shop", "chat", "qwen")
    openai, qwen, glm = chat["providers"]
    assert set(openai) == {
        "name",
        "host",
        "state",
        "httpStatus",
        "latencyMilliseconds",
        "message",
    }
    assert openai["host"] == "127.0.0.1"  # the base URL's host, never more
    assert chat["paused"] is False
    assert (openai["name"], openai["state"], openai["httpStatus"]) == ("openai", "GeoBlocked", 403)
    assert "unsupported_country_region_territory" in openai["message"]
    assert (qwen["state"], qwen["httpStatus"]) == ("Healthy", 200)
    assert isinstance(qwen["latencyMilliseconds"], int)
    assert glm["state"] == "Healthy"
    # Each provider was probed once, with its own key, by its preset's method.
    assert stand_ins["qwen"].requests[-1].authorization == f"Bearer {KEYS['qwen']}"
    assert (
        stand_ins["glm"].requests[-1].path == "/api/paas/v4/chat/completions"
    )  # zhipu: no /models
    assert [len(s.requests) for s in stand_ins.values()] == [1, 1, 1]


@pytest.mark.parametrize(
    ("behaviour", "state"),
    [
        (Behaviour.HEALTHY, "Healthy"),
        (Behaviour.GEO_BLOCKED, "GeoBlocked"),
        (Behaviour.UNAUTHORIZED, "Unauthorized"),
        (Behaviour.QUOTA_EXHAUSTED, "QuotaExhausted"),
        (Behaviour.RATE_LIMITED, "RateLimited"),
        (Behaviour.SERVER_ERROR, "ServerError"),
        (Behaviour.SLOW, "Timeout"),
        (Behaviour.RESET, "Unreachable"),
    ],
)
def test_every_state_is_reachable(
    tmp_path: Path, stand_ins: dict[str, StandInProvider], behaviour: Behaviour, state: str
) -> None:
    stand_ins["glm"].set(behaviour)
    result = run(
        write(tmp_path, route("chat", [provider("glm", stand_ins["glm"], "zhipu")])),
        "-o",
        "json",
        env=keys(),
    )
    (glm,) = json.loads(result.stdout)["routes"][0]["providers"]
    assert glm["state"] == state
    assert result.returncode == (0 if state == "Healthy" else 1)


def test_model_unavailable_and_refused(
    tmp_path: Path, stand_ins: dict[str, StandInProvider]
) -> None:
    wrong_path = {
        "name": "lost",
        "baseURL": stand_ins["openai"].base_url + "/nowhere",
        "model": "gpt-4o",
    }
    gone = StandInProvider("gone").start()
    closed = {"name": "gone", "baseURL": gone.base_url, "model": "m"}
    gone.stop()
    env = {**keys(), "LLMFAILOVER_KEY_LOST": KEYS["openai"]}
    result = run(write(tmp_path, route("chat", [wrong_path, closed])), "-o", "json", env=env)
    lost, refused = json.loads(result.stdout)["routes"][0]["providers"]
    assert (lost["state"], lost["httpStatus"]) == ("ModelUnavailable", 404)
    assert refused["state"] == "Unreachable"
    assert "refused" in refused["message"]
    assert result.returncode == 1


def test_table_output_and_a_missing_key(
    tmp_path: Path, stand_ins: dict[str, StandInProvider]
) -> None:
    manifest = write(
        tmp_path,
        route(
            "chat",
            [
                provider("openai", stand_ins["openai"]),
                provider("qwen", stand_ins["qwen"], "dashscope"),
            ],
        ),
    )
    result = run(manifest, env={"LLMFAILOVER_KEY_QWEN": KEYS["qwen"]})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "LLMRoute shop/chat would route to: qwen"
    assert lines[1].split() == ["PROVIDER", "HOST", "STATE", "HTTP", "LATENCY", "WHY"]
    assert lines[2].split()[:4] == ["openai", "127.0.0.1", "Unauthorized", "401"]
    assert "set LLMFAILOVER_KEY_OPENAI" in lines[2]
    assert lines[3].split()[:4] == ["qwen", "127.0.0.1", "Healthy", "200"]


def test_several_files_and_routes_share_probes(
    tmp_path: Path, stand_ins: dict[str, StandInProvider]
) -> None:
    first = write(tmp_path, route("a", [provider("openai", stand_ins["openai"])]), name="a.yaml")
    second = write(
        tmp_path,
        route("b", [provider("openai", stand_ins["openai"])], namespace="other"),
        name="b.yaml",
    )
    stand_ins["openai"].set(Behaviour.SERVER_ERROR)
    result = run(first, second, "-o", "json", env=keys())
    routes = json.loads(result.stdout)["routes"]
    assert [(r["namespace"], r["name"], r["wouldRouteTo"]) for r in routes] == [
        ("shop", "a", None),
        ("other", "b", None),
    ]
    assert result.returncode == 1
    assert len(stand_ins["openai"].requests) == 1  # one endpoint, one probe


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (
            "kind: Deployment\napiVersion: apps/v1\nmetadata: {name: api}\n",
            "not an LLMRoute manifest (found 1 Deployment)",
        ),
        ("providers: [\n", "not valid YAML"),
        ("- just\n- a list\n", "document 1 is not a Kubernetes object"),
        (
            yaml.safe_dump(route("chat", [{"name": "x", "preset": "nope", "model": "m"}])),
            "LLMRoute chat: spec.providers[0].preset: unknown preset 'nope'",
        ),
        (
            yaml.safe_dump(route("chat", [{"name": "x", "baseURL": "http://127.0.0.1:9"}])),
            "LLMRoute chat: spec.providers[0].model: required",
        ),
        (  # keys of mixed types used to end in a TypeError traceback and exit 1
            "apiVersion: llmfailover.dev/v1alpha1\nkind: LLMRoute\nmetadata: {name: chat}\n"
            "spec: {providers: [{name: x, baseURL: 'http://127.0.0.1:9', model: m, 1: y}]}\n",
            "LLMRoute chat: spec.providers[0].1: unknown field",
        ),
        (
            "apiVersion: llmfailover.dev/v1alpha1\nkind: LLMRoute\nmetadata: [chat]\n",
            "document 1: metadata: must be an object",
        ),
        (
            yaml.safe_dump(route("r" * 64, [{"name": "x", "baseURL": "http://a", "model": "m"}])),
            "metadata.name: at most 63 characters",
        ),
        (
            yaml.safe_dump(
                route("chat", [{"name": "x", "baseURL": "http://[::1/v1", "model": "m"}])
            ),
            "LLMRoute chat: spec.providers[0].baseURL: ",
        ),
        (
            yaml.safe_dump(
                route("chat", [{"name": "x", "baseURL": "http://a:99999", "model": "m"}])
            ),
            "port 99999 is not between 1 and 65535",
        ),
        ("[" * 5000 + "]" * 5000, ""),  # nested deeper than a parser's recursion
        ("\udcff\udcfe", "cannot read it"),  # not UTF-8
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "input.yaml"
    if content is not None:
        path.write_bytes(content.encode("utf-8", errors="surrogateescape"))
    result = run(str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"llm-failover probe: {path}: ")
    assert message in result.stderr


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("sk-a\nsk-b", "holds control characters"),
        ("sk-\u00a0abc", "holds bytes outside printable ASCII"),
    ],
)
def test_a_key_that_cannot_be_sent_is_bad_input_without_its_value(
    tmp_path: Path, stand_ins: dict[str, StandInProvider], value: str, problem: str
) -> None:
    manifest = write(tmp_path, route("chat", [provider("openai", stand_ins["openai"])]))
    result = run(manifest, env={"LLMFAILOVER_KEY_OPENAI": value})
    assert result.returncode == 2
    assert result.stderr.startswith(f"llm-failover probe: LLMFAILOVER_KEY_OPENAI {problem}")
    assert result.stderr.count("\n") == 1
    assert "abc" not in result.stderr
    assert "sk-b" not in result.stderr
    assert stand_ins["openai"].requests == []


def test_a_key_with_a_trailing_newline_is_sent_without_it(
    tmp_path: Path, stand_ins: dict[str, StandInProvider]
) -> None:
    manifest = write(tmp_path, route("chat", [provider("openai", stand_ins["openai"])]))
    key = stand_ins["openai"].api_key
    result = run(manifest, env={"LLMFAILOVER_KEY_OPENAI": f"{key}\n"})
    assert result.returncode == 0, result.stderr
    assert stand_ins["openai"].requests[-1].authorization == f"Bearer {key}"


def test_a_malformed_proxy_setting_is_bad_input(
    tmp_path: Path, stand_ins: dict[str, StandInProvider]
) -> None:
    manifest = write(tmp_path, route("chat", [provider("openai", stand_ins["openai"])]))
    result = run(manifest, env={"HTTPS_PROXY": "http://[::1", "HTTP_PROXY": "http://[::1"})
    assert result.returncode == 2
    assert result.stderr.startswith("llm-failover probe: cannot set up HTTP (check HTTPS_PROXY)")
    assert result.stderr.count("\n") == 1
