"""The prober on an event loop of its own, in a thread: probes never wait for reconciles.

Reconciling thousands of routes after one answer keeps the main event loop busy for seconds; a
probe timed on that loop would wait behind it and come back `Timeout` from a healthy provider.
Here the probe loops, their timeouts and their HTTP connections live on a second loop; the main
loop talks to it only through this class: subscriptions are handed over in order
(`call_soon_threadsafe`), each answer's wakes come back as one batch, and `latest` reads a dict
(atomic under the GIL). While the main thread computes, Python hands the GIL over every few
milliseconds, so a stalled main loop delays a probe by milliseconds, not seconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping

import httpx

from llm_failover.prober import Endpoint, Prober, Report, Schedule, Wake, set_all

log = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 5.0


class ProbeThread:
    """A `ProbeSource` whose `Prober` runs on a loop of its own; `make` builds the prober there
    from the HTTP client it gets (created on that loop too)."""

    def __init__(
        self,
        make: Callable[[httpx.AsyncClient, Callable[[list[Wake]], None]], Prober],
        make_client: Callable[[], httpx.AsyncClient],
    ) -> None:
        self._main = asyncio.get_running_loop()
        self._loop = asyncio.new_event_loop()
        started: concurrent.futures.Future[Prober] = concurrent.futures.Future()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._client = make_client()
                started.set_result(make(self._client, self._deliver))
            except BaseException as exc:
                started.set_exception(exc)
                return
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="probes", daemon=True)
        self._thread.start()
        self._prober = started.result(timeout=STOP_TIMEOUT_SECONDS)

    def subscribe(
        self,
        subscriber: str,
        endpoints: Mapping[Endpoint, Schedule],
        wake: Wake,
        *,
        tenant: str = "",
    ) -> None:
        self._loop.call_soon_threadsafe(
            lambda: self._prober.subscribe(subscriber, dict(endpoints), wake, tenant=tenant)
        )

    def unsubscribe(self, subscriber: str) -> None:
        self._loop.call_soon_threadsafe(self._prober.unsubscribe, subscriber)

    def attend(self, subscriber: str, endpoints: Iterable[Endpoint]) -> None:
        self._loop.call_soon_threadsafe(self._prober.attend, subscriber, frozenset(endpoints))

    def reprobe(self, endpoints: Iterable[Endpoint]) -> None:
        self._loop.call_soon_threadsafe(self._prober.reprobe, frozenset(endpoints))

    def latest(self, endpoint: Endpoint) -> Report | None:
        return self._prober.latest(endpoint)

    @property
    def endpoints(self) -> frozenset[Endpoint]:
        return self._prober.endpoints

    async def close(self) -> None:
        """Stop the probe loops and the thread; bounded, whatever the providers do."""
        if not self._thread.is_alive():
            return

        async def shut() -> None:
            await self._prober.close()
            await self._client.aclose()

        done = asyncio.run_coroutine_threadsafe(shut(), self._loop)
        try:
            await asyncio.wrap_future(done)
        except Exception:
            log.exception("the probe loop did not close cleanly")
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, STOP_TIMEOUT_SECONDS)
            with contextlib.suppress(RuntimeError):  # still running: the daemon thread dies
                self._loop.close()

    def _deliver(self, wakes: list[Wake]) -> None:
        """Called on the probe loop: set the wakes on the main loop, one hand-over per answer."""
        self._main.call_soon_threadsafe(set_all, wakes)
