"""The official OpenAI SDK, configured only from the operator's output, follows a failover.

The app's environment is built from the ConfigMap and the key Secret as the kubelet builds it for
`envFrom` (keys that are not valid variable names, such as route.json, are skipped; Secret values
are decoded), and its mounted files as a projected volume lays them out (one file per key). The
client code is examples/app/app.py's own.
"""

from __future__ import annotations

import base64
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import openai
import pytest

from conftest import ROOT, Env, three_providers, wait_for
from llm_failover.sandbox.providers import Behaviour, StandInProvider

pytestmark = pytest.mark.usefixtures("operator")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "example_app", ROOT / "examples" / "app" / "app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def routing(env: Env) -> dict[str, str]:
    """ConfigMap data and decoded Secret data: what a pod sees, by either route."""
    secret = env.secret("chat-llm-key")
    assert secret is not None
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    return {**env.data("chat-llm"), **decoded}


def kubelet_environment(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "LLM_MODEL",
    ):
        monkeypatch.delenv(name, raising=False)
    for key, value in routing(env).items():
        if ENV_NAME.match(key):  # envFrom skips keys that are not valid variable names
            monkeypatch.setenv(key, value)


def projected_volume(env: Env, directory: Path) -> Path:
    directory.mkdir(exist_ok=True)
    for key, value in routing(env).items():
        (directory / key).write_text(value)
    return directory


def test_the_openai_sdk_follows_a_failover(
    env: Env, stand_ins: dict[str, StandInProvider], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app = load_app()
    spec = three_providers(stand_ins, env)
    spec["target"]["secretName"] = "chat-llm-key"
    env.llm_route("chat", spec)
    wait_for(
        lambda: env.data("chat-llm").get("LLM_PROVIDER") == "openai" and env.secret("chat-llm-key"),
        what="routing",
    )

    # envFrom: the SDK reads OPENAI_BASE_URL and OPENAI_API_KEY by itself.
    kubelet_environment(env, monkeypatch)
    assert "route.json" not in [k for k in routing(env) if ENV_NAME.match(k)]
    old_pod = app.client_from_environment()
    assert app.ask(*old_pod, "hello") == "pong from openai"
    request = stand_ins["openai"].requests[-1]
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.authorization == f"Bearer {stand_ins['openai'].api_key}"
    assert request.body is not None
    assert request.body["model"] == "gpt-4o"
    # Mounted files, read per request.
    volume = projected_volume(env, tmp_path / "llm")
    assert app.ask(*app.client_from_files(volume), "hello") == "pong from openai"

    stand_ins["openai"].set(Behaviour.GEO_BLOCKED)
    wait_for(
        lambda: (
            env.data("chat-llm").get("LLM_PROVIDER") == "qwen"
            and routing(env).get("OPENAI_API_KEY") == stand_ins["qwen"].api_key
        ),
        what="failover to qwen, with its key",
    )

    # A pod started before the switch still talks to openai, and is refused: why envFrom needs
    # spec.target.restart.
    with pytest.raises(
        openai.PermissionDeniedError, match="Country, region, or territory not supported"
    ):
        app.ask(*old_pod, "hello")
    # A restarted pod: new environment, new provider, new key, new model.
    kubelet_environment(env, monkeypatch)
    assert app.ask(*app.client_from_environment(), "hello") == "pong from qwen"
    request = stand_ins["qwen"].requests[-1]
    assert (request.method, request.path) == ("POST", "/compatible-mode/v1/chat/completions")
    assert request.authorization == f"Bearer {stand_ins['qwen'].api_key}"
    assert request.body is not None
    assert request.body["model"] == "qwen-max"
    # The mounted files once the kubelet has refreshed them: no restart.
    projected_volume(env, volume)
    assert app.ask(*app.client_from_files(volume), "hello") == "pong from qwen"
    assert stand_ins["qwen"].requests[-1].authorization == f"Bearer {stand_ins['qwen'].api_key}"
