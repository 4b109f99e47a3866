"""With the demo left running (`--keep-running`), the README's "Your first LLMRoute" commands work
against it with the real kubectl, routes in any namespace are handled, `kubectl get events` has
the API server's columns, and Ctrl-C stops it all and leaves nothing behind.

The README's route uses presets whose base URLs are the real providers' hosts. The demo process
here can reach nothing but loopback: a `sitecustomize` refuses (and records) every connection and
name lookup elsewhere, and HTTPS_PROXY/HTTP_PROXY point at a closed loopback port (NO_PROXY lets
the stand-ins on 127.0.0.1 through), so those probes fail at once, as they would offline.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import wait_for
from test_demo import README, REPO, DemoProcess, fresh_env

GUARD = '''
"""Loopback only: refuse, and record, any connection or name lookup elsewhere."""
import ipaddress
import os
import socket

LOOPBACK_ONLY = True
_LOG = os.environ["LOOPBACK_GUARD_LOG"]


def _record(what):
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(what + "\\n")


def _loopback(host):
    if isinstance(host, bytes):
        host = host.decode()
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        _record(f"connect {address!r}")
        raise ConnectionRefusedError(f"loopback only: {address!r}")
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        _record(f"connect_ex {address!r}")
        return 111
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if host is not None and not _loopback(host):
        _record(f"getaddrinfo {host!r}")
        raise socket.gaierror(socket.EAI_NONAME, f"loopback only: {host!r}")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.getaddrinfo = getaddrinfo
'''

# `llm-failover demo --keep-running`, with no story to play first (it would add 20 s and change
# nothing here): the same keep-running code, explore text and handling of signals.
DRIVER = """
import asyncio, logging, socket, sys
import sitecustomize
assert getattr(sitecustomize, "LOOPBACK_ONLY", False), "the loopback guard is not loaded"
assert socket.socket.connect.__module__ == "sitecustomize"
assert socket.getaddrinfo.__module__ == "sitecustomize"
from llm_failover.demo import run_demo
logging.basicConfig(level=logging.ERROR)
outcome = asyncio.run(run_demo(out=sys.stdout, keep_running=True, story=()))
sys.exit(0 if outcome.ok else 1)
"""


def readme_first_route_commands() -> list[list[str]]:
    """The kubectl commands of the README's "Your first LLMRoute" sh block, comments dropped."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Your first LLMRoute", 1)[1]
    block = section.split("```sh\n", 1)[1].split("\n```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [c for c in commands if c]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def kubectl_binary() -> str:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed: this test runs the README's kubectl commands")
    return binary


def _outward_address() -> str | None:
    """This machine's address towards the rest of the network (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def _only_on_loopback(port: int) -> None:
    """The demo's metrics answer on 127.0.0.1 and nowhere else (its intro says so)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    outward = _outward_address()
    if outward is not None:  # a machine with loopback alone has nothing else to listen on
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((outward, port), timeout=5).close()


def test_the_readme_first_route_works_against_the_running_demo(
    tmp_path: Path, kubectl_binary: str
) -> None:
    tmpdir, home, guard = tmp_path / "tmp", tmp_path / "home", tmp_path / "guard"
    for directory in (tmpdir, home, guard):
        directory.mkdir()
    (guard / "sitecustomize.py").write_text(textwrap.dedent(GUARD), encoding="utf-8")
    guard_log = tmp_path / "outside-attempts.log"
    proxy = f"http://127.0.0.1:{closed_port()}"
    env = fresh_env(
        tmpdir,
        PYTHONPATH=str(guard),
        LOOPBACK_GUARD_LOG=str(guard_log),
        HTTPS_PROXY=proxy,
        HTTP_PROXY=proxy,
        ALL_PROXY=proxy,
        NO_PROXY="127.0.0.1,localhost",
    )
    with DemoProcess([sys.executable, "-c", DRIVER], env=env) as demo:
        metrics = demo.wait_for_line("metrics:  curl -s http://127.0.0.1:")
        demo.wait_for_line("The story played as expected")
        _only_on_loopback(int(re.findall(r"127\.0\.0\.1:(\d+)", metrics)[0]))
        demo.wait_for_line("Explore it (Ctrl-C stops it and removes it all)")
        kubeconfig = demo.wait_for_line("export KUBECONFIG=").split("=", 1)[1]
        demo.wait_for_line("kubectl -n demo get events")
        demo.wait_for_line("Break a provider by hand")
        stand_ins = {}
        for name in ("openai", "qwen", "glm"):
            line = demo.wait_for_line(f"# {name}")
            match = re.search(r"curl -X POST (\S+)/_behaviour/geo-blocked", line)
            assert match is not None, line
            stand_ins[name] = match[1]
        demo.wait_for_line("presets probe the real providers' hosts from this machine.")
        assert Path(kubeconfig).is_relative_to(tmpdir)
        kube_env = {"PATH": os.environ["PATH"], "HOME": str(home), "KUBECONFIG": kubeconfig}

        def kubectl(*args: str, stdin: str | None = None) -> str:
            done = subprocess.run(
                [kubectl_binary, *args],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env=kube_env,
                cwd=REPO,
            )
            assert done.returncode == 0, f"kubectl {shlex.join(args)}: {done.stderr}"
            return done.stdout

        # The README's commands, exactly as written.
        commands = readme_first_route_commands()
        assert commands[0] == ["kubectl", "create", "namespace", "shop"]
        for command in commands:
            assert command[0] == "kubectl", command
            out = kubectl(*command[1:])
            verb = command[1:] if command[1] != "-n" else command[3:]
            if verb[:2] == ["create", "namespace"]:
                assert out.strip() == f"namespace/{verb[2]} created"
            elif verb[:3] == ["create", "secret", "generic"]:
                assert out.strip() == f"secret/{verb[3]} created"
            elif verb[0] == "apply":
                assert out.strip() == "llmroute.llmfailover.dev/chat created"
            elif verb[0] == "get":
                header, row = out.splitlines()[:2]
                assert header.split()[:2] == ["NAME", "ACTIVE"]
                assert row.split()[0] == "chat"
            elif verb[0] == "describe":
                assert re.search(r"^Name: +chat$", out, re.MULTILINE), out
                assert re.search(r"^Namespace: +shop$", out, re.MULTILINE), out
            elif verb[0] == "explain":
                assert "providers" in out
                assert "FIELD" in out or "FIELDS" in out
            else:
                raise AssertionError(f"no check for the README's {shlex.join(command)}")
        secrets = kubectl("-n", "shop", "get", "secret", "openai", "-o", "json")
        assert json.loads(secrets)["data"]["api-key"] == "c2stLi4u"  # "sk-...", as typed

        # The operator handles the route in `shop` (not the demo's namespace): it has a status.
        def shop_status() -> dict[str, Any] | None:
            route = json.loads(kubectl("-n", "shop", "get", "llmroute", "chat", "-o", "json"))
            status = route.get("status") or {}
            return status if status.get("conditions") else None

        wait_for(shop_status, what="the operator to report on shop/chat", timeout=30)
        assert "Conditions:" in kubectl("-n", "shop", "describe", "llmroute", "chat")

        # A route of one's own in another namespace, on the demo's openai stand-in: routed.
        kubectl("create", "namespace", "team")
        kubectl(
            "-n", "team", "create", "secret", "generic", "openai",
            "--from-literal=api-key=sk-demo-openai",
        )  # fmt: skip
        route = {
            "apiVersion": "llmfailover.dev/v1alpha1",
            "kind": "LLMRoute",
            "metadata": {"name": "assistant", "namespace": "team"},
            "spec": {
                "providers": [
                    {
                        "name": "openai",
                        "preset": "openai",
                        "baseURL": f"{stand_ins['openai']}/v1",
                        "model": "gpt-4o",
                        "apiKeySecretRef": {"name": "openai", "key": "api-key"},
                    }
                ],
                "healthCheck": {"intervalSeconds": 1},
            },
        }
        kubectl("apply", "-f", "-", stdin=yaml.safe_dump(route))
        wait_for(
            lambda: kubectl(
                "-n", "team", "get", "configmap", "assistant-llm",
                "-o", "jsonpath={.data.LLM_PROVIDER}", "--ignore-not-found",
            ) == "openai",
            what="the operator to route team/assistant to openai",
            timeout=30,
        )  # fmt: skip

        # Break the demo's openai by hand, as the demo says: its route fails over, and
        # `kubectl get events` shows it with the usual columns.
        request = urllib.request.Request(
            f"{stand_ins['openai']}/_behaviour/geo-blocked", method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.loads(answer.read())["behaviour"] == "geo-blocked"

        def failed_over_listed() -> str | None:
            listed = kubectl("get", "events")
            return listed if "FailedOver" in listed else None

        events = wait_for(
            failed_over_listed, what="the FailedOver Event in the demo's namespace", timeout=30
        )
        lines = events.splitlines()
        assert lines[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
        failed_over = next(line for line in lines if "FailedOver" in line)
        assert re.fullmatch(
            r"\S+ +Warning +FailedOver +llmroute/chat +openai → qwen \(GeoBlocked\)", failed_over
        ), failed_over
        every = kubectl("get", "events", "-A").splitlines()
        assert every[0].split()[:3] == ["NAMESPACE", "LAST", "SEEN"]
        assert any(line.split()[0] == "demo" for line in every[1:]), every
        assert kubectl("get", "namespaces").split()[:3] == ["NAME", "STATUS", "AGE"]
        assert kubectl("-n", "shop", "get", "secrets").split()[:4] == [
            "NAME", "TYPE", "DATA", "AGE",
        ]  # fmt: skip
        configmaps = kubectl("get", "configmaps", "-A").splitlines()
        assert configmaps[0].split() == ["NAMESPACE", "NAME", "DATA", "AGE"]
        assert any(line.split()[:2] == ["team", "assistant-llm"] for line in configmaps)

        demo.process.send_signal(signal.SIGINT)  # Ctrl-C
        code = demo.finish()
    assert code == 0, demo.text + demo.stderr
    assert "Traceback" not in demo.stderr, demo.stderr
    assert list(tmpdir.iterdir()) == []
    attempts = guard_log.read_text(encoding="utf-8") if guard_log.exists() else ""
    assert attempts == "", f"the demo tried to reach beyond loopback:\n{attempts}"
