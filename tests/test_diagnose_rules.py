"""What the diagnosis' rules are pinned at: where a layer stands in a residual block (a layer reading the network's
input is on its block's branch), where in time a recurrent layer's backward first leaves autograd (both sides run
on the subject's own hooks, masks, loss options and layer options; an excess of exactly 1 is still within the
tolerance, NaN is not), where inside an attention layer (which features of qkv and merged belong to which head,
the encoder's own quantities and the input's gradient without heads, the encoder's options read), and the one-line
texts of these places, whole."""

import dataclasses

import numpy as np
import pytest
from runs import attention_terms_changed, diagnose_entry, encoder_terms_changed, scaled_at

from crosscheck.catalogue import find
from crosscheck.check import overrides
from crosscheck.diagnose import diagnose, inside_text, place_text, residual_place, time_step_text
from crosscheck.subjects import NetworkSubject
from crosscheck.tolerances import tolerance_for
from manual import functional as F
from manual import network as manual_net
from netdesc.description import parse_spec
from netdesc.inputs import dropout_masks

HEAD = [{"type": "flatten"}, {"type": "linear", "out_features": 2}]

# --- where a layer stands in a residual block ---------------------------------------------------------------


def test_the_first_layer_on_a_block_reading_the_network_input_is_on_its_main_branch():
    """add(linear(x), x): the skip is the identity (no layers), the main branch is layer 0 alone."""
    spec = parse_spec(
        {
            "input_shape": [2, 4],
            "batch_size": 2,
            "layers": [{"type": "linear", "out_features": 4}, {"type": "add", "inputs": [0, "input"]}, *HEAD],
            "loss": {"type": "mse"},
        }
    )
    place = residual_place(spec, 0)
    assert place == {"layer": 0, "type": "linear", "name": None, "add": "layer 1 add", "add_index": 1, "branch": "main"}
    assert (
        place_text(place) == "in layer 0 linear, on the main branch of the residual block that ends in add "
        '"layer 1 add" (layer 1)'
    )


# --- where in time a recurrent layer's backward leaves autograd --------------------------------------------------

RNN = {"type": "rnn", "hidden_size": 2}


def _sequence_spec(recurrent=RNN, rest=HEAD, loss=None, batch_size=2):
    return parse_spec(
        {"input_shape": [3, 2], "batch_size": batch_size, "layers": [recurrent, *rest], "loss": loss or {"type": "mse"}}
    )


# at seed 36 the dropout masks of a run's first step (step 0) drop the rnn's whole last time step; the second's do not
DROPOUT_SPEC = _sequence_spec(rest=[{"type": "dropout"}, *HEAD])
DROPOUT_SEED = 36


def test_the_dropout_masks_of_the_sequence_case_drop_the_whole_last_step_of_the_first_step_only():
    """The premise of the tests below that read DROPOUT_SPEC at DROPOUT_SEED."""
    first, second = (dropout_masks(DROPOUT_SPEC, 2, DROPOUT_SEED, step)[1] for step in (0, 1))
    assert not first[:, 2].any() and first[:, 1].any() and second[:, 2].any()


def _returned_scaled(spec):
    """The recurrent layer 0's backward with what it returns scaled just outside the tolerance: its trace, left by
    the right backward inside, agrees with autograd at every step."""
    return overrides(scaled_at(spec, 0))


RIGHT_TRACES = {
    "tanh": (_sequence_spec(), 0),
    "relu": (_sequence_spec(RNN | {"nonlinearity": "relu"}), 0),
    "no-bias": (_sequence_spec(RNN | {"bias": False}), 0),
    "sum-reduction": (_sequence_spec(loss={"type": "mse", "reduction": "sum"}), 0),
    "ignore-index": (
        _sequence_spec(
            rest=[{"type": "sequence_pool"}, {"type": "linear", "out_features": 3}],
            loss={"type": "softmax_cross_entropy", "ignore_index": 1},
            batch_size=8,
        ),
        0,
    ),
    "dropout": (DROPOUT_SPEC, DROPOUT_SEED),
}


@pytest.mark.parametrize(("spec", "seed"), RIGHT_TRACES.values(), ids=RIGHT_TRACES)
def test_no_time_step_where_the_trace_agrees_on_the_layers_own_options_loss_and_masks(spec, seed):
    """Autograd's unrolled layer runs with the layer's own nonlinearity and bias, manual's forward and loss with
    the description's reduction, ignore_index and the step's dropout masks, on both sides: then a trace the right
    backward left agrees at every step, and the diagnosis names no time step."""
    subject = NetworkSubject(spec, seed, wrong=_returned_scaled(spec))
    if spec.loss.ignore_index is not None:  # some labels are ignored, some not
        assert (subject.target == 1).any() and (subject.target != 1).any()
    d = diagnose(subject)
    assert d.quantity == "0 rnn: dE/dinput" and d.time_step is None


def test_the_time_step_is_found_on_the_masks_of_the_runs_first_step():
    """The backward given twice the upstream gradient: its trace is twice autograd's, equal where both are 0. The
    first step's dropout drops the rnn's last step whole, so there dh is 0 on both sides; one step before, it is
    not."""

    def doubled(dout, cache):
        return manual_net.BACKWARD["rnn"](2 * dout, cache)

    d = diagnose(NetworkSubject(DROPOUT_SPEC, DROPOUT_SEED, wrong=overrides({0: doubled})))
    assert d.time_step == {
        "layer": 0,
        "type": "rnn",
        "stack_layer": 0,
        "step": 1,
        "steps": 3,
        "from_end": 1,
        "quantity": "dh",
    }


def _with_trace_entry(value):
    """The right rnn backward, its returned gradients scaled (so the row fails), with the trace's dh at the last step,
    sample 0, unit 0 set to `value`."""
    backward = scaled_at(DROPOUT_SPEC, 0)[0]

    def wrong(dout, cache):
        grads = backward(dout, cache)
        cache.trace[0]["dh"][2, 0, 0] = value
        return grads

    return overrides({0: wrong})


ATOL = tolerance_for("float64").atol
LAST_DH = {"layer": 0, "type": "rnn", "stack_layer": 0, "step": 2, "steps": 3, "from_end": 0, "quantity": "dh"}


@pytest.mark.parametrize(
    ("value", "place"),
    [
        (ATOL, None),  # |m - a| / (atol + rtol * 0) exactly 1: within the tolerance
        (np.nextafter(ATOL, 1.0), LAST_DH),  # just beyond it
        (1.5 * ATOL, LAST_DH),
        (np.nan, LAST_DH),  # NaN differs from every number
    ],
    ids=["atol", "just-above-atol", "1.5-atol", "nan"],
)
def test_a_trace_element_leaves_autograd_beyond_the_tolerance_or_where_it_is_nan(value, place):
    """Autograd's dh at the last step is exactly 0 there (the dropout drops the whole step)."""
    d = diagnose(NetworkSubject(DROPOUT_SPEC, DROPOUT_SEED, wrong=_with_trace_entry(value)))
    assert d.quantity == "0 rnn: dE/dinput" and d.time_step == place


def test_a_fan_out_summed_otherwise_shows_in_the_trace_at_the_last_step():
    """The rnn's output read twice (add(rnn, tanh(rnn))), its two gradients accumulated by overwriting: the rnn's
    backward, itself right, runs on the subject's accumulation and leaves autograd at once."""
    spec = _sequence_spec(rest=[{"type": "tanh"}, {"type": "add", "inputs": [0, 1]}, *HEAD])
    wrong = dataclasses.replace(overrides(), accumulate=lambda total, grad: grad)
    d = diagnose(NetworkSubject(spec, wrong=wrong))
    assert d.quantity == "0 rnn: dE/dinput" and d.time_step == LAST_DH


def test_the_subjects_own_loss_and_layer_forwards_feed_the_trace():
    """A loss forward and an rnn forward whose caches only their own backwards read (each wrapped in a dict): the
    diagnosis runs them, and finds no trace on the rnn's wrapped cache."""

    def loss_forward(pred, target, reduction, **options):
        E, cache = F.mse_forward(pred, target, reduction)
        return E, {"mse": cache}

    def rnn_forward(x, p, o):
        out, cache = manual_net.FORWARD["rnn"](x, p, o)
        return out, {"rnn": cache}

    backward = scaled_at(_sequence_spec(), 0)[0]
    wrong = overrides(
        {
            "loss": lambda dout, kept: F.mse_backward(dout, kept["mse"]),
            0: lambda dout, kept: backward(dout, kept["rnn"]),
        },
        {"loss": loss_forward, 0: rnn_forward},
    )
    d = diagnose(NetworkSubject(_sequence_spec(), wrong=wrong))
    assert d.quantity == "0 rnn: dE/dinput" and d.time_step is None


def test_the_time_step_text_counts_from_the_end_as_the_gradient_flows():
    last = {"layer": 1, "type": "lstm", "stack_layer": 0, "step": 6, "steps": 7, "from_end": 0, "quantity": "dc"}
    assert time_step_text(last) == (
        "in time: layer 0 of the lstm's stack, step t = 6 of 7 (the last step, counted from the end as the gradient "
        "flows): dc is the first per-step gradient where manual leaves autograd"
    )
    earlier = last | {"type": "gru", "stack_layer": 1, "step": 4, "steps": 7, "from_end": 2, "quantity": "dh"}
    assert time_step_text(earlier) == (
        "in time: layer 1 of the gru's stack, step t = 4 of 7 (2 before the last, counted from the end as the gradient "
        "flows): dh is the first per-step gradient where manual leaves autograd"
    )


# --- inside an attention layer: the head and the quantity -----------------------------------------------------

ATTENTION_NET = find("attention-scale-forgotten").network  # (T 5, E 4), 2 heads of d = 2, causal
E, D = 4, 2


def _shifted(g, name, columns):
    """g with its `name` moved by 1e-3 on these feature columns (the last axis), and dx moved likewise."""
    value = g[name].copy()
    value[..., columns] += 1e-3
    return g | {name: value, "dx": g["dx"] + 1e-3}


# torch's in_proj layout: qkv's features are q's E, k's E, v's E; head h is features h*d .. (h+1)*d - 1 of each,
# and of merged
ONE_HEAD = [
    ("dqkv", slice(E + D, E + 2 * D), "projections"),  # k's features of head 1
    ("dqkv", slice(D, 2 * D), "projections"),  # q's features of head 1
    ("dqkv", slice(2 * E + D, 2 * E + D + 1), "projections"),  # one of v's features of head 1
    ("dmerged", slice(D, 2 * D), "values"),  # head 1's features
]


@pytest.mark.parametrize(("name", "columns", "part"), ONE_HEAD, ids=["dqkv-k", "dqkv-q", "dqkv-v", "dmerged"])
def test_qkv_and_merged_features_belong_to_their_head(name, columns, part):
    spec = parse_spec(ATTENTION_NET)
    backward = attention_terms_changed(lambda g: _shifted(g, name, columns))
    d = diagnose(NetworkSubject(spec, wrong=overrides({0: backward})))
    assert d.quantity == "0 multihead_attention: dE/dinput"
    assert d.inside == {"quantity": name, "part": part, "heads": [1], "head": 1, "num_heads": 2}


def test_a_wrong_attention_forward_is_localized_among_the_forwards_intermediates():
    """The mask applied after the softmax: the first wrong row is the output, and P is the first forward quantity
    that differs, in every head."""
    d = diagnose_entry(find("attention-mask-after-softmax"))
    assert d.quantity == "0 multihead_attention: output"
    assert d.inside == {"quantity": "P", "part": "softmax", "heads": [0, 1], "head": 0, "num_heads": 2}


# an encoder on the options that are not torch's defaults: its reference must read each
ENCODER_NET = {
    "input_shape": [5, 4],
    "batch_size": 3,
    "layers": [
        {
            "type": "transformer_encoder",
            "num_heads": 2,
            "dim_feedforward": 8,
            "activation": "relu",
            "layer_norm_eps": 0.1,
            "causal": True,
        },
        *HEAD,
    ],
    "loss": {"type": "mse"},
}


def _second_head_dp_doubled(g):
    dP = g["self_attn"]["dP"].copy()
    dP[:, 1] *= 2
    return g | {"self_attn": g["self_attn"] | {"dP": dP}, "dx": g["dx"] + 1e-3}


ENCODER_INSIDE = [
    (
        lambda g: g | {"dx": g["dx"] * 1.01},
        {"quantity": "dx", "part": "norm1", "heads": None, "head": None, "num_heads": 2},
    ),
    (
        lambda g: g | {"dlinear1_out": g["dlinear1_out"] * 1.01, "dx": g["dx"] * 1.01},
        {"quantity": "dlinear1_out", "part": "feed-forward", "heads": None, "head": None, "num_heads": 2},
    ),
    (_second_head_dp_doubled, {"quantity": "self_attn.dP", "part": "softmax", "heads": [1], "head": 1, "num_heads": 2}),
]


@pytest.mark.parametrize(("change", "inside"), ENCODER_INSIDE, ids=["input", "feed-forward", "attention-head-1"])
def test_an_encoder_backward_is_localized_on_its_own_options(change, inside):
    """relu, layer_norm_eps 0.1 and causal: autograd's intermediates on the defaults (gelu, 1e-5, no mask) would
    differ from the right ones before the changed one. The encoder's own quantities and the input's gradient have
    no heads; its attention's are split by head."""
    d = diagnose(NetworkSubject(parse_spec(ENCODER_NET), wrong=overrides({0: encoder_terms_changed(change)})))
    assert d.quantity == "0 transformer_encoder: dE/dinput" and d.inside == inside


def test_a_wrong_encoder_forward_is_localized_at_the_residual():
    def shifting_h(x, p, o):
        out, cache = manual_net.FORWARD["transformer_encoder"](x, p, o)
        return out + 1e-3, cache | {"h": cache["h"] + 1e-3}

    d = diagnose(NetworkSubject(parse_spec(ENCODER_NET), wrong=overrides(forward={0: shifting_h})))
    assert d.quantity == "0 transformer_encoder: output"
    assert d.inside == {"quantity": "h", "part": "residual", "heads": None, "head": None, "num_heads": 2}


def test_the_inside_text_names_the_heads_or_says_there_are_none():
    without = {"quantity": "dlinear1_out", "part": "feed-forward", "heads": None, "head": None, "num_heads": 2}
    assert inside_text(without) == (
        "inside the attention: dlinear1_out (feed-forward) is the first of its "
        "intermediates to leave autograd, in a quantity without heads"
    )
    one = {"quantity": "self_attn.dP", "part": "softmax", "heads": [1, 2], "head": 1, "num_heads": 3}
    assert inside_text(one) == (
        "inside the attention: self_attn.dP (softmax) is the first of its intermediates to "
        "leave autograd, in head 1 of 3 (heads 1, 2 differ)"
    )
