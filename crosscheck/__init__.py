"""Comparison machinery and command line: hand-derived backprop (manual/) against autograd (reference/).

The public names load on first use, so that importing the package (its pytest plugin is loaded by every
pytest run where it is installed) costs nothing until a check actually needs torch.
"""

import importlib

_EXPORTS = {
    "LayerCheck": "crosscheck.api",
    "assert_layer_matches": "crosscheck.api",
    "check_layer": "crosscheck.api",
    "Comparison": "crosscheck.compare",
    "assert_close": "crosscheck.compare",
    "compare": "crosscheck.compare",
    "gradcheck_pair": "crosscheck.gradcheck",
    "TOLERANCES": "crosscheck.tolerances",
    "tolerance_for": "crosscheck.tolerances",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'crosscheck' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
