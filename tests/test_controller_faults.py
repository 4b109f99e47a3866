"""The route controller when the API server, a Secret or the controller itself misbehaves: no lost
Events, no routing back to a provider the output had left, no key in any message, a crash shown on
the route and recovered from, a deleted route that stops everything it had."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
from prometheus_client import CollectorRegistry

from fakes import FakeCluster
from llm_failover.controller import RouteController
from llm_failover.kube import KubeError, RouteRef
from llm_failover.metrics import Metrics
from llm_failover.redact import FRAGMENT
from llm_failover.state import ProviderState as S
from llm_failover.status import Event, EventReason
from test_controller import NS, OPENAI, QWEN, REF, ROUTE, World, body


def reasons(cluster: FakeCluster) -> list[str]:
    return [reason for _, reason, _ in cluster.events]


async def test_events_of_a_switch_survive_a_failed_status_write() -> None:
    w = World()
    w.controller.update(body())
    await w.step(S.HEALTHY)
    w.cluster.failures["patch_route_status"] = 1
    with pytest.raises(KubeError):
        await w.step(S.GEO_BLOCKED)  # the switch is written, its status write fails
    assert w.provider() == "qwen"
    assert reasons(w.cluster) == []  # nothing posted yet...
    await w.controller.reconcile()  # ...the retry posts them, once each
    assert reasons(w.cluster) == ["ProviderEjected", "FailedOver"]
    assert w.cluster.status["activeProvider"] == "qwen"
    await w.controller.reconcile()
    assert reasons(w.cluster) == ["ProviderEjected", "FailedOver"]


async def test_events_refused_by_the_api_server_are_posted_on_the_retry_in_order() -> None:
    w = World()
    w.controller.update(body())
    await w.step(S.HEALTHY)
    w.cluster.failures["post_event"] = 1
    await w.step(S.GEO_BLOCKED)  # ProviderEjected refused; FailedOver waits behind it
    assert reasons(w.cluster) == []
    assert w.controller._retry_at is not None  # a retry is scheduled without a probe
    await w.controller.reconcile()
    assert reasons(w.cluster) == ["ProviderEjected", "FailedOver"]


def restarted(w: World, *, secret: bool = False) -> RouteController:
    """A new operator process's controller over the cluster state and probes `w` left behind."""
    controller = RouteController(ref=REF, services=w.services(Metrics(CollectorRegistry())))
    route = body(target={"secretName": "chat-llm-key"}) if secret else body()
    route["status"] = json.loads(json.dumps(w.cluster.status))
    controller.update(route)
    return controller


async def killed_between_configmap_and_status() -> World:
    """Routed to openai, then geo-blocked: the ConfigMap names qwen, and the process dies
    before the status says so (the status is left as the last successful write had it)."""
    w = World()
    w.controller.update(body())
    await w.step(S.HEALTHY)
    status_before = json.loads(json.dumps(w.cluster.status))
    w.cluster.failures["patch_route_status"] = 1
    with pytest.raises(KubeError):
        await w.step(S.GEO_BLOCKED)
    w.cluster.status = status_before
    return w


async def test_a_restart_after_a_crash_between_configmap_and_status_does_not_route_back() -> None:
    """SIGKILL after the ConfigMap named qwen but before the status said so: the status still
    says openai is active and healthy. The new process must not write openai back."""
    w = await killed_between_configmap_and_status()
    assert w.provider() == "qwen"
    assert w.cluster.status["activeProvider"] == "openai"
    writes = len(w.cluster.writes)

    new = restarted(w)
    # Only qwen has been probed by the new process so far; openai's status says Healthy.
    w.probes.results.pop(OPENAI)
    await new.reconcile()
    assert w.cluster.writes[writes:] == []  # no write back to openai
    assert w.cluster.status["activeProvider"] == "qwen"
    # openai is probed at last: still blocked, so the route stays where the output was.
    sent = w.clock.advance(10)
    w.probes.answer(OPENAI, S.GEO_BLOCKED, at=sent)
    w.probes.answer(QWEN, S.HEALTHY, at=sent)
    await new.reconcile()
    assert w.provider() == "qwen"
    assert w.cluster.writes[writes:] == []


async def test_an_unconfirmed_provider_is_used_again_once_probed_healthy() -> None:
    w = await killed_between_configmap_and_status()
    new = restarted(w)
    sent = w.clock.advance(10)
    w.probes.answer(OPENAI, S.HEALTHY, at=sent)  # the block was lifted meanwhile
    w.probes.answer(QWEN, S.HEALTHY, at=sent)
    await new.reconcile()
    assert w.provider() == "openai"  # a fresh healthy probe is evidence enough


async def test_a_restart_after_a_crash_between_secret_and_configmap_follows_the_secret() -> None:
    w = World()
    w.controller.update(body(target={"secretName": "chat-llm-key"}))
    await w.step(S.HEALTHY)
    status_before = json.loads(json.dumps(w.cluster.status))
    w.cluster.failures["patch_config_map"] = 1  # the Secret is written, then the process dies
    with pytest.raises(KubeError):
        await w.step(S.GEO_BLOCKED)
    secret = await w.cluster.read_secret(NS, "chat-llm-key")
    assert secret is not None
    assert secret["LLM_API_KEY"] == b"sk-qwen"
    assert w.provider() == "openai"
    w.cluster.status = status_before
    writes = len(w.cluster.writes)
    new = restarted(w, secret=True)
    w.probes.results.pop(OPENAI)
    await new.reconcile()
    # The ConfigMap catches up with the Secret; nothing goes back to openai.
    assert w.cluster.writes[writes:] == [("ConfigMap", "chat-llm")]
    assert w.provider() == "qwen"


async def test_a_key_with_a_trailing_newline_is_used_without_it() -> None:
    w = World()
    w.cluster.add_secret(NS, "keys", {"openai": "sk-openai\n", "qwen": "sk-qwen\r\n"})
    w.controller.update(body())
    await w.controller.reconcile()
    endpoints = next(iter(w.probes.subscribed.values()))
    assert sorted(e.credential.value for e in endpoints) == ["sk-openai", "sk-qwen"]
    assert w.probes.tenants[f"{NS}/{ROUTE}"] == NS


@pytest.mark.parametrize(
    "value", ["sk-ope\u00a0nai-0123456789".encode(), b"sk-openai\xff\xfe0123456789", b"sk\nx" * 5]
)
async def test_an_unsendable_key_is_unauthorized_naming_the_secret_not_the_value(
    value: bytes,
) -> None:
    w = World()
    w.cluster.add_secret(NS, "keys", {"openai": value, "qwen": "sk-qwen"})
    w.controller.update(body())
    await w.step(S.HEALTHY)
    openai = w.cluster.status["providers"][0]
    assert openai["state"] == "Unauthorized"
    assert "Secret shop/keys key 'openai'" in openai["message"]
    assert w.provider() == "qwen"
    shown = json.dumps(w.cluster.status) + json.dumps(w.cluster.events)
    text = value.decode(errors="replace")
    for start in range(len(text) - FRAGMENT + 1):
        assert text[start : start + FRAGMENT] not in shown


async def test_a_deleted_route_missed_by_the_watch_ends_its_controller() -> None:
    w = World()
    w.manager.observe(body())  # the manager's controllers share the world's fakes
    await asyncio.sleep(0.05)
    key = f"{NS}/{ROUTE}"
    assert key in w.probes.subscribed
    w.cluster.gone = True  # deleted: the next status write answers 404
    controller, task = w.manager._routes[key]
    sent = w.clock.advance(10)  # the next probe results change the status: it is written
    w.probes.answer(OPENAI, S.HEALTHY, at=sent)
    w.probes.answer(QWEN, S.HEALTHY, at=sent)
    controller._wake.set()
    await asyncio.wait_for(task, 5)
    assert key not in w.manager._routes
    assert key not in w.probes.subscribed  # nothing probed for it any more
    assert w.sample("llmfailover_routes") == 0


async def test_a_crash_is_shown_on_the_route_and_the_controller_recovers() -> None:
    w = World()
    original = w.probes.latest
    calls = {"n": 0}

    def flaky(endpoint):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug met by one route")
        return original(endpoint)

    sent = w.clock.advance(10)
    w.probes.answer(OPENAI, S.HEALTHY, at=sent)
    w.probes.answer(QWEN, S.HEALTHY, at=sent)
    w.probes.latest = flaky  # type: ignore[method-assign]
    w.manager.observe(body())
    key = f"{NS}/{ROUTE}"

    async def ready_reason() -> str:
        return next(
            (c["reason"] for c in w.cluster.status.get("conditions", []) if c["type"] == "Ready"),
            "",
        )

    for _ in range(100):
        if await ready_reason() == "OperatorError":
            break
        await asyncio.sleep(0.02)
    assert await ready_reason() == "OperatorError"
    ready = next(c for c in w.cluster.status["conditions"] if c["type"] == "Ready")
    assert "RuntimeError: a bug met by one route" in ready["message"]
    assert ("Warning", "OperatorError") in [(t, r) for t, r, _ in w.cluster.events]
    assert w.sample("llmfailover_internal_errors_total", task="route") == 1
    for _ in range(200):  # restarted after about a second of backoff
        if await ready_reason() == "ProviderActive":
            break
        await asyncio.sleep(0.02)
    assert await ready_reason() == "ProviderActive"
    assert w.provider() == "openai"
    await w.manager.close()
    assert key not in w.manager._routes


async def test_an_edited_or_deleted_configmap_is_restored() -> None:
    w = World()
    w.controller.update(body())
    await w.step(S.HEALTHY)
    writes = len(w.cluster.writes)
    written = w.cluster.data("ConfigMap", NS, "chat-llm")
    assert written is not None
    # Our own write coming back through the watch changes nothing.
    w.controller._wake.clear()
    w.controller.target_changed("ConfigMap", "chat-llm", written)
    assert not w.controller._wake.is_set()
    # Someone edits it: the controller wakes and puts it back.
    w.cluster.objects[("ConfigMap", NS, "chat-llm")]["data"]["LLM_PROVIDER"] = "hacked"
    w.controller.target_changed("ConfigMap", "chat-llm", {**written, "LLM_PROVIDER": "hacked"})
    assert w.controller._wake.is_set()
    await w.controller.reconcile()
    assert w.provider() == "openai"
    assert w.cluster.writes[writes:] == [("ConfigMap", "chat-llm")]
    # Someone deletes it: it is created again.
    del w.cluster.objects[("ConfigMap", NS, "chat-llm")]
    w.controller.target_changed("ConfigMap", "chat-llm", None)
    await w.controller.reconcile()
    assert w.provider() == "openai"


async def test_the_manager_routes_owned_object_events_by_owner_uid() -> None:
    w = World()
    w.manager.observe(body())
    await asyncio.sleep(0.05)
    controller, _ = w.manager._routes[f"{NS}/{ROUTE}"]
    seen: list[tuple[str, str, object]] = []
    controller.target_changed = lambda kind, name, data: seen.append((kind, name, data))  # type: ignore[method-assign]
    owner = RouteRef(NS, ROUTE, "uid-1").owner_reference()
    other = RouteRef(NS, "other", "uid-2").owner_reference()
    meta = {"name": "chat-llm", "namespace": NS, "ownerReferences": [owner]}
    w.manager.owned_changed("ConfigMap", {"metadata": meta, "data": {"a": "b"}}, deleted=False)
    w.manager.owned_changed("Secret", {"metadata": meta, "data": {"k": "dg=="}}, deleted=False)
    w.manager.owned_changed("ConfigMap", {"metadata": meta}, deleted=True)
    foreign = {"name": "x", "namespace": NS, "ownerReferences": [other]}
    w.manager.owned_changed("ConfigMap", {"metadata": foreign, "data": {}}, deleted=False)
    # Another tenant naming our route as the owner of its own ConfigMap: not a lever on us.
    elsewhere = {**meta, "namespace": "other-tenant"}
    w.manager.owned_changed("ConfigMap", {"metadata": elsewhere, "data": {}}, deleted=False)
    assert seen == [
        ("ConfigMap", "chat-llm", {"a": "b"}),
        ("Secret", "chat-llm", {"k": "v"}),
        ("ConfigMap", "chat-llm", None),
    ]
    await w.manager.close()
    assert REF.uid == "uid-1"


async def test_events_kept_for_a_retry_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """An API server that refuses Events for good must not grow the queue without end: the
    oldest go, with a log line, and the rest are posted in order once it takes them again."""
    w = World()
    w.controller.update(body())
    await w.step(S.HEALTHY)
    w.cluster.failures["post_event"] = 10**6
    w.controller._queue([Event(EventReason.PROVIDER_EJECTED, f"e{i}") for i in range(150)])
    await w.step(S.HEALTHY)
    assert len(w.controller._pending) == 100
    assert w.controller._pending[0].message == "e50"
    assert "dropping 50 unposted Events" in caplog.text
    w.cluster.failures["post_event"] = 0
    await w.step(S.HEALTHY)
    assert [m for _, _, m in w.cluster.events] == [f"e{i}" for i in range(50, 150)]
    assert w.controller._pending == []


async def test_a_status_overwritten_by_someone_else_is_written_again() -> None:
    """The real control plane showed it: a client writing back a status it had read earlier
    overtook the operator's InvalidSpec, and the operator, believing it had written that
    status already, never wrote it again. The status the watch brings is the truth."""
    w = World()
    route = body()
    route["spec"]["providers"][0]["preset"] = "no-such-preset"
    w.controller.update(route)
    await w.controller.reconcile()

    def ready_reason() -> str:
        return next(c["reason"] for c in w.cluster.status["conditions"] if c["type"] == "Ready")

    assert ready_reason() == "InvalidSpec"
    stale = {"conditions": [{"type": "Ready", "status": "True", "reason": "ProviderActive"}]}
    w.cluster.status = stale  # someone else's write
    await w.controller.reconcile()
    assert ready_reason() == "ProviderActive"  # nothing told the operator yet
    w.controller.update({**route, "status": stale})  # the watch does
    await w.controller.reconcile()
    assert ready_reason() == "InvalidSpec"


@pytest.mark.parametrize("refused", ["patch_config_map", "patch_route_status"])
async def test_a_refused_call_is_named_on_the_route_and_recovered_from(refused: str) -> None:
    """A 403 (a missing RBAC grant): Ready=False, reason Forbidden, with the server's words,
    or a Forbidden Event when the status itself is refused; what was routed stays routed until
    the call goes through, then the switch happens; the loop never dies."""
    w = World()
    w.controller.update(body())
    await w.step(S.HEALTHY)
    assert w.provider() == "openai"
    w.controller._settings = dataclasses.replace(w.controller._settings, retry_seconds=0.05)
    w.cluster.refusals[refused] = 3
    sent = w.clock.advance(10)
    w.probes.answer(OPENAI, S.GEO_BLOCKED, at=sent)
    w.probes.answer(QWEN, S.HEALTHY, at=sent)
    task = asyncio.create_task(w.controller.run())
    try:
        for _ in range(200):
            if ("Warning", "Forbidden") in [(t, r) for t, r, _ in w.cluster.events]:
                break
            await asyncio.sleep(0.01)
        message = next(m for _, r, m in w.cluster.events if r == "Forbidden")
        assert f"cannot {refused}" in message
        assert "grant it in the operator's RBAC" in message
        if refused == "patch_config_map":
            assert w.provider() == "openai"  # the switch waits for the write
            ready = next(c for c in w.cluster.status["conditions"] if c["type"] == "Ready")
            assert (ready["status"], ready["reason"]) == ("False", "Forbidden")
        assert reasons(w.cluster).count("Forbidden") == 1  # once, not on every retry
        for _ in range(300):
            if w.cluster.status.get("activeProvider") == "qwen":
                break
            await asyncio.sleep(0.01)
        assert w.provider() == "qwen"
        ready = next(c for c in w.cluster.status["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "ProviderActive"
        assert not task.done()
    finally:
        task.cancel()


async def test_a_refused_key_resync_keeps_failing_over_with_the_keys_read_before() -> None:
    """The periodic re-read of the key Secrets refused (403): the route still fails over, with
    the keys it had, says so on the route, and is Ready again once it can read them."""
    w = World()
    w.controller.update(body())
    await w.step(S.HEALTHY)
    cache = w.controller._secrets
    w.cluster.refusals["read_secret"] = 1
    await cache.resync(0.01, rounds=1)
    assert w.controller._wake.is_set()  # the route is told
    await w.step(S.GEO_BLOCKED)
    assert w.provider() == "qwen"  # failed over all the same
    ready = next(c for c in w.cluster.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Forbidden")
    assert "cannot read_secret" in ready["message"]
    assert "the keys read before are still used" in ready["message"]
    assert "Forbidden" in reasons(w.cluster)
    await cache.resync(0.01, rounds=1)  # granted again: read, and Ready again
    await w.step(S.GEO_BLOCKED)
    ready = next(c for c in w.cluster.status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ProviderActive"
