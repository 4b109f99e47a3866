"""The `llm-failover` command line (docs/reference.md#cli)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

import httpx

from llm_failover import __version__
from llm_failover.leader import Timings
from llm_failover.settings import Settings

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds (0 < s <= 86400)")
    return value


def own_namespace() -> str | None:
    """The operator pod's namespace: POD_NAMESPACE (the downward API), else the namespace of
    its service account's mounted token; None outside a pod."""
    found = os.environ.get("POD_NAMESPACE", "").strip()
    if not found:
        try:
            with open(SERVICE_ACCOUNT_NAMESPACE, encoding="utf-8") as file:
                found = file.read().strip()
        except OSError:
            return None
    return found or None


def _boolean(text: str) -> bool:
    value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(
        text.strip().lower()
    )
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is neither true nor false")
    return value


def _resource_name(text: str) -> bool:
    return bool(re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", text))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-failover",
        description="Keeps apps routed to a working LLM provider.",
    )
    parser.add_argument("--version", action="version", version=f"llm-failover {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the operator against a cluster (--kubeconfig, KUBECONFIG, in-cluster)",
        description="Run the operator. Watches every namespace unless --namespace is given. "
        "The cluster: --kubeconfig FILE, else KUBECONFIG, else the pod's service account, else "
        "~/.kube/config; --context picks a context of the kubeconfig. Without any, it exits "
        "with status 2 at once, saying so. Kubernetes API requests go straight to the server (or "
        "through the kubeconfig's proxy-url); probes and Prometheus queries honour HTTPS_PROXY, "
        "HTTP_PROXY and NO_PROXY.",
    )
    cluster = run.add_argument_group("cluster")
    cluster.add_argument(
        "--kubeconfig",
        default=None,
        metavar="FILE",
        help="the kubeconfig to use (wins over KUBECONFIG and the in-cluster service account)",
    )
    cluster.add_argument(
        "--context",
        default=None,
        metavar="NAME",
        help="the kubeconfig's context to use (default: its current-context)",
    )
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeat for several)",
    )
    scope.add_argument(
        "--all-namespaces", "-A", action="store_true", help="watch every namespace (the default)"
    )
    run.add_argument("--metrics-port", type=_port, default=Settings.metrics_port, metavar="PORT")
    run.add_argument("--health-port", type=_port, default=Settings.health_port, metavar="PORT")
    run.add_argument(
        "--status-heartbeat",
        type=_seconds,
        default=Settings.status_heartbeat_seconds,
        metavar="SECONDS",
        help="how often a route's status is written when only per-probe facts changed "
        f"(default {Settings.status_heartbeat_seconds:.0f}; longer with over 1,500 routes: "
        "5 such writes a second at most, all routes together)",
    )
    run.add_argument(
        "--secret-resync",
        type=_seconds,
        default=Settings.secret_resync_seconds,
        metavar="SECONDS",
        help="every key Secret in use is read again once per this period, in case the watch "
        f"of Secrets missed a change (default {Settings.secret_resync_seconds:.0f})",
    )
    run.add_argument(
        "--probe-backoff-max",
        type=_seconds,
        default=Settings.probe_backoff_max_seconds,
        metavar="SECONDS",
        help="a provider in a hard state (bad key, empty balance, geo-block, missing model) "
        "that gave no reset time is probed ever less often, the wait doubling from the route's "
        f"interval up to this (default {Settings.probe_backoff_max_seconds:.0f}); a change to "
        "its key Secret probes it at once",
    )
    signals = run.add_argument_group(
        "traffic signals",
        "Routes may name Prometheus queries of their apps' error rate or latency (spec.signal); "
        "Alertmanager may post alerts to POST /alertmanager on the metrics port. A signal probes "
        "the provider at once; it never switches a route by itself.",
    )
    signals.add_argument(
        "--prometheus-url",
        type=_http_url,
        default=None,
        metavar="URL",
        help="the Prometheus API the queries go to, e.g. http://prometheus-operated."
        "monitoring:9090 (Thanos and Mimir query endpoints work too)",
    )
    signals.add_argument(
        "--prometheus-token-file",
        default=None,
        metavar="FILE",
        help="a bearer token for it, read at each query",
    )
    signals.add_argument(
        "--prometheus-tenant-param",
        default=None,
        metavar="NAME",
        help="send each query with its route's namespace in this query parameter, e.g. "
        "namespace for prom-label-proxy or the tenancy port of the Thanos querier: a tenant's "
        "queries then see its own series only (see docs/security.md)",
    )
    signals.add_argument(
        "--signal-interval",
        type=_seconds,
        default=Settings.signal_interval_seconds,
        metavar="SECONDS",
        help=f"how often each query is evaluated (default {Settings.signal_interval_seconds:.0f})",
    )
    signals.add_argument(
        "--alertmanager-token-file",
        default=None,
        metavar="FILE",
        help="the bearer token Alertmanager must send; without it an alert only probes and "
        "never ejects a provider (trust: Signal needs it)",
    )
    elect = run.add_argument_group(
        "leader election",
        "With several replicas one leader, elected on a coordination.k8s.io/v1 Lease, writes; "
        "the others watch and probe, ready to take over (docs/install.md).",
    )
    elect.add_argument(
        "--leader-elect",
        nargs="?",
        const=True,
        type=_boolean,
        default=Settings.leader_elect,
        metavar="true|false",
        help="elect a leader before writing (default true; --leader-elect=false for a single "
        "process)",
    )
    elect.add_argument(
        "--leader-elect-lease-duration",
        type=_seconds,
        default=Settings.lease_seconds,
        metavar="SECONDS",
        help="how long a standby waits after the Lease last changed before taking it "
        f"(default {Settings.lease_seconds:g})",
    )
    elect.add_argument(
        "--leader-elect-renew-deadline",
        type=_seconds,
        default=Settings.renew_deadline_seconds,
        metavar="SECONDS",
        help="how long the leader writes without renewing; shorter than the lease duration "
        f"(default {Settings.renew_deadline_seconds:g})",
    )
    elect.add_argument(
        "--leader-elect-retry-period",
        type=_seconds,
        default=Settings.retry_period_seconds,
        metavar="SECONDS",
        help="how often the leader renews the Lease (a standby looks twice as often) "
        f"(default {Settings.retry_period_seconds:g})",
    )
    elect.add_argument(
        "--leader-elect-resource-name",
        default=Settings.lease_name,
        metavar="NAME",
        help=f"the Lease's name (default {Settings.lease_name})",
    )
    elect.add_argument(
        "--leader-elect-resource-namespace",
        default=None,
        metavar="NS",
        help="the Lease's namespace (default: the operator pod's own; required outside a pod)",
    )
    run.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    run.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text (the default), or json: one object a line with time (UTC), level, logger, "
        "message, and namespace, name and exception when there are",
    )

    probe = commands.add_parser(
        "probe",
        help="probe the providers of LLMRoute manifests from this machine, no cluster needed",
        description="Probes every provider of the LLMRoutes in FILE once, from this machine, and "
        "prints the host it probed, its state and the provider each route would use, each route "
        "as soon as its probes end. FILE may be '-' (stdin), a directory (its *.yaml, *.yml and "
        "*.json files, sorted; -R for subdirectories too), and hold several documents or a "
        "kind: List (kubectl get -o yaml), read as it streams. A provider outside its "
        "notBefore/notAfter, or of a paused route, is not probed: Skipped, saying why. A "
        "provider's key comes from LLMFAILOVER_KEY_<PROVIDER> (name upper-cased, '-' as '_'); "
        "HTTPS_PROXY, HTTP_PROXY and NO_PROXY are honoured. Every problem of the input is said "
        "on stderr, one line each, and the other routes are still probed. Exit status: 0 when "
        "every route has a usable provider, 1 when some route has none, 2 when some input was "
        "bad, 141 when the output was closed early (| head).",
    )
    probe.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="LLMRoute manifests (YAML or JSON): files, directories, or - for stdin",
    )
    probe.add_argument("--output", "-o", choices=("table", "json"), default="table")
    probe.add_argument(
        "--recursive",
        "-R",
        action="store_true",
        help="read the directories given and all their subdirectories",
    )

    demo = commands.add_parser(
        "demo",
        help="run everything on this machine with no cluster: a scripted geo-block and outage",
        description="Runs the operator against an embedded Kubernetes API and local stand-in "
        "providers, plays a geo-block, an outage and recoveries, and prints the failovers.",
    )
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="after the story, leave everything up and print how to explore it",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "probe":
        from llm_failover.catalog import default_catalog
        from llm_failover.probe import main as probe

        return probe(
            args.files,
            output=args.output,
            out=sys.stdout,
            err=sys.stderr,
            catalog=default_catalog(),
            recursive=args.recursive,
        )
    if args.command == "demo":
        from llm_failover.demo import main as demo

        return demo(keep_running=args.keep_running, out=sys.stdout)
    return 2  # unreachable: argparse rejects unknown commands


def _token(path: str) -> bool:
    try:
        with open(path, encoding="utf-8") as file:
            return bool(file.read(65536).strip())
    except (OSError, UnicodeDecodeError):
        return False


def _http_url(value: str) -> str:
    try:
        url = httpx.URL(value)
    except Exception as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(f"{value!r}: an http:// or https:// URL with a host")
    return value.rstrip("/")


def _refuse(message: str) -> NoReturn:
    """A bad combination of `run`'s options: said as argparse says a bad one, exit status 2."""
    print(f"llm-failover run: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _run(args: argparse.Namespace) -> int:
    timings = Timings(
        args.leader_elect_lease_duration,
        args.leader_elect_renew_deadline,
        args.leader_elect_retry_period,
    )
    if args.leader_elect:
        problem = timings.problem()
        if problem is not None:
            _refuse(
                f"--leader-elect-lease-duration {timings.lease_seconds:g}, "
                f"--leader-elect-renew-deadline {timings.renew_deadline_seconds:g}, "
                f"--leader-elect-retry-period {timings.retry_seconds:g}: {problem}"
            )
        if not _resource_name(args.leader_elect_resource_name):
            _refuse(
                f"--leader-elect-resource-name {args.leader_elect_resource_name!r} is not a "
                "Kubernetes name (lowercase letters, digits, '-' and '.', at most 253)"
            )
    for flag, path in (
        ("--prometheus-token-file", args.prometheus_token_file),
        ("--alertmanager-token-file", args.alertmanager_token_file),
    ):
        if path is not None and not _token(path):
            _refuse(f"{flag} {path}: cannot read a token from it (a file holding one line)")

    # The flags first, then where the operator runs: its cluster, then the Lease's namespace.
    from llm_failover.kubeconfig import ClusterConfigError, locate

    try:
        cluster = locate(args.kubeconfig, args.context)
    except ClusterConfigError as exc:
        _refuse(str(exc))

    lease_namespace = args.leader_elect_resource_namespace
    if args.leader_elect:
        lease_namespace = lease_namespace or own_namespace()
        if lease_namespace is None:
            _refuse(
                "--leader-elect-resource-namespace is required outside a pod (or "
                "--leader-elect=false for a single process)"
            )

    import kopf

    from llm_failover.proxies import egress
    from llm_failover.runtime import serve

    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.PLAIN)
    if args.log_format == "json":
        from llm_failover.logformat import use_json

        use_json()
    logging.getLogger("httpcore").setLevel(logging.INFO)  # per-socket traces help nobody
    # One INFO line per probe request helps nobody either: probe results are metrics.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if not args.verbose:
        # kopf says "Handler ... succeeded" for every watch event: 20,000 lines to start 10,000
        # routes, each formatted and redacted. Its warnings and errors still show.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings = Settings(
        namespaces=tuple(args.namespace),
        cluster=cluster,
        metrics_port=args.metrics_port,
        health_port=args.health_port,
        status_heartbeat_seconds=args.status_heartbeat,
        secret_resync_seconds=args.secret_resync,
        leader_elect=args.leader_elect,
        lease_name=args.leader_elect_resource_name,
        lease_namespace=lease_namespace,
        lease_seconds=timings.lease_seconds,
        renew_deadline_seconds=timings.renew_deadline_seconds,
        retry_period_seconds=timings.retry_seconds,
        probe_backoff_max_seconds=args.probe_backoff_max,
        prometheus_url=args.prometheus_url,
        prometheus_token_file=args.prometheus_token_file,
        prometheus_tenant_param=args.prometheus_tenant_param,
        signal_interval_seconds=args.signal_interval,
        alertmanager_token_file=args.alertmanager_token_file,
    )

    async def main_async() -> None:
        logging.getLogger(__name__).info(
            "llm-failover %s watching %s",
            __version__,
            ", ".join(settings.namespaces) or "all namespaces",
        )
        logging.getLogger(__name__).info("cluster: %s", cluster.describe())
        logging.getLogger(__name__).info("%s", egress())
        # kopf handles SIGTERM and SIGINT itself. A stop flag of ours beside them would never
        # be set (kopf's handlers replace ours), and kopf waits 5 s for its waiter at exit.
        await serve(settings)

    asyncio.run(main_async())
    return 0


if __name__ == "__main__":
    sys.exit(main())
