"""Where `llm-failover run` finds its cluster, resolved once and used by both of its clients.

In order: `--kubeconfig FILE`; `KUBECONFIG` (its files merged, the first value winning, as kubectl
merges them); the pod's service account (in a pod); `~/.kube/config`. `--context NAME` picks a
context of the kubeconfig instead of its `current-context`. `locate` checks what it can before
anything starts (the file exists and parses, the context exists and names a cluster with a
server) and says in one line what is missing and how to fix it.

Both clients then talk to the same API server with the same credentials: kopf's watches
(`connection_info`, the login handler's answer) and the kubernetes client's writes
(`configuration`, for `kube.py`). Proxies: API requests go where the config says, the
kubeconfig's `proxy-url` if it has one, else straight to the server. `HTTPS_PROXY`, set for the
probes' egress, is not used for the API: kopf's aiohttp session ignores it (kopf's
`trust_env` is off) and the kubernetes client's environment proxy is switched off here, so a
proxy for providers can never break (or half-break: watches working, writes failing) API
access, whatever `NO_PROXY` says.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llm_failover.redact import without_userinfo

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
MAX_KUBECONFIG_BYTES = 4 * 1024 * 1024
"""A kubeconfig larger than this is refused (real ones are kilobytes)."""


class ClusterConfigError(Exception):
    """No usable cluster config: the message is the one line the user sees."""


@dataclass(frozen=True)
class ClusterSource:
    """The kubeconfig files and context to use; no files: the pod's service account."""

    files: tuple[str, ...] = ()
    context: str | None = None
    origin: str = "in-cluster"
    """Where it came from: --kubeconfig, KUBECONFIG, ~/.kube/config or in-cluster."""
    namespace: str | None = None
    """The context's namespace, if it names one."""
    server: str = ""
    """The API server's URL, as the config gives it."""
    proxy_url: str | None = None
    """The kubeconfig cluster's `proxy-url`: the only proxy API requests use."""

    @property
    def in_cluster(self) -> bool:
        return not self.files

    def describe(self) -> str:
        via = (
            f"through proxy-url {without_userinfo(self.proxy_url)}" if self.proxy_url else "direct"
        )
        if self.in_cluster:
            return f"the pod's service account: {self.server} ({via})"
        where = os.pathsep.join(self.files)
        return f"{self.origin} {where}, context {self.context}: {self.server} ({via})"


def in_a_pod(environ: Mapping[str, str], service_account_dir: str = SERVICE_ACCOUNT_DIR) -> bool:
    """What the kubernetes client's in-cluster loader needs: the service's address and a token."""
    return bool(
        environ.get("KUBERNETES_SERVICE_HOST")
        and environ.get("KUBERNETES_SERVICE_PORT")
        and os.path.isfile(os.path.join(service_account_dir, "token"))
    )


def locate(
    kubeconfig: str | None = None,
    context: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    service_account_dir: str = SERVICE_ACCOUNT_DIR,
) -> ClusterSource:
    """The cluster config to use, checked; a `ClusterConfigError` says what is missing."""
    env = os.environ if environ is None else environ
    if kubeconfig is not None:
        return _checked((kubeconfig,), context, "--kubeconfig", f"--kubeconfig {kubeconfig}")
    listed = env.get("KUBECONFIG", "")
    if listed.strip():
        paths = [os.path.expanduser(p.strip()) for p in listed.split(os.pathsep) if p.strip()]
        present = tuple(p for p in paths if os.path.exists(p))
        if not present:
            raise ClusterConfigError(
                f"KUBECONFIG={listed}: no such file; point KUBECONFIG (or --kubeconfig) at a "
                "kubeconfig, or unset it"
            )
        return _checked(present, context, "KUBECONFIG", f"KUBECONFIG={listed}")
    if in_a_pod(env, service_account_dir) and context is None:
        host, port = env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]
        host = f"[{host}]" if ":" in host else host
        return ClusterSource(server=f"https://{host}:{port}")
    home = env.get("HOME") or os.path.expanduser("~")
    default = os.path.join(home, ".kube", "config")
    if os.path.exists(default):
        return _checked((default,), context, "~/.kube/config", default)
    if context is not None:
        raise ClusterConfigError(
            f"--context {context}: no kubeconfig to find it in (no --kubeconfig, KUBECONFIG is "
            f"not set, {default} does not exist); pass --kubeconfig FILE"
        )
    raise ClusterConfigError(
        f"no cluster config: no --kubeconfig, KUBECONFIG is not set, {default} does not exist, "
        "and this is not a pod with a service account; pass --kubeconfig FILE or set KUBECONFIG"
    )


def _checked(files: tuple[str, ...], context: str | None, origin: str, said: str) -> ClusterSource:
    """The files merged as kubectl merges them (the first value wins), the context checked."""
    contexts: dict[str, Any] = {}
    clusters: dict[str, Any] = {}
    current: str | None = None
    for path in files:
        config = _read(path, said)
        if current is None and isinstance(config.get("current-context"), str):
            current = config["current-context"] or None
        for plural, found in (("contexts", contexts), ("clusters", clusters)):
            entries = config.get(plural) or []
            if not isinstance(entries, list):
                raise ClusterConfigError(f"{said}: {plural} is not a list")
            for entry in entries:
                if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
                    found.setdefault(entry["name"], entry.get(plural[:-1]) or {})
    known = ", ".join(sorted(contexts)) or "none"
    chosen = context or current
    if chosen is None:
        raise ClusterConfigError(
            f"{said}: no current-context; pass --context NAME (contexts: {known})"
        )
    if chosen not in contexts:
        flag = f"--context {chosen}" if context else f"current-context {chosen}"
        raise ClusterConfigError(f"{flag}: no such context in {said} (contexts: {known})")
    entry = contexts[chosen]
    cluster_name = entry.get("cluster") if isinstance(entry, Mapping) else None
    cluster = clusters.get(cluster_name) if isinstance(cluster_name, str) else None
    if not isinstance(cluster, Mapping) or not cluster.get("server"):
        raise ClusterConfigError(
            f"context {chosen} of {said}: its cluster {cluster_name!r} has no server"
        )
    namespace = entry.get("namespace") if isinstance(entry, Mapping) else None
    proxy = cluster.get("proxy-url")
    return ClusterSource(
        files=tuple(os.path.abspath(f) for f in files),
        context=chosen,
        origin=origin,
        namespace=namespace if isinstance(namespace, str) and namespace else None,
        server=str(cluster["server"]),
        proxy_url=proxy if isinstance(proxy, str) and proxy else None,
    )


def _read(path: str, said: str) -> Mapping[str, Any]:
    file = Path(path)
    it = "it" if said.endswith(path) else path  # name the file when `said` lists several
    try:
        if file.is_dir():
            raise ClusterConfigError(f"{said}: {it} is a directory, not a kubeconfig")
        with file.open("rb") as handle:
            data = handle.read(MAX_KUBECONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ClusterConfigError(f"{said}: no such file") from None
    except OSError as exc:
        raise ClusterConfigError(f"{said}: cannot read {it}: {exc.strerror}") from None
    if len(data) > MAX_KUBECONFIG_BYTES:
        raise ClusterConfigError(f"{said}: {it} is larger than {MAX_KUBECONFIG_BYTES} bytes")
    try:
        config = yaml.safe_load(data)
    except (yaml.YAMLError, RecursionError, UnicodeDecodeError):
        raise ClusterConfigError(f"{said}: {it} is not a valid kubeconfig (YAML)") from None
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise ClusterConfigError(f"{said}: {it} is not a kubeconfig (not a mapping)")
    return config


def configuration(source: ClusterSource, *, pool: int = 32, retry: bool = True) -> Any:
    """A `kubernetes.client.Configuration` for `source` (see the module's note on proxies)."""
    import kubernetes

    config = kubernetes.client.Configuration()
    config.proxy = None  # not HTTPS_PROXY: a proxy-url of the kubeconfig sets it below
    config.no_proxy = None
    config.connection_pool_maxsize = pool
    if not retry:
        config.retries = 0
    if source.in_cluster:
        kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
    else:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.pathsep.join(source.files),
            context=source.context,
            client_configuration=config,
            persist_config=False,
        )
    return config


def connection_info(source: ClusterSource) -> Any:
    """kopf's login answer for `source`: what the kubernetes client would use (credentials from
    exec plugins and token files included), as kopf's own `login_via_client` builds it."""
    import kopf

    config = configuration(source, pool=1)
    header: str | None = config.get_api_key_with_prefix(
        "BearerToken"
    ) or config.get_api_key_with_prefix("authorization")
    parts = header.split(" ", 1) if header else []
    scheme, token = (
        (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    )
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        username=config.username or None,
        password=config.password or None,
        scheme=scheme,
        token=token,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
        default_namespace=source.namespace,
        proxy_url=config.proxy,
        trust_env=False,
    )
