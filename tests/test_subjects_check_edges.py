"""Edges of the subjects (crosscheck.subjects) and of the checker's chaos rule (crosscheck.check) that other tests leave
open: the chaos rule's growth bound at exactly GROWTH-fold, read against the first loss and in float64 (a float32
product would round the bound onto the loss it judges); wobble nudges by the subject's seed; entry_subject keeps a
seed entry's memory budget and a network entry's dtype; a slides' equation that cannot use a replaced factor says
which and why; a described network's float64 witness and training rows follow the subject's own step count; the
lockstep and check() take each step's dropout masks when they judge a gradient by manual's own forward values; the
lockstep judges a float32 gradient past the table by the float64 witness at that step's masks."""

import numpy as np
import pytest

from crosscheck.catalogue import catalogue
from crosscheck.check import DECIDED, chaos, check, entry_subject, overrides
from crosscheck.compare import compare
from crosscheck.subjects import NetworkSubject, SeedCase, SeedSubject, wobble
from crosscheck.tolerances import nudge
from manual import network as manual_network
from netdesc import InputError
from netdesc.description import parse_spec
from netdesc.inputs import dropout_masks
from reference import network as reference_net

LOCKSTEP = ("steps 1..{k} agree one at a time from manual's own parameters (the loss, every gradient and running "
            "statistic at them, and torch's sgd stepping with manual's gradients): the runs part by rounding the "
            "optimizer amplifies")
DECIDED_AT = ("; at steps {steps} a max or a kink decided the other way under rounding: every layer's output agrees, "
              "and every gradient agrees with autograd's taken at manual's own forward values")


# --- the chaos rule's growth bound ---------------------------------------------------------------------------------

# A linear map without bias under a summed squared error, by SGD at lr 0.5, with orthogonal samples: each residual
# r_n = W.x_n - t_n moves alone, r_n <- r_n (1 - 2 lr |x_n|^2) = r_n (1 - |x_n|^2). |x_1|^2 = 1, |x_2|^2 = 10^2 + 1
# = 101, |x_3|^2 = 4^2 + 4^2 + 1 = 33: from W = 0 the residuals (3, 1, r) become (0, -100, -32 r) after one step,
# every number exact in binary. E before step 1 is 10 + r^2, before step 2 10000 + 1024 r^2.
GROWS = {"name": "grows", "input_shape": [1, 6], "batch_size": 3,
         "layers": [{"type": "linear", "out_features": 1, "bias": False}],
         "loss": {"type": "mse", "reduction": "sum"}, "optimizer": {"type": "sgd", "lr": 0.5, "steps": 2}}
SAMPLES = [[1, 0, 0, 0, 0, 0], [0, 10, 1, 0, 0, 0], [0, 0, 0, 4, 4, 1]]


def _grows(r, dtype="float64", lr=0.5):
    """The GROWS network from W = 0 with residuals (3, 1, r) (targets -3, -1, -r). W = 0 is its own one-ulp nudge:
    wobble's nudged run is the plain run."""
    kind = np.dtype(dtype).type
    x = np.array(SAMPLES, kind)[:, None]
    target = np.array([[-3], [-1], [-r]], kind)[:, None]
    spec = parse_spec(GROWS | {"optimizer": GROWS["optimizer"] | {"lr": lr}})
    return NetworkSubject(spec, 0, dtype, data=(x, target, {"0.weight": np.zeros((1, 6), kind)}))


def test_a_loss_exactly_growth_fold_is_no_divergence():
    """E goes 10 -> 10000, exactly GROWTH = 1000 times: "grows this many times over" is more than that, and the
    nudged run (W = 0 nudged is W = 0) moves nothing, so the chaos rule has nothing to say."""
    subject = _grows(0.0)
    losses = subject.reference_training(subject.params)[0]
    assert losses.tolist() == [10.0, 10000.0]
    assert chaos(subject) is None


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_loss_one_rounding_past_growth_fold_diverges(dtype):
    """r = 2**-10: E goes 10 + 2**-20 -> 10000 + 2**-10, above 1000 (10 + 2**-20) = 10000 + 0.00095 by 0.00002, and
    far below 1000 times the second loss. In float32 the product 1000 * E0 rounds to 10000 + 2**-10 itself (its
    spacing there is 2**-10): the bound is read in float64."""
    subject = _grows(2.0 ** -10, dtype)
    losses = subject.reference_training(subject.params)[0]
    assert losses.dtype == np.dtype(dtype) and losses.tolist() == [10 + 2.0 ** -20, 10000 + 2.0 ** -10]
    assert np.float32(1000) * np.float32(losses[0]) == np.float32(losses[1])  # why float64: float32 ties them
    assert chaos(subject) == ("autograd's own loss grows from 1.000e+01 to 1.000e+04: a diverging run amplifies "
                              "rounding without bound")


# --- wobble: the subject's seed draws the nudge ----------------------------------------------------------------

SMALL = {"name": "small", "input_shape": [1, 4], "batch_size": 3,
         "layers": [{"type": "linear", "out_features": 8}, {"type": "tanh"}, {"type": "linear", "out_features": 2}],
         "loss": {"type": "mse", "reduction": "sum"}, "optimizer": {"type": "sgd", "lr": 0.1, "steps": 2}}


def test_wobble_nudges_the_parameters_by_the_subjects_seed():
    """wobble: the training rows of autograd's run from the parameters nudged as tolerances.nudge nudges them with
    the subject's seed, against autograd's run from the parameters themselves: the same run every time."""
    spec = parse_spec(SMALL)
    subject = NetworkSubject(spec, 5)
    rows = wobble(subject)
    nudged_losses, nudged_final = reference_net.train(spec, nudge(subject.params, 5, np.float64), subject.x,
                                                      subject.target, 2, subject.masks)
    plain_losses, _ = reference_net.train(spec, subject.params, subject.x, subject.target, 2, subject.masks)
    assert rows[0].name == "loss: E at steps 1..2"
    assert np.array_equal(rows[0].manual, nudged_losses) and np.array_equal(rows[0].autograd, plain_losses)
    assert not np.array_equal(nudged_losses, plain_losses)  # the nudge moved the run: a draw that shows
    final = {row.name: row.manual for row in rows[1:]}
    assert np.array_equal(final["2 linear: weight after 2 steps"], nudged_final["2.weight"])


# --- entry_subject -----------------------------------------------------------------------------------------

def _entry(on_seed):
    return next(e for e in catalogue() if e.on_seed == on_seed)


def test_entry_subject_keeps_a_seed_entrys_memory_budget():
    """The slides' network's largest arrays (SeedCase's default: 8x8 input, 3x3 filter, 1 output, batch 4, 36 hidden
    values): N H W (KW + 1) + N n_hidden (KH KW + 1) + n_hidden n_out (N + 1) = 1024 + 1440 + 180 values, 64 bytes
    each, past a budget of 1 kB."""
    entry = _entry(True)
    case = SeedCase(**entry.case)
    assert (case.input_shape, case.kernel_shape, case.n_out, case.batch) == ((8, 8), (3, 3), 1, 4)
    with pytest.raises(InputError) as raised:
        entry_subject(entry, max_memory=1000)
    assert str(raised.value) == (f"memory: the slides' network {case} needs about {64 * 2644 / 1e3:.3g} kB, more than "
                                 "the budget of 1 kB (--max-memory SIZE sets it)")


def test_entry_subject_makes_a_network_entry_in_the_dtype_asked():
    subject = entry_subject(_entry(False), "float32")
    assert subject.dtype == "float32"
    assert {p.dtype for p in subject.params.values()} == {np.dtype(np.float32)} and subject.x.dtype == np.float32


# --- a slides' equation that cannot use a replaced factor ---------------------------------------------------

def test_an_equation_that_cannot_use_a_replaced_factor_says_which_and_why():
    """dZ2/dH1 replaced by W itself (not transposed): dE/dH1 = dE/dZ2 . dZ2/dH1 is then a (4, 1) by (36, 1) product
    NumPy refuses; its row and the rows below it carry that one line, the first equation's name with NumPy's
    words."""
    subject = SeedSubject(SeedCase(), overrides(backward={"dZ2_dH1": lambda W: W}))
    try:
        np.dot(np.zeros((4, 1)), np.zeros((36, 1)))
    except ValueError as err:
        numpy_says = f"ValueError: {err}"
    expected = f"dE_dH1 could not use the factors before it: {numpy_says}"
    walk = {step.name: step.manual for step in subject.walk()}
    assert [walk[name] for name in ("dE/dH1", "dE/dZ1", "dE/df")] == [expected] * 3
    assert isinstance(walk["dE/dW"], np.ndarray)  # the rows that never read the replaced factor hold numbers


# --- a described network's witness and training rows: the subject's own step count ---------------------------

def test_the_float64_witness_trains_the_subjects_own_steps():
    """steps=3 on a description of 2: the float32 subject's training rows are named for 3 steps, and its witness,
    autograd in float64 on the subject's own values, holds them under those names."""
    spec = parse_spec(SMALL)
    subject = NetworkSubject(spec, 1, "float32", steps=3)
    witnesses = subject.witnesses()
    x, target = subject.x.astype(np.float64), subject.target.astype(np.float64)
    params = {k: v.astype(np.float64) for k, v in subject.params.items()}
    losses, final = reference_net.train(spec, params, x, target, 3, subject.masks)
    assert np.array_equal(witnesses["loss: E at steps 1..3"], losses)
    assert np.array_equal(witnesses["0 linear: bias after 3 steps"], final["0.bias"])
    assert "loss: E at steps 1..2" not in witnesses


def test_every_training_row_counts_the_steps_behind_it():
    """Step.steps: the optimizer steps behind a quantity, the run's for each of its rows, the loss's included (the
    lockstep excuse is looked up by it)."""
    subject = NetworkSubject(parse_spec(SMALL), 0, steps=3)
    rows = subject.training()
    assert rows[0].name == "loss: E at steps 1..3"
    assert [row.steps for row in rows] == [3] * 5  # the loss, then 2 weights and 2 biases


# --- the lockstep under dropout: each step's masks --------------------------------------------------------------

# tests/test_judges.py's TIE network (a max pool tie manual's conv, rounded to 17 bits, routes to the other pixel
# than torch's own forward) with a dropout after the last layer: p = 0.2 from seed 0 keeps both logits at step 1
# and one at step 2, and scales what it keeps by 1 / (1 - p) = 1.25, so a gradient taken without the step's mask
# differs by a quarter or more.
TIE = {"name": "tie-dropout", "input_shape": [2, 2, 2], "batch_size": 1,
       "layers": [{"type": "conv2d", "out_channels": 1, "kernel_size": 1}, {"type": "relu"},
                  {"type": "max_pool2d", "kernel_size": 2}, {"type": "flatten"}, {"type": "linear", "out_features": 2},
                  {"type": "dropout", "p": 0.2}],
       "loss": {"type": "softmax_cross_entropy"}, "optimizer": {"type": "sgd", "lr": 1e-12, "steps": 2}}


def _rounded_conv(x, p, options):
    out, cache = manual_network.FORWARD["conv2d"](x, p, options)
    return (out.view(np.uint32) & np.uint32(0xFFFFFFC0)).view(np.float32), cache  # 17 of 23 mantissa bits


def _tie_subject():
    x = np.zeros((1, 2, 2, 2), np.float32)
    x[0, 0, 0, 0] = x[0, 1, 0, 1] = 1 + 2 ** -7 + 2 ** -9  # pixel (0, 0) reads channel 0, pixel (0, 1) channel 1
    weight = np.array([1, 1 + 2 ** -20], np.float32).reshape(1, 2, 1, 1)
    params = {"0.weight": weight, "0.bias": np.zeros(1, np.float32),
              "4.weight": np.array([[1], [-1]], np.float32), "4.bias": np.zeros(2, np.float32)}
    return NetworkSubject(parse_spec(TIE), 0, "float32", wrong=overrides(forward={0: _rounded_conv}),
                          data=(x, np.array([0]), params))


def test_the_lockstep_judges_a_decided_max_with_each_steps_dropout_masks():
    """At lr 1e-12 no weight moves in float32: the tie, and manual's decision of it, are there at both steps, each
    under its own mask. Autograd taken at manual's own forward values with the same masks agrees at both."""
    spec = parse_spec(TIE)
    masks = [dropout_masks(spec, 1, 0, step)[5].tolist() for step in (0, 1)]
    assert masks == [[[True, True]], [[True, False]]]
    assert _tie_subject().lockstep(2) == LOCKSTEP.format(k=2) + DECIDED_AT.format(steps="1, 2")



def test_check_passes_the_gradients_behind_a_decided_max_by_manuals_own_forward_values_with_the_masks():
    """check() on the same subject: the max pool's tie, decided the other way, moves every gradient in front of it
    (the max pool's, the ReLU's and the conv's input, the conv's weight) but not the conv's bias (one pixel's
    gradient either way); each of the four passes by autograd at manual's own forward values, under the dropout's
    mask, and nothing else needs a second judge."""
    rows = check(_tie_subject(), train=False).rows
    assert all(r.result.passed for r in rows)
    assert [(r.where, r.quantity) for r in rows if r.result.witnessed == DECIDED] == [
        ("2 max_pool2d", "dE/dinput"), ("1 relu", "dE/dinput"), ("0 conv2d", "dE/dinput"), ("0 conv2d", "dE/dweight")]
    assert all(r.result.witnessed in ("", DECIDED) for r in rows)

# A float32 gradient past the table that the float64 witness passes: dE/dW of a bias-free linear after a dropout,
# from W = 0 under a summed squared error, is sum_n -2 t_n * 2 x_n over the samples the mask keeps (p = 0.5 from
# seed 2 keeps samples 0, 1 and 3 at step 1). The targets make those three terms, each about 2000 to 4000, cancel
# to about 2e-4, so float32's rounding of each term is the size of the result; manual's backward here sums them in
# float64 and rounds once, as close to autograd in float64 as float32 allows.
CANCEL = {"name": "cancel", "input_shape": [1, 1], "batch_size": 4,
          "layers": [{"type": "dropout", "p": 0.5}, {"type": "linear", "out_features": 1, "bias": False}],
          "loss": {"type": "mse", "reduction": "sum"}, "optimizer": {"type": "sgd", "lr": 0.1, "steps": 1}}


def _summed_in_float64(dout, cache):
    x, _, _ = cache
    dx, _, _ = manual_network.BACKWARD["linear"](dout, cache)
    dw = dout.astype(np.float64).reshape(-1, 1).T @ x.astype(np.float64).reshape(-1, 1)
    return dx, dw.astype(np.float32), None


def test_the_lockstep_judges_a_float32_gradient_by_the_witness_at_the_steps_masks():
    spec = parse_spec(CANCEL)
    assert dropout_masks(spec, 4, 2, 0)[0].ravel().tolist() == [True, True, False, True]
    x = np.array([1.1, 0.9, 1.3, 0.7], np.float32).reshape(4, 1, 1)
    target = np.array([1000.1, 1000.3, 5.0, -2857.6857], np.float32).reshape(4, 1, 1)
    params = {"1.weight": np.zeros((1, 1), np.float32)}
    subject = NetworkSubject(spec, 2, "float32", wrong=overrides(backward={1: _summed_in_float64}),
                             data=(x, target, params))
    kept = np.array([1.0, 1.0, 0.0, 1.0])
    exact = np.sum(-2 * target.astype(np.float64).ravel() * 2 * x.astype(np.float64).ravel() * kept)
    autograd = reference_net.run(spec, params, x, target, subject.masks(0, 4))["param_grads"]["1.weight"]
    assert abs(exact) < 1e-3
    assert not compare("dE/dweight", np.float32(exact).reshape(1, 1), autograd, "float32").passed  # past the table
    assert subject.lockstep(1) == LOCKSTEP.format(k=1)  # by the witness: no max, no kink decided anything
