"""The stand-in providers stay quiet when a client gives up on a `slow` answer (a prober's timeout
is routine), and still show a real bug's traceback."""

from __future__ import annotations

import logging
import threading
import time

import httpx
import pytest

from llm_failover.sandbox.providers import Behaviour, StandInProvider


def test_a_client_giving_up_on_a_slow_answer_prints_nothing(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with StandInProvider("openai", slow_seconds=2) as provider:
        provider.set(Behaviour.SLOW)
        for _ in range(3):
            with pytest.raises(httpx.TimeoutException):
                httpx.get(f"{provider.base_url}/models", timeout=0.2)
        # Past the slow answer's time: a handler that had slept on would write to the closed
        # connection about now.
        time.sleep(2.5)
        # Still a stand-in that answers, slowly, a client that waits.
        started = time.monotonic()
        answer = httpx.get(f"{provider.base_url}/models", timeout=10)
        assert answer.status_code == 200
        assert time.monotonic() - started >= 1.9
        assert provider.count("/models") == 4
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_slow_handler_gives_up_when_the_stand_in_stops() -> None:
    provider = StandInProvider("openai", slow_seconds=30).start()
    provider.set(Behaviour.SLOW)
    started = time.monotonic()
    stopper = threading.Timer(0.5, provider.stop)
    with httpx.Client(timeout=10) as client:
        stopper.start()
        try:
            with pytest.raises(httpx.TransportError):  # hung up on, not answered after 30 s
                client.get(f"{provider.base_url}/models")
        finally:
            stopper.join(timeout=10)
    assert time.monotonic() - started < 5


def test_a_real_bug_in_a_stand_in_still_shows(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: StandInProvider, behaviour: Behaviour) -> tuple[int, dict[str, object]]:
        raise RuntimeError("a bug in the stand-in")

    monkeypatch.setattr(StandInProvider, "answer", broken)
    with StandInProvider("openai") as provider:
        provider.set(Behaviour.SERVER_ERROR)
        with pytest.raises(httpx.TransportError):  # no answer: the handler died
            httpx.get(f"{provider.base_url}/models", timeout=5)
        time.sleep(0.2)  # the traceback is printed as the handler ends
    err = capfd.readouterr().err
    assert "Traceback" in err
    assert "RuntimeError: a bug in the stand-in" in err
