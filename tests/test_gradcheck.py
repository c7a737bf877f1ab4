"""torch.autograd.gradcheck as a fourth witness (crosscheck.gradcheck): every registry layer and every layer of
the seed network, wrapped as a torch.autograd.Function, passes it in full and fast mode, in float64; a wrong
backward fails it, so the witness cannot pass vacuously.

gradcheck differentiates the manual forward by finite differences with steps of eps = 1e-6, so an input within
1e-6 of a kink sees a one-sided slope there. The registry's draws are moved away from the kinks first
(`away_from_kinks`): ReLU and LeakyReLU inputs by 0.1 away from 0 (x + 0.1 sign x, 0 counted as positive),
max-pool inputs replaced by their ranks times 0.01, so every window's elements are distinct and 0.01 apart (the
tie cases too: a tie has no derivative; its convention is checked against torch in test_functional.py). The
other layers are smooth at their draws (probabilities in [0.02, 0.98]; labels and targets are not
differentiated). An embedding's padding_idx zeroes its row's gradient by torch's convention, not as a
derivative: gradcheck checks the derivative without it (LayerCase.derivative_options). The two tests at the end
show that gradcheck does fail at the kinks this avoids.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from layer_cases import LAYER_CASES, max_pool2d, relu, ties, with_zeros

from crosscheck.compare import assert_close
from crosscheck.gradcheck import GradcheckError, as_gradients, autograd_function, gradcheck_pair
from manual import functional as M
from manual import kernels, seed_network
from netdesc import InputError

SEEDS = range(3)
MODES = {"full": False, "fast": True}


def away_from_kinks(case, inputs):
    """The case's inputs, moved at least 0.01 away from every kink of its layer (module docstring)."""
    x = inputs[0]
    if case.name in ("relu", "leaky_relu"):
        inputs[0] = np.where(x >= 0, x + 0.1, x - 0.1)
    elif case.name == "max_pool2d":
        ranks = np.argsort(np.argsort(x, axis=None, kind="stable"), kind="stable")
        inputs[0] = ranks.reshape(x.shape) * 0.01
    return inputs


def _differentiable(case, n):
    return [case.wants_grad(i) for i in range(n)]


@pytest.mark.parametrize(
    ("case", "seed", "mode"),
    [pytest.param(c, s, m, id=f"{c}-seed{s}-{m}") for c in LAYER_CASES for s in SEEDS for m in MODES],
)
def test_layer_passes_gradcheck(case, seed, mode):
    inputs = away_from_kinks(case, case.inputs(np.random.default_rng(seed), "float64"))
    assert gradcheck_pair(case.forward, case.backward, inputs, kwargs=case.derivative_options,
                          differentiable=_differentiable(case, len(inputs)), fast_mode=MODES[mode])


def _seed_network(reduction):
    """The slides' network as one layer E(X, Y, f, W, b): manual.seed_network's forward and backward."""
    def forward(X, Y, f, W, b):
        params = {"f": f, "W": W, "b": b}
        return seed_network.forward(X, params, Y, reduction)["E"], (X, Y, params)

    def backward(dout, cache):
        X, Y, params = cache
        g = seed_network.backward(X, Y, params, seed_network.forward(X, params, Y, reduction), reduction)
        return None, None, dout * g["dE_df"], dout * g["dE_dW"], dout * g["dE_db"]
    return forward, backward


def _conv(X, f):
    return kernels.conv(X, f), X


def _conv_backward(dZ1, X):
    """conv's filter gradient alone: the seed network never needs dE/dX."""
    return None, kernels.filter_gradient(X, dZ1)


def _sigmoid(z):
    s = kernels.sigmoid(z)
    return s, s


def _sigmoid_backward(dout, s):
    return (dout * seed_network.dO_dZ2(s),)


FILTER_ONLY = [False, True]
NETWORK = [False, False, True, True, True]
# The seed network's operations in the slides' layouts, and the network whole:
# (name, forward, backward, input shapes, differentiable).
SEED_LAYERS = [
    ("conv", _conv, _conv_backward, [(2, 6, 5), (3, 2)], FILTER_ONLY),
    ("conv-1x1-kernel", _conv, _conv_backward, [(1, 4, 4), (1, 1)], FILTER_ONLY),
    ("conv-kernel-as-input", _conv, _conv_backward, [(3, 4, 7), (4, 7)], FILTER_ONLY),
    ("sigmoid", _sigmoid, _sigmoid_backward, [(3, 4, 5)], None),
    ("network-sum", *_seed_network("sum"), [(2, 5, 4), (2, 3), (2, 2), (12, 3), (3,)], NETWORK),
    ("network-mean", *_seed_network("mean"), [(3, 4, 4), (3, 1), (3, 3), (4, 1), (1,)], NETWORK),
    ("network-batch1-out1", *_seed_network("sum"), [(1, 3, 3), (1, 1), (3, 3), (1, 1), (1,)], NETWORK),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("layer", SEED_LAYERS, ids=lambda c: c[0])
def test_seed_layer_passes_gradcheck(layer, seed, mode):
    _, forward, backward, shapes, differentiable = layer
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(s) for s in shapes]
    assert gradcheck_pair(forward, backward, inputs, differentiable=differentiable, fast_mode=MODES[mode])


# --- a wrong backward fails --------------------------------------------------------------------------

def _scaled(backward, index, factor=1.01):
    def wrong(dout, cache):
        grads = list(backward(dout, cache))
        grads[index] = grads[index] * factor
        return tuple(grads)

    return wrong


def _transposed_dw(dout, cache):
    dx, dw, db = M.linear_backward(dout, cache)
    return dx, dw.T, db


def _conv_dw_transposed(dout, cache):
    """The filter gradient with its two spatial axes swapped, as an index mix-up would give."""
    dx, dw, db = M.conv2d_backward(dout, cache)
    return dx, dw.transpose(0, 1, 3, 2), db


def _forgets_dout(dout, cache):
    """tanh's local derivative alone, as if dout were ones."""
    return M.tanh_backward(np.ones_like(dout), cache)


def _no_dw(dout, cache):
    dx, _, db = M.linear_backward(dout, cache)
    return dx, None, db


def _draw(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


WRONG = [
    ("linear-dw-scaled-1.01", M.linear_forward, _scaled(M.linear_backward, 1), ((4, 5), (3, 5), (3,)), {}),
    ("linear-dx-scaled-1.01", M.linear_forward, _scaled(M.linear_backward, 0), ((4, 5), (3, 5), (3,)), {}),
    ("linear-dw-transposed", M.linear_forward, _transposed_dw, ((4, 3), (3, 3), (3,)), {}),
    ("linear-dw-missing", M.linear_forward, _no_dw, ((4, 3), (2, 3), (2,)), {}),
    ("conv-dw-scaled-1.01", M.conv2d_forward, _scaled(M.conv2d_backward, 1), ((2, 2, 5, 5), (3, 2, 3, 3), (3,)),
     {"padding": 1}),
    ("conv-dw-transposed", M.conv2d_forward, _conv_dw_transposed, ((2, 2, 5, 5), (3, 2, 3, 3), (3,)), {}),
    ("conv-db-scaled-1.01", M.conv2d_forward, _scaled(M.conv2d_backward, 2), ((1, 1, 4, 4), (1, 1, 2, 2), (1,)), {}),
    ("tanh-forgets-dout", M.tanh_forward, _forgets_dout, ((3, 4),), {}),
    ("seed-conv-df-scaled-1.01", _conv, _scaled(_conv_backward, 1), ((2, 6, 5), (3, 2)), {}),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("forward", "backward", "shapes", "kwargs"), [pytest.param(*w[1:], id=w[0]) for w in WRONG])
def test_wrong_backward_fails_gradcheck(forward, backward, shapes, kwargs, mode):
    inputs = _draw(*shapes)
    assert gradcheck_pair(forward, backward, inputs, kwargs=kwargs, fast_mode=MODES[mode], raise_exception=False) \
        is False
    with pytest.raises(GradcheckError, match="Jacobian mismatch"):
        gradcheck_pair(forward, backward, inputs, kwargs=kwargs, fast_mode=MODES[mode])


@pytest.mark.parametrize("mode", MODES)
def test_wrong_gradient_shape_fails_gradcheck_instead_of_crashing(mode):
    inputs = _draw((4, 5), (3, 5), (3,))
    with pytest.raises(GradcheckError, match=r"gradient 1 has shape \(5, 3\), its input \(3, 5\)"):
        gradcheck_pair(M.linear_forward, _transposed_dw, inputs, fast_mode=MODES[mode])
    assert gradcheck_pair(M.linear_forward, _transposed_dw, inputs, fast_mode=MODES[mode], raise_exception=False) \
        is False


def test_gradcheck_fails_at_exact_relu_zeros():
    """Why away_from_kinks exists: at x = 0 finite differences give slope 1/2, the convention 0."""
    case = relu((5, 6), draw=(with_zeros,), tag="zeros")
    inputs = case.inputs(np.random.default_rng(0), "float64")
    assert np.any(inputs[0] == 0)
    assert not gradcheck_pair(case.forward, case.backward, inputs, raise_exception=False)
    assert gradcheck_pair(case.forward, case.backward, away_from_kinks(case, inputs))


def test_gradcheck_fails_at_max_pool_ties():
    case = max_pool2d((2, 2, 6, 6), kernel_size=3, stride=1, padding=1, draw=(ties,), tag="ties")
    inputs = case.inputs(np.random.default_rng(0), "float64")
    assert not gradcheck_pair(case.forward, case.backward, inputs, kwargs=case.options, raise_exception=False)
    assert gradcheck_pair(case.forward, case.backward, away_from_kinks(case, inputs), kwargs=case.options)


# --- the wrapper itself ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(3), ids=lambda s: f"seed{s}")
def test_autograd_function_gives_the_manual_gradients(seed):
    """The wrapped pair inside autograd: torch.autograd.grad returns what the manual backward computes, which
    matches torch's conv2d; None (no bias) passes through, and a data input gets no gradient."""
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 2))
    conv = autograd_function(M.conv2d_forward, M.conv2d_backward, {"stride": 2, "padding": 1})
    tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    out = conv(tx, tw, None)
    dout = torch.from_numpy(rng.standard_normal(tuple(out.shape)))
    dx, dw = torch.autograd.grad(out, (tx, tw), dout)
    ref_x, ref_w = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    ref = F.conv2d(ref_x, ref_w, None, stride=2, padding=1)
    ref_dx, ref_dw = torch.autograd.grad(ref, (ref_x, ref_w), dout)
    assert_close(out.detach().numpy(), ref.detach().numpy(), "out", f"seed{seed}")
    assert_close(dx.numpy(), ref_dx.numpy(), "dx", f"seed{seed}")
    assert_close(dw.numpy(), ref_dw.numpy(), "dw", f"seed{seed}")
    # x as data: the manual backward still computes dx, the Function hands autograd None for it.
    out = conv(torch.from_numpy(x), tw, None)
    (dw_only,) = torch.autograd.grad(out, (tw,), dout)
    assert_close(dw_only.numpy(), ref_dw.numpy(), "dw", f"seed{seed}")


def test_the_wrapper_leaves_the_callers_arrays_alone():
    # The manual side gets private copies: a backward that writes into its dout leaves torch's untouched.
    x = np.array([[-1.0, 2.0, 3.0]])

    def scribbling_backward(dout, cache):
        dx = M.relu_backward(dout, cache)
        dout[...] = 1e6
        return dx

    tx = torch.from_numpy(x.copy()).requires_grad_()
    dout = torch.tensor([[5.0, 7.0, 11.0]], dtype=torch.float64)
    (dx,) = torch.autograd.grad(autograd_function(M.relu_forward, scribbling_backward)(tx), tx, dout)
    np.testing.assert_array_equal(dx.numpy(), [[0.0, 7.0, 11.0]])
    np.testing.assert_array_equal(dout.numpy(), [[5.0, 7.0, 11.0]])


@pytest.mark.parametrize(
    ("grads", "n", "message"),
    [
        ({"dx": 1}, 1, "returned dict, needs a tuple with one gradient per forward input"),
        ((np.ones(2),), 2, "returned 1 gradient"),
        ((np.ones(2), np.ones(2)), 1, "returned 2 gradient"),
    ],
    ids=["not-a-tuple", "too-few", "extra-not-none"],
)
def test_as_gradients_rejects_the_wrong_count(grads, n, message):
    with pytest.raises(InputError, match=f"^backward: {message}"):
        as_gradients(grads, n)


def test_as_gradients_accepts_a_bare_array_and_trailing_nones():
    g = np.ones(3)
    assert as_gradients(g, 1) == (g,)
    assert as_gradients([g, g, None], 2) == (g, g)


def test_gradcheck_pair_needs_float64_for_differentiable_inputs():
    x = np.ones((2, 3), dtype=np.float32)
    with pytest.raises(InputError, match=r"inputs\[0\]: got dtype float32, needs float64"):
        gradcheck_pair(M.tanh_forward, M.tanh_backward, [x])


def test_gradcheck_pair_needs_one_differentiable_flag_per_input():
    x = np.ones((2, 3))
    for flags in ([True], [True, False, True]):
        with pytest.raises(InputError) as err:
            gradcheck_pair(M.linear_forward, M.linear_backward, [x, np.ones((4, 3))], differentiable=flags)
        assert str(err.value) == f"differentiable: got {len(flags)} entries, needs one per input (2)"


def test_gradcheck_pair_checks_every_element_of_the_jacobian_by_default():
    # fast mode compares one random projection of the Jacobian; the default compares it whole, so its failure
    # shows the whole numerical and analytical Jacobians (3 x 3 for tanh of three elements)
    x = np.array([0.1, 0.2, 0.3])
    with pytest.raises(GradcheckError) as err:
        gradcheck_pair(M.tanh_forward, _scaled(M.tanh_backward, 0), [x])
    assert "fast mode" not in str(err.value)
    assert str(err.value).startswith("Jacobian mismatch for output 0 with respect to input 0,\nnumerical:tensor([[")
    with pytest.raises(GradcheckError, match="fast mode"):
        gradcheck_pair(M.tanh_forward, _scaled(M.tanh_backward, 0), [x], fast_mode=True)


def test_gradcheck_pair_skips_integer_labels_by_default():
    rng = np.random.default_rng(0)
    logits, labels = rng.standard_normal((4, 5)), rng.integers(0, 5, 4)
    assert gradcheck_pair(M.softmax_cross_entropy_forward, M.softmax_cross_entropy_backward, [logits, labels])
    wrong = _scaled(M.softmax_cross_entropy_backward, 0)
    assert not gradcheck_pair(M.softmax_cross_entropy_forward, wrong, [logits, labels], raise_exception=False)
