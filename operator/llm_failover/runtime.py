"""Runs the operator: kopf's machinery with our handlers, settings and liveness endpoint.

`llm-failover run` and `llm-failover demo` both come here, so the demo exercises the real path.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import kopf
from prometheus_client import CollectorRegistry

from llm_failover.handlers import build_registry
from llm_failover.metrics import Metrics
from llm_failover.redact import Redactor, install_log_redaction
from llm_failover.settings import Settings


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
    server, thread = serve_metrics(settings.metrics_port, metrics.exposition)
    try:
        await kopf.operator(
            registry=build_registry(),
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=list(settings.namespaces),
            liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
            memo=kopf.Memo(settings=settings, metrics=metrics, redactor=redactor),
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        undo()


def serve_metrics(
    port: int, render: Callable[[], bytes], *, host: str = "0.0.0.0"
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """`/metrics` (any path, as prometheus_client serves it) in the Prometheus text format,
    from a thread of its own: a scrape never waits for the event loop."""

    class Handler(BaseHTTPRequestHandler):
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
