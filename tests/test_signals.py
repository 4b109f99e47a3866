"""Traffic signals: Prometheus answers read as one number, each distinct query asked once, a
Prometheus that cannot be asked reported; Alertmanager's webhook on the metrics port, with and
without its token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from llm_failover.runtime import serve_metrics
from llm_failover.signals import (
    MAX_WEBHOOK_BYTES,
    Alert,
    AlertWebhook,
    Query,
    Signals,
    Source,
    fill,
    parse_alerts,
    parse_answer,
)


def vector(*values: str) -> bytes:
    result = [{"metric": {"i": str(i)}, "value": [1.0, v]} for i, v in enumerate(values)]
    return json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": result}}
    ).encode()


@pytest.mark.parametrize(
    ("status", "body", "value", "problem"),
    [
        (200, vector("0.25"), 0.25, ""),
        (200, vector("0.1", "0.7", "0.3"), 0.7, ""),  # the largest sample counts
        (200, vector(), None, ""),  # no traffic: no data, never fires
        (200, vector("NaN"), None, ""),  # 0/0: no data either
        (200, vector("NaN", "2"), 2.0, ""),
        (200, vector("+Inf"), float("inf"), ""),
        (200, b'{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}', 3.0, ""),
        (
            400,
            b'{"status":"error","errorType":"bad_data","error":"parse error at char 5"}',
            None,
            "the query failed: parse error at char 5",
        ),
        (
            200,
            b'{"status":"success","data":{"resultType":"matrix","result":[]}}',
            None,
            "the query must give a number or an instant vector, not matrix",
        ),
        (502, b"<html>Bad Gateway</html>", None, "Prometheus answered HTTP 502, not JSON"),
        (200, b"[1,2]", None, "Prometheus answered HTTP 200, not a query result"),
        (200, b'{"status":"success"}', None, "Prometheus answered without data"),
        (200, b"[" * 100_000, None, "Prometheus answered HTTP 200, not JSON"),
    ],
)
def test_a_prometheus_answer_is_one_number_or_a_problem(
    status: int, body: bytes, value: float | None, problem: str
) -> None:
    answer = parse_answer(status, body)
    assert (answer.value, answer.problem) == (value, problem)


class Wake:
    def __init__(self) -> None:
        self.count = 0

    def set(self) -> None:
        self.count += 1


def prometheus(values: dict[str, str], asked: list[str]) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        asked.append(query)
        assert request.headers.get("authorization") == "Bearer s3cret"
        return httpx.Response(200, content=vector(values[query]) if query in values else vector())

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


async def test_each_distinct_query_is_asked_once_and_routes_wake_only_on_change(
    tmp_path: Any,
) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    asked: list[str] = []
    values = {"errors_a": "0.5", "errors_b": "0.01"}
    signals = Signals(
        client=prometheus(values, asked), url="http://prometheus.test", token_file=str(token)
    )
    wakes = [Wake() for _ in range(3)]
    for i, wake in enumerate(wakes):
        signals.watch(
            f"ns/r{i}", {"glm": Query("errors_a", 0.2), "qwen": Query("errors_b", 0.2)}, wake
        )
    await signals.evaluate()
    signals._wake_changed()
    assert sorted(asked) == ["errors_a", "errors_b"]
    assert [w.count for w in wakes] == [1, 1, 1]
    readings = signals.readings("ns/r0", "glm")
    assert readings["glm"].firing
    assert readings["glm"].value == 0.5
    assert not readings["qwen"].firing
    values["errors_a"] = "0.4"  # still firing: a new value alone wakes nobody
    await signals.evaluate()
    signals._wake_changed()
    assert [w.count for w in wakes] == [1, 1, 1]
    values["errors_a"] = "0.1"
    await signals.evaluate()
    signals._wake_changed()
    assert [w.count for w in wakes] == [2, 2, 2]


async def test_a_prometheus_that_cannot_be_asked_is_a_problem_never_a_firing_signal() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    counted: list[str] = []
    signals = Signals(
        client=httpx.AsyncClient(transport=httpx.MockTransport(refuse)),
        url="http://prometheus.test",
        on_query=counted.append,
    )
    signals.watch("ns/r", {"glm": Query("up", 0)}, Wake())
    await signals.evaluate()
    reading = signals.readings("ns/r", "glm")["glm"]
    assert not reading.firing
    assert reading.problem == "Prometheus unreachable: ConnectError: connection refused"
    assert counted == ["error"]


async def test_without_a_prometheus_url_the_problem_says_so() -> None:
    signals = Signals()
    signals.watch("ns/r", {"glm": Query("up", 0)}, Wake())
    await signals.evaluate()
    assert signals.readings("ns/r", None)["glm"].problem == (
        "no Prometheus configured (--prometheus-url)"
    )


async def test_a_huge_answer_is_not_read_whole() -> None:
    def flood(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b" " * (3 * 1024 * 1024))

    signals = Signals(
        client=httpx.AsyncClient(transport=httpx.MockTransport(flood)), url="http://p.test"
    )
    signals.watch("ns/r", {"glm": Query("up", 0)}, Wake())
    await signals.evaluate()
    assert "too large" in signals.readings("ns/r", None)["glm"].problem


def alert(status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "LLMErrors", **labels},
        "annotations": {},
        "startsAt": "2026-12-02T09:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
    }


def notification(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "receiver": "llm-failover", "alerts": list(alerts)}


def test_alerts_naming_a_route_are_read_the_others_left_out() -> None:
    found = parse_alerts(
        notification(
            alert(namespace="shop", llmroute="chat"),
            alert(namespace="shop", llmroute="chat", provider="qwen"),
            alert("resolved", namespace="shop", llmroute="chat"),
            alert(namespace="shop"),  # no route: not ours
            {"labels": "nonsense"},
        ),
        authenticated=False,
    )
    assert [(a.route, a.provider, a.firing) for a in found] == [
        ("chat", "", True),
        ("chat", "qwen", True),
        ("chat", "", False),
    ]
    with pytest.raises(ValueError, match="no alerts list"):
        parse_alerts({"hello": 1}, authenticated=False)


def test_an_alert_fires_for_the_active_provider_until_it_is_resolved() -> None:
    signals = Signals()
    wake = Wake()
    signals.watch("shop/chat", {}, wake)
    named = signals.alert([Alert("shop", "chat", "", True, None, authenticated=True)])
    assert named == {"shop/chat"}
    assert wake.count == 1
    reading = signals.readings("shop/chat", "glm")["glm"]
    assert reading.firing
    assert reading.source is Source.ALERTMANAGER
    assert reading.may_eject
    signals.alert([Alert("shop", "chat", "", False, None, authenticated=True)])
    assert signals.readings("shop/chat", "glm") == {}
    # An alert whose end has passed fires no more.
    ended = datetime.now(UTC) + timedelta(seconds=0.05)
    signals.alert([Alert("shop", "chat", "qwen", True, ended, authenticated=False)])
    assert signals.readings("shop/chat", "glm")["qwen"].may_eject is False


@pytest.fixture
def webhook_url(tmp_path: Any) -> Iterator[tuple[str, list[Alert], Any]]:
    received: list[Alert] = []
    token = tmp_path / "token"
    token.write_text("am-token")
    counted: list[str] = []
    hook = AlertWebhook(deliver=received.extend, token_file=str(token), count=counted.append)
    server, thread = serve_metrics(
        0, lambda: b"", host="127.0.0.1", post={"/alertmanager": hook.handle}
    )
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received, (hook, counted)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_webhook_takes_alertmanager_posts_with_the_token(
    webhook_url: tuple[str, list[Alert], Any],
) -> None:
    url, received, (_hook, counted) = webhook_url
    body = notification(alert(namespace="shop", llmroute="chat"))
    answer = httpx.post(
        f"{url}/alertmanager", json=body, headers={"Authorization": "Bearer am-token"}
    )
    assert answer.status_code == 200, answer.text
    assert [(a.route, a.authenticated) for a in received] == [("chat", True)]
    # Wrong or no token: refused, nothing delivered.
    for headers in ({"Authorization": "Bearer nope"}, {}):
        assert httpx.post(f"{url}/alertmanager", json=body, headers=headers).status_code == 401
    assert len(received) == 1
    # Not JSON, not Alertmanager's, too big, another path.
    auth = {"Authorization": "Bearer am-token"}
    assert httpx.post(f"{url}/alertmanager", content=b"{", headers=auth).status_code == 400
    assert httpx.post(f"{url}/alertmanager", json=[1], headers=auth).status_code == 400
    big = b"x" * (MAX_WEBHOOK_BYTES + 1)
    assert httpx.post(f"{url}/alertmanager", content=big, headers=auth).status_code == 413
    assert httpx.post(f"{url}/other", json=body, headers=auth).status_code == 404
    assert counted == ["accepted", "unauthorized", "unauthorized", "invalid", "invalid"]
    # Scrapes still work on the same port.
    assert httpx.get(f"{url}/metrics").status_code == 200


def test_without_a_token_alerts_are_taken_but_never_eject() -> None:
    received: list[Alert] = []
    hook = AlertWebhook(deliver=received.extend)
    status, _ = hook.handle(
        json.dumps(notification(alert(namespace="a", llmroute="b"))).encode(), ""
    )
    assert status == 200
    assert received[0].authenticated is False


async def test_the_signal_loop_runs_on_the_interval_and_stops_when_cancelled() -> None:
    asked: list[str] = []
    signals = Signals(
        client=prometheus({"q": "1"}, asked), url="http://p.test", interval_seconds=0.05
    )
    signals.token_file = None
    signals.watch("ns/r", {"glm": Query("q", 0)}, Wake())

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params["query"])
        return httpx.Response(200, content=vector("1"))

    signals.client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    task = asyncio.create_task(signals.run())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 3 <= len(asked) <= 8


def test_placeholders_are_filled_in_escaped_for_a_promql_string() -> None:
    query = 'errors{model="${model}", host="${host}"} and on() vector(${unknown})'
    filled = fill(query, {"model": 'odd"model\\', "host": "glm.test"})
    assert filled == 'errors{model="odd\\"model\\\\", host="glm.test"} and on() vector(${unknown})'


async def test_with_tenancy_each_namespace_asks_its_own_queries() -> None:
    """A tenant who writes a route must not read another tenant's series through the
    operator's credentials: behind prom-label-proxy each query carries its namespace."""
    asked: list[tuple[str, str | None]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append((request.url.params["query"], request.url.params.get("namespace")))
        return httpx.Response(200, content=vector("1"))

    signals = Signals(
        client=httpx.AsyncClient(transport=httpx.MockTransport(handle)),
        url="http://prom-label-proxy.test",
        tenant_param="namespace",
    )
    signals.watch("team-a/chat", {"glm": Query("errors", 0.5)}, Wake())
    signals.watch("team-b/chat", {"glm": Query("errors", 0.5)}, Wake())
    await signals.evaluate()
    assert sorted(asked) == [("errors", "team-a"), ("errors", "team-b")]
    assert signals.readings("team-a/chat", None)["glm"].firing


def test_a_standby_sends_alertmanager_to_the_leader_by_a_retry() -> None:
    received: list[Alert] = []
    leading = [False]
    hook = AlertWebhook(deliver=received.extend, leading=lambda: leading[0])
    body = json.dumps(notification(alert(namespace="a", llmroute="b"))).encode()
    status, text = hook.handle(body, "")
    assert status == 503, text  # Alertmanager retries: through the Service, to either replica
    assert received == []
    leading[0] = True
    assert hook.handle(body, "")[0] == 200
    assert len(received) == 1


async def test_a_new_query_is_asked_at_once_not_at_the_next_interval() -> None:
    asked: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params["query"])
        return httpx.Response(200, content=vector("1"))

    signals = Signals(
        client=httpx.AsyncClient(transport=httpx.MockTransport(handle)),
        url="http://p.test",
        interval_seconds=3600,
    )
    task = asyncio.create_task(signals.run())
    await asyncio.sleep(0.05)  # the first round: nothing to ask
    wake = Wake()
    signals.watch("ns/r", {"glm": Query("errors", 0.5)}, wake)
    for _ in range(100):
        if asked:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert asked == ["errors"]
    assert wake.count == 1  # the route hears of it


async def test_a_lapsed_alert_wakes_its_route_and_a_route_keeps_a_bounded_number() -> None:
    signals = Signals()
    wake = Wake()
    signals.watch("shop/chat", {}, wake)
    soon = datetime.now(UTC) + timedelta(seconds=0.05)
    signals.alert([Alert("shop", "chat", "glm", True, soon, authenticated=True)])
    assert "glm" in signals.readings("shop/chat", None)
    await asyncio.sleep(0.1)
    woken = wake.count
    signals._wake_changed()
    assert wake.count == woken + 1
    assert signals.readings("shop/chat", None) == {}
    # Posts naming many providers (or routes this operator does not manage) cannot grow it.
    flood = [Alert("shop", "chat", f"p{i}", True, None, authenticated=False) for i in range(100)]
    flood += [Alert("shop", f"r{i}", "", True, None, authenticated=False) for i in range(100)]
    signals.alert(flood)
    assert len(signals.readings("shop/chat", None)) == 17
    assert list(signals._alerts) == ["shop/chat"]
