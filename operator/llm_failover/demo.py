"""`llm-failover demo`: the real operator against an embedded cluster and stand-in providers,
playing a scripted geo-block, outage and recovery while it prints the timeline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
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
            namespaces=(NAMESPACE,),
            metrics_port=_free_port(),
            health_port=_free_port(),
            leader_elect=False,  # one process: nothing to elect
        )
        self.workdir = Path(tempfile.mkdtemp(prefix="llm-failover-demo-"))
        self.kubeconfig = self.workdir / "kubeconfig"

    # -- the world --------------------------------------------------------------------------

    def start_world(self) -> None:
        self.cluster.start()
        self.cluster.write_kubeconfig(self.kubeconfig, namespace=NAMESPACE)
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
        for provider in self.providers.values():
            provider.stop()
        self.cluster.stop()

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
        """Print every Event the operator posts, as it arrives."""
        seen: set[str] = set()
        while True:
            for event in await asyncio.to_thread(self.events):
                name = event["metadata"]["name"]
                if name not in seen:
                    seen.add(name)
                    self.timeline.line(event["reason"], self.active(), event.get("message", ""))
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
        self.timeline.line(
            "Routed", "openai", "the ConfigMap names openai, the first provider in the list"
        )
        for step in story:
            # A pause for the reader; the providers answer a few more healthy probes meanwhile.
            await asyncio.sleep(2 * self.interval_seconds)
            before = self.active()
            failures = int(self.status().get("failoverCount", 0))
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
        else:
            t.text(f"  FAILED: {outcome.failure}")

    def explore(self) -> None:
        t = self.timeline
        t.text()
        t.text("Everything is still running. Explore it (Ctrl-C to stop):")
        t.text(f"  export KUBECONFIG={self.kubeconfig}")
        t.text(f"  kubectl -n {NAMESPACE} get llmroute {ROUTE}            # or: kubectl get llm -A")
        t.text(f"  kubectl -n {NAMESPACE} describe llmroute {ROUTE}")
        t.text(f"  kubectl -n {NAMESPACE} get configmap {CONFIG_MAP} -o yaml")
        t.text(
            f"  curl -s http://127.0.0.1:{self.settings.metrics_port}/metrics | grep ^llmfailover_"
        )
        t.text(
            "Break a provider by hand (healthy, geo-blocked, unauthorized, quota-exhausted, "
            "rate-limited, server-error, slow, reset):"
        )
        for name, provider in self.providers.items():
            t.text(f"  curl -X POST {provider.root_url}/_behaviour/geo-blocked    # {name}")


async def run_demo(
    *,
    out: TextIO,
    keep_running: bool = False,
    story: Sequence[Step] = STORY,
    step_timeout: float = 30.0,
) -> Outcome:
    demo = Demo(out=out, step_timeout=step_timeout)
    t = demo.timeline
    t.text(
        "llm-failover demo: the real operator, an embedded Kubernetes API and three stand-in "
        "providers"
    )
    t.text("(openai; qwen with DashScope's API shape; glm with Zhipu's), all on 127.0.0.1.")
    await asyncio.to_thread(demo.start_world)
    t.text(
        f"  kubectl:  KUBECONFIG={demo.kubeconfig} kubectl -n {NAMESPACE} get llmroute {ROUTE} -w"
    )
    t.text(f"  metrics:  curl -s http://127.0.0.1:{demo.settings.metrics_port}/metrics")
    t.text()
    t.text(f"  {'time':>7}  {'event':<19} {'active':<8} why")
    stop = asyncio.Event()
    operator = asyncio.create_task(serve(demo.settings, stop_flag=stop, registry=demo.registry))
    printer = asyncio.create_task(demo.watch_events())
    try:
        outcome = await demo.play(story)
        await asyncio.sleep(0.3)  # let the printer catch the last Events
        demo.summary(outcome)
        if keep_running and outcome.ok:
            demo.explore()
            await _until_interrupted()
    finally:
        printer.cancel()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await printer
        await asyncio.wait_for(operator, 20)
        await asyncio.to_thread(demo.stop_world)
    return outcome


async def _until_interrupted() -> None:
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, done.set)
    await done.wait()


def main(*, keep_running: bool, out: TextIO) -> int:
    try:
        import kmock  # noqa: F401
    except ImportError:
        print("llm-failover demo needs its extra: pip install 'llm-failover[demo]'", file=out)
        return 2
    logging.basicConfig(level=logging.ERROR)  # the timeline tells the story; errors still show
    outcome = asyncio.run(run_demo(out=out, keep_running=keep_running))
    return 0 if outcome.ok else 1
