"""Deliberately wrong derivations of the slides' network, kept apart from the real code.

Each entry is manual.seed_network.backward with one equation of its EQUATIONS swapped (``backward``, by the
slides' name of the factor it gives), or sgd_step swapped (``optimizer_step``): a mistake people make when
deriving by hand. The replacements call the real equations wherever they can, so that each changes one thing.
``first_wrong`` is the first row of the chain it breaks. The test suite, ``crosscheck --inject NAME`` and
``crosscheck diagnose --wrong NAME`` use them to show that a wrong gradient is caught, where and as what
(``kind``, a class of crosscheck.diagnose); nothing in the real network imports them. The general layers'
mistakes are in crosscheck.catalogue.layers.
"""

import numpy as np

from crosscheck.catalogue import WrongDerivation
from manual import kernels
from manual.seed_network import EQUATIONS


def _dE_dW_scaled(dE_dZ2, dZ2_dW):
    return EQUATIONS["dE_dW"](dE_dZ2, dZ2_dW) * (1 + 1e-6)


def _dE_df_scaled(X, dE_dZ1):
    return EQUATIONS["dE_df"](X, dE_dZ1) * (1 + 1e-6)


def _dE_dW_transposed(dE_dZ2, dZ2_dW):
    # dE/dZ2^T . H1 is torch's (n_out, n_hidden) layout, not the slides' (n_hidden, n_out).
    return EQUATIONS["dE_dW"](dE_dZ2, dZ2_dW).T


def _dE_df_true_convolution(X, dE_dZ1):
    # Reading the slides' "conv" as true convolution flips dE/dZ1 before sliding it over X.
    return EQUATIONS["dE_df"](X, dE_dZ1[:, ::-1, ::-1])


def _dH1_dZ1_missing(H1, Z1):
    # dE/dZ1 = dE/dH1: the sigmoid's local derivative taken as 1.
    return np.ones_like(Z1)


def _dE_dO_sign_flipped(O, Y, n):
    # d/dO (Y - O)^2 / 2 = -(Y - O): the inner minus sign dropped gives Y - O.
    return -EQUATIONS["dE_dO"](O, Y, n)


def _dO_dZ2_at_the_output(O):
    # sigmoid'(z) = s(1 - s) with s = sigmoid(z), but fed O = sigmoid(Z2) as if it were Z2.
    return EQUATIONS["dO_dZ2"](kernels.sigmoid(O))


def _dH1_dZ1_twice(H1, Z1):
    return EQUATIONS["dH1_dZ1"](H1, Z1) ** 2


def _dE_dO_mean_forgotten(O, Y, n):
    # Under the mean, dE/dO = (O - Y) / N: the division left out.
    return EQUATIONS["dE_dO"](O, Y, 1)


def _sgd_step_ascending(params, grads, lr):
    # w <- w + lr * dE/dw: a step up the error surface.
    return {name: params[name] + params[name].dtype.type(lr) * grads[f"dE_d{name}"] for name in params}


FLOAT64_ONLY = ("float64",)  # a change of 1e-6 relative lies inside float32's tolerance (1e-4): not a mismatch there


def _entry(name, first_wrong, description, kind, **fields):
    return WrongDerivation(name, description, "seed", first_wrong, kind, **fields)


ENTRIES = [
    _entry("scaled-dE_dW", "dE_dW", "dE/dW multiplied by 1 + 1e-6", "scaled",
           backward={"dE_dW": _dE_dW_scaled}, dtypes=FLOAT64_ONLY),
    _entry("scaled-dE_df", "dE_df", "dE/df multiplied by 1 + 1e-6", "scaled",
           backward={"dE_df": _dE_df_scaled}, dtypes=FLOAT64_ONLY),
    _entry("transposed-dE_dW", "dE_dW", "dE/dW = dE/dZ2^T . H1, torch's layout instead of the slides'",
           "transposed", backward={"dE_dW": _dE_dW_transposed}),
    _entry("flipped-kernel-dE_df", "dE_df", "dE/df by true (flipped) convolution of X with dE/dZ1",
           "kernel-flipped", backward={"dE_df": _dE_df_true_convolution}),
    _entry("missing-dH1_dZ1", "dH1_dZ1", "dE/dZ1 = dE/dH1: the sigmoid derivative dH1/dZ1 left out, taken as 1",
           "activation-missing", backward={"dH1_dZ1": _dH1_dZ1_missing}),
    _entry("flipped-sign-dE_dO", "dE_dO", "dE/dO = Y - O, the minus sign of the inner derivative dropped", "sign",
           backward={"dE_dO": _dE_dO_sign_flipped}),
    _entry("sigmoid-of-output-dO_dZ2", "dO_dZ2", "dO/dZ2 = sigmoid'(O) = sigmoid(O)(1 - sigmoid(O)): the "
           "derivative taken at the output O instead of at Z2", "activation-wrong-point",
           backward={"dO_dZ2": _dO_dZ2_at_the_output}),
    _entry("twice-dH1_dZ1", "dH1_dZ1", "dH1/dZ1 = (H1(1 - H1))^2, the sigmoid derivative applied twice",
           "activation-twice", backward={"dH1_dZ1": _dH1_dZ1_twice}),
    # the two below need a case (a mean reduction) or replace the SGD update
    _entry("mean-forgotten-dE_dO", "dE_dO", "dE/dO = O - Y under the mean reduction, the division by N left out",
           "batch-reduction", backward={"dE_dO": _dE_dO_mean_forgotten}, case={"reduction": "mean"}),
    _entry("sgd-wrong-sign", "W after step 1", "w <- w + alpha dE/dw: the update climbs the error", "update-sign",
           optimizer_step=_sgd_step_ascending),
]
