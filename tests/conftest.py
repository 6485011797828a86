import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

# Tests import the helpers module and the checkout's own packages.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Hypothesis keeps its example database (and any other files) in a temporary folder, never
# in a `.hypothesis/` of the checkout or of the working directory. The profile is loaded
# before the test modules are imported, so their own @settings inherit its database.
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="gradgen-hypothesis-")
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", _HYPOTHESIS_HOME)

from hypothesis import settings  # noqa: E402
from hypothesis.database import DirectoryBasedExampleDatabase  # noqa: E402

settings.register_profile(
    "gradgen",
    database=DirectoryBasedExampleDatabase(os.path.join(_HYPOTHESIS_HOME, "examples")),
)
settings.load_profile("gradgen")

# GRADGEN_REQUIRE_JAX=1 (CI's cross-check step, after installing jax): a jax cross-check
# that would be skipped because jax cannot be imported fails instead, so a broken jax
# install cannot pass as a green run. Skips for jax refusing one expression stay skips.
REQUIRE_JAX = os.environ.get("GRADGEN_REQUIRE_JAX", "") not in ("", "0")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "jax: a cross-check against jax (every test whose name says jax); "
        "`python -m pytest -m jax` runs them all",
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "jax" in getattr(item, "originalname", item.name):
            item.add_marker(pytest.mark.jax)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_JAX and report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if "could not import 'jax" in reason:
            report.outcome = "failed"
            report.longrepr = f"GRADGEN_REQUIRE_JAX is set, but jax is missing: {reason}"


def pytest_unconfigure(config):
    shutil.rmtree(_HYPOTHESIS_HOME, ignore_errors=True)
