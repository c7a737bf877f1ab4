"""The teaching notebook (docs/teaching.py, jupytext's percent format) runs from top to bottom in a real Jupyter
kernel (nbclient), shows its pictures, and its exercise is judged as it says: the flipped kernel diagnosed, the
fixed dE/df agreeing."""

import pathlib

import jupytext
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "teaching.py"


@pytest.fixture(scope="module")
def executed():
    notebook = jupytext.read(NOTEBOOK)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    return notebook


def _outputs(notebook):
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


def test_every_cell_runs_without_an_error_or_a_warning(executed):
    kinds = [o.output_type for o in _outputs(executed)]
    assert "error" not in kinds
    assert [o.text for o in _outputs(executed) if o.get("name") == "stderr"] == []
    assert all(cell.execution_count for cell in executed.cells if cell.cell_type == "code")


def test_it_shows_the_digits_the_training_the_divergence_the_filter_gradient_and_the_diagnosis(executed):
    images = [o for o in _outputs(executed) if "image/png" in o.get("data", {})]
    assert len(images) == 5
    assert all(len(o.data["image/png"]) > 5000 for o in images)  # base64 of a real picture, not an empty canvas


def test_its_numbers_are_the_harness_verdicts(executed):
    text = "".join(o.get("text", "") for o in _outputs(executed))
    assert "E   shape ()           largest difference" in text
    assert "manual and autograd agree at all 220 steps" in text
    assert "class: kernel flipped (kernel-flipped)" in text and "first wrong quantity: dE/df, shape (3, 3)" in text
    assert text.rstrip().endswith("quantities, all agree: True")


def test_the_notebook_is_plain_text_in_percent_format():
    source = NOTEBOOK.read_text()
    assert source.count("# %%") >= 12 and "format_name: percent" in source
    assert '"cells"' not in source  # not an .ipynb's JSON
