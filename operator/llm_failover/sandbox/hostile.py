"""A hostile OpenAI-compatible provider on loopback: every way an answer can hurt a prober.

It speaks raw HTTP/1.1 from asyncio streams (so it can lie about lengths, drip, hang, flood and
send what no web framework would), on 127.0.0.1 only, in a process of its own (so that a test
measuring the prober's memory measures the prober alone). `HostileProvider` starts it and
switches its behaviour at run time through `GET /_hostile/<behaviour>`; `GET /_hostile/stats`
says how many requests it received and with which Authorization headers.
Every loop here is bounded: floods and bombs stop when the client hangs up or after `LIMIT`
bytes, drips and hangs after `HANG_SECONDS`.

Run by hand: `python -m llm_failover.sandbox.hostile [--behaviour gzip-bomb]` prints its port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import urllib.request
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

LIMIT = 1 << 30
"""Bytes a flood or bomb sends at most (decoded size for bombs), should a client never stop."""
HANG_SECONDS = 30.0
"""How long a hang or a drip lasts at most."""
CONTROL = "/_hostile/"


class Hostility(StrEnum):
    HEALTHY = "healthy"  # a normal model list: the control
    SERVER_ERROR = "server-error"  # 503, to fail a route over
    DEEP_JSON = "deep-json"  # 200, a body of 64 KiB of "[": recursion in naive JSON parsing
    DEEP_ERROR = "deep-error"  # 403, {"error": nested 20,000 deep
    GZIP_BOMB = "gzip-bomb"  # 200, gzip of endless zeros (1000:1): gigabytes if inflated
    DEFLATE_BOMB = "deflate-bomb"  # the same as zlib deflate
    BROTLI = "brotli"  # Content-Encoding br, which the prober never asks for
    FLOOD = "flood"  # 200, an endless chunked body
    HUGE_MODELS = "huge-models"  # 200, a valid model list of 1 MiB
    DRIP = "drip"  # the status line one byte at a time, a byte every 0.2 s
    HANG = "hang"  # accept, read the request, never answer
    LT_FLOOD = "lt-flood"  # 403 text/html of 64 KiB of "<": quadratic for naive tag regexes
    TAG_SOUP = "tag-soup"  # 403 text/html: thousands of unclosed <script> and <head> tags
    BAD_BYTES = "bad-bytes"  # 403 with invalid UTF-8, NULs and control characters
    ECHO_KEY = "echo-key"  # 401 repeating the key it was sent, whole and in pieces
    REDIRECT = "redirect"  # 302 to itself with credentials in the Location
    HUGE_HEADERS = "huge-headers"  # a 200 whose headers never end within limits
    GARBAGE = "garbage"  # not HTTP at all
    SHORT_BODY = "short-body"  # Content-Length 1000, 10 bytes, then the connection closes
    BIG_NUMBER = "big-number"  # 429 with a 60,000-digit error code


@dataclass
class HostileProvider:
    """The hostile server in a child process, on a free loopback port."""

    behaviour: Hostility = Hostility.HEALTHY
    _process: subprocess.Popen[str] | None = field(default=None, repr=False)
    _port: int = 0

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def start(self) -> HostileProvider:
        command = [sys.executable, "-m", "llm_failover.sandbox.hostile"]
        self._process = subprocess.Popen(
            [*command, "--behaviour", self.behaviour.value],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        self._port = int(self._process.stdout.readline())
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    def set(self, behaviour: Hostility) -> None:
        self._control(behaviour.value)
        self.behaviour = behaviour

    @property
    def requests(self) -> int:
        count: int = self._control("stats")["requests"]
        return count

    @property
    def authorizations(self) -> list[str]:
        headers: list[str] = self._control("stats")["authorizations"]
        return headers

    def _control(self, what: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.root_url}{CONTROL}{what}", timeout=10) as answer:
            result: dict[str, Any] = json.loads(answer.read())
            return result

    def __enter__(self) -> HostileProvider:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


Handler = Callable[[asyncio.StreamWriter, str], Awaitable[None]]


@dataclass
class _Server:
    behaviour: Hostility
    requests: int = 0
    authorizations: list[str] = field(default_factory=list)

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: one request after another on the same connection
                head = await reader.readuntil(b"\r\n\r\n")
                length = _header(head, b"content-length")
                if length:
                    await reader.readexactly(min(int(length), 1 << 20))
                path = head.split(b" ", 2)[1].decode(errors="replace")
                if path.startswith(CONTROL):
                    self._control(writer, path.removeprefix(CONTROL))
                else:
                    self.requests += 1
                    key = _header(head, b"authorization").decode(errors="replace")
                    self.authorizations.append(key)
                    await _HANDLERS[self.behaviour](writer, key.removeprefix("Bearer "))
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _control(self, writer: asyncio.StreamWriter, what: str) -> None:
        if what != "stats":
            self.behaviour = Hostility(what)
        stats = {"requests": self.requests, "authorizations": self.authorizations}
        _answer(writer, 200, json.dumps(stats).encode(), extra="Connection: close\r\n")


async def _serve(behaviour: Hostility) -> None:
    server = _Server(behaviour)
    listener = await asyncio.start_server(server.connection, "127.0.0.1", 0)
    print(listener.sockets[0].getsockname()[1], flush=True)
    # Until the parent closes stdin (it died or stopped us) or sends SIGTERM.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A hostile provider on 127.0.0.1.")
    parser.add_argument("--behaviour", default="healthy", choices=[h.value for h in Hostility])
    args = parser.parse_args(argv)
    asyncio.run(_serve(Hostility(args.behaviour)))
    return 0


def _header(head: bytes, name: bytes) -> bytes:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return b""


def _answer(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    extra: str = "",
) -> None:
    writer.write(
        f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n".encode()
        + body
    )


async def _healthy(writer: asyncio.StreamWriter, key: str) -> None:
    _answer(writer, 200, json.dumps({"object": "list", "data": [{"id": "m"}]}).encode())


async def _server_error(writer: asyncio.StreamWriter, key: str) -> None:
    _answer(writer, 503, b'{"error": {"message": "overloaded", "type": "server_error"}}')


async def _deep_json(writer: asyncio.StreamWriter, key: str) -> None:
    _answer(writer, 200, b"[" * 65536)


async def _deep_error(writer: asyncio.StreamWriter, key: str) -> None:
    _answer(writer, 403, b'{"error": ' * 20000 + b"1" + b"}" * 20000)


async def _stream(
    writer: asyncio.StreamWriter, status: int, headers: str, chunks: Callable[[], bytes]
) -> None:
    """A chunked body from `chunks()` until the client hangs up or LIMIT bytes are produced."""
    writer.write(f"HTTP/1.1 {status} X\r\n{headers}Transfer-Encoding: chunked\r\n\r\n".encode())
    produced = 0
    while produced < LIMIT:
        chunk = chunks()
        produced += 1 << 20
        writer.write(f"{len(chunk):x}\r\n".encode())
        writer.write(chunk)
        writer.write(b"\r\n")
        await writer.drain()


_ZEROS = bytes(1 << 20)
_LETTERS = b"a" * (1 << 20)


def _bomb(wbits: int) -> Callable[[], bytes]:
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return lambda: compressor.compress(_ZEROS) or compressor.flush(zlib.Z_SYNC_FLUSH)


async def _gzip_bomb(writer: asyncio.StreamWriter, key: str) -> None:
    headers = "Content-Type: application/json\r\nContent-Encoding: gzip\r\n"
    await _stream(writer, 200, headers, _bomb(16 + zlib.MAX_WBITS))


async def _deflate_bomb(writer: asyncio.StreamWriter, key: str) -> None:
    headers = "Content-Type: application/json\r\nContent-Encoding: deflate\r\n"
    await _stream(writer, 200, headers, _bomb(zlib.MAX_WBITS))


async def _brotli(writer: asyncio.StreamWriter, key: str) -> None:
    _answer(writer, 200, bytes(range(256)) * 64, extra="Content-Encoding: br\r\n")


async def _flood(writer: asyncio.StreamWriter, key: str) -> None:
    await _stream(writer, 200, "Content-Type: application/json\r\n", lambda: _LETTERS)


async def _huge_models(writer: asyncio.StreamWriter, key: str) -> None:
    models = [{"id": f"model-{i:06d}", "object": "model", "owned_by": "x"} for i in range(18000)]
    _answer(writer, 200, json.dumps({"object": "list", "data": models}).encode())


async def _drip(writer: asyncio.StreamWriter, key: str) -> None:
    for _ in range(int(HANG_SECONDS / 0.2)):
        writer.write(b"H")
        await writer.drain()
        await asyncio.sleep(0.2)


async def _hang(writer: asyncio.StreamWriter, key: str) -> None:
    await asyncio.sleep(HANG_SECONDS)


async def _lt_flood(writer: asyncio.StreamWriter, key: str) -> None:
    _answer(writer, 403, b"<" * 65536, content_type="text/html")


async def _tag_soup(writer: asyncio.StreamWriter, key: str) -> None:
    _answer(writer, 403, b"<script><head>" * 4600 + b"</header" * 10, content_type="text/html")


async def _bad_bytes(writer: asyncio.StreamWriter, key: str) -> None:
    body = b'{"error": {"message": "\xff\xfe\x00bad\x1b[31m\xc3\x28\xed\xa0\x80"}}' + b"\x00" * 100
    _answer(writer, 403, body, content_type="application/json; charset=gbk")


async def _echo_key(writer: asyncio.StreamWriter, key: str) -> None:
    message = (
        f"Incorrect API key provided: {key}. Did you mean {key[: len(key) // 2]}... or "
        f"...{key[len(key) // 3 :]}? Header was: Bearer {key}"
    )
    body = json.dumps({"error": {"message": message, "code": "invalid_api_key"}})
    _answer(writer, 401, body.encode())


async def _redirect(writer: asyncio.StreamWriter, key: str) -> None:
    location = f"Location: http://admin:hunter2@127.0.0.1/v1/models?key={key}\r\n"
    _answer(writer, 302, b"", extra=location)


async def _huge_headers(writer: asyncio.StreamWriter, key: str) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\n")
    for i in range(2000):  # ~200 KiB of headers, more than any client accepts
        writer.write(f"X-Filler-{i}: {'y' * 100}\r\n".encode())
        await writer.drain()


async def _garbage(writer: asyncio.StreamWriter, key: str) -> None:
    writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) * 4)
    writer.close()


async def _short_body(writer: asyncio.StreamWriter, key: str) -> None:
    writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{"data": [')
    await writer.drain()
    writer.close()


async def _big_number(writer: asyncio.StreamWriter, key: str) -> None:
    _answer(writer, 429, b'{"error": {"code": ' + b"9" * 60000 + b"}}")


_HANDLERS: dict[Hostility, Handler] = {
    Hostility.HEALTHY: _healthy,
    Hostility.SERVER_ERROR: _server_error,
    Hostility.DEEP_JSON: _deep_json,
    Hostility.DEEP_ERROR: _deep_error,
    Hostility.GZIP_BOMB: _gzip_bomb,
    Hostility.DEFLATE_BOMB: _deflate_bomb,
    Hostility.BROTLI: _brotli,
    Hostility.FLOOD: _flood,
    Hostility.HUGE_MODELS: _huge_models,
    Hostility.DRIP: _drip,
    Hostility.HANG: _hang,
    Hostility.LT_FLOOD: _lt_flood,
    Hostility.TAG_SOUP: _tag_soup,
    Hostility.BAD_BYTES: _bad_bytes,
    Hostility.ECHO_KEY: _echo_key,
    Hostility.REDIRECT: _redirect,
    Hostility.HUGE_HEADERS: _huge_headers,
    Hostility.GARBAGE: _garbage,
    Hostility.SHORT_BODY: _short_body,
    Hostility.BIG_NUMBER: _big_number,
}


if __name__ == "__main__":
    raise SystemExit(main())
