"""An in-process Kubernetes API on loopback, for tests and the demo."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import copy
import socket
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import aiohttp.web
import kmock
import yaml

from .emulator import Emulator, read_crds
from .emulator.server import Fault

__all__ = ["EmulatedCluster"]

_T = TypeVar("_T")

_CALL_TIMEOUT_SECONDS: Final = 30.0
_START_TIMEOUT_SECONDS: Final = 30.0


MAX_LOGGED = 200_000
"""Requests kept in `EmulatedCluster.requests` (the oldest go first)."""


class EmulatedCluster:
    """An in-process Kubernetes API (kmock) on loopback, for tests and the demo.

    The API is served from a thread of its own with its own event loop, so synchronous tests,
    a synchronous CLI and code on any other event loop can all talk to it over HTTP. The helper
    methods are thread-safe; each blocks only for one in-memory operation (do not call them from
    the cluster's own thread). Objects written with the helpers are seen by watchers exactly as
    if they had been written through the API.
    """

    def __init__(self, *, crd_paths: Sequence[Path] = ()) -> None:
        self._crd_paths = tuple(Path(path) for path in crd_paths)
        # The newest requests only: a demo left running for days must not grow with them.
        self._log: collections.deque[tuple[str, str]] = collections.deque(maxlen=MAX_LOGGED)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._emulator: Emulator | None = None
        self._stopping: asyncio.Event | None = None
        self._url: str | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start serving; returns once the API answers. CRD files are read here, so errors raise."""
        if self._thread is not None:
            raise RuntimeError("The emulated cluster is already running.")
        crds = [doc for path in self._crd_paths for doc in read_crds(path)]
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        thread = threading.Thread(
            target=asyncio.run,
            args=(self._serve(crds, started),),
            name="emulated-cluster",
            daemon=True,
        )
        self._thread = thread
        thread.start()
        try:
            started.result(timeout=_START_TIMEOUT_SECONDS)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop serving and close open watch streams. Stored objects are dropped."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=_START_TIMEOUT_SECONDS)
        self._thread = self._loop = self._emulator = self._stopping = None
        self._url = None

    @property
    def url(self) -> str:
        """The API's base URL, e.g. ``http://127.0.0.1:40123``."""
        if self._url is None:
            raise RuntimeError("The emulated cluster is not running.")
        return self._url

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(HTTP method, path) of every API request received so far, oldest first."""
        return list(self._log)

    def write_kubeconfig(self, path: Path, *, namespace: str = "default") -> Path:
        """Write a kubeconfig pointing at this API (context ``emulated``) and return its path."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulated", "cluster": {"server": self.url}}],
            # Some clients refuse to run without credentials; the emulator ignores them.
            "users": [{"name": "emulated", "user": {"token": "emulated"}}],
            "contexts": [
                {
                    "name": "emulated",
                    "context": {"cluster": "emulated", "user": "emulated", "namespace": namespace},
                }
            ],
            "current-context": "emulated",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    def add_namespace(self, name: str) -> None:
        """Create a namespace (no-op if it exists)."""
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def get(
        self,
        *,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
    ) -> dict[str, Any] | None:
        """The stored object (a copy), or None if absent. ``namespace=None`` for cluster scope."""
        key = (kmock.resource(group, version, plural), namespace, name)
        return self._call(lambda emulator: emulator.read_object(key))

    def objects(
        self,
        *,
        group: str,
        version: str,
        plural: str,
        namespace: str | None = None,
    ) -> list[dict[str, Any]]:
        """Copies of the stored objects of a resource, in one namespace or (None) in all."""
        resource = kmock.resource(group, version, plural)
        return self._call(lambda emulator: emulator.read_objects(resource, namespace))

    def apply(self, obj: Mapping[str, Any]) -> None:
        """Create or replace an object as given, ``status`` included (for fixtures).

        Unlike a write through the API, ``status`` is taken as given whatever the subresources;
        uid and creationTimestamp are kept from the stored object or the given one, else made up.
        Watchers see ADDED or MODIFIED as for an API write; an identical object changes nothing.
        """
        body = copy.deepcopy(dict(obj))
        self._call(lambda emulator: emulator.store_object(body))

    def delete(
        self,
        *,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
    ) -> bool:
        """Delete as the API would (finalizers respected, dependents collected); False if absent."""
        key = (kmock.resource(group, version, plural), namespace, name)
        return self._call(lambda emulator: emulator.remove_object(key))

    def fail(self, method: str, path: str, *, status: int = 500, times: int = 1) -> Fault:
        """Answer the next `times` requests of `method` whose path matches the regex `path`
        with an error of `status` (API-fault injection); returns the fault to inspect."""
        fault = Fault(method.upper(), path, status, times)

        async def add(emulator: Emulator) -> None:
            emulator.faults.append(fault)

        self._call(add)
        return fault

    def vanish(
        self, *, group: str, version: str, plural: str, namespace: str | None, name: str
    ) -> None:
        """Drop an object without telling any watcher: a deletion the watch missed."""
        key = (kmock.resource(group, version, plural), namespace, name)

        async def drop(emulator: Emulator) -> None:
            if key in emulator.objects:
                del emulator.objects[key]

        self._call(drop)

    def _call(self, fn: Callable[[Emulator], Coroutine[Any, Any, _T]]) -> _T:
        loop, emulator = self._loop, self._emulator
        if loop is None or emulator is None:
            raise RuntimeError("The emulated cluster is not running.")
        if threading.current_thread() is self._thread:
            raise RuntimeError("Blocking helpers cannot be called from the cluster's own thread.")
        future = asyncio.run_coroutine_threadsafe(fn(emulator), loop)
        return future.result(timeout=_CALL_TIMEOUT_SECONDS)

    async def _serve(
        self,
        crds: Sequence[Mapping[str, Any]],
        started: concurrent.futures.Future[None],
    ) -> None:
        try:
            emulator = Emulator()
            emulator.log = self._log
            stopping = asyncio.Event()
            async with emulator:
                for name in ("default", "kube-system"):
                    await emulator.store_object(
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                    )
                for crd in crds:
                    await emulator.store_object(copy.deepcopy(dict(crd)))
                # handler_cancellation: a client that hangs up ends its watch stream at once.
                server = aiohttp.web.Server(emulator, handler_cancellation=True, access_log=None)
                runner = aiohttp.web.ServerRunner(server, shutdown_timeout=0.5)
                await runner.setup()
                try:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.bind(("127.0.0.1", 0))
                    await aiohttp.web.SockSite(runner, sock).start()
                    port = sock.getsockname()[1]
                    self._loop, self._emulator, self._stopping = (
                        asyncio.get_running_loop(),
                        emulator,
                        stopping,
                    )
                    self._url = f"http://127.0.0.1:{port}"
                    started.set_result(None)
                    await stopping.wait()
                finally:
                    await runner.cleanup()
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
                return
            raise
