"""A wheel carries the shipped weights, and an install from it finds them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.name for p in (ROOT / "weights").glob("*.safetensors"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built (offline, no build isolation) from a copy of the sources, so the build's
    build/ and egg-info folders never land in the checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "llenhance",
        source / "llenhance",
        ignore=shutil.ignore_patterns("__pycache__", "_weights"),
    )
    shutil.copytree(ROOT / "weights", source / "weights")
    dist = tmp / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(dist),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = dist.glob("llenhance-*.whl")
    return built


def test_wheel_holds_every_module_and_the_shipped_weights(wheel):
    assert SHIPPED, "the repository ships no weights"
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"llenhance/_weights/{n}" for n in SHIPPED} <= names
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "llenhance").rglob("*.py")}
    assert modules <= names, f"missing from the wheel: {sorted(modules - names)}"
    assert not any(n.startswith("weights/") for n in names)


def test_installed_wheel_finds_its_weights(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if k != "LLENHANCE_WEIGHTS_DIR"}
    env["PYTHONPATH"] = str(target)
    script = (
        "import llenhance, llenhance.weights as w; from llenhance.catalog import list_models;"
        "print(llenhance.__file__); print(w.SHIPPED_DIR);"
        "print(w.resolve_weights('unet-res'));"
        "print(sum(e.weights is not None for e in list_models()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    package = Path(out[0]).parent
    assert package.is_relative_to(target)
    assert Path(out[1]) == package / "_weights"
    assert Path(out[2]) == package / "_weights" / "unet-res.safetensors"
    assert int(out[3]) == len(SHIPPED)
