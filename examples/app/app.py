"""A minimal app that follows llm-failover's routing with the official OpenAI Python SDK.

Two ways to read the routing, as the main README explains:

- `env` (envFrom): the SDK reads OPENAI_BASE_URL and OPENAI_API_KEY from the environment once;
  the model comes from LLM_MODEL. After a failover the pod must restart, so list this Deployment
  under the LLMRoute's `spec.target.restart`.
- `files` (a mounted volume): the routing is read from /etc/llm on every request, so a failover
  reaches the app within the kubelet's sync delay, with no restart.

Run: `python app.py env` or `python app.py files [DIR]`; it serves POST /ask on :8000.
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from openai import OpenAI

ROUTING_DIR = Path("/etc/llm")


def client_from_environment() -> tuple[OpenAI, str]:
    """The SDK finds OPENAI_BASE_URL and OPENAI_API_KEY itself; only the model is ours to read."""
    return OpenAI(), os.environ["LLM_MODEL"]


def client_from_files(directory: Path = ROUTING_DIR) -> tuple[OpenAI, str]:
    """Read the projected ConfigMap and Secret files afresh: call this per request."""

    def read(name: str) -> str:
        return (directory / name).read_text(encoding="utf-8").strip()

    return OpenAI(base_url=read("OPENAI_BASE_URL"), api_key=read("OPENAI_API_KEY")), read(
        "LLM_MODEL"
    )


def ask(client: OpenAI, model: str, question: str) -> str:
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}]
    )
    return answer.choices[0].message.content or ""


def main(argv: list[str]) -> None:
    mode = argv[1] if len(argv) > 1 else "env"
    directory = Path(argv[2]) if len(argv) > 2 else ROUTING_DIR
    once = client_from_environment() if mode == "env" else None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            question = json.loads(self.rfile.read(length) or b"{}").get("question", "ping")
            client, model = once or client_from_files(directory)
            body = json.dumps({"answer": ask(client, model, question), "model": model}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    HTTPServer(("0.0.0.0", 8000), Handler).serve_forever()


if __name__ == "__main__":
    main(sys.argv)
