"""Generation is deterministic: the same input gives the same bytes, whatever the process.

Each example in examples/ is compiled twice by the command line, in two processes that
differ in everything that should not matter: PYTHONHASHSEED (set and dict order of strings),
the working directory, and how the input path is spelled (relative or absolute). Every file
written must be identical, byte for byte.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from codegen import cli
from helpers import ROOT

EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
# Each example with its run of hash seeds; all processes start at once (2 cores, ~1 s each).
RUNS = [("0", ROOT, True), ("4242", None, False)]  # (PYTHONHASHSEED, cwd, relative path?)


def _env(hashseed: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRADGEN_", "PYTHONPATH"))}
    env["PYTHONHASHSEED"] = hashseed
    return env


def _generate_all(tmp_path: Path, target: str) -> list[dict[str, bytes]]:
    """Run every (example, run) pair concurrently; return per run the files written."""
    procs = []
    for k, (hashseed, cwd, relative) in enumerate(RUNS):
        workdir = cwd or tmp_path / f"cwd{k}"
        workdir.mkdir(exist_ok=True)
        for example in EXAMPLES:
            expr = example.relative_to(ROOT) if relative else example
            out = tmp_path / f"run{k}" / example.stem
            cmd = [sys.executable, str(ROOT / "cli.py"), str(expr), "--out", str(out)]
            cmd += ["--no-check", "--target", target]
            proc = subprocess.Popen(
                cmd, cwd=workdir, env=_env(hashseed), stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            procs.append((k, example, proc))
    for k, example, proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{example.name} (run {k}): {stderr.decode()}"
    written = []
    for k in range(len(RUNS)):
        base = tmp_path / f"run{k}"
        written.append(
            {
                str(p.relative_to(base)): p.read_bytes()
                for p in sorted(base.rglob("*"))
                if p.is_file() and "__pycache__" not in p.parts
            }
        )
    return written


def test_there_are_examples():
    assert any(e.stem == "neuron" for e in EXAMPLES)


@pytest.mark.parametrize("target", cli.TARGETS)
def test_same_bytes_across_processes(tmp_path, target):
    first, second = _generate_all(tmp_path, target)
    assert first, "nothing was written"
    assert sorted(first) == sorted(second), "the two runs wrote different files"
    for name, data in first.items():
        assert data == second[name], f"{name} differs between PYTHONHASHSEED=0 and =4242"
    # every example produced something
    for example in EXAMPLES:
        assert any(name.startswith(example.stem + os.sep) for name in first), example.name
