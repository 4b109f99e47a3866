"""`llm-failover demo`: the real operator against an embedded cluster and stand-in providers,
playing a scripted geo-block, outage and recovery while it prints the timeline.

Everything it starts (the embedded API, the stand-ins, the operator, its metrics and health
ports, a temporary directory holding the kubeconfig) is stopped and removed when it ends: after
the story, on an error, on Ctrl-C or SIGTERM, and when `--keep-running` is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from prometheus_client import CollectorRegistry

from llm_failover.runtime import serve
from llm_failover.settings import Settings

if TYPE_CHECKING:
    from llm_failover.sandbox.cluster import EmulatedCluster
    from llm_failover.sandbox.providers import StandInProvider

NAMESPACE, ROUTE, CONFIG_MAP = "demo", "chat", "chat-llm"
CRD = Path(__file__).resolve().parent / "crds" / "llmroutes.yaml"  # packaged: a copy of crds/
GROUP, VERSION = "llmfailover.dev", "v1alpha1"
OPERATOR_STOP_SECONDS = 20.0
"""How long the operator gets to stop before the rest is torn down regardless."""
CATCH_UP_SECONDS = 5.0
"""How long the summary waits for the Events of the last switch to be printed."""
_SWITCHED = re.compile(r"→ (?P<target>\S+) \(")  # the operator's "openai → qwen (GeoBlocked)"
_SWITCH_REASONS = frozenset({"FailedOver", "FailedBack"})

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """One move of the story: change a stand-in, then expect the route to land on `expect`."""

    say: str
    provider: str
    behaviour: str  # a sandbox Behaviour value
    expect: str
    reason: str


STORY: tuple[Step, ...] = (
    Step(
        "OpenAI blocks this region: 403 unsupported_country_region_territory",
        "openai",
        "geo-blocked",
        expect="qwen",
        reason="GeoBlocked",
    ),
    Step(
        "Qwen is overloaded: 503 on every request",
        "qwen",
        "server-error",
        expect="glm",
        reason="ServerError",
    ),
    Step("Qwen recovers", "qwen", "healthy", expect="qwen", reason="Failback"),
    Step(
        "The geo-block is lifted (say, egress moved to an allowed region)",
        "openai",
        "healthy",
        expect="openai",
        reason="Failback",
    ),
)


@dataclass
class Switch:
    source: str
    target: str
    reason: str
    seconds: float
    """From the demo changing the provider to the ConfigMap naming the new one."""
    operator_seconds: float | None
    """The operator's own time to failover: first failing probe to routing output written."""


@dataclass
class Outcome:
    switches: list[Switch] = field(default_factory=list)
    failure: str | None = None
    signal: int | None = None
    """The signal (SIGINT, SIGTERM) that stopped the demo, if one did."""

    @property
    def ok(self) -> bool:
        return self.failure is None


class Timeline:
    """Prints one line per happening: time since start, what, the active provider, why."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._start = time.monotonic()

    def line(self, what: str, active: str, why: str) -> None:
        elapsed = time.monotonic() - self._start
        print(f"  {elapsed:6.1f}s  {what:<19} {active:<8} {why}", file=self._out, flush=True)

    def text(self, text: str = "") -> None:
        print(text, file=self._out, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Demo:
    def __init__(
        self, *, out: TextIO, interval_seconds: int = 1, step_timeout: float = 30.0
    ) -> None:
        from llm_failover.sandbox.cluster import EmulatedCluster
        from llm_failover.sandbox.providers import StandInProvider

        self.timeline = Timeline(out)
        self.interval_seconds = interval_seconds
        self.step_timeout = step_timeout
        self.cluster: EmulatedCluster = EmulatedCluster(crd_paths=[CRD])
        self.providers: dict[str, StandInProvider] = {
            "openai": StandInProvider(
                "openai", flavour="openai", prefix="/v1", model="gpt-4o", api_key="sk-demo-openai"
            ),
            "qwen": StandInProvider(
                "qwen",
                flavour="dashscope",
                prefix="/compatible-mode/v1",
                model="qwen-max",
                api_key="sk-demo-qwen",
            ),
            "glm": StandInProvider(
                "glm",
                flavour="zhipu",
                prefix="/api/paas/v4",
                model="glm-4-plus",
                api_key="demo.glm",
            ),
        }
        self.registry = CollectorRegistry()
        self.settings = Settings(
            namespaces=(),  # every namespace: routes made by hand (the README's `shop`) too
            metrics_port=_free_port(),
            health_port=_free_port(),
            leader_elect=False,  # one process: nothing to elect
            listen_address="127.0.0.1",  # metrics and /healthz: this machine only
        )
        self.shown_active = "-"
        """The active provider as the timeline tells it: set by the routing and the switches."""
        self.switches_shown = 0
        self.stop_flag = asyncio.Event()  # the operator's
        self.starting: asyncio.Future[None] | None = None
        self.operator: asyncio.Task[None] | None = None
        self.printer: asyncio.Task[None] | None = None
        self.reclaim: asyncio.Task[None] | None = None
        self._kubeconfig_before: str | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix="llm-failover-demo-"))
        self.kubeconfig = self.workdir / "kubeconfig"

    # -- the world --------------------------------------------------------------------------

    def start_world(self) -> None:
        self.cluster.start()
        self.cluster.write_kubeconfig(self.kubeconfig, namespace=NAMESPACE)
        self._kubeconfig_before = os.environ.get("KUBECONFIG")
        os.environ["KUBECONFIG"] = str(self.kubeconfig)  # the operator logs in as `run` would
        self.cluster.add_namespace(NAMESPACE)
        providers = []
        presets = {"openai": "openai", "qwen": "dashscope", "glm": "zhipu"}
        for name, provider in self.providers.items():
            provider.start()
            self.cluster.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": f"{name}-key", "namespace": NAMESPACE},
                    "stringData": {"api-key": provider.api_key or ""},
                }
            )
            providers.append(
                {
                    "name": name,
                    "preset": presets[name],
                    "baseURL": provider.base_url,  # the preset's real host, swapped for loopback
                    "model": provider.model,
                    "apiKeySecretRef": {"name": f"{name}-key", "key": "api-key"},
                }
            )
        self.cluster.apply(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "LLMRoute",
                "metadata": {"name": ROUTE, "namespace": NAMESPACE},
                "spec": {
                    "providers": providers,
                    "healthCheck": {
                        "intervalSeconds": self.interval_seconds,
                        "timeoutSeconds": 1,
                        "failureThreshold": 3,
                        "successThreshold": 2,
                    },
                    "failback": "Auto",
                    "target": {"configMapName": CONFIG_MAP, "secretName": "chat-llm-key"},
                },
            }
        )

    def stop_world(self) -> None:
        """Stop the stand-ins and the API, put KUBECONFIG back, remove the temporary directory.
        Every step is tried whatever the others do; it may be called more than once."""
        for provider in self.providers.values():
            with _logged(f"stopping the {provider.name} stand-in"):
                provider.stop()
        with _logged("stopping the embedded Kubernetes API"):
            self.cluster.stop()
        if os.environ.get("KUBECONFIG") == str(self.kubeconfig):
            if self._kubeconfig_before is None:
                del os.environ["KUBECONFIG"]
            else:
                os.environ["KUBECONFIG"] = self._kubeconfig_before
        shutil.rmtree(self.workdir, ignore_errors=True)

    def active(self) -> str:
        cm = self.cluster.get(
            group="", version="v1", plural="configmaps", namespace=NAMESPACE, name=CONFIG_MAP
        )
        return str(((cm or {}).get("data") or {}).get("LLM_PROVIDER", "-"))

    def status(self) -> dict[str, Any]:
        route = self.cluster.get(
            group=GROUP, version=VERSION, plural="llmroutes", namespace=NAMESPACE, name=ROUTE
        )
        return dict((route or {}).get("status") or {})

    def events(self) -> list[dict[str, Any]]:
        items = self.cluster.objects(group="", version="v1", plural="events", namespace=NAMESPACE)
        # Timestamps have whole seconds; the resourceVersion tells the order of creation.
        return sorted(items, key=lambda e: int(e["metadata"].get("resourceVersion") or 0))

    def failover_seconds_total(self) -> float:
        labels = {"namespace": NAMESPACE, "route": ROUTE}
        return (
            self.registry.get_sample_value("llmfailover_failover_duration_seconds_sum", labels)
            or 0.0
        )

    # -- the story ----------------------------------------------------------------------------

    async def watch_events(self) -> None:
        """Print every Event the operator posts in the demo's namespace, as it arrives.

        The active column is the provider the ConfigMap names once that Event is posted: the
        target of a switch, else the one before (an ejection is told before the switch it
        causes), so the timeline reads the same however the polling falls."""
        seen: set[str] = set()
        while True:
            for event in await asyncio.to_thread(self.events):
                name = event["metadata"]["name"]
                if name in seen:
                    continue
                seen.add(name)
                reason, message = str(event.get("reason", "")), str(event.get("message", ""))
                if reason in _SWITCH_REASONS:
                    switched = _SWITCHED.search(message)
                    self.shown_active = (
                        switched["target"] if switched else await asyncio.to_thread(self.active)
                    )
                    self.switches_shown += 1
                self.timeline.line(reason, self.shown_active, message)
            await asyncio.sleep(0.1)

    async def wait(self, check: Callable[[], bool], what: str) -> str | None:
        deadline = time.monotonic() + self.step_timeout
        while time.monotonic() < deadline:
            if await asyncio.to_thread(check):
                return None
            await asyncio.sleep(0.05)
        return f"{what}: not seen within {self.step_timeout:g}s"

    async def play(self, story: Sequence[Step]) -> Outcome:
        from llm_failover.sandbox.providers import Behaviour

        outcome = Outcome()
        problem = await self.wait(lambda: self.active() == "openai", "first routing to openai")
        if problem:
            outcome.failure = problem
            return outcome
        self.shown_active = "openai"
        self.timeline.line(
            "Routed", "openai", "the ConfigMap names openai, the first provider in the list"
        )
        for step in story:
            # A pause for the reader; the providers answer a few more healthy probes meanwhile.
            await asyncio.sleep(2 * self.interval_seconds)
            before = await asyncio.to_thread(self.active)
            failures = int((await asyncio.to_thread(self.status)).get("failoverCount", 0))
            operator_before = self.failover_seconds_total()
            self.timeline.line("▶ demo", before, f"{step.provider}: {step.say}")
            started = time.monotonic()
            self.providers[step.provider].set(Behaviour(step.behaviour))

            def landed(step: Step = step, failures: int = failures) -> bool:
                status = self.status()
                last = status.get("lastFailover") or {}
                return (
                    self.active() == step.expect
                    and status.get("failoverCount", 0) > failures
                    and last.get("to") == step.expect
                    and last.get("reason") == step.reason
                )

            problem = await self.wait(
                landed,
                f"switch to {step.expect} ({step.reason}) after {step.provider!r} {step.behaviour}",
            )
            if problem:
                outcome.failure = problem
                return outcome
            spent = self.failover_seconds_total() - operator_before
            outcome.switches.append(
                Switch(
                    before,
                    step.expect,
                    step.reason,
                    time.monotonic() - started,
                    spent if spent > 0 else None,
                )
            )
        return outcome

    async def catch_up(self, switches: int) -> None:
        """Wait (a little) until the Events of every switch are printed."""
        for _ in range(int(CATCH_UP_SECONDS / 0.05)):
            if self.switches_shown >= switches:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # and what the operator posts with the last one

    def summary(self, outcome: Outcome) -> None:
        t = self.timeline
        t.text()
        t.text("Summary")
        for s in outcome.switches:
            measured = f"{s.seconds:4.1f}s after the change"
            operator = (
                f"; operator time-to-failover {s.operator_seconds:.2f}s"
                if s.operator_seconds
                else ""
            )
            t.text(f"  {s.source:>6} → {s.target:<6} {s.reason:<12} switched {measured}{operator}")
        if outcome.ok:
            t.text(
                f"  The story played as expected: {len(outcome.switches)} switches; "
                "the ConfigMap always named a working provider."
            )
        elif outcome.signal is not None:
            t.text(f"  Stopped by {signal.Signals(outcome.signal).name} before the story ended.")
        else:
            t.text(f"  FAILED: {outcome.failure}")

    def explore(self) -> None:
        t = self.timeline
        t.text()
        t.text("Everything is still running. Explore it (Ctrl-C stops it and removes it all):")
        t.text(f"  export KUBECONFIG={self.kubeconfig}")
        t.text(f"  kubectl -n {NAMESPACE} get llmroute {ROUTE}            # or: kubectl get llm -A")
        t.text(f"  kubectl -n {NAMESPACE} describe llmroute {ROUTE}")
        t.text(f"  kubectl -n {NAMESPACE} get configmap {CONFIG_MAP} -o yaml")
        t.text(f"  kubectl -n {NAMESPACE} get events")
        t.text(
            f"  curl -s http://127.0.0.1:{self.settings.metrics_port}/metrics | grep ^llmfailover_"
        )
        t.text(
            "Break a provider by hand (healthy, geo-blocked, unauthorized, quota-exhausted, "
            "rate-limited, server-error, slow, reset):"
        )
        for name, provider in self.providers.items():
            t.text(f"  curl -X POST {provider.root_url}/_behaviour/geo-blocked    # {name}")
        t.text(
            'The operator watches every namespace: the README\'s "Your first LLMRoute" steps '
            "work here too"
        )
        t.text(
            "(kubectl create namespace shop, create secret, apply -f examples/chat-route.yaml); "
            "that route's"
        )
        t.text("presets probe the real providers' hosts from this machine.")


async def run_demo(
    *,
    out: TextIO,
    keep_running: bool = False,
    story: Sequence[Step] = STORY,
    step_timeout: float = 30.0,
) -> Outcome:
    """Play `story` and print it; with `keep_running`, then wait for SIGINT or SIGTERM. A
    signal during the story stops it (the outcome says which). Whatever happens, everything
    started is stopped and the temporary directory removed before this returns or raises."""
    stopped = _Stopped()
    with _on_signals(stopped):
        demo = Demo(out=out, step_timeout=step_timeout)
        try:
            return await _run(demo, stopped, keep_running=keep_running, story=story)
        finally:
            await _close(demo)


async def _run(
    demo: Demo, stopped: _Stopped, *, keep_running: bool, story: Sequence[Step]
) -> Outcome:
    t = demo.timeline
    t.text(
        "llm-failover demo: the real operator, an embedded Kubernetes API and three stand-in "
        "providers"
    )
    t.text("(openai; qwen with DashScope's API shape; glm with Zhipu's), all on 127.0.0.1.")
    # Not cancellable (a thread cannot be): a signal meanwhile is acted on once it is done.
    demo.starting = asyncio.ensure_future(asyncio.to_thread(demo.start_world))
    await asyncio.shield(demo.starting)
    t.text(
        f"  kubectl:  KUBECONFIG={demo.kubeconfig} kubectl -n {NAMESPACE} get llmroute {ROUTE} -w"
    )
    t.text(f"  metrics:  curl -s http://127.0.0.1:{demo.settings.metrics_port}/metrics")
    t.text()
    t.text(f"  {'time':>7}  {'event':<19} {'active':<8} why")
    if stopped.signum is not None:
        return Outcome(failure="stopped by a signal", signal=stopped.signum)
    ready = asyncio.Event()
    operator = asyncio.create_task(
        serve(demo.settings, stop_flag=demo.stop_flag, ready_flag=ready, registry=demo.registry)
    )
    demo.operator = operator
    demo.reclaim = asyncio.create_task(stopped.take_when(ready))
    demo.printer = asyncio.create_task(demo.watch_events())
    outcome = await _unless_stopped(stopped, operator, demo.play(story))
    if outcome.signal is None and outcome.ok:
        await demo.catch_up(len(outcome.switches))
    demo.summary(outcome)
    if keep_running and outcome.ok:
        demo.explore()
        await _unless_stopped(stopped, operator, stopped.event.wait())
    return outcome


async def _unless_stopped(
    stopped: _Stopped, operator: asyncio.Task[None], work: Coroutine[Any, Any, Any]
) -> Outcome:
    """Run `work` until it ends, a signal comes or the operator stops (which it should not)."""
    task = asyncio.ensure_future(work)
    signalled = asyncio.ensure_future(stopped.event.wait())
    try:
        await asyncio.wait({task, signalled, operator}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        signalled.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if not task.cancelled() and task.done():
        result = task.result()
        return result if isinstance(result, Outcome) else Outcome()
    if stopped.signum is not None:
        return Outcome(failure="stopped by a signal", signal=stopped.signum)
    problem = operator.exception() if not operator.cancelled() else None
    if problem is None:  # kopf stops on a signal that came before the demo took them back
        return Outcome(failure="the operator stopped early (on a signal?)")
    return Outcome(failure=f"the operator stopped: {problem!r}")


async def _close(demo: Demo) -> None:
    """Stop the printer and the operator, then the world; every step is tried."""
    for task in (demo.printer, demo.reclaim):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    demo.stop_flag.set()
    if demo.operator is not None:
        try:
            await asyncio.wait_for(demo.operator, OPERATOR_STOP_SECONDS)
        except TimeoutError:
            log.error("The operator did not stop within %gs.", OPERATOR_STOP_SECONDS)
        except Exception:
            log.exception("The operator failed.")
    if demo.starting is not None and not demo.starting.done():
        await asyncio.wait({demo.starting}, timeout=60)  # stop nothing half started
    await asyncio.to_thread(demo.stop_world)


class _Stopped:
    """Set by SIGINT or SIGTERM while the demo runs."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.signum: int | None = None
        self.signals: list[int] = []
        """The signals handled here (none outside the main thread)."""

    def __call__(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
        self.event.set()

    def take(self) -> None:
        """Handle the signals here again: kopf takes them over when the operator starts, and
        would stop the operator itself (and, 10 minutes later, SIGKILL the process)."""
        loop = asyncio.get_running_loop()
        for signum in self.signals:
            loop.add_signal_handler(signum, self, signum)

    async def take_when(self, ready: asyncio.Event) -> None:
        await ready.wait()
        self.take()


@contextlib.contextmanager
def _on_signals(stopped: _Stopped) -> Iterator[None]:
    """SIGINT and SIGTERM call `stopped` instead of interrupting (the demo then cleans up);
    the previous handlers are back afterwards. Only the main thread can have handlers."""
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(signum)
            try:
                loop.add_signal_handler(signum, stopped, int(signum))
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            previous[signum] = handler
    stopped.signals = list(previous)
    try:
        yield
    finally:
        stopped.signals = []
        for number, handler in previous.items():
            loop.remove_signal_handler(number)
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def _logged(what: str) -> Iterator[None]:
    try:
        yield
    except Exception:
        log.exception("Failed while %s.", what)


def main(*, keep_running: bool, out: TextIO) -> int:
    try:
        import kmock  # noqa: F401
    except ImportError:
        print("llm-failover demo needs its extra: pip install 'llm-failover[demo]'", file=out)
        return 2
    logging.basicConfig(level=logging.ERROR)  # the timeline tells the story; errors still show
    try:
        outcome = asyncio.run(run_demo(out=out, keep_running=keep_running))
    except KeyboardInterrupt:  # Ctrl-C before the demo's handler was in place: nothing started
        return 128 + signal.SIGINT
    if outcome.signal is not None:
        return 0 if outcome.ok else 128 + outcome.signal
    return 0 if outcome.ok else 1
