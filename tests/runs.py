"""Short ways for the tests to run the one checker (crosscheck.check) and the diagnosis on a subject, with a
catalogued wrong derivation or hand-written overrides."""

import os

from crosscheck import numerical
from crosscheck.catalogue import find
from crosscheck.check import check, entry_subject, overrides, scaled, witness
from crosscheck.diagnose import diagnose
from crosscheck.subjects import NetworkSubject, SeedSubject
from manual import attention as manual_attention
from manual import network as manual_net
from netdesc.inputs import seeded_masks
from reference import network as reference_net


def _seed_base():
    text = os.environ.get("CROSSCHECK_SEED_BASE", "0")
    if not text.isdigit():
        raise ValueError(f"CROSSCHECK_SEED_BASE: got {text!r}, needs an integer >= 0")
    return int(text)


# Added to every seed the registry, the grids, the catalogue's runs and the no-false-alarm cases draw from: 0 in
# CI; tests/fresh_seeds.py runs the whole suite again with fresh bases to show no seed was picked to pass.
SEED_BASE = _seed_base()


def row(result, quantity, dtype=None):
    """The row of a check's result for `quantity` (and `dtype`, where given)."""
    return next(r for r in result.rows if r.quantity == quantity and (dtype is None or r.dtype == dtype))


# descriptions the training tests share: the digits through one linear layer, and through a conv and a batch norm
TINY = {"name": "tiny", "input_shape": [1, 8, 8], "layers": [{"type": "flatten"}, {"type": "linear",
        "out_features": 10}], "loss": {"type": "softmax_cross_entropy"}, "optimizer": {"lr": 0.1}}
BATCH_NORM_DIGITS = {"name": "digits-bn", "input_shape": [1, 8, 8], "layers": [
    {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "padding": 1, "bias": False},
    {"type": "batch_norm2d"}, {"type": "relu"}, {"type": "flatten"}, {"type": "linear", "out_features": 10}],
    "loss": {"type": "softmax_cross_entropy"}, "optimizer": {"lr": 0.05, "momentum": 0.9}}


def network_rows(spec, seed=0, dtype="float64", steps=None, layer_backward=None, layer_forward=None, train=True,
                 optimizer_step=None, inputs=None):
    """The rows of crosscheck.check for a described network, with replaced layer functions where given."""
    wrong = None
    if layer_backward or layer_forward or optimizer_step or inputs:
        wrong = overrides(layer_backward, layer_forward, optimizer_step, inputs, network=spec.name)
    return list(check(NetworkSubject(spec, seed, dtype, steps, wrong), train).rows)


def scaled_at(spec, index, dtype="float64"):
    """{index: that layer's backward scaled by 1 + 100 * rtol}, as crosscheck verify --inject INDEX swaps in."""
    return scaled(spec, index, dtype).backward


def seed_results(case, wrong_name=None, train=True):
    """The Comparisons of crosscheck.check for the slides' network, with a catalogued wrong derivation."""
    subject = SeedSubject(case, None if wrong_name is None else find(wrong_name))
    return [row.result for row in check(subject, train).rows]


def seed_pairs(case, training=False):
    """[(row name, manual, autograd, witness)] of the walk (or of the training run) of the slides' network; witness:
    () -> autograd in float64 on the same values, as crosscheck.check judges float32 with it."""
    subject = SeedSubject(case)
    witnesses = witness(subject)
    return [(s.name, s.manual, s.autograd, lambda name=s.name: witnesses()[name])
            for s in (subject.training() if training else subject.walk())]


def diagnose_entry(entry, dtype=None, seed=None):
    return diagnose(entry_subject(entry, dtype, seed))


def diagnose_seed(case, equations=None):
    return diagnose(SeedSubject(case, None if equations is None else overrides(equations, network="seed")))


def diagnose_network(spec, seed=0, dtype="float64", layer_backward=None, inputs=None):
    wrong = None if layer_backward is None and inputs is None else overrides(layer_backward, inputs=inputs)
    return diagnose(NetworkSubject(spec, seed, dtype, wrong=wrong))


def gradients_by_site(spec, params, x, target):
    """{finite-difference site name: (manual gradient, autograd gradient)} of a described network, one entry per
    site numerical.network_sites makes (a merge layer's inputs one by one), and those sites."""
    masks = seeded_masks(spec)(0, len(x))  # the dropout masks of a run's first step
    m = manual_net.run(spec, params, x, target, masks=masks)
    a = reference_net.run(spec, params, x, target, masks)
    grads = {"loss: dE/dinput": (m.loss_grad, a["loss_grad"])}
    for layer in spec.layers:
        where = f"{layer.index} {layer.type}"
        if layer.merge:
            grads |= {f"{where}: dE/dinput[{k}]": (m.input_grads[layer.index][k], a["input_grads"][layer.index][k])
                      for k in range(len(layer.inputs))}
        elif m.input_grads[layer.index] is not None or a["input_grads"][layer.index] is not None:
            grads[f"{where}: dE/dinput"] = (m.input_grads[layer.index], a["input_grads"][layer.index])
        for kind in layer.param_shapes():
            key = f"{layer.index}.{kind}"
            grads[f"{where}: dE/d{kind}"] = (m.param_grads[key], a["param_grads"][key])
    return grads, numerical.network_sites(spec, params, x, target, masks)


def attention_terms_changed(change):
    """manual/network's multihead_attention backward whose named per-head gradients `change` changes (a dict -> a
    dict); the backward returns the changed dx and parameter gradients and exposes the terms as .terms."""
    def terms(dout, cache):
        return change(manual_attention.multihead_attention_backward_terms(dout, cache))

    def backward(dout, cache):
        g = terms(dout, cache)
        return g["dx"], g["din_proj_weight"], g["din_proj_bias"], g["dout_proj_weight"], g["dout_proj_bias"]
    backward.terms = terms
    return backward


def encoder_terms_changed(change):
    """manual/network's transformer_encoder_layer backward whose named terms `change` changes: its dx the changed
    one, its parameter gradients the right ones; the terms exposed as .terms."""
    def terms(dout, cache):
        return change(manual_attention.transformer_encoder_layer_backward_terms(dout, cache))

    def backward(dout, cache):
        return (terms(dout, cache)["dx"], *manual_attention.transformer_encoder_layer_backward(dout, cache)[1:13])
    backward.terms = terms
    return backward
