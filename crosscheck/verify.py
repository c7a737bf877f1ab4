"""A described network checked end to end: manual.network against reference.network, layer by layer.

The order of the rows is the order of the computation, so the first mismatch says where a derivation broke:
every layer's output and the loss; then backward from the loss to the input, each layer's input gradient and
parameter gradients; then the loss at every SGD step and every parameter after the last step.
"""

from dataclasses import dataclass

import netdesc.inputs
import netdesc.seed
from crosscheck.catalogue import seed as wrong
from crosscheck.compare import Comparison, compare
from crosscheck.seed_check import DTYPES
from crosscheck.tolerances import tolerance_for
from manual import network as manual_net
from netdesc.checks import InputError, ManualFailure, check_positive_int
from reference import network as reference_net


@dataclass(frozen=True)
class Row:
    """One compared quantity: where ("3 conv2d" or "loss"), what ("dE/dweight"), and the comparison."""

    layer: str
    quantity: str
    result: Comparison

    @property
    def passed(self):
        return self.result.passed

    def as_dict(self):
        return {"layer": self.layer, "quantity": self.quantity, **self.result.as_dict()}


def _where(layer):
    return f"{layer.index} {layer.type}"


def check_options(spec, seed=0, dtype="float64", steps=None):
    """Check the run's settings against the description -> (seed, NumPy dtype, steps)."""
    if dtype not in DTYPES:
        raise InputError(f"dtype: got {dtype!r}, needs one of {', '.join(DTYPES)}")
    seed = check_positive_int("seed", seed, minimum=0)
    steps = spec.optimizer.steps if steps is None else check_positive_int("steps", steps)
    return seed, DTYPES[dtype], steps


def inject(spec, layer_index, dtype="float64"):
    """{layer_index: that layer's backward with every gradient scaled by 1 + 100 * rtol}: a wrong derivation
    just outside the tolerance of `dtype`, to see a mismatch reported."""
    layers = len(spec.layers)
    if isinstance(layer_index, bool) or not isinstance(layer_index, int) or not 0 <= layer_index < layers:
        raise InputError(f"inject: got layer {layer_index!r}, needs a layer index in [0, {layers - 1}]")
    backward = manual_net.BACKWARD[spec.layers[layer_index].type]
    return {layer_index: wrong.scaled_backward(backward, 1 + 100 * tolerance_for(DTYPES[dtype]).rtol)}


def pairs(spec, seed=0, dtype="float64", steps=None, layer_backward=None, train=True, accumulate=None):
    """[(where, quantity, manual value, autograd value)] in check order; `train=False` stops after the gradients;
    ``accumulate`` replaces manual.network's sum of a fan-out's gradients."""
    seed, np_dtype, steps = check_options(spec, seed, dtype, steps)
    params = netdesc.inputs.init_params(spec, np_dtype, seed)
    x, target = netdesc.inputs.random_batch(spec, np_dtype, seed)
    m = manual_net.run(spec, params, x, target, layer_backward, accumulate=accumulate)
    a = reference_net.run(spec, params, x, target)
    rows = [(_where(layer), "output", m.outputs[layer.index], a["outputs"][layer.index]) for layer in spec.layers]
    rows += [("loss", "E", m.loss, a["loss"]), ("loss", "dE/dinput", m.loss_grad, a["loss_grad"])]
    for layer in reversed(spec.layers):
        i = layer.index
        if layer.merge:  # one input gradient per input
            rows += [(_where(layer), f"dE/dinput[{k}]", mg, ag)
                     for k, (mg, ag) in enumerate(zip(m.input_grads[i], a["input_grads"][i], strict=True))]
        else:
            rows.append((_where(layer), "dE/dinput", m.input_grads[i], a["input_grads"][i]))
        rows += [(_where(layer), f"dE/d{kind}", m.param_grads[f"{i}.{kind}"], a["param_grads"][f"{i}.{kind}"])
                 for kind in layer.param_shapes()]
    if not train:
        return rows
    try:
        m_losses, m_params = manual_net.train(spec, params, x, target, steps, layer_backward, accumulate=accumulate)
    except InputError as err:  # a gradient of the wrong shape: a mismatch to report, not a crash
        m_losses = ManualFailure(str(err))
        m_params = dict.fromkeys(spec.param_shapes(), m_losses)
    a_losses, a_params = reference_net.train(spec, params, x, target, steps)
    rows.append(("loss", f"E at steps 1..{steps}", m_losses, a_losses))
    for layer in spec.layers:
        rows += [(_where(layer), f"{kind} after {steps} steps", m_params[f"{layer.index}.{kind}"],
                  a_params[f"{layer.index}.{kind}"]) for kind in layer.param_shapes()]
    return rows


def check(spec, seed=0, dtype="float64", steps=None, layer_backward=None, train=True, accumulate=None):
    """Every comparison for the description, in order -> list of Row."""
    return [Row(where, quantity, compare(f"{where}: {quantity}", m, a, DTYPES.get(dtype)))
            for where, quantity, m, a in pairs(spec, seed, dtype, steps, layer_backward, train, accumulate)]
