"""`pip install .` ships a working gradgen: the wheel has the templates and no top-level
module but the package, and the installed command compiles and checks an example in a
folder that has nothing to do with the checkout.

The wheel is built from a copy of the checkout (so no build/ or *.egg-info lands in it)
the way a user's `pip install .` builds it: with build isolation, so pip fetches its own
setuptools and the running interpreter's (old, wheel-less) setuptools does not matter. It
goes into a fresh venv that sees nothing of the system site-packages: pip installs numpy,
jinja2 and black there from the package index, and gradgen must come from the wheel (the
test asserts where it imports from).
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
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("GRADGEN_")
    }


def _run(cmd: list, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
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
    cmd = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", dist]
    done = _run(cmd, cwd=src)
    assert done.returncode == 0, done.stdout + done.stderr
    (found,) = dist.glob("gradgen-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv's bin folder (no system site-packages), gradgen installed from the
    wheel and its dependencies from the package index."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(system_site_packages=False, with_pip=True, symlinks=os.name != "nt").create(
        env_dir
    )
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    done = _run([bindir / "python", "-m", "pip", "install", "-q", wheel], cwd=env_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    return bindir


def test_wheel_ships_the_templates_and_no_top_level_cli(wheel):
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    assert any(n.startswith("codegen/templates/") and n.endswith(".j2") for n in names), names
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"codegen"}, f"the wheel installs top-level {sorted(top - {'codegen'})}"
    (entry,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    scripts = archive.read(entry).decode()
    assert "gradgen = codegen.cli:main" in scripts, scripts


def test_installed_gradgen_runs_outside_the_checkout(installed, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(ROOT / "examples" / "neuron.py", work / "neuron.py")

    where = _run(
        [
            installed / "python",
            "-c",
            "import codegen, codegen.cli, numpy, black, jinja2; "
            "from codegen.emit import python as p; "
            "print(codegen.__file__); print(codegen.cli.__file__); print(p.template_dir()); "
            "print(numpy.__file__); print(black.__file__); print(jinja2.__file__)",
        ],
        cwd=work,
    )
    assert where.returncode == 0, where.stderr
    env_root = installed.parent.resolve()
    for line in where.stdout.split():
        path = Path(line).resolve()
        assert env_root in path.parents, f"{path} is not inside the venv {env_root}"
    no_cli = _run([installed / "python", "-c", "import cli"], cwd=work)
    assert no_cli.returncode != 0, "a top-level module `cli` was installed"

    done = _run([installed / "gradgen", "neuron.py", "--out", "out"], cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (work / "out" / "neuron_grad.py").is_file()
    assert done.stdout.rstrip().endswith("ok"), done.stdout
    assert "check neuron" in done.stdout
