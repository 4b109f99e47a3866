"""Key Secrets, read once per (namespace, name) however many routes refer to them, and kept
current by the operator's watch of Secrets.

A route asks for a Secret when it first needs it (one GET, shared by every route asking at the
same moment); from then on the watch's events keep the value current, and a change wakes the
routes that use it, so a rotated key (or a fixed Secret) is probed within seconds, with no API
call at rest. A slow resync re-reads each Secret in use, spread over `resync_seconds`: the safety
net should the watch miss an event. A resync the API server refuses (RBAC) is kept for the
routes to show, and the value read before stays in use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection

from llm_failover.kube import Forbidden, KubeError

log = logging.getLogger(__name__)

Data = dict[str, bytes] | None
"""A Secret's data; None: there is no such Secret."""
Key = tuple[str, str]  # (namespace, name)
Read = Callable[[str, str], Awaitable[Data]]
ReadRevision = Callable[[str, str], Awaitable[tuple[Data, str | None]]]
"""A read that also gives the Secret's resourceVersion: a later touch of it is then seen."""


class SecretCache:
    def __init__(
        self,
        read: Read,
        *,
        clock: Callable[[], float] = time.monotonic,
        read_revision: ReadRevision | None = None,
    ) -> None:
        self._read = read
        self._read_revision = read_revision
        self._clock = clock
        self._values: dict[Key, Data] = {}  # the Secrets in use (or being read): kept current
        self._versions: dict[Key, int] = {}  # grows with every change of a value
        self._revisions: dict[Key, str] = {}  # the resourceVersion the watch last showed
        self._refused: dict[Key, Forbidden] = {}  # the API server refused its last resync
        self._users: dict[Key, set[str]] = {}
        self._used: dict[str, frozenset[Key]] = {}  # by each user
        self._wakes: dict[str, asyncio.Event] = {}
        self._reading: dict[Key, asyncio.Future[Data]] = {}
        self._seen_while_reading: set[Key] = set()

    async def read(self, namespace: str, name: str) -> tuple[Data, int]:
        """The Secret's data and its version; read from the API server only when it is not
        in use already. A failed read raises for every route waiting on it."""
        key = (namespace, name)
        if key not in self._values:
            pending = self._reading.get(key)
            if pending is not None:
                await asyncio.shield(pending)
            else:
                await self._fetch(key)
        # Whatever the watch said meanwhile wins: returned with its version, in one step.
        return self._values.get(key), self._versions.get(key, 0)

    def use(self, user: str, keys: Collection[Key], wake: asyncio.Event) -> None:
        """`user` (a route) needs these Secrets: `wake` is set when one of them changes or its
        resync is refused. Replaces what it used before; Secrets nobody uses are forgotten."""
        wanted = frozenset(keys)
        for key in self._used.pop(user, frozenset()) - wanted:
            users = self._users[key]
            users.discard(user)
            if not users:
                self._forget(key)
        for key in wanted:
            self._users.setdefault(key, set()).add(user)
        self._wakes.pop(user, None)
        if wanted:
            self._used[user] = wanted
            self._wakes[user] = wake

    def version(self, key: Key) -> int:
        return self._versions.get(key, 0)

    def refused(self, key: Key) -> Forbidden | None:
        return self._refused.get(key)

    def observed(self, namespace: str, name: str, data: Data, revision: str | None = None) -> None:
        """The watch saw this Secret (None: deleted); only the ones in use are kept. A new
        `revision` (its resourceVersion) with the same data is a change too: a Secret touched
        after a top-up (an annotation) re-probes its providers at once."""
        key = (namespace, name)
        if key in self._reading:
            self._seen_while_reading.add(key)
        elif key not in self._values:
            return
        self._set(key, data, revision)

    async def resync(self, period_seconds: float, *, rounds: int | None = None) -> None:
        """Re-read every Secret in use once per period, one at a time, evenly spread; runs
        until cancelled (or for `rounds` periods)."""
        done = 0
        while rounds is None or done < rounds:
            keys = list(self._users)
            started = self._clock()
            if not keys:
                await asyncio.sleep(period_seconds)
            for index, key in enumerate(keys):
                if key in self._users:
                    await self._resync_one(key)
                due = started + period_seconds * (index + 1) / len(keys)
                await asyncio.sleep(max(0.0, due - self._clock()))
            done += 1

    async def _resync_one(self, key: Key) -> None:
        try:
            await self._fetch(key)
        except Forbidden as exc:
            if key not in self._refused:
                log.error("Secret %s/%s may no longer be read: %s", *key, exc)
            self._refused[key] = exc
            self._wake(key)
        except KubeError as exc:  # the watch keeps it current meanwhile; tried next round
            log.warning("Secret %s/%s could not be re-read: %s", *key, exc)
        else:
            if self._refused.pop(key, None) is not None:
                log.info("Secret %s/%s can be read again", *key)
                self._wake(key)

    async def _fetch(self, key: Key) -> None:
        future: asyncio.Future[Data] = asyncio.get_running_loop().create_future()
        self._reading[key] = future
        self._seen_while_reading.discard(key)
        revision = None
        try:
            if self._read_revision is not None:
                value, revision = await self._read_revision(*key)
            else:
                value = await self._read(*key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        finally:
            del self._reading[key]
        if key not in self._seen_while_reading:  # else the watch's value is newer
            self._set(key, value, revision)
        self._seen_while_reading.discard(key)
        future.set_result(value)

    def _set(self, key: Key, data: Data, revision: str | None = None) -> None:
        before = self._revisions.get(key)
        if revision is not None:
            self._revisions[key] = revision
        touched = revision is not None and before is not None and revision != before
        if key in self._values and self._values[key] == data and not touched:
            return
        known = key in self._values
        self._values[key] = data
        self._versions[key] = self._versions.get(key, 0) + 1
        if known:
            self._wake(key)

    def _wake(self, key: Key) -> None:
        for user in self._users.get(key, ()):
            wake = self._wakes.get(user)
            if wake is not None:
                wake.set()

    def _forget(self, key: Key) -> None:
        del self._users[key]
        self._values.pop(key, None)
        self._refused.pop(key, None)
        self._revisions.pop(key, None)
        # The version stays: a Secret used again later must not look unchanged to a route
        # that remembers an older version of it.
