"""`pip install .` ships a working gradgen: the wheel has the templates, and the installed
command compiles and checks an example in a folder that has nothing to do with the checkout.

The wheel is built from a copy of the checkout (so no build/ or *.egg-info lands in it)
with `pip wheel --no-deps --no-build-isolation` (the running Python's setuptools, no
download). It goes into a fresh venv that sees the system site-packages for numpy, jinja2
and black, but gradgen itself must come from the wheel: the test asserts where it imports
from.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT

IGNORE = shutil.ignore_patterns(
    ".git",
    "__pycache__",
    "*.egg-info",
    "build",
    "dist",
    ".hypothesis",
    ".pytest_cache",
    "_generated",
)


def _clean_env() -> dict[str, str]:
    """The environment without anything that would make Python find the checkout."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME") and not k.startswith("GRADGEN_")
    }


def _run(cmd: list, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=IGNORE)
    dist = base / "dist"
    done = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            ".",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            dist,
        ],
        cwd=src,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (found,) = dist.glob("gradgen-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A venv's bin folder, gradgen installed there from the wheel."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=os.name != "nt").create(
        env_dir
    )
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    # The running pip installs into the venv's interpreter: no pip bootstrap, no network.
    # --ignore-installed: a gradgen in the system site-packages (CI's `pip install .`) must
    # not satisfy the requirement; the venv gets its own copy from the wheel.
    cmd = [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index"]
    done = _run(cmd + ["--ignore-installed", "-q", wheel], cwd=env_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    return bindir


def test_wheel_ships_the_templates(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("codegen/templates/") and n.endswith(".j2") for n in names), names
    assert "cli.py" in names


def test_installed_gradgen_runs_outside_the_checkout(installed, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(ROOT / "examples" / "neuron.py", work / "neuron.py")

    where = _run(
        [
            installed / "python",
            "-c",
            "import codegen, cli; from codegen.emit import python as p; "
            "print(codegen.__file__); print(cli.__file__); print(p.template_dir())",
        ],
        cwd=work,
    )
    assert where.returncode == 0, where.stderr
    env_root = installed.parent.resolve()
    for line in where.stdout.split():
        path = Path(line).resolve()
        assert env_root in path.parents, f"{path} is not inside the venv {env_root}"

    done = _run([installed / "gradgen", "neuron.py", "--out", "out"], cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (work / "out" / "neuron_grad.py").is_file()
    assert done.stdout.rstrip().endswith("ok"), done.stdout
    assert "check neuron" in done.stdout
