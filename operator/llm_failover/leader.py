"""Leader election on a `coordination.k8s.io/v1` Lease: which replica may write, and until when.

The rules are client-go's (what controller-runtime, cert-manager and kube-controller-manager
use). A candidate takes the Lease when it is free, or when its record has not changed for the
lease duration as measured on the candidate's own monotonic clock from when it saw the record
change (no clock on another machine is trusted). The leader renews it every retry period; a
renewal counts from when its request was sent, and the leader stops writing when it has not
renewed for the renew deadline, which is shorter than the lease duration: the writes of an old
leader end before any candidate can take over. A write still in flight is given up by the time
the lease could pass on (`Leadership.write_seconds`). On shutdown the leader stops writing,
waits for its writes in flight, then releases the Lease so a standby takes it at its next look.

A standby looks at the Lease twice per retry period, and once more the moment the record it saw
would lapse: it takes over within about a second of the lease duration after the leader's last
renewal. The elector runs in a thread of its own with its own connection to the API server: a
busy event loop or a queue of thousands of writes never delays a renewal.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from llm_failover.supervision import Watchdog

log = logging.getLogger(__name__)


class Change(StrEnum):
    ACQUIRED = "acquired"
    LOST = "lost"
    RELEASED = "released"


@dataclass(frozen=True)
class Timings:
    lease_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_seconds: float = 2.0

    def problem(self) -> str | None:
        """Why these timings cannot keep two writers apart, or None (client-go's own rule)."""
        if not self.lease_seconds > self.renew_deadline_seconds:
            return "the lease duration must be longer than the renew deadline"
        if not self.renew_deadline_seconds > 1.2 * self.retry_seconds:
            return "the renew deadline must be longer than 1.2 times the retry period"
        return None


Listener = Callable[[bool, Change], None]


class Leadership:
    """Whether this process may write now. Shared by the elector's thread (which changes it)
    and every writer (which asks it right before each write, from any thread)."""

    def __init__(
        self,
        *,
        elected: bool = True,
        margin_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.elected = elected
        """False: no election (`--leader-elect=false`), this process always writes."""
        self._margin = margin_seconds
        self._clock = clock
        self._leading = not elected
        self._until = float("inf") if not elected else 0.0
        self._resigned = False
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []

    @classmethod
    def single(cls) -> Leadership:
        """The only process: always the leader, nothing to elect."""
        return cls(elected=False)

    @property
    def leading(self) -> bool:
        return self._leading

    @property
    def until(self) -> float:
        """Monotonic time at which this process stops writing unless it renews."""
        return self._until

    def may_write(self) -> bool:
        return self._leading and self._clock() < self._until

    def write_seconds(self) -> float | None:
        """How long a write sent now may take before the Lease could pass to another replica
        (None: no election, no limit)."""
        if not self.elected:
            return None
        return self._until + self._margin - self._clock()

    def listen(self, listener: Listener) -> None:
        """Call `listener(leading, change)` on every change, from the thread that made it."""
        self._listeners.append(listener)

    # -- the elector's side ---------------------------------------------------------------

    def hold(self, *, until: float) -> None:
        """The Lease is ours until `until` (monotonic): acquired, or renewed."""
        with self._lock:
            if self._resigned:
                return
            self._until = until
            if self._leading:
                return
            self._leading = True
        self._tell(True, Change.ACQUIRED)

    def lose(self) -> None:
        self._end(Change.LOST)

    def resign(self) -> None:
        """Stop writing for good (shutdown); the Lease is released once writes have drained."""
        with self._lock:
            self._resigned = True
        self._end(Change.RELEASED)

    def _end(self, change: Change) -> None:
        with self._lock:
            if not self.elected or not self._leading:
                return
            self._leading = False
            self._until = 0.0
        self._tell(False, change)

    def _tell(self, leading: bool, change: Change) -> None:
        for listener in self._listeners:
            try:
                listener(leading, change)
            except Exception:  # a listener's bug must not stop the election
                log.exception("a leadership listener failed")


class LeaseConflict(Exception):
    """The Lease changed since it was read (409), or exists already when created."""


class LeaseApi(Protocol):
    """Blocking calls on Leases (`kube.LeaseClient`); `timeout` is the whole call's, in seconds.
    Other failures raise `kube.KubeError`."""

    def get_lease(self, namespace: str, name: str, *, timeout: float) -> dict[str, Any] | None: ...
    def create_lease(
        self, namespace: str, body: Mapping[str, Any], *, timeout: float
    ) -> dict[str, Any]: ...
    def replace_lease(
        self, namespace: str, name: str, body: Mapping[str, Any], *, timeout: float
    ) -> dict[str, Any]: ...


def micro_time(value: datetime) -> str:
    """A Lease's MicroTime: RFC 3339 with microseconds."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    """Acquires and renews one Lease for `identity`; see the module's doc for the rules."""

    def __init__(
        self,
        *,
        api: LeaseApi,
        leadership: Leadership,
        identity: str,
        namespace: str,
        name: str,
        timings: Timings,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        watchdog: Watchdog | None = None,
        on_error: Callable[[], None] = lambda: None,
    ) -> None:
        self._api = api
        self._leadership = leadership
        self.identity = identity
        self.namespace = namespace
        self.name = name
        self._timings = timings
        self._clock = clock
        self._wall = wall
        self._watchdog = watchdog
        self._on_error = on_error
        self._held: dict[str, Any] | None = None  # the Lease as we last wrote it, while ours
        self._observed: Mapping[str, Any] | None = None  # the last spec seen
        self._observed_at = 0.0  # monotonic: when that spec was first seen
        self._holder: str | None = None  # the holder last logged
        self._failure = ""  # the error last logged

    @property
    def where(self) -> str:
        return f"Lease {self.namespace}/{self.name}"

    @property
    def held(self) -> bool:
        """Whether this replica holds the Lease as far as it knows (resigned or not)."""
        return self._held is not None

    def attempt(self) -> bool:
        """One try to acquire or renew the Lease; whether we hold it afterwards."""
        started = self._clock()
        timings = self._timings
        leading = self._leadership.leading
        if leading:
            timeout = max(0.2, self._leadership.until - started)
        else:
            timeout = timings.renew_deadline_seconds
        try:
            held = self._acquire_or_renew(timeout)
        except LeaseConflict:
            self._held = None  # written by someone else meanwhile: read it again next time
            held = False
        except Exception as exc:  # an API error, or anything else: the next try is the answer
            held = False
            self._failed(exc)
        else:
            if self._failure:
                log.info("%s: reachable again", self.where)
                self._failure = ""
        if held:
            self._leadership.hold(until=started + timings.renew_deadline_seconds)
        elif leading and (self._holder_is_other() or self._clock() >= self._leadership.until):
            log.error(
                "%s: lost the leadership (%s): no more writes from this replica",
                self.where,
                f"{self._holder} holds it"
                if self._holder_is_other()
                else f"not renewed within {timings.renew_deadline_seconds:g} s",
            )
            self._held = None
            self._leadership.lose()
        return held

    def release(self, *, timeout: float = 5.0) -> bool:
        """Give the Lease up (after `Leadership.resign` and once writes have drained): a
        standby takes it at its next look instead of waiting out the lease duration."""
        if self._held is None:
            return False
        now = micro_time(self._wall())
        spec = dict(self._held.get("spec") or {})
        spec.pop("holderIdentity", None)
        spec.update({"leaseDurationSeconds": 1, "acquireTime": now, "renewTime": now})
        body = {**self._held, "spec": spec}
        try:
            self._api.replace_lease(self.namespace, self.name, body, timeout=timeout)
        except Exception as exc:
            log.warning("%s: could not release it (it expires by itself): %s", self.where, exc)
            return False
        finally:
            self._held = None
        log.info("%s: released", self.where)
        return True

    def run(self, stop: threading.Event) -> None:
        """Try, then wait a retry period (with jitter while standing by), until `stop`. Nothing
        raised ends the loop. A resigned leader goes on renewing until stopped: nobody takes
        the Lease while its last writes drain (then `release`)."""
        timings = self._timings
        while not stop.is_set():
            started = self._clock()
            if self._watchdog is not None:
                self._watchdog.expect("leader election", 3 * timings.renew_deadline_seconds)
            try:
                self.attempt()
            except Exception:
                log.exception("%s: leader election failed unexpectedly; trying again", self.where)
                self._on_error()
            if self._leadership.leading:
                wait = started + timings.retry_seconds - self._clock()
            else:
                wait = self.next_attempt_in()
            stop.wait(max(0.0, wait))

    def next_attempt_in(self) -> float:
        """Seconds a standby waits before it looks again: half a retry period (with jitter, so
        that standbys do not look in step), so that it sees a leader's last renewal within about
        a second, and no longer than until the Lease it saw lapses: it takes over at that
        moment, not at its next look."""
        wait = self._timings.retry_seconds / 2 * random.uniform(1.0, 1.2)
        spec = self._observed or {}
        holder = spec.get("holderIdentity")
        if holder and holder != self.identity:
            lapses = self._observed_at + self._duration(spec)
            wait = min(wait, max(0.0, lapses - self._clock()) + 0.01)
        return wait
        if self._watchdog is not None:
            self._watchdog.done("leader election")

    # -- one attempt ----------------------------------------------------------------------

    def _acquire_or_renew(self, timeout: float) -> bool:
        if self._held is not None:  # ours as last written: renew without reading it first
            self._held = self._api.replace_lease(
                self.namespace, self.name, self._record(self._held), timeout=timeout
            )
            self._seen(self._held)
            return True
        lease = self._api.get_lease(self.namespace, self.name, timeout=timeout)
        if lease is None:
            body = {"metadata": {"name": self.name, "namespace": self.namespace}}
            self._held = self._api.create_lease(self.namespace, self._record(body), timeout=timeout)
            self._seen(self._held)
            return True
        self._seen(lease)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        if holder and holder != self.identity and not self._expired(spec):
            return False
        self._held = self._api.replace_lease(
            self.namespace, self.name, self._record(lease), timeout=timeout
        )
        self._seen(self._held)
        return True

    def _record(self, lease: Mapping[str, Any]) -> dict[str, Any]:
        """`lease` with us as its holder, renewed now (its resourceVersion kept: a write over a
        change we have not seen fails with a conflict)."""
        spec = lease.get("spec") or {}
        now = micro_time(self._wall())
        ours = spec.get("holderIdentity") == self.identity
        transitions = spec.get("leaseTransitions")
        count = transitions if isinstance(transitions, int) and transitions >= 0 else 0
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": dict(lease.get("metadata") or {}),
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self._timings.lease_seconds)),
                "acquireTime": spec.get("acquireTime") if ours else now,
                "renewTime": now,
                "leaseTransitions": count if ours or not spec else count + 1,
            },
        }

    def _seen(self, lease: Mapping[str, Any]) -> None:
        spec = lease.get("spec") or {}
        if spec != self._observed:
            self._observed = spec
            self._observed_at = self._clock()
        holder = spec.get("holderIdentity") or None
        if holder != self._holder:
            self._holder = holder
            if holder == self.identity:
                log.info("%s: this replica (%s) is the leader", self.where, self.identity)
            elif holder:
                log.info("%s: held by %s: standing by", self.where, holder)

    def _expired(self, spec: Mapping[str, Any]) -> bool:
        return self._clock() >= self._observed_at + self._duration(spec)

    def _duration(self, spec: Mapping[str, Any]) -> float:
        """The Lease's own duration (the holder's setting), else ours."""
        duration = spec.get("leaseDurationSeconds")
        if isinstance(duration, int) and not isinstance(duration, bool) and duration > 0:
            return float(duration)
        return self._timings.lease_seconds

    def _holder_is_other(self) -> bool:
        return self._holder is not None and self._holder != self.identity

    def _failed(self, exc: Exception) -> None:
        text = f"{type(exc).__name__}: {exc}"[:300]
        if text != self._failure:  # once per kind of failure, not every retry period
            self._failure = text
            log.warning("%s: could not acquire or renew it: %s", self.where, text)


class ElectionThread:
    """The elector on a thread of its own: started with the operator; stopped at shutdown,
    releasing the Lease only when asked (once this replica's writes have drained)."""

    def __init__(self, elector: LeaseElector, *, close: Callable[[], None]) -> None:
        self.elector = elector
        self._close = close  # the elector's API connection
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=elector.run, args=(self._stop,), name="leader-election", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, *, release: bool, within: float) -> bool:
        """End the loop (an attempt in progress ends within its timeout, at most `within`
        seconds), then release the Lease if `release`; whether it was released. Blocking."""
        self._stop.set()
        self._thread.join(within)
        released = release and not self._thread.is_alive() and self.elector.release()
        self._close()
        return released
