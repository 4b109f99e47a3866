"""The operator's settings: one frozen value parsed once from the command line."""

from __future__ import annotations

from dataclasses import dataclass

from llm_failover.kubeconfig import ClusterSource


@dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means every namespace."""
    cluster: ClusterSource | None = None
    """The kubeconfig and context (or the pod's service account) both Kubernetes clients use
    (`kubeconfig.locate`, resolved by `run`); None: located when the operator starts."""
    metrics_port: int = 8080
    """Port of the Prometheus `/metrics` endpoint (the usual port of an operator's metrics)."""
    health_port: int = 8081
    """Port of the liveness endpoint `/healthz`, apart from metrics so a scrape cannot starve it."""
    listen_address: str = "0.0.0.0"
    """Address both endpoints listen on: every interface in a pod (Prometheus and the kubelet
    reach them there); `llm-failover demo` keeps them on 127.0.0.1."""
    secret_resync_seconds: float = 300.0
    """Seconds over which every key Secret in use is read again, one at a time: the safety net
    should the watch of Secrets miss a change (which it reports within seconds)."""
    max_body_bytes: int = 64 * 1024
    """Bytes of a probe answer read at most: error bodies are small; a wrong base URL may serve
    megabytes."""
    probe_concurrency: int = 256
    """Probes in flight at once, all endpoints together (and HTTP connections to providers):
    enough for 2,500 endpoints answering in a second at a 10 s interval."""
    probe_concurrency_per_namespace: int = 32
    """A namespace's fair share of `probe_concurrency`: a namespace whose providers all hang
    holds at most this many slots, and every other namespace's probes still run."""
    status_heartbeat_seconds: float = 300.0
    """Seconds between status writes when nothing a person or a restarted operator needs has
    changed: per-probe facts (last probe time, latency, streaks below a threshold, the latest
    answer's message) reach the status at most this often; metrics carry them meanwhile. With
    many routes it stretches: all routes together write at most 5 such statuses a second."""
    retry_seconds: float = 5.0
    """Seconds before a reconcile that failed on an API error is tried again."""
    leader_elect: bool = True
    """Elect one writer among the replicas on a Lease (two replicas: no single point of
    failure); off for a single process (`make demo`, a laptop), which then always writes."""
    lease_name: str = "llm-failover"
    """The Lease's name (`coordination.k8s.io/v1`)."""
    lease_namespace: str | None = None
    """The Lease's namespace; None: the operator's own (its pod's namespace)."""
    lease_seconds: float = 15.0
    """How long a standby waits, from the last change it saw of the Lease, before taking it:
    client-go's default, what controller-runtime and kube-controller-manager use."""
    renew_deadline_seconds: float = 10.0
    """How long the leader keeps writing without a renewal: shorter than the lease, so its
    writes end before anyone can take over (client-go's default)."""
    retry_period_seconds: float = 2.0
    """How often the leader renews the Lease (client-go's default); a standby looks twice as
    often, so a released Lease is taken within about a second."""
    probe_backoff_max_seconds: float = 300.0
    """Longest wait between probes of a provider in a hard state that gave no reset time (the
    wait doubles from the route's interval up to this); a change to its key Secret probes it
    at once."""
    prometheus_url: str | None = None
    """The Prometheus (or Thanos, Mimir: its `/api/v1/query`) that routes' traffic signals ask;
    None: signals come from Alertmanager alone."""
    prometheus_token_file: str | None = None
    """A bearer token for it, read at each query (a projected service-account token rotates)."""
    prometheus_tenant_param: str | None = None
    """When set, each query carries its route's namespace in this query parameter (`namespace`
    for prom-label-proxy or the Thanos querier's tenancy port): tenants see their own series."""
    signal_interval_seconds: float = 15.0
    """How often each distinct signal query is evaluated (Prometheus's default scrape interval)."""
    alertmanager_token_file: str | None = None
    """The bearer token Alertmanager's webhook must present to `POST /alertmanager`: without
    one, an alert only probes (it never ejects a provider, whatever `trust` says)."""
    watch_timeout_seconds: int = 300
    """Seconds a watch request lasts before kopf renews it; shorter than most load balancers'
    idle limits, so a silently dropped connection is noticed."""
