"""Key Secrets read once per (namespace, name) however many routes refer to them.

Routes re-read their keys every `key_refresh_seconds`; at 1,000 routes over 200 Secrets that was
3,000 Secret GETs a minute. Here a route gets the value another route read less than `max_age`
ago, and routes asking for one Secret at the same moment share one API call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Read = Callable[[str, str], Awaitable[dict[str, bytes] | None]]


class SecretCache:
    def __init__(self, read: Read, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self._clock = clock
        self._values: dict[tuple[str, str], tuple[float, dict[str, bytes] | None]] = {}
        self._reading: dict[tuple[str, str], asyncio.Future[dict[str, bytes] | None]] = {}

    async def read(self, namespace: str, name: str, *, max_age: float) -> dict[str, bytes] | None:
        """The Secret's data (None: no such Secret), read at most `max_age` seconds ago. A failed
        read raises for every route waiting on it, and nothing is cached."""
        key = (namespace, name)
        cached = self._values.get(key)
        now = self._clock()
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        pending = self._reading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[dict[str, bytes] | None] = asyncio.get_running_loop().create_future()
        self._reading[key] = future
        try:
            value = await self._read(namespace, name)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        finally:
            del self._reading[key]
        self._values[key] = (now, value)
        future.set_result(value)
        self._prune(now, max_age)
        return value

    def _prune(self, now: float, max_age: float) -> None:
        """Forget values no route has asked for in a while (Secrets no longer referred to)."""
        if len(self._values) <= 64:
            return
        for key, (read_at, _) in list(self._values.items()):
            if now - read_at >= 4 * max_age:
                del self._values[key]
