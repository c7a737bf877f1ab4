"""Each wrong derivation of the catalogue computes exactly the mistake its description names, and nothing else: its
result is pinned to that mistake computed here independently (from torch's autograd with the one change applied,
or by a formula written out in NumPy), so a wrong derivation that is wrong in some other way fails here even where
the diagnosis would still flag and classify it the same."""

import numpy as np
import pytest
import torch

from crosscheck.catalogue import attention as wrong_attention
from crosscheck.catalogue import find
from crosscheck.catalogue import layers as wrong_layers
from crosscheck.catalogue import seed as wrong_seed
from manual import attention as A
from manual import functional as F
from netdesc.description import parse_spec
from netdesc.inputs import random_batch


def _t(a):
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def _close(mine, theirs):
    assert mine is not None and np.asarray(mine).shape == np.asarray(theirs).shape
    np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)


# --- the slides' network: scaled by exactly 1 + 1e-6 -----------------------------------------------------------

def test_scaled_dE_dW_is_the_true_gradient_times_1_plus_1e_minus_6():
    """dE/dW = H1^T . dE/dZ2 (Z2 = H1 W), from torch, times 1 + 1e-6: not divided by it, not times 1 - 1e-6."""
    rng = np.random.default_rng(1)
    H1, G = rng.standard_normal((3, 4)), rng.standard_normal((3, 2))
    W = _t(rng.standard_normal((4, 2)))
    (torch.from_numpy(H1) @ W * torch.from_numpy(G)).sum().backward()
    wrong = wrong_seed._dE_dW_scaled(G, H1)
    np.testing.assert_allclose(wrong / W.grad.numpy(), 1 + 1e-6, rtol=1e-12)


def test_scaled_dE_df_is_the_true_filter_gradient_times_1_plus_1e_minus_6():
    """dE/df of Z1 = X cross-correlated with f (torch's conv2d), times 1 + 1e-6."""
    rng = np.random.default_rng(2)
    X, G = rng.standard_normal((2, 5, 5)), rng.standard_normal((2, 3, 3))
    f = _t(rng.standard_normal((3, 3)))
    Z1 = torch.nn.functional.conv2d(torch.from_numpy(X)[:, None], f[None, None])[:, 0]
    (Z1 * torch.from_numpy(G)).sum().backward()
    wrong = wrong_seed._dE_df_scaled(X, G)
    np.testing.assert_allclose(wrong / f.grad.numpy(), 1 + 1e-6, rtol=1e-12)


# --- optimizers, the scheduler, the running statistics: the update written out --------------------------------

def _two_steps(step, grads, **settings):
    """Two steps of `step` from a fresh state on two parameters -> (params, state) after each."""
    params = {"w": np.array([[0.5, -1.5], [2.0, 0.25]]), "b": np.array([-0.75, 1.0])}
    one = step(params, grads[0], {}, **settings)
    two = step(one[0], grads[1], one[1], **settings)
    return params, one, two


GRADS = [{"w": np.array([[0.3, -0.2], [0.1, 0.4]]), "b": np.array([0.05, -0.6])},
         {"w": np.array([[-0.1, 0.7], [0.2, -0.3]]), "b": np.array([0.4, 0.2])}]


def test_adam_without_bias_correction_is_the_raw_moments_update_with_l2_decay():
    """m, v as Adam keeps them (from 0, the decay added to the gradient), p - lr m / (sqrt(v) + eps) with no
    1 - beta^t: two steps on two parameters, the state carried by name from the first to the second."""
    lr, (b1, b2), eps, wd = 0.01, (0.9, 0.999), 1e-8, 0.1
    params, one, two = _two_steps(wrong_layers._adam_no_bias_correction, GRADS, lr=lr, betas=(b1, b2), eps=eps,
                                  weight_decay=wd, amsgrad=False)
    for key, p in params.items():
        g1 = GRADS[0][key] + wd * p
        m1, v1 = (1 - b1) * g1, (1 - b2) * g1 ** 2
        p1 = p - lr * m1 / (np.sqrt(v1) + eps)
        g2 = GRADS[1][key] + wd * p1
        m2, v2 = b1 * m1 + (1 - b1) * g2, b2 * v1 + (1 - b2) * g2 ** 2
        p2 = p1 - lr * m2 / (np.sqrt(v2) + eps)
        for (new, state), (want_p, step, m, v) in [(one, (p1, 1, m1, v1)), (two, (p2, 2, m2, v2))]:
            _close(new[key], want_p)
            assert set(state[key]) == {"step", "exp_avg", "exp_avg_sq"} and state[key]["step"] == step
            _close(state[key]["exp_avg"], m)
            _close(state[key]["exp_avg_sq"], v)
            assert state[key]["exp_avg"].dtype == state[key]["exp_avg_sq"].dtype == np.float64
    # step 1 moves (1 - beta1) / sqrt(1 - beta2) = 3.16 times as far as the bias-corrected lr * g / (|g| + eps)
    g1 = GRADS[0]["w"] + wd * params["w"]
    ratio = (one[0]["w"] - params["w"]) / (-lr * g1 / (np.abs(g1) + eps))
    np.testing.assert_allclose(ratio, (1 - b1) / np.sqrt(1 - b2), rtol=1e-4)


def test_rmsprop_with_eps_inside_the_root_is_g_over_sqrt_v_plus_eps():
    """v = alpha v + (1 - alpha) g^2 (from 0, the decay added to the gradient), p - lr g / sqrt(v + eps): two steps,
    the state carried by name."""
    lr, alpha, eps, wd = 0.01, 0.99, 0.01, 0.1
    params, one, two = _two_steps(wrong_layers._rmsprop_eps_inside_sqrt, GRADS, lr=lr, alpha=alpha, eps=eps,
                                  weight_decay=wd, momentum=0.0, centered=False)
    for key, p in params.items():
        g1 = GRADS[0][key] + wd * p
        v1 = (1 - alpha) * g1 ** 2
        p1 = p - lr * g1 / np.sqrt(v1 + eps)
        g2 = GRADS[1][key] + wd * p1
        v2 = alpha * v1 + (1 - alpha) * g2 ** 2
        p2 = p1 - lr * g2 / np.sqrt(v2 + eps)
        for (new, state), (want_p, step, v) in [(one, (p1, 1, v1)), (two, (p2, 2, v2))]:
            _close(new[key], want_p)
            assert set(state[key]) == {"step", "square_avg"} and state[key]["step"] == step
            _close(state[key]["square_avg"], v)
            assert state[key]["square_avg"].dtype == np.float64


def test_the_early_scheduler_runs_each_epoch_at_the_next_epochs_rate_with_steplrs_default_gamma():
    """StepLR(step_size 2) at 1.0: epochs 0, 1, 2, 3 run at 1, 1, gamma, gamma; stepped early, at the rate one
    epoch later. Without gamma, StepLR's default 0.1."""
    assert [wrong_layers._step_lr_stepped_early(1.0, e, 2, 0.5) for e in range(4)] == [1.0, 0.5, 0.5, 0.25]
    assert wrong_layers._step_lr_stepped_early(1.0, 1, 2) == pytest.approx(0.1)  # torch's StepLR(gamma=0.1)


def test_the_biased_running_variance_is_torchs_update_with_the_batch_variance_divided_by_m():
    """mean as torch's buffer update; var = (1 - momentum) old + momentum * x.var() over (N, H, W), divided by M."""
    rng = np.random.default_rng(3)
    x, rm, rv = rng.standard_normal((4, 3, 2, 2)), rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    bn = torch.nn.BatchNorm2d(3, momentum=0.3).double()
    bn.running_mean.copy_(torch.from_numpy(rm))
    bn.running_var.copy_(torch.from_numpy(rv))
    bn(torch.from_numpy(x))
    mean, var = wrong_layers._biased_running_var(x, rm, rv, 0.3)
    _close(mean, bn.running_mean.numpy())
    M = 4 * 2 * 2
    biased = x.transpose(1, 0, 2, 3).reshape(3, -1).var(axis=1)
    _close(var, 0.7 * rv + 0.3 * biased)
    _close(var - bn.running_var.numpy(), 0.3 * biased * (1 - M / (M - 1)))  # torch's: the unbiased one


# --- the input drawers -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "centre"), [("relu-ge-instead-of-gt", (2, 3)), ("max-pool-last-tie", (3, 4))])
def test_the_black_border_keeps_exactly_the_centre_2x2_of_the_seeds_batch(name, centre):
    """6x6 images keep rows and columns 2, 3; 8x8 ones 3, 4; every other pixel exactly 0; the rest the seed's own
    random batch, target included, in the dtype asked for."""
    entry = find(name)
    spec = parse_spec(entry.network, name)
    for seed in (0, 5):
        x, target = entry.inputs(spec, np.float32, seed)
        x0, target0 = random_batch(spec, np.float32, seed)
        keep = np.zeros(x.shape, bool)
        keep[:, :, centre[0]:centre[1] + 1, centre[0]:centre[1] + 1] = True
        assert x.dtype == np.float32 and x.shape == x0.shape
        np.testing.assert_array_equal(x[keep], x0[keep])
        assert np.all(x0[keep] != 0) and np.all(x[~keep] == 0)
        np.testing.assert_array_equal(target, target0)


def test_the_wide_batch_is_the_seeds_random_batch_times_3():
    entry = find("gelu-tanh-for-exact")
    spec = parse_spec(entry.network, entry.name)
    for seed in (0, 4):
        x, target = wrong_layers._wide(spec, np.float32, seed)
        x0, target0 = random_batch(spec, np.float32, seed)
        assert x.dtype == np.float32
        np.testing.assert_array_equal(x, (3 * x0).astype(np.float32))
        np.testing.assert_array_equal(target, target0)


# --- pooling and convolution: the window's gradient by a loop over the windows --------------------------------

# ties in every window (small integers), and windows that reach into the padding
TIES = np.array([[[[1, 3, 3, 0, 2], [3, 0, 1, 3, 2], [2, 2, 0, 1, 1], [0, 3, 1, 3, 0], [1, 1, 2, 0, 3]]]], float)
TIES = np.concatenate([TIES, TIES[:, :, ::-1]], axis=1)  # (1, 2, 5, 5)
POOL = {"kernel_size": (3, 3), "stride": (2, 2), "padding": (1, 1)}


def _pool_loop(x, dout, pick, assign):
    """Each window of POOL (padded with -inf) sends dout to the element `pick` chooses among its maxima (row-major
    order); `assign`: a window's one-hot written over its whole window (=), else added (+=)."""
    (KH, KW), (sh, sw), (ph, pw) = POOL["kernel_size"], POOL["stride"], POOL["padding"]
    N, C, H, W = x.shape
    xp = np.full((N, C, H + 2 * ph, W + 2 * pw), -np.inf)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    dxp = np.zeros_like(xp)
    for n, c, i, j in np.ndindex(*dout.shape):
        window = xp[n, c, i * sh:i * sh + KH, j * sw:j * sw + KW]
        at = pick(list(zip(*np.nonzero(window == window.max()), strict=True)))
        onehot = np.zeros((KH, KW))
        onehot[at] = dout[n, c, i, j]
        if assign:
            dxp[n, c, i * sh:i * sh + KH, j * sw:j * sw + KW] = onehot
        else:
            dxp[n, c, i * sh:i * sh + KH, j * sw:j * sw + KW] += onehot
    return dxp[:, :, ph:ph + H, pw:pw + W]


def _pool_dout():
    return np.random.default_rng(4).standard_normal((1, 2, 3, 3))


def test_the_last_tie_goes_to_the_last_maximum_of_each_padded_window():
    out, cache = wrong_layers._max_pool_forward(TIES, {}, POOL)
    (dx,) = wrong_layers._max_pool_last_tie(_pool_dout(), cache)
    _close(dx, _pool_loop(TIES, _pool_dout(), lambda maxima: maxima[-1], assign=False))
    x = _t(TIES)  # torch's: the first maximum, as the loop picks it with maxima[0]
    torch.nn.functional.max_pool2d(x, 3, 2, 1).backward(torch.from_numpy(_pool_dout()))
    _close(_pool_loop(TIES, _pool_dout(), lambda maxima: maxima[0], assign=False), x.grad.numpy())
    assert not np.allclose(dx, x.grad.numpy())


def test_the_assigned_max_pool_keeps_the_last_windows_one_hot_on_a_shared_padded_pixel():
    out, cache = F.max_pool2d_forward(TIES, (3, 3), (2, 2), (1, 1))
    (dx,) = wrong_layers._max_pool_window_assigned(_pool_dout(), cache)
    _close(dx, _pool_loop(TIES, _pool_dout(), lambda maxima: maxima[0], assign=True))


def test_the_groups_summed_dw_is_torchs_dw_summed_over_the_groups_given_to_each():
    """6 channels in 2 groups of 3, 4 filters in 2 blocks of 2: each block's dw the sum of both blocks' (torch's)."""
    rng = np.random.default_rng(5)
    x, w, b = _t(rng.standard_normal((2, 6, 4, 4))), _t(rng.standard_normal((4, 3, 3, 3))), _t(rng.standard_normal(4))
    dout = rng.standard_normal((2, 4, 4, 4))
    torch.nn.functional.conv2d(x, w, b, padding=1, groups=2).backward(torch.from_numpy(dout))
    _, cache = F.conv2d_forward(x.detach().numpy(), w.detach().numpy(), b.detach().numpy(), 1, 1, 1, groups=2)
    dx, dw, db = wrong_layers._grouped_dw_summed(dout, cache)
    summed = w.grad.numpy()[:2] + w.grad.numpy()[2:]
    _close(dw, np.concatenate([summed, summed]))
    _close(dx, x.grad.numpy())
    _close(db, b.grad.numpy())


# --- normalization: torch's autograd of the wrong forward, or torch's gradient less the one path --------------

def test_layer_norm_without_the_mean_path_is_torchs_dx_plus_mean_dx_hat_over_std():
    """Over each step's features of (N, T, F): torch's dx = (dx_hat - mean(dx_hat) - x_hat mean(dx_hat x_hat)) / std
    with the -mean(dx_hat) / std put back; dgamma and dbeta torch's."""
    rng = np.random.default_rng(6)
    x, dout = rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 4, 5))
    gamma, beta = rng.uniform(0.5, 1.5, 5), rng.uniform(-0.5, 0.5, 5)
    xt, gt, bt = _t(x), _t(gamma), _t(beta)
    torch.nn.functional.layer_norm(xt, (5,), gt, bt, 1e-5).backward(torch.from_numpy(dout))
    _, cache = F.layer_norm_forward(x, gamma, beta, normalized_shape=(5,), eps=1e-5)
    dx, dgamma, dbeta = wrong_layers._layer_norm_mean_path_left_out(dout, cache)
    std = np.sqrt(x.var(axis=-1, keepdims=True) + 1e-5)
    _close(dx, xt.grad.numpy() + (dout * gamma).mean(axis=-1, keepdims=True) / std)
    _close(dgamma, gt.grad.numpy())
    _close(dbeta, bt.grad.numpy())


def _autograd(forward, *arrays, dout):
    """forward's output and the gradients of every array, torch's autograd of it at dout."""
    ts = [_t(a) for a in arrays]
    out = forward(*ts)
    out.backward(torch.from_numpy(dout))
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


def test_layer_norm_over_the_batch_axis_is_autograd_of_a_batch_norm_over_the_features():
    rng = np.random.default_rng(7)
    x, dout = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    gamma, beta = rng.uniform(0.5, 1.5, 5), rng.uniform(-0.5, 0.5, 5)

    def over_batch(x, g, b):
        mean, var = x.mean(0), x.var(0, unbiased=False)
        return (x - mean) / torch.sqrt(var + 1e-5) * g + b
    out_t, grads_t = _autograd(over_batch, x, gamma, beta, dout=dout)
    entry = find("layernorm-wrong-axes")
    out, cache = entry.forward[2](x, {"weight": gamma, "bias": beta}, {"normalized_shape": (5,), "eps": 1e-5})
    _close(out, out_t)
    for mine, theirs in zip(entry.backward[2](dout, cache), grads_t, strict=True):
        _close(mine, theirs)


def test_group_norm_over_interleaved_channels_is_autograd_of_its_own_forward():
    """Group g of 2 holds channels g, g + 2 (x.reshape(N, C/G, G, -1), normalized over axes 1 and 3)."""
    rng = np.random.default_rng(8)
    x, dout = rng.standard_normal((2, 4, 3, 3)), rng.standard_normal((2, 4, 3, 3))
    gamma, beta = rng.uniform(0.5, 1.5, 4), rng.uniform(-0.5, 0.5, 4)

    def interleaved(x, g, b):
        xr = x.reshape(2, 2, 2, -1)
        mean, var = xr.mean((1, 3), keepdim=True), xr.var((1, 3), unbiased=False, keepdim=True)
        return ((xr - mean) / torch.sqrt(var + 1e-5)).reshape(x.shape) * g[:, None, None] + b[:, None, None]
    out_t, grads_t = _autograd(interleaved, x, gamma, beta, dout=dout)
    entry = find("groupnorm-wrong-axes")
    out, cache = entry.forward[1](x, {"weight": gamma, "bias": beta}, {"num_groups": 2, "eps": 1e-5})
    _close(out, out_t)
    for mine, theirs in zip(entry.backward[1](dout, cache), grads_t, strict=True):
        _close(mine, theirs)
    channel_groups = interleaved(torch.from_numpy(np.arange(4.0)[None, :, None, None] * np.ones((2, 4, 3, 3))),
                                 torch.ones(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64))
    assert np.allclose(channel_groups[0, :, 0, 0].numpy(), [-1, -1, 1, 1], atol=1e-4)  # {0, 2} and {1, 3}


# --- attention: the layer's backward put together from its heads' terms, and the mask after the softmax --------

N_, T_, E_, H_ = 2, 5, 4, 2


def _attention_autograd(mask_after, seed=9, probabilities=None):
    """Causal self-attention in torch, its mask applied to the scores (-inf before the softmax) or, `mask_after`,
    to the probabilities (softmax over every key, then 0 above the diagonal), or probabilities(scores, later) in
    place of both -> (arrays, dout, out, cache of torch's intermediates with their gradients kept)."""
    rng = np.random.default_rng(seed)
    arrays = {"x": rng.standard_normal((N_, T_, E_)), "in_proj_weight": rng.standard_normal((3 * E_, E_)) / 2,
              "in_proj_bias": rng.standard_normal(3 * E_), "out_proj.weight": rng.standard_normal((E_, E_)) / 2,
              "out_proj.bias": rng.standard_normal(E_)}
    dout = rng.standard_normal((N_, T_, E_))
    t = {k: _t(a) for k, a in arrays.items()}
    qkv = t["x"] @ t["in_proj_weight"].T + t["in_proj_bias"]
    q, k, v = (a.reshape(N_, T_, H_, E_ // H_).transpose(1, 2) for a in qkv.split(E_, dim=-1))
    scores = q @ k.transpose(-1, -2) / np.sqrt(E_ // H_)
    later = torch.ones(T_, T_, dtype=torch.bool).triu(1)
    if probabilities is not None:
        P = probabilities(scores, later)
    elif mask_after:
        P = torch.softmax(scores, dim=-1) * ~later
    else:
        P = torch.softmax(scores.masked_fill(later, -np.inf), dim=-1)
    heads = P @ v
    merged = heads.transpose(1, 2).reshape(N_, T_, E_)
    out = merged @ t["out_proj.weight"].T + t["out_proj.bias"]
    for a in (q, k, v, scores, P, heads, merged):
        a.retain_grad()
    out.backward(torch.from_numpy(dout))
    return arrays, dout, out.detach().numpy(), t | {"q": q, "k": k, "v": v, "scores": scores, "P": P,
                                                    "heads": heads, "merged": merged}


def _backward_is_autograds(backward, dout, cache, t):
    """backward's gradients (dx, the in projection's, the out projection's) and every intermediate its ``terms``
    names torch's."""
    grads = backward(dout, cache)
    for mine, name in zip(grads, ["x", "in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"],
                          strict=True):
        _close(mine, t[name].grad.numpy())
    g = backward.terms(dout, cache)
    qkv_grad = torch.cat([a.grad.transpose(1, 2).reshape(N_, T_, E_) for a in (t["q"], t["k"], t["v"])], dim=-1)
    want = {"dq": t["q"], "dk": t["k"], "dv": t["v"], "dscores": t["scores"], "dP": t["P"], "dheads": t["heads"],
            "dmerged": t["merged"], "dx": t["x"], "din_proj_weight": t["in_proj_weight"],
            "din_proj_bias": t["in_proj_bias"], "dout_proj_weight": t["out_proj.weight"],
            "dout_proj_bias": t["out_proj.bias"]}
    for name, a in want.items():
        _close(g[name], a.grad.numpy())
    _close(g["dqkv"], qkv_grad.numpy())


def test_the_attention_backward_from_the_true_terms_and_merge_is_autograds():
    """_mha_backward_with's defaults (manual.attention's terms, merge_heads) put the layer back together right: the
    base every attention entry changes one piece of."""
    arrays, dout, out_t, t = _attention_autograd(mask_after=False)
    p = {k: a for k, a in arrays.items() if k != "x"}
    out, cache = A.multihead_attention_forward(arrays["x"], p["in_proj_weight"], p["out_proj.weight"],
                                               p["in_proj_bias"], p["out_proj.bias"], num_heads=H_, causal=True)
    _close(out, out_t)
    _backward_is_autograds(wrong_attention._mha_backward_with(), dout, cache, t)


def test_the_mask_after_the_softmax_is_autograd_of_softmax_then_zeroed_later_keys():
    """P = softmax(q k^T / sqrt(d)) over every key, then 0 above the diagonal, out = merge(P v) W_out^T + b_out;
    the backward's every gradient (the layer's and its named intermediates, which the diagnosis localizes with) and
    the forward's cached heads and merged heads torch's autograd of that forward, through both projections' biases."""
    arrays, dout, out_t, t = _attention_autograd(mask_after=True)
    entry = find("attention-mask-after-softmax")
    assert entry.network["layers"][0]["causal"] is True
    p = {k: a for k, a in arrays.items() if k != "x"}
    out, cache = entry.forward[0](arrays["x"], p, {"num_heads": H_})
    _close(out, out_t)
    _close(cache["heads"], t["heads"].detach().numpy())
    _close(cache["merged"], t["merged"].detach().numpy())
    _backward_is_autograds(wrong_attention._mha_backward_with(wrong_attention._mask_after_softmax_terms), dout,
                           cache, t)
    _backward_is_autograds(entry.backward[0], dout, cache, t)
