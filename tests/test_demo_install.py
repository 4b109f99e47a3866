"""`pip install 'llm-failover[demo]'` then `llm-failover demo` works: the wheel carries the CRD
and the presets, and the demo, run from an installed copy outside the checkout, plays its story.

The wheel is built offline with the venv's setuptools (`--no-build-isolation`, from a copy of the
sources so that no build/ or egg-info lands in the checkout); the dependencies come from the
venv, so nothing is downloaded.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from test_demo import REPO, fresh_env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Without build isolation (offline): the `test` extra brings setuptools>=77, which
    # pyproject's PEP 639 `license` string needs.
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "operator",
        source / "operator",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    out = work / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--quiet", "--wheel-dir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = out.glob("llm_failover-*.whl")
    return built


def test_the_wheel_carries_the_crd_presets_and_sandbox(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "llm_failover/crds/llmroutes.yaml" in names
    assert "llm_failover/demo.py" in names
    assert "llm_failover/sandbox/emulator/server.py" in names
    presets = {n for n in names if n.startswith("llm_failover/presets/") and n.endswith(".toml")}
    shipped = {
        f"llm_failover/presets/{p.name}"
        for p in (REPO / "operator" / "llm_failover" / "presets").glob("*.toml")
    }
    assert shipped
    assert presets == shipped
    crd = zipfile.ZipFile(wheel).read("llm_failover/crds/llmroutes.yaml")
    assert crd == (REPO / "crds" / "llmroutes.yaml").read_bytes()
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Provides-Extra: demo" in text
    assert "kmock" in text


def test_the_installed_demo_plays_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    target, tmpdir = tmp_path / "site", tmp_path / "tmp"
    tmpdir.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
         "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # The installed copy first on the path, the venv's packages (the dependencies) after it;
    # the venv's editable install of the checkout comes later, which the probe checks.
    env = fresh_env(tmpdir, PYTHONPATH=str(target))
    probe = subprocess.run(
        [sys.executable, "-c", "import llm_failover.demo as d; print(d.__file__, d.CRD)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
        cwd=target,
    )
    module, crd = probe.stdout.split()
    assert Path(module).is_relative_to(target), probe.stdout
    assert Path(crd).is_relative_to(target)
    assert Path(crd).is_file()
    script = target / "bin" / "llm-failover"  # pip --target writes it for this interpreter
    assert script.exists()
    command = [str(script), "demo"]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=150, check=False, env=env, cwd=target
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FailedOver          qwen     openai → qwen (GeoBlocked)" in result.stdout
    assert "The story played as expected: 4 switches" in result.stdout
    assert list(tmpdir.iterdir()) == []
