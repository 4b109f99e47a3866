"""`llm-failover probe` inputs and outputs: stdin, directories, `kind: List`, every error at once,
skipped providers and why, streaming (a route is printed before its input ends), caps, and a
closed pipe."""

from __future__ import annotations

import io
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_failover import probe as probe_module
from llm_failover.catalog import default_catalog
from llm_failover.sandbox.providers import StandInProvider
from test_probe_cli import run as probe

ROUTE_API = "llmfailover.dev/v1alpha1"


def route(name: str, *providers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": ROUTE_API,
        "kind": "LLMRoute",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"providers": list(providers), "healthCheck": {"timeoutSeconds": 1}, **spec},
    }


def provider(name: str, stand_in: StandInProvider, **extra: Any) -> dict[str, Any]:
    return {"name": name, "baseURL": stand_in.base_url, "model": stand_in.model, **extra}


@pytest.fixture
def stand_in() -> Any:
    with StandInProvider("openai", api_key=None) as found:
        yield found


def names(stdout: str) -> list[str]:
    return [f"{r['namespace']}/{r['name']}" for r in json.loads(stdout)["routes"]]


def test_stdin(stand_in: StandInProvider) -> None:
    done = probe("-", "-o", "json", stdin=yaml.safe_dump(route("a", provider("p", stand_in))))
    assert done.returncode == 0, done.stderr
    (a,) = json.loads(done.stdout)["routes"]
    assert a["providers"][0]["state"] == "Healthy"


def test_a_directory_sorted_and_recursive_only_with_r(
    tmp_path: Path, stand_in: StandInProvider
) -> None:
    for name in ("c.json", "a.yaml", "b.yml"):
        (tmp_path / name).write_text(json.dumps(route(name[0], provider("p", stand_in))))
    (tmp_path / "notes.txt").write_text("not read")
    (tmp_path / "deploy.yaml").write_text("kind: Deployment\napiVersion: apps/v1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.yaml").write_text(yaml.safe_dump(route("d", provider("p", stand_in))))
    flat = probe(str(tmp_path), "-o", "json")
    assert flat.returncode == 0, flat.stderr
    assert names(flat.stdout) == ["shop/a", "shop/b", "shop/c"]
    assert "deploy.yaml: ignored 1 Deployment (not LLMRoutes)" in flat.stderr
    deep = probe("-R", str(tmp_path), "-o", "json")
    assert names(deep.stdout) == ["shop/a", "shop/b", "shop/c", "shop/d"]
    assert len(stand_in.requests) == 2  # one endpoint: probed once per run


def test_an_empty_directory_is_bad_input(tmp_path: Path) -> None:
    done = probe(str(tmp_path))
    assert done.returncode == 2
    assert "a directory without *.yaml, *.yml or *.json files" in done.stderr


@pytest.mark.parametrize("kind", ["List", "LLMRouteList"])
def test_a_list_as_kubectl_writes_it(kind: str, stand_in: StandInProvider) -> None:
    listing = {  # kubectl writes "items" before "kind"
        "apiVersion": "v1",
        "items": [
            route("a", provider("p", stand_in)),
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}},
            route("b", provider("p", stand_in)),
        ],
        "kind": kind,
        "metadata": {"resourceVersion": ""},
    }
    done = probe("-", "-o", "json", stdin=yaml.safe_dump(listing, sort_keys=True))
    assert done.returncode == 0, done.stderr
    assert names(done.stdout) == ["shop/a", "shop/b"]
    assert "stdin: ignored 1 Secret (not LLMRoutes)" in done.stderr


def test_every_validation_error_at_once_and_good_routes_still_probed(
    stand_in: StandInProvider,
) -> None:
    bad = route(
        "bad",
        provider("ok", stand_in),
        {"name": "x", "preset": "nope", "model": "m"},
        {"name": "y", "baseURL": "ftp://y", "model": "has space"},
        healthCheck={"timeoutSeconds": 0},
    )
    manifests = yaml.safe_dump_all([route("good", provider("p", stand_in)), bad])
    done = probe("-", "-o", "json", stdin=manifests)
    assert done.returncode == 2
    assert names(done.stdout) == ["shop/good"]
    lines = done.stderr.splitlines()
    prefix = "llm-failover probe: stdin: document 2: LLMRoute bad: "
    assert [line.split(": ")[4] for line in lines] == [
        "spec.providers[1].preset",
        "spec.providers[2].baseURL",
        "spec.providers[2].model",
        "spec.healthCheck.timeoutSeconds",
    ]
    assert all(line.startswith(prefix) for line in lines)


def test_skipped_providers_say_why_and_are_not_probed(stand_in: StandInProvider) -> None:
    with StandInProvider("late") as late, StandInProvider("gone") as gone:
        manifests = yaml.safe_dump_all(
            [
                route(
                    "chat",
                    provider("gone", gone, notAfter="2020-01-01T00:00:00Z"),
                    provider("late", late, notBefore="2999-01-01T00:00:00Z"),
                    provider("p", stand_in),
                ),
                route("frozen", provider("p", stand_in), paused=True),
            ]
        )
        table = probe("-", stdin=manifests)
        done = probe("-", "-o", "json", stdin=manifests)
        assert (gone.requests, late.requests) == ([], [])
    assert table.returncode == done.returncode == 0, done.stderr  # a paused route fails nothing
    chat, frozen = json.loads(done.stdout)["routes"]
    assert [(p["state"], p["message"]) for p in chat["providers"]] == [
        ("Skipped", "notAfter 2020-01-01T00:00:00Z passed"),
        ("Skipped", "notBefore 2999-01-01T00:00:00Z not reached"),
        ("Healthy", ""),
    ]
    assert chat["wouldRouteTo"] == "p"
    assert (frozen["paused"], frozen["wouldRouteTo"]) == (True, None)
    assert frozen["providers"][0]["state"] == "Skipped"
    assert frozen["providers"][0]["message"].startswith("route paused")
    rows = table.stdout.splitlines()
    assert rows[2].split()[:5] == ["gone", "127.0.0.1", "Skipped", "-", "-"]
    assert rows[2].endswith("notAfter 2020-01-01T00:00:00Z passed")
    assert "LLMRoute shop/frozen is paused: not probed" in table.stdout
    assert len(stand_in.requests) == 2  # once a run: the paused route probed nothing


def test_a_route_is_printed_before_its_input_ends(stand_in: StandInProvider) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "llm_failover.cli", "probe", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        first = yaml.safe_dump(route("first", provider("p", stand_in))) + "---\n"
        process.stdin.write(first.encode())
        process.stdin.flush()  # and the pipe stays open
        deadline = time.monotonic() + 30
        line = b""
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            ready, _, _ = select.select([process.stdout], [], [], 0.5)
            if ready:
                line += os.read(process.stdout.fileno(), 1)
        assert line == b"LLMRoute shop/first would route to: p\n"
        assert process.poll() is None  # still reading
    finally:
        process.stdin.close()
        process.wait(timeout=30)
        process.stdout.close()
        assert process.stderr is not None
        process.stderr.close()
    assert process.returncode == 0


def test_an_object_over_the_cap_is_refused() -> None:
    huge = route("big", {"name": "p", "baseURL": "http://127.0.0.1:9", "model": "m"})
    huge["metadata"]["annotations"] = {"a": "x" * (probe_module.MAX_OBJECT_CHARS + 1)}
    done = probe("-", stdin=yaml.safe_dump(huge, width=2**30))
    assert done.returncode == 2
    assert done.stderr == (
        "llm-failover probe: stdin: document 1: larger than 2 MiB (the API server keeps "
        "objects of up to 1.5 MiB)\n"
    )


def test_an_input_over_the_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe_module, "MAX_INPUT_BYTES", 4096)
    path = tmp_path / "many.yaml"
    path.write_text("---\n".join(f"kind: Note\nn: {i}\n" for i in range(1000)))
    out, err = io.StringIO(), io.StringIO()
    code = probe_module.main(
        [str(path)], output="table", out=out, err=err, catalog=default_catalog()
    )
    assert code == 2
    assert err.getvalue().splitlines()[0] == f"llm-failover probe: {path}: larger than 0 MiB"


def many_routes(stand_in: StandInProvider, count: int) -> str:
    return yaml.safe_dump_all([route(f"r{i}", provider("p", stand_in)) for i in range(count)])


def test_a_closed_pipe_ends_quietly(tmp_path: Path, stand_in: StandInProvider) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(many_routes(stand_in, 2000))  # far more output than a pipe holds
    done = subprocess.run(
        ["bash", "-c", f'{sys.executable} -m llm_failover.cli probe "$1" | head -1; '
         'echo "status ${PIPESTATUS[0]}" >&2', "bash", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert done.stdout == "LLMRoute shop/r0 would route to: p\n"
    assert done.stderr == "status 141\n"  # no traceback, no "Broken pipe" message


def test_a_pipe_closed_by_the_reader_mid_output(tmp_path: Path, stand_in: StandInProvider) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(many_routes(stand_in, 2000))
    process = subprocess.Popen(
        [sys.executable, "-m", "llm_failover.cli", "probe", str(path), "-o", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    assert process.stdout.readline() == b"{\n"
    process.stdout.close()
    code = process.wait(timeout=60)
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert (code, stderr) == (141, "")
