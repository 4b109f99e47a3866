"""The routing output (docs/reference.md#configmap): the ConfigMap's data, the key Secret's data
and a revision."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from llm_failover.spec import ProviderSpec, RouteSpec

ROUTE_JSON = "route.json"
KEY_NAMES = ("LLM_API_KEY", "OPENAI_API_KEY")


@dataclass(frozen=True)
class RoutingOutput:
    config_map: dict[str, str]
    secret: dict[str, str] | None  # key material: only ever written to the target Secret
    revision: str
    """Hash of what an app's environment depends on (provider, URL, model, key): it changes only
    when the active provider does, never when a backup's state does."""


def routing_output(
    spec: RouteSpec,
    *,
    active: ProviderSpec,
    eligible: Mapping[str, bool],
    key: str | None,
) -> RoutingOutput:
    """What the apps read. It changes only when the active provider, the order or a provider's
    eligibility does: per-probe states live in the status and metrics, not here, so a backup's
    blips do not rewrite every ConfigMap that lists it."""
    env = {
        "LLM_PROVIDER": active.name,
        "LLM_BASE_URL": active.base_url,
        "LLM_MODEL": active.model,
        "OPENAI_BASE_URL": active.base_url,
        "LLM_API_KEY_SECRET": str(active.api_key) if active.api_key else "",
    }
    candidates = [
        {
            "name": p.name,
            "baseURL": p.base_url,
            "model": p.model,
            "apiKeySecret": str(p.api_key) if p.api_key else "",
            "eligible": eligible.get(p.name, False),
        }
        for p in spec.providers
    ]
    document = {"active": active.name, "providers": candidates}
    config_map = {**env, ROUTE_JSON: json.dumps(document, sort_keys=True, separators=(",", ":"))}
    secret = None
    if spec.target.secret_name is not None:
        secret = dict.fromkeys(KEY_NAMES, key or "")
    digest = hashlib.sha256(json.dumps(env, sort_keys=True).encode())
    if secret is not None:
        digest.update(hashlib.sha256((key or "").encode()).digest())
    return RoutingOutput(config_map=config_map, secret=secret, revision=digest.hexdigest()[:16])
