"""Which HTTP proxy `llm-failover run`'s clients use, said once at start, without credentials.

Probes and Prometheus queries (httpx, `trust_env`) honour `HTTPS_PROXY`, `HTTP_PROXY`,
`ALL_PROXY` and `NO_PROXY` (lower-case too; `urllib.request.getproxies`). Kubernetes API
requests do not: they go where the cluster config says (`kubeconfig`'s note).
"""

from __future__ import annotations

from urllib.request import getproxies_environment

from llm_failover.redact import without_userinfo


def egress() -> str:
    """One line: the proxies probes use, per scheme, and NO_PROXY; credentials masked."""
    found = getproxies_environment()
    said = [
        f"{scheme}:// via {_shown(found[scheme])}"
        for scheme in ("https", "http", "all")
        if found.get(scheme)
    ]
    if not said:
        return "probes connect directly (no HTTPS_PROXY, HTTP_PROXY or ALL_PROXY)"
    bypass = found.get("no", "")
    return (
        "probes and Prometheus queries go through a proxy: "
        + ", ".join(said)
        + (f"; NO_PROXY={without_userinfo(bypass)}" if bypass else "; NO_PROXY is empty")
    )


def _shown(proxy: str) -> str:
    return without_userinfo(proxy if "://" in proxy else f"http://{proxy}")
