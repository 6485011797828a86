"""Fresh processes: a generated module runs in an isolated interpreter (`python -I`) that
has only numpy and math, and the installed `gradgen` command succeeds end to end."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from codegen import check
from codegen.pipeline import compile_file
from codegen.write import write_atomic
from helpers import ROOT

EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
ALLOWED_IMPORTS = {"numpy", "math"}
FORBIDDEN = ("codegen", "gradgen", "jinja2", "black", "cli")

# What an isolated interpreter loads for `import numpy, math` alone.
BASELINE = """
import sys
before = set(sys.modules)
import math, numpy
import json
print(json.dumps(sorted(set(sys.modules) - before)))
"""

# Import the generated module (the modules it loads are recorded before anything else is
# imported), then call each NAME_vjp at the given arguments and upstream gradient.
PROBE = """
import sys
before = set(sys.modules)
sys.path.insert(0, sys.argv[1])
module = __import__(sys.argv[2])
new = sorted(set(sys.modules) - before)
import json
import numpy as np
calls = json.loads(open(sys.argv[3]).read())
results = {}
for name, (args, g) in calls.items():
    args = [np.asarray(a, dtype=d) if s else float(a) for a, s, d in args]
    value, grads = getattr(module, name + "_vjp")(*args, np.asarray(g))
    results[name] = [np.asarray(value).tolist()] + [np.asarray(x).tolist() for x in grads]
loaded = sorted(m for m in sys.modules if m.split(".")[0] in %r)
print(json.dumps({"new": new, "loaded": loaded, "results": results, "isolated": sys.flags.isolated}))
""" % (FORBIDDEN,)


def _isolated(*argv: str, cwd) -> str:
    proc = subprocess.run(
        [sys.executable, "-I", "-c", *argv], capture_output=True, text=True, cwd=cwd, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def numpy_alone(tmp_path_factory) -> set[str]:
    return set(json.loads(_isolated(BASELINE, cwd=tmp_path_factory.mktemp("baseline"))))


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_generated_module_needs_only_numpy_and_math(tmp_path, example, numpy_alone):
    compiled = compile_file(example)
    stem = f"{example.stem}_grad"
    target = tmp_path / "out" / f"{stem}.py"
    write_atomic(target, compiled.source)

    # what the source says it imports
    imported = set()
    for node in ast.walk(ast.parse(compiled.source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." if node.level else node.module.split(".")[0])
    assert imported <= ALLOWED_IMPORTS, f"{target.name} imports {sorted(imported)}"

    # what importing it loads, in an interpreter that sees no checkout and no PYTHONPATH
    rng = np.random.default_rng(0)
    calls = {
        t.spec.name: (
            [
                (rng.standard_normal(p.shape).tolist(), list(p.shape), _dtype(p.dtype))
                for p in t.spec.params
            ],
            rng.standard_normal(t.forward.outputs[0].shape).tolist(),
        )
        for t in compiled.functions
    }
    (tmp_path / "calls.json").write_text(json.dumps(calls))
    out = json.loads(_isolated(PROBE, str(target.parent), stem, "calls.json", cwd=tmp_path))
    assert out["isolated"] == 1
    assert out["loaded"] == [], f"importing {target.name} loaded {out['loaded']}"
    extra = set(out["new"]) - numpy_alone - {stem}
    assert not extra, f"importing {target.name} loaded more than numpy and math: {sorted(extra)}"

    # and it computes there what it computes here
    module = check.import_path(target)
    for name, (args, g) in calls.items():
        args = [np.asarray(a, dtype=d) if s else float(a) for a, s, d in args]
        value, grads = getattr(module, f"{name}_vjp")(*args, np.asarray(g))
        value_there, *grads_there = out["results"][name]
        np.testing.assert_array_equal(np.asarray(value), np.asarray(value_there))
        assert len(grads) == len(grads_there)
        for g, g_there in zip(grads, grads_there):
            np.testing.assert_array_equal(np.asarray(g), np.asarray(g_there))


def _dtype(dtype: str) -> str:
    return {"f64": "float64", "f32": "float32"}[dtype]


def test_installed_gradgen_command_succeeds(tmp_path):
    """The console script that `pip install` puts on PATH, as a process: status 0, the
    module written, and the check's verdict `ok` as the last line."""
    exe = shutil.which("gradgen")
    if exe is None:
        pytest.skip("no gradgen command on PATH (pip install . puts it there)")
    out = tmp_path / "out"
    proc = subprocess.run(
        [exe, str(ROOT / "examples" / "neuron.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["neuron_grad.py"]
    assert (out / "neuron_grad.py").read_text().startswith("# Generated by gradgen")
    lines = proc.stdout.strip().splitlines()
    assert lines and lines[-1] == "ok", proc.stdout
    assert "check neuron" in proc.stdout, proc.stdout
