"""Keeps long-running tasks alive and says when they stop making progress.

`supervise` runs a task's body again, with capped exponential backoff, whenever it raises: the
crash is logged (with its traceback the first time, one line while it repeats), counted, and
handed to the task's own `on_crash` so a user sees it where they look. `Watchdog` records when
each loop promised its next sign of life; the liveness endpoint fails when one is overdue, so
Kubernetes restarts a process whose loops have stalled, the last resort after supervision.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Delay before the n-th restart in a row: base·2ⁿ⁻¹, at most `cap`, with ±20 % jitter."""

    base_seconds: float = 1.0
    cap_seconds: float = 60.0
    reset_after_seconds: float = 300.0
    """A task that ran this long before crashing starts its backoff over."""

    def delay(self, failures: int) -> float:
        plain = min(self.cap_seconds, self.base_seconds * 2 ** max(0, failures - 1))
        return float(plain * random.uniform(0.8, 1.2))


OnCrash = Callable[[Exception, float], Awaitable[None]]
"""Told of each crash and the seconds until the restart; must not raise (it is guarded)."""


async def supervise(
    name: str,
    body: Callable[[], Awaitable[None]],
    *,
    on_crash: OnCrash | None = None,
    count: Callable[[], None] | None = None,
    backoff: Backoff = Backoff(),
) -> None:
    """Run `body` until it returns (the task is done) or is cancelled; restart it if it raises."""
    failures = 0
    last_crash = ""
    while True:
        started = time.monotonic()
        try:
            await body()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if time.monotonic() - started >= backoff.reset_after_seconds:
                failures = 0
            failures += 1
            delay = backoff.delay(failures)
            crash = "".join(traceback.format_exception_only(exc)).strip()
            if crash != last_crash:
                log.error("%s crashed; restarting in %.1fs", name, delay, exc_info=exc)
            else:
                log.warning("%s crashed again (%d in a row): %s", name, failures, crash)
            last_crash = crash
            if count is not None:
                count()
            if on_crash is not None:
                try:
                    await on_crash(exc, delay)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.warning("%s: could not report its crash", name, exc_info=True)
            await asyncio.sleep(delay)


class Stalled(RuntimeError):
    """Some loop did not show progress when it promised to."""


class Watchdog:
    """When each loop promised to show progress next; the overdue ones are stalled."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._due: dict[str, float] = {}

    def expect(self, name: str, within_seconds: float) -> None:
        """`name` will call `expect` again (or `done`) within this many seconds."""
        self._due[name] = self._clock() + within_seconds

    def done(self, name: str) -> None:
        self._due.pop(name, None)

    def overdue(self) -> list[str]:
        now = self._clock()
        # A copy in one step: the probe thread changes the dict meanwhile (`probethread`).
        return sorted(name for name, due in tuple(self._due.items()) if due < now)

    def check(self) -> int:
        """How many loops are watched; raises `Stalled` naming the overdue ones (five at most)."""
        stalled = self.overdue()
        if stalled:
            more = f" and {len(stalled) - 5} more" if len(stalled) > 5 else ""
            raise Stalled(f"stalled: {', '.join(stalled[:5])}{more}")
        return len(self._due)

    def __len__(self) -> int:
        return len(self._due)


class LoopLag:
    """How late the event loop runs a timer: what every probe timeout and reply waits behind."""

    def __init__(self, *, period_seconds: float = 0.5, window: int = 20) -> None:
        self.period_seconds = period_seconds
        self._recent: list[float] = []
        self._window = window

    @property
    def worst_seconds(self) -> float:
        """The largest lag over the last `window` ticks (ten seconds by default)."""
        return max(self._recent, default=0.0)

    async def run(self, report: Callable[[float], None], watchdog: Watchdog) -> None:
        loop = asyncio.get_running_loop()
        while True:
            watchdog.expect("event loop", 30.0)
            before = loop.time()
            await asyncio.sleep(self.period_seconds)
            lag = max(0.0, loop.time() - before - self.period_seconds)
            self._recent = [*self._recent[-(self._window - 1) :], lag]
            report(self.worst_seconds)
