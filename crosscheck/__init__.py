"""Comparison machinery and command line: hand-derived backprop (manual/) against autograd (reference/).

The public names load on first use, so that importing the package (its pytest plugin, say) costs no torch import
until a check actually needs torch. `compare` is bound at once (NumPy only): it is also its module's name, and the
import system binds a submodule to the package attribute when the module is first imported, which the lazy lookup
could never override: `from crosscheck import compare` would give the module or the function by import order.
"""

import importlib

_EXPORTS = {
    "LayerCheck": "crosscheck.api",
    "assert_model_matches": "crosscheck.adapters",
    "check_model": "crosscheck.adapters",
    "closure_layer": "crosscheck.adapters",
    "params_layer": "crosscheck.adapters",
    "assert_layer_matches": "crosscheck.api",
    "check_layer": "crosscheck.api",
    "Comparison": "crosscheck.compare",
    "assert_close": "crosscheck.compare",
    "compare": "crosscheck.compare",
    "gradcheck_pair": "crosscheck.gradcheck",
    "TOLERANCES": "crosscheck.tolerances",
    "Tolerance": "crosscheck.tolerances",
    "tolerance_for": "crosscheck.tolerances",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'crosscheck' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


from crosscheck.compare import compare  # noqa: E402, F401  (after _EXPORTS: the function, not the module; see above)
