"""The README's supported-numpy table is the one the op table generates."""

from __future__ import annotations

import numpy as np
import pytest

from codegen.surface import table
from helpers import ROOT, needs_passes


@pytest.mark.skipif(
    np.lib.NumpyVersion(np.__version__) < "2.0.0", reason="the table lists numpy 2 names"
)
def test_surface_table_is_current():
    text = (ROOT / "README.md").read_text()
    inside = text.split("<!-- surface:start -->\n")[1].split("\n<!-- surface:end -->")[0]
    assert inside == table(), "regenerate it: python -m codegen.surface"


@needs_passes
def test_readme_shows_the_current_neuron_code():
    text = (ROOT / "README.md").read_text()
    golden = (ROOT / "generated" / "neuron_grad.py").read_text()
    fn = golden.split("def neuron_value_and_grad")[1].split("\n\n\n")[0]
    assert "def neuron_value_and_grad" + fn in text
