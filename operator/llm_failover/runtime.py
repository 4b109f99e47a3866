"""Runs the operator: kopf's machinery with our handlers, settings and liveness endpoint.

`llm-failover run` and `llm-failover demo` both come here, so the demo exercises the real path.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import kopf
from prometheus_client import CollectorRegistry

from llm_failover.handlers import build_registry
from llm_failover.leader import Leadership
from llm_failover.metrics import Metrics
from llm_failover.redact import Redactor, install_log_redaction
from llm_failover.settings import Settings
from llm_failover.signals import MAX_WEBHOOK_BYTES, Alert, AlertWebhook, Signals


async def serve(
    settings: Settings,
    *,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    registry: CollectorRegistry | None = None,
) -> None:
    """Run until `stop_flag` is set (or kopf stops); metrics on `settings.metrics_port`.

    Every log record of the process passes the redactor while the operator runs.
    """
    metrics = Metrics(registry or CollectorRegistry())
    redactor = Redactor()
    undo = install_log_redaction(redactor)
    signals = Signals(
        url=settings.prometheus_url,
        token_file=settings.prometheus_token_file,
        tenant_param=settings.prometheus_tenant_param,
        interval_seconds=settings.signal_interval_seconds,
        on_query=lambda result: metrics.signal_queries.labels(result).inc(),
    )
    loop = asyncio.get_running_loop()

    def deliver(alerts: list[Alert]) -> None:  # from a thread of the metrics server
        loop.call_soon_threadsafe(signals.alert, alerts)

    memo = kopf.Memo(settings=settings, metrics=metrics, redactor=redactor, signals=signals)

    def leading() -> bool:  # the startup handler puts the Leadership in the memo
        leadership: Leadership | None = memo.get("leadership")
        return leadership is None or leadership.leading

    webhook = AlertWebhook(
        leading=leading,
        deliver=deliver,
        token_file=settings.alertmanager_token_file,
        count=lambda result: metrics.alerts_received.labels(result).inc(),
    )
    server, thread = serve_metrics(
        settings.metrics_port,
        metrics.exposition,
        host=settings.listen_address,
        post={"/alertmanager": webhook.handle},
    )
    try:
        await kopf.operator(
            registry=build_registry(),
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=list(settings.namespaces),
            liveness_endpoint=f"http://{settings.listen_address}:{settings.health_port}/healthz",
            memo=memo,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        undo()


Post = Callable[[bytes, str], tuple[int, str]]
"""A POST endpoint: (body, Authorization header) → (HTTP status, text)."""


def serve_metrics(
    port: int,
    render: Callable[[], bytes],
    *,
    host: str = "0.0.0.0",
    post: Mapping[str, Post] | None = None,
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """`/metrics` (any path, as prometheus_client serves it) in the Prometheus text format,
    from a thread of its own: a scrape never waits for the event loop; and the `post`
    endpoints (Alertmanager's webhook), their bodies read up to `MAX_WEBHOOK_BYTES`."""
    endpoints = dict(post or {})

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            endpoint = endpoints.get(self.path.split("?", 1)[0])
            try:
                length = int(self.headers.get("Content-Length") or -1)
            except ValueError:
                length = -1
            if endpoint is None:
                status, text = 404, "no such endpoint\n"
            elif not 0 <= length <= MAX_WEBHOOK_BYTES:
                status, text = (
                    413,
                    f"a body of at most {MAX_WEBHOOK_BYTES} bytes, with its length\n",
                )
            else:
                self.connection.settimeout(10)
                try:
                    body = self.rfile.read(length)
                except OSError:
                    return
                status, text = endpoint(body, self.headers.get("Authorization") or "")
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            body = render()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # a scrape is no news
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return server, thread
