"""`llm-failover demo` plays its story end to end, prints what the README shows, says why when a
story does not play, and leaves nothing behind: not after the story, not on Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import io
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from llm_failover.demo import Step, run_demo

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DEMO = [sys.executable, "-m", "llm_failover.cli", "demo"]

# What varies from run to run, and nothing else: times, the temporary directory, ports.
_VARYING: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^ +\d+\.\ds  "), "  <t>  "),  # a timeline line's time
    (re.compile(r"switched +\d+\.\ds after"), "switched <t> after"),
    (re.compile(r"time-to-failover \d+\.\d\ds"), "time-to-failover <t>"),
    (re.compile(r"KUBECONFIG=\S*llm-failover-demo-[^/\s]+/kubeconfig"), "KUBECONFIG=<tmp>"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
)


def readme_sample() -> list[str]:
    """The ```text block after "`make demo` prints" in the README."""
    text = README.read_text(encoding="utf-8")
    _, found, after = text.partition("`make demo` prints")
    assert found, "the README no longer says what `make demo` prints"
    block = after.split("```text\n", 1)[1].split("\n```", 1)[0]
    return block.splitlines()


def normalised(lines: Sequence[str]) -> list[str]:
    out = []
    for line in lines:
        for pattern, replacement in _VARYING:
            line = pattern.sub(replacement, line)
        out.append(line.rstrip())
    while out and not out[-1]:
        out.pop()
    return out


def fresh_env(tmpdir: Path, **extra: str) -> dict[str, str]:
    """The environment with TMPDIR at `tmpdir` (where the demo must leave nothing)."""
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update(TMPDIR=str(tmpdir), PYTHONUNBUFFERED="1", **extra)
    return env


class DemoProcess:
    """The demo as a child process, its output read line by line as it comes."""

    def __init__(
        self, command: Sequence[str], *, env: Mapping[str, str], cwd: Path | None = None
    ) -> None:
        self.process = subprocess.Popen(
            list(command),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env),
            cwd=cwd,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.stderr = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for_line(self, needle: str, timeout: float = 60) -> str:
        """The first (new) line containing `needle`; fails at EOF or after `timeout`."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                self._queue.put(None)
                raise AssertionError(f"the demo ended before printing {needle!r}:\n{self.text}")
            self.lines.append(line)
            if needle in line:
                return line
        raise AssertionError(f"{needle!r} not printed within {timeout}s:\n{self.text}")

    def finish(self, timeout: float = 60) -> int:
        """Wait for the exit (killing it after `timeout`) and read the rest of the output."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()
        for _ in range(100_000):  # the reader ends at EOF, which follows the exit
            line = self._queue.get(timeout=10)
            if line is None:
                break
            self.lines.append(line)
        return int(self.process.returncode)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def __enter__(self) -> DemoProcess:
        return self

    def __exit__(self, *_: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def test_the_demo_prints_what_the_readme_shows_and_leaves_nothing_behind(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    result = subprocess.run(
        DEMO, capture_output=True, text=True, timeout=150, check=False, env=fresh_env(tmpdir)
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert result.stderr == ""
    # Line for line what the README shows, times, the temporary path and the ports aside: the
    # events, the active provider after each, why, and the summary.
    assert normalised(out.splitlines()) == normalised(readme_sample())
    # The times tell the story the README tells: about 20 s, the geo-block failed over at once.
    times = [float(m[1]) for m in re.finditer(r"^ +(\d+\.\d)s  ", out, re.MULTILINE)]
    assert times == sorted(times)
    assert times[-1] < 40
    first = re.search(r"GeoBlocked   switched +(\d+\.\d)s", out)
    assert first is not None
    assert float(first[1]) < 3
    assert list(tmpdir.iterdir()) == []  # the kubeconfig's directory is gone


def test_the_readme_comparison_sees_what_matters() -> None:
    """The normalisation hides times, paths and ports, not events, providers or reasons."""
    sample = readme_sample()
    assert normalised(sample) == normalised([line.replace("0.9s", "1.4s") for line in sample])
    for old, new in (
        ("FailedOver          qwen ", "FailedOver          glm  "),
        ("(GeoBlocked)", "(ServerError)"),
        ("ProviderRecovered", "ProviderEjected  "),
        ("4 switches", "3 switches"),
    ):
        changed = [line.replace(old, new, 1) for line in sample]
        assert changed != sample, f"{old!r} is not in the README sample"
        assert normalised(changed) != normalised(sample)
    assert normalised(sample[:-1]) != normalised(sample)


async def test_a_story_that_does_not_play_fails_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    kubeconfig_before = os.environ.get("KUBECONFIG")
    handlers_before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    out = io.StringIO()
    impossible = [
        Step(
            "glm cannot take over from a healthy openai",
            "glm",
            "server-error",
            expect="glm",
            reason="GeoBlocked",
        )
    ]
    outcome = await run_demo(out=out, story=impossible, step_timeout=3)
    assert not outcome.ok
    assert (
        outcome.failure == "switch to glm (GeoBlocked) after 'glm' server-error: not seen within 3s"
    )
    assert "FAILED: switch to glm (GeoBlocked)" in out.getvalue()
    assert await asyncio.to_thread(os.listdir, tmp_path) == []
    assert os.environ.get("KUBECONFIG") == kubeconfig_before
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == handlers_before


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_story_stops_it_and_leaves_nothing_behind(
    tmp_path: Path, signum: signal.Signals
) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    with DemoProcess(DEMO, env=fresh_env(tmpdir)) as demo:
        demo.wait_for_line("▶ demo")  # the operator runs, the first provider is broken
        (workdir,) = tmpdir.iterdir()
        assert workdir.name.startswith("llm-failover-demo-")
        demo.process.send_signal(signum)
        code = demo.finish()
    assert code == 128 + signum, demo.text + demo.stderr
    assert f"Stopped by {signum.name} before the story ended." in demo.text
    assert "Traceback" not in demo.stderr, demo.stderr
    assert list(tmpdir.iterdir()) == []
