"""The catalogue of wrong derivations: each one is flagged in float32 and float64, localized at the quantity it
breaks first and classified as the kind of mistake it is; finite differences side with autograd."""

import dataclasses

import numpy as np
import pytest
import torch
from runs import SEED_BASE, diagnose_entry, diagnose_network, diagnose_seed

from crosscheck import hypotheses as H
from crosscheck import numerical as nm
from crosscheck.catalogue import catalogue, find
from crosscheck.catalogue import layers as wrong_layers
from crosscheck.catalogue import seed as wrong
from crosscheck.check import inject
from crosscheck.diagnose import diagnose
from crosscheck.hypotheses import CLASSES
from crosscheck.render import diagnosis_text, first_wrong, network_of
from crosscheck.subjects import NetworkSubject, SeedCase
from manual import functional as F
from manual import network as manual_net
from netdesc import InputError
from netdesc.description import parse_spec
from netdesc.inputs import random_batch

ENTRIES = catalogue()
FLAGGED = [pytest.param(e, dtype, id=f"{e}-{dtype}") for e in ENTRIES for dtype in e.dtypes]
# The variant of SGD each momentum entry gets wrong, as its classification must name it.
def _seed(entry):
    """The entry's own seed, shifted by SEED_BASE (None, the entry's own, when it is 0)."""
    return entry.case.get("seed", 0) + SEED_BASE if SEED_BASE else None


MOMENTUM = {"sgd-dampening-first-step": "started at zero", "sgd-nesterov-lookahead-missing": "look-ahead",
            "sgd-buffer-not-kept": "not carried"}


def test_the_catalogue_covers_the_seed_network_and_the_general_layers():
    assert len(ENTRIES) >= 15
    assert len({e.name for e in ENTRIES}) == len(ENTRIES)
    assert ENTRIES[:len(wrong.ENTRIES)] == wrong.ENTRIES  # the slides' network first
    assert {e.kind for e in ENTRIES} <= set(CLASSES) - {"unclassified"}
    assert len(wrong.ENTRIES) >= 10 and len(wrong_layers.ENTRIES) >= 10
    types = {layer["type"] for e in wrong_layers.ENTRIES for layer in e.network["layers"]}
    assert types >= {"conv2d", "max_pool2d", "avg_pool2d", "relu", "tanh", "linear"}


@pytest.mark.parametrize(("entry", "dtype"), FLAGGED)
def test_entry_is_flagged_localized_and_classified(entry, dtype):
    result = diagnose_entry(entry, dtype, _seed(entry))
    assert result.wrong, f"{entry} went unnoticed in {dtype}"
    assert result.quantity == first_wrong(entry), diagnosis_text(result)
    assert result.classification.kind == entry.kind, diagnosis_text(result)
    if entry.name in MOMENTUM:
        assert MOMENTUM[entry.name] in result.classification.detail


@pytest.mark.parametrize("entry", [e for e in ENTRIES if "float32" not in e.dtypes], ids=str)
def test_a_change_of_1e_minus_6_is_within_float32s_tolerance(entry):
    assert "1e-6" in entry.description
    assert not diagnose_entry(entry, "float32", _seed(entry)).wrong


@pytest.mark.parametrize("entry", ENTRIES, ids=str)
def test_finite_differences_side_with_autograd(entry):
    result = diagnose_entry(entry, "float64", _seed(entry))
    if " after step " in result.quantity or result.quantity.endswith(": output"):
        assert result.numerical is None  # an update, a forward value: no gradient to difference
    elif entry.kind == "kink":
        assert result.numerical.supports == "unreliable" and result.numerical.kinks > 0
        assert all(e.kink for e in result.worst)
    elif "1e-6" in entry.description:
        assert result.numerical.supports == "both"  # finer than finite differences resolve
    else:
        assert result.numerical.supports == "autograd", diagnosis_text(result)
        # at a kink (a tie in a pooling window: seeds where the dark border makes them) central differences
        # average the two sides; everywhere else they agree with autograd
        assert all(e.kink or abs(e.numerical - e.autograd) <= 1e-6 * (1 + abs(e.autograd)) for e in result.worst)


@pytest.mark.parametrize("entry", ENTRIES, ids=str)
def test_the_real_code_passes_each_entrys_network(entry):
    """The entry's network without its mistake: no diagnosis, and the quantity it names exists there."""
    if entry.on_seed:
        result = diagnose_seed(SeedCase(**entry.case))
    else:
        result = diagnose_network(parse_spec(entry.network, entry.name), inputs=entry.inputs)
    assert not result.wrong, diagnosis_text(result)
    assert first_wrong(entry) in result.checked


def test_other_seeds_and_the_default_dtype():
    entry = find("conv2d-dw-flipped")
    for seed in (1, 2):
        result = diagnose_entry(entry, seed=seed)
        assert result.dtype == "float64" and f"seed {seed}" in result.subject
        assert result.classification.kind == "kernel-flipped"
    assert "seed5" in diagnose_entry(find("flipped-sign-dE_dO"), seed=5).subject


def test_unknown_entry_is_named():
    with pytest.raises(InputError, match=r"--wrong: got 'nope', needs one of scaled-dE_dW, "):
        find("nope", "--wrong")


def test_entries_read_by_name():
    assert str(wrong_layers.ENTRIES[0]) == wrong_layers.ENTRIES[0].name
    assert network_of(find("relu-ge-instead-of-gt")) == "conv2d-relu-flatten-linear"
    assert network_of(find("sgd-wrong-sign")) == "seed"


# --- the normalization entries: new kinds, each with its boundary --------------------------------------------

NEW_KINDS = ["batchnorm-no-mean-variance-paths", "batchnorm-dy-for-scaled", "groupnorm-wrong-axes",
             "softmax-layer-diag-only", "gelu-tanh-for-exact", "batchnorm-biased-running-var",
             "maxpool-overlap-assign", "adaptive-pool-even-windows", "grouped-conv-dw-summed-over-groups",
             "layernorm-wrong-axes", "embedding-assign", "embedding-padding-gradient", "nll-mean-over-all"]


def _halfway(wrong, right, forward):
    """Half the mistake: the average of the wrong and the right results (a forward keeps the wrong cache)."""
    def fn(*args):
        w, r = wrong(*args), right(*args)
        if forward:
            return (w[0] + r[0]) / 2, w[1]
        return tuple(None if a is None else (a + b) / 2 for a, b in zip(w, r, strict=True))
    return fn


@pytest.mark.parametrize("name", NEW_KINDS)
def test_half_of_a_new_kinds_mistake_is_flagged_but_not_that_kind(name):
    """The boundary of each new class: a mistake half as large is still flagged where it starts, and not given
    the class, so the class's hypothesis fits that mistake, not any difference at that layer."""
    entry = find(name)
    spec = parse_spec(entry.network, entry.name)
    if entry.running_stats:
        changes = {"running_stats": _halfway(entry.running_stats, F.batch_norm_running_stats, False)}
    elif entry.forward:  # a forward mistake: halve the output, keep the (consistent) wrong backward
        changes = {"forward": {i: _halfway(f, manual_net.FORWARD[spec.layers[i].type], True)
                               for i, f in entry.forward.items()}}
    else:
        right = {i: manual_net.LOSS[spec.loss.type][1] if i == "loss" else manual_net.BACKWARD[spec.layers[i].type]
                 for i in entry.backward}
        changes = {"backward": {i: _halfway(f, right[i], False) for i, f in entry.backward.items()}}
    result = diagnose_entry(dataclasses.replace(entry, **changes), "float64", _seed(entry))
    assert result.wrong and result.quantity == first_wrong(entry), diagnosis_text(result)
    assert result.classification.kind != entry.kind, diagnosis_text(result)


def test_group_norm_over_wrong_axes_agrees_with_finite_differences_of_its_own_forward():
    """Why only autograd catches the wrong axes: the wrong backward is the true derivative of the wrong forward."""
    entry = find("groupnorm-wrong-axes")
    forward, backward = entry.forward[1], entry.backward[1]
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((2, 4, 3, 3)), rng.standard_normal((2, 4, 3, 3))
    p, o = {"weight": rng.uniform(0.5, 1.5, 4), "bias": rng.uniform(-0.5, 0.5, 4)}, {"num_groups": 2, "eps": 1e-5}
    out, cache = forward(x, p, o)
    dx, _, _ = backward(dout, cache)
    site = nm.Site("wrong group norm: dx", x, nm.looped(lambda v: float(np.vdot(dout, forward(v, p, o)[0]))))
    assert nm.against(nm.differences(site), site.name, dx, "float64").passed
    right = torch.nn.functional.group_norm(torch.from_numpy(x), 2, torch.from_numpy(p["weight"]),
                                           torch.from_numpy(p["bias"]), 1e-5).numpy()
    assert not np.allclose(out, right, atol=1e-3)


def test_a_batch_norm_placed_first_has_its_input_gradient_checked():
    """The bug report's blind spot: a batch norm first in its network, its input gradient the input's. The entry
    keeps it first, and test_entry_is_flagged_localized_and_classified finds it there in both dtypes."""
    entry = find("batchnorm-no-mean-variance-paths")
    assert entry.network["layers"][0]["type"] == "batch_norm2d" and set(entry.backward) == {0}
    assert entry.first_wrong == "0 batch_norm2d: dE/dinput" and set(entry.dtypes) == {"float32", "float64"}
    result = diagnose_entry(entry, "float32", _seed(entry))
    assert result.quantity == "0 batch_norm2d: dE/dinput"
    assert result.checked[-2:] == ("1 conv2d: dE/dbias", "0 batch_norm2d: dE/dinput")  # nothing skipped on the way


@pytest.mark.parametrize(("input_shape", "output_size", "hypotheses"), [((7, 7), 3, 1), ((6, 4), [3, 2], 0),
                                                                         ((2, 5), [3, 2], 0)])
def test_adaptive_windows_are_a_hypothesis_only_where_the_size_does_not_divide(input_shape, output_size, hypotheses):
    """Windows of size // out from i*(size // out) are torch's where out divides size; where out exceeds size there
    are none."""
    from crosscheck.hypotheses import layer_hypotheses

    layers = [{"type": "adaptive_avg_pool2d", "output_size": output_size}, {"type": "flatten"}]
    spec = parse_spec({"input_shape": [1, *input_shape], "layers": layers, "loss": {"type": "mse"}})
    x, up = np.ones((2, 1, *input_shape)), np.ones((2, *spec.layers[0].out_shape))
    assert len(layer_hypotheses(spec.layers[0], "input", x, {}, up)) == hypotheses


def test_layer_norm_over_the_batch_axis_agrees_with_finite_differences_of_its_own_forward():
    """As for group norm: the wrong backward is the true derivative of the wrong forward; torch's layer norm is not
    that forward."""
    entry = find("layernorm-wrong-axes")
    forward, backward = entry.forward[2], entry.backward[2]
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    p, o = {"weight": rng.uniform(0.5, 1.5, 5), "bias": rng.uniform(-0.5, 0.5, 5)}, {"normalized_shape": (5,),
                                                                                       "eps": 1e-5}
    out, cache = forward(x, p, o)
    dx, _, _ = backward(dout, cache)
    site = nm.Site("wrong layer norm: dx", x, nm.looped(lambda v: float(np.vdot(dout, forward(v, p, o)[0]))))
    assert nm.against(nm.differences(site), site.name, dx, "float64").passed
    right = torch.nn.functional.layer_norm(torch.from_numpy(x), (5,), torch.from_numpy(p["weight"]),
                                           torch.from_numpy(p["bias"]), 1e-5).numpy()
    assert not np.allclose(out, right, atol=1e-3)


def test_the_assignment_mistake_on_a_padded_table_is_the_assignment_alone():
    """embedding-assign moved onto a table with a padding index keeps that row at zero, as torch does: what differs
    is the assignment, classified as such, not the padding."""
    spec = parse_spec(find("embedding-padding-gradient").network, "padded")
    result = diagnose(NetworkSubject(spec, wrong=inject("embedding-assign", spec)))
    assert result.first.name == "0 embedding: dE/dweight" and result.classification.kind == "assigned"
    assert not result.classification.kind == "padding-index"


def test_an_embeddings_repeated_indices_are_what_the_assignment_loses():
    """embedding-assign's network repeats indices at every seed (15 positions, 4 rows); without a repeat the
    assignment would be right by accident."""
    entry = find("embedding-assign")
    spec = parse_spec(entry.network, entry.name)
    for seed in range(20):
        x, _ = random_batch(spec, np.float64, seed)
        assert len(np.unique(x)) < x.size


def test_nll_has_the_kept_count_and_fraction_as_scales_only_where_labels_are_ignored():
    spec = parse_spec(find("nll-mean-over-all").network)
    assert H.loss_scales(spec, np.array([0, 1, 2, 3])) == H.loss_scales(spec, np.full(4, -100)) == ()
    # the 3 kept: a sum where their mean was meant; 3/4: the mean over all 4 labels where torch's is over the 3 kept
    scales = H.loss_scales(spec, np.array([0, -100, 2, 3]))
    assert [scale[:2] for scale in scales] == [(3, "batch-reduction"), (0.75, "batch-reduction")]
    assert H.loss_scales(parse_spec(find("nll-mean-over-all").network | {"loss": {"type": "nll", "reduction": "sum"}}),
                         np.array([0, -100, 2, 3])) == ()


def test_a_dropout_without_its_scale_is_read_as_1_minus_p():
    """dropout-no-scale is c * autograd with c = 1 - p, and the diagnosis says where that constant comes from."""
    entry = find("dropout-no-scale")
    result = diagnose_entry(entry, "float64", _seed(entry))
    assert result.classification.constant == pytest.approx(0.75)
    assert "1 - p = 0.75: the dropout's scaling by 1 / (1 - p) left out" in result.classification.detail
