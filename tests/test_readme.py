"""Every snippet of README.md is checked: a new user copies them, so none may be stale.

Each fenced block of the README is claimed by exactly one checker below, by its language and
content; a block no checker claims fails `test_every_block_is_checked`, so a new snippet needs a
check before it lands. Shell blocks are taken apart command by command: `make` targets and
variables exist in the Makefile, paths exist, `kubectl create` commands pass kubectl's own
client-side dry run, `llm-failover` command lines parse with the real argument parser, image tags
are the ones `deploy/` runs. YAML blocks are validated as what they claim to be (an LLMRoute
fragment against the CRD and the operator's parser, pod-spec fragments against the Kubernetes
schema, a Prometheus scrape config against `deploy/`'s Service). Text blocks (sample outputs) are
compared with what the programs print. The paragraphs that list flags, Events and metrics are
checked against the code in both directions.
"""

from __future__ import annotations

import argparse
import copy
import functools
import inspect
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

import test_demo
from conftest import kustomize, shared_operator_stopped, wait_for
from controlplane import RealCluster, free_port
from llm_failover import cli
from llm_failover.catalog import default_catalog
from llm_failover.sandbox.providers import Behaviour, StandInProvider
from llm_failover.spec import parse_route_spec
from llm_failover.status import EventReason
from test_crd import RULES, SCHEMA, apply_defaults, check, errors, values_at
from test_examples import STRICT

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")

Json = dict[str, Any]


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int

    @property
    def id(self) -> str:
        return f"README.md:{self.line}:{self.lang or 'plain'}"


def fenced_blocks(text: str) -> list[Block]:
    found: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^```(\S*)\s*$", lines[i])
        if opening is None:
            i += 1
            continue
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].rstrip() != "```":
            body.append(lines[i])
            i += 1
        assert i < len(lines), f"README.md:{start + 1}: a fence is never closed"
        found.append(Block(opening.group(1), "\n".join(body), start + 1))
        i += 1
    return found


BLOCKS = fenced_blocks(README.read_text(encoding="utf-8"))


def commands(script: str, *, alternatives: bool = False) -> list[list[str]]:
    """The simple commands of a shell snippet: continuation lines joined, comments dropped,
    split at `&&`, `||`, `;` and `|`. With `alternatives`, also the commands comments offer
    ("# or: helm install ...", up to a comma), which a reader copies as well."""
    joined = re.sub(r"\\\n", " ", script)
    found: list[list[str]] = []
    lines = joined.splitlines()
    if alternatives:
        lines += re.findall(r"#.*?\bor: ([^,;#\n]+)", joined)
    for line in lines:
        lexer = shlex.shlex(line, posix=True, punctuation_chars="&|;")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        for token in lexer:
            if token in {"&&", "||", ";", "|", "&"}:
                if current:
                    found.append(current)
                current = []
            else:
                current.append(token)
        if current:
            found.append(current)
    return found


def _strip_assignments(argv: list[str]) -> list[str]:
    while argv and re.match(r"^[A-Z_][A-Z0-9_]*=", argv[0]):
        argv = argv[1:]
    return argv


@functools.cache
def _deployed() -> list[Json]:
    """What `kubectl apply -k deploy/` creates."""
    return kustomize(ROOT / "deploy")


def _image() -> str:
    """The image `kubectl apply -k deploy/` runs (name and tag)."""
    (deployment,) = [o for o in _deployed() if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    image: str = container["image"]
    return image


def _check_make(argv: list[str]) -> None:
    targets = set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", MAKEFILE, re.MULTILINE))
    for arg in argv[1:]:
        if "=" in arg:
            variable = arg.split("=", 1)[0]
            assert re.search(rf"\$\({variable}\)", MAKEFILE), f"the Makefile never reads {variable}"
        else:
            assert arg in targets, f"`make {arg}`: no such target in the Makefile"


def _option_values(argv: list[str], *names: str) -> list[str]:
    values = []
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                values.append(argv[i + 1])
            elif arg.startswith(name + "="):
                values.append(arg.split("=", 1)[1])
    return values


def _check_kubectl(argv: list[str]) -> None:
    for path in _option_values(argv, "-f", "--filename"):
        assert (ROOT / path).is_file(), f"`{shlex.join(argv)}`: {path} does not exist"
    for path in _option_values(argv, "-k", "--kustomize"):
        assert (ROOT / path / "kustomization.yaml").is_file(), f"{path} is not a kustomization"
    words = [a for a in argv[1:] if not a.startswith("-")]
    if words and words[0] == "create":
        # kubectl's own client-side dry run: the syntax and the object, without a cluster.
        done = subprocess.run(
            [*argv, "--dry-run=client", "-o", "yaml"],
            capture_output=True,
            text=True,
            timeout=30,
            env={"KUBECONFIG": "/nonexistent", "PATH": "/usr/bin:/bin:/usr/local/bin"},
            check=False,
        )
        assert done.returncode == 0, f"`{shlex.join(argv)}`: {done.stderr}"


def _check_helm(argv: list[str]) -> None:
    words = [a for a in argv[1:] if not a.startswith("-")]
    assert words, argv
    assert words[0] in {"install", "upgrade", "uninstall", "package", "push"}, argv
    for word in words[1:]:
        if "/" in word and not word.startswith("oci://"):
            assert (ROOT / word / "Chart.yaml").is_file(), f"{word} is not a chart"


def _check_llm_failover(argv: list[str]) -> None:
    parser = cli._parser()
    try:
        parsed = parser.parse_args(argv[1:])
    except SystemExit as exc:  # argparse's way of refusing a command line
        raise AssertionError(f"`{shlex.join(argv)}` does not parse") from exc
    for path in getattr(parsed, "files", None) or []:
        assert str(path) == "-" or (ROOT / str(path)).exists(), f"{path} does not exist"


def _check_docker(argv: list[str]) -> None:
    assert argv[1] == "build", argv
    assert _option_values(argv, "-t") == [_image()], "the tag is not the image deploy/ runs"
    assert (ROOT / "Dockerfile").is_file()


def _check_kind(argv: list[str]) -> None:
    if "load" in argv:
        assert argv[-1] == _image(), "kind loads an image deploy/ does not run"


def _check_python(argv: list[str]) -> None:
    assert argv[1:3] == ["-m", "venv"], argv


def _check_pip(argv: list[str]) -> None:
    assert argv[1] == "install", argv
    assert argv[2] in {".", "llm-failover", "llm-failover[demo]"}, argv


def _check_export(argv: list[str]) -> None:
    for assignment in argv[1:]:
        name = assignment.split("=", 1)[0]
        assert name.startswith("LLMFAILOVER_KEY_"), (
            f"the README exports {name}, which nothing reads"
        )


COMMANDS: dict[str, Callable[[list[str]], None]] = {
    "make": _check_make,
    "kubectl": _check_kubectl,
    "helm": _check_helm,
    "llm-failover": _check_llm_failover,
    "docker": _check_docker,
    "kind": _check_kind,
    "k3d": lambda argv: None,  # the alternative to kind, named in a comment's spirit only
    "python3.11": _check_python,
    "pip": _check_pip,
    "export": _check_export,
}


def check_shell(block: Block) -> None:
    found = commands(block.text, alternatives=True)
    assert found, f"{block.id}: an empty shell block"
    for argv in found:
        argv = _strip_assignments(argv)
        program = Path(argv[0]).name
        checker = COMMANDS.get(program)
        assert checker is not None, f"{block.id}: `{shlex.join(argv)}`: no check knows {program}"
        checker(argv)


def _example_route() -> Json:
    route: Json = yaml.safe_load((ROOT / "examples" / "chat-route.yaml").read_text())
    return route


def check_route_fragment(block: Block) -> None:
    """A `spec:` fragment, merged into examples/chat-route.yaml: the CRD and the operator's own
    parser must accept the result."""
    fragment = yaml.safe_load(block.text)
    route = copy.deepcopy(_example_route())
    route["spec"].update(fragment["spec"])
    assert not errors(route, STRICT)
    defaulted = apply_defaults(SCHEMA, copy.deepcopy(route))
    for path, rule in RULES:
        for value in values_at(defaulted, path):
            assert check(path, rule, value, True), f"{path}: {rule['rule']}"
    parse_route_spec(route["spec"], route_name=route["metadata"]["name"], catalog=default_catalog())


def check_scrape_config(block: Block) -> None:
    config = yaml.safe_load(block.text)
    (job,) = config["scrape_configs"]
    (target,) = job["static_configs"][0]["targets"]
    (service,) = [o for o in _deployed() if o["kind"] == "Service"]
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "metrics")
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    assert target == f"{name}.{namespace}.svc:{port}"


def _pod(fragment: Json) -> Json:
    spec: Json = {"containers": [{"name": "api", "image": "app:1"}]}
    for container in fragment.get("containers", []):
        spec["containers"] = [{"image": "app:1", **container}]
    if "volumes" in fragment:
        spec["volumes"] = fragment["volumes"]
        spec["containers"][0].setdefault(
            "volumeMounts", [{"name": fragment["volumes"][0]["name"], "mountPath": "/etc/llm"}]
        )
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"}, "spec": spec}


def check_pod_fragment(block: Block) -> None:
    """An app's `envFrom` or projected volume: valid Kubernetes, naming the ConfigMap and Secret
    of examples/chat-route.yaml as the operator names them."""
    fragment = yaml.safe_load(block.text)
    pod = _pod(fragment)
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
    route = _example_route()
    names = set(re.findall(r"name: ?([\w-]+)", block.text))
    config_map = (
        route["spec"].get("target", {}).get("configMapName", f"{route['metadata']['name']}-llm")
    )
    assert config_map in names
    secret = route["spec"].get("target", {}).get("secretName")
    if "secret" in block.text.lower():
        assert secret in names, f"the example route's key Secret is {secret}"


def check_demo_output(block: Block) -> None:
    """The sample of `make demo`: tests/test_demo.py runs the demo and compares its output with
    this very block, line for line (times, ports and the temporary path aside)."""
    assert test_demo.readme_sample() == block.text.splitlines()
    assert callable(test_demo.test_the_demo_prints_what_the_readme_shows_and_leaves_nothing_behind)


def check_probe_output(block: Block, tmp_path: Path) -> None:
    """The sample of `llm-failover probe examples/chat-route.yaml`: the same route, its base URLs
    moved to loopback stand-ins of each preset's API shape (OpenAI's answering its geo-block),
    prints the same lines but for the hosts and latencies; the hosts shown are the presets'."""
    route_line, header, *rows = block.text.splitlines()
    route = _example_route()
    shapes = {"openai": ("openai", "/v1"), "dashscope": ("dashscope", "/compatible-mode/v1"),
              "zhipu": ("zhipu", "/api/paas/v4")}  # fmt: skip
    stand_ins: dict[str, StandInProvider] = {}
    try:
        for provider in route["spec"]["providers"]:
            flavour, prefix = shapes[provider["preset"]]
            stand_in = StandInProvider(provider["name"], flavour=flavour, prefix=prefix,
                                       model=provider["model"], api_key=None).start()  # fmt: skip
            stand_ins[provider["name"]] = stand_in
            provider["baseURL"] = stand_in.base_url
        stand_ins["openai"].set(Behaviour.GEO_BLOCKED)
        path = tmp_path / "route.yaml"
        path.write_text(yaml.safe_dump(route), encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "llm_failover.cli", "probe", str(path)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        for stand_in in stand_ins.values():
            stand_in.stop()
    printed = done.stdout.splitlines()
    assert printed[0] == route_line
    assert printed[1].split() == header.split()
    assert len(printed) == 2 + len(rows)
    catalog = default_catalog()
    for sample, got, provider in zip(
        rows, printed[2:], _example_route()["spec"]["providers"], strict=True
    ):
        name, host, state, http, _latency, *why = sample.split()
        got_name, _host, got_state, got_http, _got_latency, *got_why = got.split()
        assert (name, state, http, why) == (got_name, got_state, got_http, got_why)
        preset = catalog.get(provider["preset"])
        assert preset is not None
        assert preset.base_url is not None
        assert host == urlsplit(preset.base_url).hostname


@dataclass(frozen=True)
class Checker:
    name: str
    claims: Callable[[Block], bool]
    check: Callable[..., None]  # (block) or (block, tmp_path)


CHECKERS: tuple[Checker, ...] = (
    Checker(
        "demo",
        lambda b: b.lang == "text" and b.text.startswith("llm-failover demo:"),
        check_demo_output,
    ),
    Checker(
        "probe",
        lambda b: b.lang == "text" and b.text.startswith("LLMRoute shop/chat would route to:"),
        check_probe_output,
    ),
    Checker("shell", lambda b: b.lang == "sh", check_shell),
    Checker(
        "route", lambda b: b.lang == "yaml" and b.text.startswith("spec:"), check_route_fragment
    ),
    Checker(
        "scrape", lambda b: b.lang == "yaml" and "scrape_configs:" in b.text, check_scrape_config
    ),
    Checker(
        "pod",
        lambda b: b.lang == "yaml" and re.match(r"^(containers|volumes):", b.text) is not None,
        check_pod_fragment,
    ),
)


def claimants(block: Block) -> list[Checker]:
    return [c for c in CHECKERS if c.claims(block)]


def test_every_block_is_checked() -> None:
    unclaimed = [b.id for b in BLOCKS if len(claimants(b)) != 1]
    assert not unclaimed, f"README blocks no single check claims: {unclaimed}"


@pytest.mark.parametrize("block", [b for b in BLOCKS if claimants(b)], ids=lambda b: b.id)
def test_block(block: Block, tmp_path: Path) -> None:
    (checker,) = claimants(block)
    if "tmp_path" in inspect.signature(checker.check).parameters:
        checker.check(block, tmp_path)
    else:
        checker.check(block)


# The paragraphs: flags, Events.


def _run_flags() -> set[str]:
    parser = cli._parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run = subparsers.choices["run"]
    return {
        option
        for action in run._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def test_run_synopsis_lists_every_flag() -> None:
    text = README.read_text(encoding="utf-8")
    synopsis = re.search(r"`llm-failover run \[.*?`", text)
    assert synopsis is not None
    listed = set(re.findall(r"--[a-z][a-z0-9-]*", synopsis.group(0)))
    assert listed == _run_flags()


def test_event_list_names_every_event() -> None:
    text = README.read_text(encoding="utf-8")
    paragraph = re.search(r"Events, only on transitions:(.*?)\n\n", text, re.DOTALL)
    assert paragraph is not None
    listed = set(re.findall(r"`([A-Z][A-Za-z]+)`", paragraph.group(1)))
    assert listed == {reason.value for reason in EventReason}


# The walk-through: a new user on a real API server, the README's commands verbatim.


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert found is not None, f"README has no section {title!r}"
    return found.group(1)


def section_blocks(title: str, lang: str = "sh") -> list[Block]:
    return [b for b in fenced_blocks(section(title)) if b.lang == lang]


def test_readme_walkthrough_on_a_real_api_server(real_cluster: RealCluster, tmp_path: Path) -> None:
    """ "Run it against a cluster" from a workstation, then "Your first LLMRoute", command by
    command, against the real control plane, as a cluster admin would. The presets point at
    real providers: every probe goes to a proxy on a closed loopback port (HTTPS_PROXY, which
    the operator honours), so nothing leaves this machine and every provider is Unreachable."""
    kubeconfig = real_cluster.write_kubeconfig(tmp_path / "config")
    proxy = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "HTTPS_PROXY": proxy,
        "HTTP_PROXY": proxy,
        "NO_PROXY": "127.0.0.1,localhost",  # the API server, on loopback
    }
    (install,) = [
        b for b in section_blocks("Run it against a cluster") if "llm-failover run" in b.text
    ]
    run_line: list[str] | None = None
    for argv in commands(install.text):
        argv = _strip_assignments(argv)
        if Path(argv[0]).name == "llm-failover":
            run_line = argv
        elif argv[0] == "kubectl":
            done = subprocess.run(
                argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, f"`{shlex.join(argv)}`: {done.stderr}"
    assert run_line is not None, "the README starts no operator from a workstation"
    log = (tmp_path / "operator.log").open("wb")
    program = str(Path(sys.executable).parent / "llm-failover")
    with shared_operator_stopped(real_cluster):
        operator = subprocess.Popen(
            [program, *run_line[1:], "--metrics-port", str(free_port()), "--health-port", str(free_port())],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            _first_route(real_cluster, env, tmp_path)
        finally:
            operator.terminate()
            operator.wait(timeout=30)
            log.close()
            real_cluster.delete_namespaces({"shop"})


def _first_route(real_cluster: RealCluster, env: dict[str, str], tmp_path: Path) -> None:
    (block,) = section_blocks("Your first LLMRoute")
    outputs: dict[str, str] = {}
    for argv in commands(block.text):
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"`{shlex.join(argv)}`: {done.stderr}"
        outputs[shlex.join(argv)] = done.stdout

    def settled() -> dict[str, Any] | None:
        route = real_cluster.get(group="llmfailover.dev", version="v1alpha1", plural="llmroutes",
                                 namespace="shop", name="chat")  # fmt: skip
        providers = (route or {}).get("status", {}).get("providers", [])
        probed = providers and all(p.get("state") not in {None, "Unknown"} for p in providers)
        return route if probed else None

    route = wait_for(settled, timeout=60, what="the operator's status of shop/chat")
    states = {p["name"]: p["state"] for p in route["status"]["providers"]}
    assert set(states.values()) == {"Unreachable"}, states
    ready = next(c for c in route["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NoHealthyProvider")
    # The columns the README's comment promises are kubectl's.
    (get_line,) = [line for line in block.text.splitlines() if "get llmroute" in line]
    promised = re.findall(r"[A-Z][A-Z-]+", get_line.split("#", 1)[1])
    table = subprocess.run(
        ["kubectl", "-n", "shop", "get", "llmroute", "chat"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert table.split()[: len(promised) + 1] == ["NAME", *promised]
    described = subprocess.run(
        ["kubectl", "-n", "shop", "describe", "llmroute", "chat"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "NoHealthyProvider" in described
    assert "Unreachable" in described
    explained = next(out for command, out in outputs.items() if "explain" in command)
    assert "apiKeySecretRef" in explained
