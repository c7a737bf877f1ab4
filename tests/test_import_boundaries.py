"""manual/ stands on NumPy alone; reference/ never hand-derives a gradient."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_importing_manual_does_not_import_torch():
    code = "import sys, manual, manual.wrong; assert 'torch' not in sys.modules, 'manual imported torch'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr


def test_manual_sources_never_mention_torch_imports():
    for path in (ROOT / "manual").glob("*.py"):
        text = path.read_text()
        assert "import torch" not in text and "from torch" not in text, path


def test_reference_takes_gradients_from_autograd_only():
    # The reference reads gradients from .grad / torch.func, never writes a derivative formula:
    # no sigmoid-derivative expressions, no hand-made transposed products of upstream gradients.
    for path in (ROOT / "reference").glob("*.py"):
        text = path.read_text()
        for formula in ["* (1 - ", "*(1-", ".grad =", "grad_fn ="]:
            assert formula not in text, f"{path.name} contains {formula!r}"
