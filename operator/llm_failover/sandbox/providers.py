"""Local stand-ins for OpenAI-compatible providers, whose behaviour tests and the demo switch live.

Each stand-in serves `GET {prefix}/models` and `POST {prefix}/chat/completions` on 127.0.0.1 and
answers, per its current `Behaviour`, the way the real provider it imitates does (bodies taken
from the sources in docs/providers.md and docs/research/): OpenAI's geo-block, Zhipu's 429 for
an empty balance, a 503, a connection reset, a hang. Standard library only, a thread per stand-in.

Run as a program, it serves stand-ins until SIGTERM, e.g. in a pod for the real-cluster tests:
`python -m llm_failover.sandbox.providers --name openai --port 8080 --key sk-1
--name qwen --port 8081 --flavour dashscope --prefix /compatible-mode/v1 --model qwen-max`.
"""

from __future__ import annotations

import argparse
import json
import select
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from types import FrameType
from typing import Any

CONTROL_PATH = "/_behaviour/"
"""POST here (not under the API prefix) to switch a stand-in's behaviour by hand."""


class Behaviour(StrEnum):
    HEALTHY = "healthy"
    GEO_BLOCKED = "geo-blocked"
    UNAUTHORIZED = "unauthorized"
    QUOTA_EXHAUSTED = "quota-exhausted"
    RATE_LIMITED = "rate-limited"
    SERVER_ERROR = "server-error"
    INTERNAL_ERROR = "internal-error"  # HTTP 500 (SERVER_ERROR is OpenAI's 503)
    SLOW = "slow"
    RESET = "reset"


# (status, body) per provider flavour; "openai" is the fallback for every flavour.
_ANSWERS: dict[str, dict[Behaviour, tuple[int, dict[str, Any]]]] = {
    "openai": {
        Behaviour.GEO_BLOCKED: (
            403,
            {
                "error": {
                    "code": "unsupported_country_region_territory",
                    "message": "Country, region, or territory not supported",
                    "param": None,
                    "type": "request_forbidden",
                }
            },
        ),
        Behaviour.UNAUTHORIZED: (
            401,
            {
                "error": {
                    "message": "Incorrect API key provided.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            },
        ),
        Behaviour.QUOTA_EXHAUSTED: (
            429,
            {
                "error": {
                    "message": "You exceeded your current quota, please check your plan.",
                    "type": "insufficient_quota",
                    "param": None,
                    "code": "insufficient_quota",
                }
            },
        ),
        Behaviour.RATE_LIMITED: (
            429,
            {
                "error": {
                    "message": "Rate limit reached",
                    "type": "requests",
                    "code": "rate_limit_exceeded",
                }
            },
        ),
        Behaviour.SERVER_ERROR: (
            503,
            {
                "error": {
                    "message": "The server is overloaded or not ready yet.",
                    "type": "server_error",
                }
            },
        ),
        Behaviour.INTERNAL_ERROR: (
            500,
            {
                "error": {
                    "message": "The server had an error while processing your request. "
                    "Sorry about that!",
                    "type": "server_error",
                }
            },
        ),
    },
    "dashscope": {
        Behaviour.UNAUTHORIZED: (
            401,
            {
                "error": {
                    "message": "Incorrect API key provided.",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            },
        ),
        Behaviour.QUOTA_EXHAUSTED: (
            400,
            {
                "error": {
                    "message": "Access denied, please make sure your account is in good standing.",
                    "type": "Arrearage",
                    "code": "Arrearage",
                }
            },
        ),
        Behaviour.RATE_LIMITED: (
            429,
            {
                "error": {
                    "message": "Requests rate limit exceeded, please try again later.",
                    "type": "limit_requests",
                    "code": "limit_requests",
                }
            },
        ),
        Behaviour.SERVER_ERROR: (
            503,
            {
                "error": {
                    "message": "The server is overloaded, please try again later.",
                    "type": "ServiceUnavailable",
                    "code": "ServiceUnavailable",
                }
            },
        ),
    },
    "zhipu": {
        Behaviour.UNAUTHORIZED: (401, {"error": {"code": "1000", "message": "身份验证失败。"}}),
        Behaviour.QUOTA_EXHAUSTED: (
            429,
            {"error": {"code": "1113", "message": "余额不足或无可用资源包,请充值。"}},
        ),
        Behaviour.RATE_LIMITED: (
            429,
            {
                "error": {
                    "code": "1302",
                    "message": "您当前使用该API的并发数过高,请降低并发,或联系客服增加限额。",
                }
            },
        ),
        Behaviour.SERVER_ERROR: (500, {"error": {"code": "500", "message": "Internal Error"}}),
    },
}


@dataclass
class Request:
    method: str
    path: str
    authorization: str
    body: dict[str, Any] | None
    time: float


@dataclass
class StandInProvider:
    """One stand-in provider. Switch `behaviour` at any time; read `requests` to see who called."""

    name: str
    flavour: str = "openai"
    prefix: str = "/v1"
    model: str = "gpt-4o"
    api_key: str | None = None
    """When set, a request without `Authorization: Bearer <api_key>` gets a 401."""
    slow_seconds: float = 30.0
    retry_after: str | None = None
    """When set, the `Retry-After` header of its 429 and 503 answers (e.g. "30": seconds)."""
    host: str = "127.0.0.1"
    port: int = 0
    """0: any free port. The CLI below binds 0.0.0.0 and fixed ports, to serve inside a cluster."""
    behaviour: Behaviour = Behaviour.HEALTHY
    requests: list[Request] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def root_url(self) -> str:
        assert self._server is not None, "start() the stand-in first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}{self.prefix}"

    def set(self, behaviour: Behaviour) -> None:
        with self._lock:
            self.behaviour = behaviour

    def count(self, path_suffix: str = "") -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.path.endswith(path_suffix))

    def start(self) -> StandInProvider:
        handler = type("Handler", (_Handler,), {"provider": self})
        self._stopping.clear()
        self._server = _Server((self.host, self.port), handler)
        threading.Thread(
            target=self._server.serve_forever, name=f"stand-in {self.name}", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes the handlers of `slow` answers, which then hang up
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StandInProvider:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _record(self, request: Request) -> Behaviour:
        with self._lock:
            self.requests.append(request)
            return self.behaviour

    def answer(self, behaviour: Behaviour) -> tuple[int, dict[str, Any]]:
        flavour = _ANSWERS.get(self.flavour, {})
        return flavour.get(behaviour) or _ANSWERS["openai"][behaviour]


_HANG_UPS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)
"""What writing to a client that gave up raises: expected (a prober's timeout), not a bug."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback for every exception a handler raises; a client that
        # hung up is routine here (probers time out on `slow`), anything else is a bug to show.
        if isinstance(sys.exc_info()[1], _HANG_UPS):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    provider: StandInProvider
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self._serve(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self._serve(body if isinstance(body, dict) else None)

    def _serve(self, body: dict[str, Any] | None) -> None:
        provider = self.provider
        if self.path.startswith(CONTROL_PATH):  # `curl -X POST .../_behaviour/geo-blocked`
            self._control(self.path.removeprefix(CONTROL_PATH))
            return
        authorization = self.headers.get("Authorization", "")
        behaviour = provider._record(
            Request(self.command, self.path, authorization, body, time.time())
        )
        path = self.path.split("?")[0]
        if behaviour is Behaviour.RESET:
            # SO_LINGER 0: close() sends a TCP RST, as a middlebox killing the flow does.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if behaviour is Behaviour.SLOW:
            if not self._client_waits(provider.slow_seconds):
                self.close_connection = True  # it gave up (or the stand-in stops): no answer
                return
            behaviour = Behaviour.HEALTHY
        if provider.api_key is not None and authorization != f"Bearer {provider.api_key}":
            behaviour = Behaviour.UNAUTHORIZED
        if behaviour is not Behaviour.HEALTHY:
            status, payload = provider.answer(behaviour)
            retry = provider.retry_after if status in (429, 503) else None
            self._json(status, payload, {"Retry-After": retry} if retry is not None else {})
        elif self.command == "GET" and path == f"{provider.prefix}/models":
            self._json(
                200,
                {
                    "object": "list",
                    "data": [{"id": provider.model, "object": "model", "owned_by": provider.name}],
                },
            )
        elif self.command == "POST" and path == f"{provider.prefix}/chat/completions":
            self._json(200, _completion(provider, body))
        else:
            self._json(
                404,
                {
                    "error": {
                        "message": f"no route {self.command} {path}",
                        "type": "invalid_request_error",
                        "code": "not_found",
                    }
                },
            )

    def _client_waits(self, seconds: float) -> bool:
        """Wait `seconds`; False as soon as the client hangs up or the stand-in stops."""
        stopping = self.provider._stopping
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0 and not stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], min(remaining, 0.2))
            if not readable:
                continue
            try:
                hung_up = not self.connection.recv(1, socket.MSG_PEEK)
            except OSError:
                hung_up = True
            if hung_up:
                return False
            # More bytes (a pipelined request) are not a hang-up; select would not block again.
            stopping.wait(max(deadline - time.monotonic(), 0))
        return not stopping.is_set()

    def _control(self, name: str) -> None:
        try:
            behaviour = Behaviour(name)
        except ValueError:
            choices = ", ".join(b.value for b in Behaviour)
            self._json(400, {"error": f"unknown behaviour {name!r}; one of: {choices}"})
            return
        self.provider.set(behaviour)
        self._json(200, {"provider": self.provider.name, "behaviour": behaviour.value})

    def _json(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _completion(provider: StandInProvider, body: dict[str, Any] | None) -> dict[str, Any]:
    model = (body or {}).get("model") or provider.model
    return {
        "id": f"chatcmpl-{provider.name}-{len(provider.requests)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"pong from {provider.name}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m llm_failover.sandbox.providers",
        description="Serve stand-in providers until SIGTERM. Each --name starts a new one; the "
        "flags after it are that stand-in's. Switch one with POST /_behaviour/<name>.",
    )
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--flavour", default="openai", choices=sorted(_ANSWERS))
    parser.add_argument("--prefix", default="/v1")
    parser.add_argument("--model", default="gpt-4o")
    parser.add_argument("--key", default=None, help="expected Bearer token; any if unset")
    parser.add_argument(
        "--behaviour", default=Behaviour.HEALTHY.value, choices=[b.value for b in Behaviour]
    )
    return parser


def parse(argv: list[str]) -> list[StandInProvider]:
    """One stand-in per `--name` group of `argv`."""
    starts = [i for i, arg in enumerate(argv) if arg == "--name" or arg.startswith("--name=")]
    if not starts or starts[0] != 0:
        _parser().error("arguments must start with --name")
    providers = []
    for start, end in pairwise([*starts, len(argv)]):
        args = _parser().parse_args(argv[start:end])
        providers.append(
            StandInProvider(
                args.name,
                flavour=args.flavour,
                prefix=args.prefix,
                model=args.model,
                api_key=args.key,
                host=args.host,
                port=args.port,
                behaviour=Behaviour(args.behaviour),
            )
        )
    return providers


def main(argv: list[str] | None = None) -> int:
    providers = parse(sys.argv[1:] if argv is None else argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for provider in providers:
        provider.start()
        print(f"{provider.name}: {provider.flavour} stand-in at {provider.base_url}", flush=True)
    stop.wait()
    for provider in providers:
        provider.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
