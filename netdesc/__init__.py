"""Network descriptions and input checks, shared by manual/, reference/ and crosscheck/ (NumPy only).

Neither side of a comparison owns them: the hand-written code (manual/) and the autograd oracle (reference/)
both build from the same checked description, and neither imports the other.
"""

from netdesc.checks import InputError
from netdesc.description import Spec, load_spec, parse_spec, spec_from_json
from netdesc.inputs import check_inputs, init_params, random_batch

__all__ = [
    "InputError", "Spec", "check_inputs", "init_params", "load_spec", "parse_spec", "random_batch", "spec_from_json",
]
