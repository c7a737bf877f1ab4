"""Deliberately wrong derivations of the general layers (manual.functional, manual.optim) on small described
networks (NumPy only).

Each entry is a mistake people make when deriving a layer or an optimizer by hand, shown on a small network
description (netdesc.description): it replaces one layer's backward (``backward``, by layer index, "loss" for
the loss), with the forward that keeps what that backward reads (``forward``), or the optimizer's step
(``optimizer_step``, the signature of manual.optim.sgd_step, adam_step, ...), or its learning-rate scheduler
(``scheduler``, manual.optim.step_lr's), or the sum of a fan-out's gradients (``accumulate``,
manual.network.accumulate's signature). ``first_wrong`` names the first quantity it breaks as crosscheck.check
names the rows, ``kind`` the class crosscheck.diagnose should give it.
"""

import numpy as np

from crosscheck.catalogue import WrongDerivation
from manual import functional as F
from manual import optim
from netdesc.inputs import random_batch


def _stack(input_shape, layers, loss="mse", reduction="mean", batch=2, optimizer=None):
    return {"input_shape": list(input_shape), "batch_size": batch, "layers": layers,
            "loss": {"type": loss, "reduction": reduction}, "optimizer": optimizer or {"lr": 0.1}}


# --- convolution: forward keeping its input, the input gradient scattered back tap by tap ---------------

def _conv_forward(x, p, o):
    out, cache = F.conv2d_forward(x, p["weight"], p.get("bias"), o["stride"], o["padding"], o["dilation"])
    return out, (cache, x, p["weight"], o)


def _window_grads(dout, w):
    """The gradient of every element each window read, (N, C, KH, KW, OH, OW): dout through the kernel."""
    return np.einsum("nfhw,fcij->ncijhw", dout, w)


def _padded_dx(dout, w, x_shape, o):
    """dx on the padded grid (N, C, H + 2ph, W + 2pw): manual.functional's col2im of a padding-free input that size."""
    (N, C, H, W), (ph, pw) = x_shape, o["padding"]
    return F._col2im(_window_grads(dout, w), (N, C, H + 2 * ph, W + 2 * pw), o["stride"], (0, 0), o["dilation"])


def _conv_stride_ignored(dout, cache):
    inner, x, w, o = cache
    _, dw, db = F.conv2d_backward(dout, inner)
    # scattered as if the windows were adjacent (stride 1)
    dx = F._col2im(_window_grads(dout, w), x.shape, (1, 1), o["padding"], o["dilation"])
    return dx, dw, db


def _conv_cropped_wrong_side(dout, cache):
    inner, x, w, o = cache
    _, dw, db = F.conv2d_backward(dout, inner)
    H, W = x.shape[2:]
    return _padded_dx(dout, w, x.shape, o)[:, :, :H, :W], dw, db


def _conv_not_cropped(dout, cache):
    inner, x, w, o = cache
    _, dw, db = F.conv2d_backward(dout, inner)
    return _padded_dx(dout, w, x.shape, o), dw, db


def _conv_dilation_ignored(dout, cache):
    inner, x, w, o = cache
    dx, _, db = F.conv2d_backward(dout, inner)
    # the columns of taps i, j instead of i * dh, j * dw: the dilation left out
    cols = F._im2col(x, w.shape[2:], o["stride"], o["padding"], (1, 1), dout.shape[2:])
    dw = np.matmul(dout.reshape(*dout.shape[:2], -1), cols.transpose(0, 2, 1)).sum(axis=0)
    return dx, dw.reshape(w.shape), db


def _conv_dw_flipped(dout, cache):
    dx, dw, db = F.conv2d_backward(dout, cache)
    return dx, np.ascontiguousarray(dw[:, :, ::-1, ::-1]), db


def _transposed_output_padding_ignored(dout, cache):
    """conv_transpose2d's backward reading dout as if the output had no output_padding: its last rows and columns,
    which the input reaches where padding >= output_padding, dropped."""
    x, w, stride, padding, dilation, out_shape, has_bias = cache
    OH, OW = (F._transposed_size(n, k, s, p, 0, d) for n, k, s, p, d in zip(
        x.shape[2:], w.shape[2:], stride, padding, dilation, strict=True))
    inner = (x, w, stride, padding, dilation, (*out_shape[:2], OH, OW), has_bias)
    return F.conv_transpose2d_backward(np.ascontiguousarray(dout[:, :, :OH, :OW]), inner)


# --- pooling: forward keeping its input, window gradients scattered back ----------------------------------

def _pool_forward(pool):
    """manual.functional's pool forward, keeping its input and options as the cache."""
    def forward(x, p, o):
        return pool(x, o["kernel_size"], o["stride"], o["padding"])[0], (x, o)
    return forward


_max_pool_forward, _avg_pool_forward = _pool_forward(F.max_pool2d_forward), _pool_forward(F.avg_pool2d_forward)


def _pool_to_every_element(dout, cache):
    x, o = cache
    N, C, OH, OW = dout.shape
    dwin = np.broadcast_to(dout[:, :, None, None], (N, C, *o["kernel_size"], OH, OW))
    return (F._col2im(dwin, x.shape, o["stride"], o["padding"], (1, 1)),)


def _max_pool_last_tie(dout, cache):
    x, o = cache
    (KH, KW), N, C, OH, OW = o["kernel_size"], *dout.shape
    win = F._windows(F._pad(x, o["padding"], -np.inf), o["kernel_size"], o["stride"], (OH, OW))
    flat = win.reshape(N, C, KH * KW, OH, OW)
    last = KH * KW - 1 - flat[:, :, ::-1].argmax(axis=2)  # the last maximum in row-major window order
    taps = np.arange(KH * KW).reshape(KH * KW, 1, 1)
    dwin = np.where(taps == last[:, :, None], dout[:, :, None], 0).reshape(N, C, KH, KW, OH, OW)
    return (F._col2im(dwin, x.shape, o["stride"], o["padding"], (1, 1)),)


def _max_pool_window_assigned(dout, cache):
    """The loop over windows of a by-hand max pool, with `=` where overlapping windows need `+=`."""
    arg, (N, C, H, W), _, (KH, KW), (sh, sw), (ph, pw) = cache
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dout.dtype)
    for oh, ow in np.ndindex(*arg.shape[2:]):
        onehot = np.arange(KH * KW) == arg[:, :, oh, ow, None]  # (N, C, KH*KW): the window's maximum
        window = (onehot * dout[:, :, oh, ow, None]).reshape(N, C, KH, KW)
        dxp[:, :, oh * sh:oh * sh + KH, ow * sw:ow * sw + KW] = window  # the mistake: `=`, not `+=`
    return (dxp[:, :, ph:ph + H, pw:pw + W],)


def _adaptive_even_windows(dout, cache):
    """Adaptive average pooling's backward with window i = [i*k, (i+1)*k), k = size // out: as if out divided size."""
    A_h, A_w, out_shape, dtype = cache

    def even(out, size):
        k, A = size // out, np.zeros((out, size), dtype)
        for i in range(out):
            A[i, i * k:(i + 1) * k] = 1 / k
        return A
    E_h, E_w = even(*A_h.shape), even(*A_w.shape)
    return (E_h.T @ dout @ E_w,)


def _grouped_dw_summed(dout, cache):
    """A grouped conv's dw summed over the batch and the groups (axes (0, 1)) where only the batch was meant, the sum
    then given to every group."""
    dx, dw, db = F.conv2d_backward(dout, cache)
    G = cache[0].shape[1]  # the cached columns are (N, G, C/G*KH*KW, OH*OW)
    blocks = dw.reshape(G, -1, *dw.shape[1:])
    return dx, np.broadcast_to(blocks.sum(axis=0), blocks.shape).reshape(dw.shape).copy(), db


# --- activations and the loss --------------------------------------------------------------------------

def _relu_forward(x, p, o):
    out, _ = F.relu_forward(x)
    return out, x


def _relu_ge(dout, cache):
    return (dout * (cache >= 0),)  # x >= 0: the gradient passes at x == 0 too, where torch's is 0


def _tanh_forward(x, p, o):
    out, _ = F.tanh_forward(x)
    return out, out


def _tanh_of_output(dout, cache):
    return (dout * (1 - np.tanh(cache) ** 2),)  # tanh'(y) = 1 - tanh(y)^2: the derivative taken at the output y


def _kept_softmax(cache):
    """softmax of manual.functional.softmax_cross_entropy_forward's rows that count (zeros on the ignored ones), the
    rows' labels and the ones kept, the divisor of the mean and the logits' shape (N, C) or (N, T, C)."""
    log_probs, labels, kept, scale, shape = cache
    drows = np.zeros_like(log_probs)
    drows[kept] = np.exp(log_probs[kept])
    return drows, labels, kept, max(scale, 1), shape


def _cross_entropy_onehot_forgotten(dout, cache):
    drows, _, _, scale, shape = _kept_softmax(cache)
    return (drows * (dout / scale)).reshape(shape), None  # softmax - onehot(labels): the one-hot term left out


def _cross_entropy_mean_forgotten(dout, cache):
    drows, labels, kept, _, shape = _kept_softmax(cache)
    drows[kept, labels[kept]] -= 1
    return (drows * dout).reshape(shape), None  # divided by the labels counted under "mean": left out


def _cross_entropy_mean_over_all(dout, cache):
    drows, labels, kept, _, shape = _kept_softmax(cache)
    drows[kept, labels[kept]] -= 1
    return (drows * (dout / len(labels))).reshape(shape), None  # divided by every label, the ignored ones counted


# --- normalization, softmax, gelu -------------------------------------------------------------------------

def _direct_only_terms(dout, cache):
    """The paths of batchnorm-no-mean-variance-paths: dx = gamma * dout / std, the direct path alone."""
    terms = F.batch_norm_backward_terms(dout, cache)
    return terms | {"through_mean": np.zeros_like(terms["direct"]), "through_var": np.zeros_like(terms["direct"])}


def _dy_for_scaled_terms(dout, cache):
    """The paths of batchnorm-dy-for-scaled: all three taken from dout, where dx_hat = gamma * dout was meant."""
    x_hat, inv_std, *_ = cache
    return F.batch_norm_backward_terms(dout, cache) | F._normalize_backward_terms(dout, x_hat, inv_std,
                                                                                 (0, *range(2, dout.ndim)))


# A wrong batch-norm backward by its paths (crosscheck explain --layer batchnorm --inject NAME shows them)
BATCH_NORM_TERMS = {"batchnorm-no-mean-variance-paths": _direct_only_terms,
                    "batchnorm-dy-for-scaled": _dy_for_scaled_terms}


def _from_terms(terms, dout, cache):
    """A batch-norm backward -> (dx, dgamma, dbeta): dx the sum of the paths `terms` gives."""
    _, _, _, dgamma, dbeta = F.batch_norm_backward(dout, cache)
    t = terms(dout, cache)
    return t["direct"] + t["through_mean"] + t["through_var"], dgamma, dbeta


def _batch_norm_direct_only(dout, cache):
    return _from_terms(_direct_only_terms, dout, cache)


def _batch_norm_dy_for_scaled(dout, cache):
    return _from_terms(_dy_for_scaled_terms, dout, cache)


def _interleaved(x, G):
    """(N, C, ...) -> (N, C/G, G, rest): the channel axis split the wrong way round, group g = channels g, g + G, ..."""
    return x.reshape(x.shape[0], x.shape[1] // G, G, -1)


def _embedding_assigned(dout, cache):
    indices, shape, dtype, padding_idx = cache
    dweight = np.zeros(shape, dtype)
    dweight[indices] = dout  # = where += was meant: a repeated index keeps its last position's row
    if padding_idx is not None:
        dweight[padding_idx] = 0
    return None, dweight


def _embedding_padding_gradient(dout, cache):
    indices, shape, dtype, _ = cache
    dweight = np.zeros(shape, dtype)
    np.add.at(dweight, indices, dout)  # the padding_idx row not zeroed
    return None, dweight


def _dropout_no_scale(dout, cache):
    scaled, _ = cache
    return dout * (scaled != 0), None  # the mask alone: the 1 / (1 - p) of the forward forgotten


def _nll_mean_over_all(dout, cache):
    onehot, _, _ = cache
    return onehot * (-dout / len(onehot)), None  # divided by N, the ignored labels counted


def _layer_norm_mean_path_left_out(dout, cache):
    x_hat, inv_std, gamma, beta, axes = cache
    dx_hat, dgamma, dbeta = F._affine_backward(dout, x_hat, gamma, beta, x_hat.shape[axes[0]:], tuple(range(axes[0])))
    paths = F._normalize_backward_terms(dx_hat, x_hat, inv_std, axes)
    return paths["direct"] + paths["through_var"], dgamma, dbeta  # -mean(dx_hat) * inv_std, the mean's path: left out


def _layer_norm_batch_axis_forward(x, p, o):
    x_hat, inv_std = F._normalize(x, (0,), o["eps"])  # over the batch axis, where each sample's features were meant
    gamma, beta, shape = p.get("weight"), p.get("bias"), o["normalized_shape"]  # none without elementwise_affine
    return F._affine(x_hat, gamma, beta, shape), (x_hat, inv_std, gamma, beta, shape)


def _layer_norm_batch_axis_backward(dout, cache):
    x_hat, inv_std, gamma, beta, shape = cache  # the same wrong axis as the forward: consistent, only wrong
    dx_hat, dgamma, dbeta = F._affine_backward(dout, x_hat, gamma, beta, shape, tuple(range(x_hat.ndim - len(shape))))
    return F._normalize_backward(dx_hat, x_hat, inv_std, (0,)), dgamma, dbeta


def _group_norm_interleaved_forward(x, p, o):
    G = o["num_groups"]
    x_hat, inv_std = F._normalize(_interleaved(x, G), (1, 3), o["eps"])
    x_hat, gamma, beta = x_hat.reshape(x.shape), p.get("weight"), p.get("bias")  # none without affine
    return F._affine(x_hat, gamma, beta, F._channels(x)), (x_hat, inv_std, gamma, beta, G)


def _group_norm_interleaved_backward(dout, cache):
    x_hat, inv_std, gamma, beta, G = cache  # the same wrong groups as the forward: consistent, only wrong
    dx_hat, dgamma, dbeta = F._affine_backward(dout, x_hat, gamma, beta, F._channels(x_hat),
                                               (0, *range(2, x_hat.ndim)))
    dx = F._normalize_backward(_interleaved(dx_hat, G), _interleaved(x_hat, G), inv_std, (1, 3))
    return dx.reshape(x_hat.shape), dgamma, dbeta


def _softmax_diagonal(dout, cache):
    s, _ = cache
    return (dout * s * (1 - s),)  # d s_i / d x_i alone: the -s_i s_j of every other output left out


def _gelu_tanh_for_exact(dout, cache):
    x, _, _ = cache
    return F.gelu_backward(dout, F.gelu_forward(x, "tanh")[1])  # the tanh approximation's derivative


def _biased_running_var(x, running_mean, running_var, momentum):
    mean, _ = F.batch_norm_running_stats(x, running_mean, running_var, momentum)
    axes = (0, *range(2, x.ndim))
    return mean, (1 - momentum) * running_var + momentum * x.var(axis=axes)  # divided by M, not M - 1


def _wide(spec, dtype, seed):
    """random_batch with the input scaled by 3: pre-activations over [-3, 3], where gelu's two forms part most."""
    x, target = random_batch(spec, dtype, seed)
    return (3 * x).astype(dtype), target


# --- SGD --------------------------------------------------------------------------------------------------

def _sgd_dampening_first_step(params, grads, state, **settings):
    # The buffer started at zero and updated by the general rule, so step 1 gives (1 - dampening) g, not g.
    state = state or {k: np.zeros_like(p) for k, p in params.items()}
    return optim.sgd_step(params, grads, state, **settings)


def _sgd_nesterov_lookahead_missing(params, grads, state, **settings):
    return optim.sgd_step(params, grads, state, **(settings | {"nesterov": False}))


def _sgd_buffer_not_kept(params, grads, state, **settings):
    return optim.sgd_step(params, grads, {}, **settings)  # every step starts a fresh buffer: buf = g


def _sgd_weight_decay_forgotten(params, grads, state, **settings):
    return optim.sgd_step(params, grads, state, **(settings | {"weight_decay": 0.0}))


# --- adaptive optimizers and schedulers ---------------------------------------------------------------------

def _adam_no_bias_correction(params, grads, state, lr, betas, eps, weight_decay, amsgrad):
    """Adam with the moments used as they are, p = p - lr * m / (sqrt(v) + eps): the 1 - beta^t left out, so the
    first steps, where m and v are still near their start at 0, are too large (amsgrad not handled)."""
    beta1, beta2 = betas
    new_params, new_state = {}, dict(state)
    for key, p in params.items():
        g = grads[key] + weight_decay * p
        s = state.get(key) or {"step": 0, "exp_avg": np.zeros_like(p), "exp_avg_sq": np.zeros_like(p)}
        m = beta1 * s["exp_avg"] + (1 - beta1) * g
        v = beta2 * s["exp_avg_sq"] + (1 - beta2) * g * g
        new_state[key] = {"step": s["step"] + 1, "exp_avg": m, "exp_avg_sq": v}
        new_params[key] = p - lr * m / (np.sqrt(v) + eps)
    return new_params, new_state


def _adamw_coupled_decay(params, grads, state, **settings):
    return optim.adam_step(params, grads, state, **settings)  # the decay added to the gradient, L2 as in Adam


def _rmsprop_eps_inside_sqrt(params, grads, state, lr, alpha, eps, weight_decay, momentum, centered):
    """RMSprop dividing by sqrt(v + eps) instead of sqrt(v) + eps (momentum and centered not handled)."""
    new_params, new_state = {}, dict(state)
    for key, p in params.items():
        g = grads[key] + weight_decay * p
        s = state.get(key) or {"step": 0, "square_avg": np.zeros_like(p)}
        v = alpha * s["square_avg"] + (1 - alpha) * g * g
        new_state[key] = {"step": s["step"] + 1, "square_avg": v}
        new_params[key] = p - lr * g / np.sqrt(v + eps)
    return new_params, new_state


def _step_lr_stepped_early(lr, epoch, step_size, gamma=0.1):
    # scheduler.step() called before optimizer.step(): every step runs at the rate meant for the next one
    return optim.step_lr(lr, epoch + 1, step_size, gamma)


def _black_border(spec, dtype, seed):
    """random_batch with all but the centre 2x2 of each image set to exactly 0 (a dark background, as in MNIST)."""
    x, target = random_batch(spec, dtype, seed)
    centre = np.zeros(x.shape[2:], bool)
    H, W = centre.shape
    centre[H // 2 - 1:H // 2 + 1, W // 2 - 1:W // 2 + 1] = True
    return np.where(centre, x, 0).astype(dtype), target


# --- a graph: the gradients of a tensor read by several layers --------------------------------------------

def _overwrite(total, grad):
    return grad  # the last reader's contribution replaces the sum of the others'


# --- the catalogue -------------------------------------------------------------------------------------------

def _conv(out, k, **options):
    return {"type": "conv2d", "out_channels": out, "kernel_size": k, **options}


TANH, RELU, FLAT = {"type": "tanh"}, {"type": "relu"}, {"type": "flatten"}


def _linear(out):
    return {"type": "linear", "out_features": out}


CONV_AT_2 = _stack((1, 7, 7), [_conv(2, 2), TANH, _conv(2, 3, stride=2), FLAT, _linear(3)])
PADDED_AT_2 = _stack((1, 6, 6), [_conv(2, 2), TANH, _conv(2, 3, padding=1), FLAT, _linear(2)])
PADDED_AT_0 = _stack((1, 5, 5), [_conv(2, 3, padding=1), TANH, FLAT, _linear(2)])
DILATED_AT_0 = _stack((1, 7, 7), [_conv(2, 2, dilation=2), TANH, FLAT, _linear(2)])
RELU_POOL = _stack((1, 8, 8), [_conv(2, 3, padding=1), RELU, {"type": "max_pool2d", "kernel_size": 2}, FLAT,
                               _linear(3)])
# Zeros around the centre and no conv bias: the corner windows after the ReLU hold four exact zeros, at every seed.
DARK_RELU_POOL = _stack((1, 8, 8), [_conv(2, 3, padding=1, bias=False), RELU, {"type": "max_pool2d", "kernel_size": 2},
                                    FLAT, _linear(3)])
AVG_POOL = _stack((1, 6, 6), [_conv(2, 3, padding=1), TANH, {"type": "avg_pool2d", "kernel_size": 2}, FLAT,
                              _linear(3)])
CLASSIFIER = _stack((1, 3, 3), [FLAT, _linear(5)], loss="softmax_cross_entropy", batch=4)
BORDER = _stack((1, 6, 6), [_conv(2, 3, padding=1, bias=False), RELU, FLAT, _linear(3)])
TANH_MLP = _stack((1, 2, 3), [FLAT, _linear(5), TANH, _linear(2)], batch=3)
MOMENTUM = {"lr": 0.1, "momentum": 0.9}
# windows of 3 at stride 2: neighbouring windows share a row or a column
OVERLAP_POOL = _stack((1, 9, 9), [_conv(2, 3, padding=1), TANH, {"type": "max_pool2d", "kernel_size": 3, "stride": 2},
                                  FLAT, _linear(3)])
# 7 rows into 3 windows: torch's are [0, 3), [2, 5), [4, 7); even ones of 7 // 3 = 2 would be [0, 2), [2, 4), [4, 6)
ADAPTIVE_POOL = _stack((1, 7, 7), [_conv(2, 3, padding=1), TANH, {"type": "adaptive_avg_pool2d", "output_size": 3},
                                   FLAT, _linear(3)])
TRANSPOSED = _stack((2, 4, 4), [{"type": "conv_transpose2d", "out_channels": 2, "kernel_size": 3, "stride": 2,
                                 "padding": 1, "output_padding": 1}, TANH, FLAT, _linear(3)])  # 4x4 -> 8x8
GROUPED_CONV = _stack((4, 5, 5), [_conv(4, 3, padding=1, groups=2), TANH, FLAT, _linear(3)])
# conv, tanh, then a residual block: layer 1's output is read by the conv at 2 and by the add at 4 (the skip)
RESIDUAL = _stack((1, 6, 6), [_conv(2, 3, padding=1), TANH, _conv(2, 3, padding=1), TANH,
                              {"type": "add", "inputs": [3, 1]}, FLAT, _linear(3)])


BN = {"type": "batch_norm2d"}
# the batch norm first: its input gradient is the input's, checked all the same
BATCH_NORM_FIRST = _stack((2, 4, 4), [BN, _conv(2, 3, padding=1), TANH, FLAT, _linear(3)], batch=4)
BATCH_NORM_AFTER_CONV = _stack((1, 5, 5), [_conv(3, 3, padding=1, bias=False), BN, TANH, FLAT, _linear(3)], batch=4)
GROUP_NORM = _stack((1, 5, 5), [_conv(4, 3, padding=1), {"type": "group_norm", "num_groups": 2}, TANH, FLAT,
                                _linear(3)])
SOFTMAX_MLP = _stack((1, 2, 3), [FLAT, _linear(5), {"type": "softmax"}, _linear(2)], batch=3)
GELU_MLP = _stack((1, 2, 3), [FLAT, _linear(5), {"type": "gelu"}, _linear(2)], batch=3)


EMBEDDING = {"type": "embedding", "num_embeddings": 4, "embedding_dim": 3}
EMBEDDED = _stack((5,), [EMBEDDING, FLAT, _linear(2)], batch=3)  # 15 indices in [0, 4): repeats, whatever the seed
EMBEDDED_PADDED = _stack((5,), [EMBEDDING | {"padding_idx": 1}, FLAT, _linear(2)], batch=3)
NLL_MLP = _stack((1, 2, 3), [FLAT, _linear(4), {"type": "log_softmax"}], loss="nll", batch=4)  # 1 of 4 ignored
DROPOUT_MLP = _stack((1, 2, 3), [FLAT, _linear(6), TANH, {"type": "dropout", "p": 0.25}, _linear(2)], batch=4)
LAYER_NORM_MLP = _stack((1, 2, 3), [FLAT, _linear(5), {"type": "layer_norm"}, TANH, _linear(2)], batch=4)

# sequences: token ids [T] -> embedding (T, E) -> linear on every step (T, classes), a label per step (N, T) of
# which a quarter (2 of 10) is torch's ignore_index -100; floats (T, F) -> linear -> layer norm over each step's
# features -> tanh -> the mean over the steps -> linear
TAGGER = _stack((5,), [EMBEDDING, _linear(3)], batch=2) | {
    "loss": {"type": "softmax_cross_entropy", "ignore_index": -100}}
SEQUENCE_LAYER_NORM = _stack((4, 3), [_linear(5), {"type": "layer_norm", "normalized_shape": 5}, TANH,
                                      {"type": "sequence_pool", "mode": "mean"}, _linear(2)], batch=3)


def _linear_sgd(**optimizer):
    return _stack((1, 3, 3), [FLAT, _linear(2)], optimizer=optimizer)


def _linear_trained(kind, **optimizer):
    return _linear_sgd(type=kind, **optimizer)


ENTRIES = [
    WrongDerivation("conv2d-stride-ignored-dx", "conv2d with stride 2: dx scattered as if the windows were adjacent "
                    "(stride 1), the dilated gradient forgotten", CONV_AT_2, "2 conv2d: dE/dinput", "stride",
                    {2: _conv_stride_ignored}, {2: _conv_forward}),
    WrongDerivation("conv2d-padding-wrong-side", "conv2d with padding 1: dx cropped from the padded grid at the top "
                    "left, [:H, :W], instead of [p:p+H, p:p+W]", PADDED_AT_2, "2 conv2d: dE/dinput", "padding",
                    {2: _conv_cropped_wrong_side}, {2: _conv_forward}),
    WrongDerivation("conv2d-padding-not-cropped", "conv2d with padding 1: dx returned on the padded grid, the padding "
                    "not cropped off", PADDED_AT_0, "0 conv2d: dE/dinput", "padding",
                    {0: _conv_not_cropped}, {0: _conv_forward}),
    WrongDerivation("conv2d-dilation-ignored-dw", "conv2d with dilation 2: dw correlates taps i, j instead of "
                    "i*d, j*d, the dilation left out", DILATED_AT_0, "0 conv2d: dE/dweight", "dilation",
                    {0: _conv_dilation_ignored}, {0: _conv_forward}),
    WrongDerivation("conv2d-dw-flipped", "conv2d: dw returned with both kernel axes reversed (a true convolution "
                    "in the backward, a cross-correlation in the forward)", PADDED_AT_0, "0 conv2d: dE/dweight",
                    "kernel-flipped", {0: _conv_dw_flipped}),
    WrongDerivation("max-pool-every-element", "max_pool2d: the window's gradient sent to every element of the window, "
                    "not only to its maximum", RELU_POOL, "2 max_pool2d: dE/dinput", "window",
                    {2: _pool_to_every_element}, {2: _max_pool_forward}),
    WrongDerivation("max-pool-last-tie", "max_pool2d: a tie broken towards the last maximum of the window (torch "
                    "takes the first); on a dark background, windows of zeros tie after the ReLU", DARK_RELU_POOL,
                    "2 max_pool2d: dE/dinput", "kink", {2: _max_pool_last_tie}, {2: _max_pool_forward},
                    inputs=_black_border),
    WrongDerivation("avg-pool-not-divided", "avg_pool2d: dout sent to every window element without the division by "
                    "the window size KH*KW", AVG_POOL, "2 avg_pool2d: dE/dinput", "scaled",
                    {2: _pool_to_every_element}, {2: _avg_pool_forward}),
    WrongDerivation("maxpool-overlap-assign", "max_pool2d with overlapping windows (3x3, stride 2): each window's "
                    "one-hot gradient assigned (=) over its window where it must accumulate (+=), so a shared pixel "
                    "keeps the last window's share only", OVERLAP_POOL, "2 max_pool2d: dE/dinput", "overlap-assign",
                    {2: _max_pool_window_assigned}),
    WrongDerivation("adaptive-pool-even-windows", "adaptive_avg_pool2d from 7x7 to 3x3: the backward's windows taken "
                    "as if 3 divided 7 (2 rows from 2i), not torch's [floor(7i/3), ceil(7(i+1)/3))", ADAPTIVE_POOL,
                    "2 adaptive_avg_pool2d: dE/dinput", "adaptive-windows", {2: _adaptive_even_windows}),
    WrongDerivation("grouped-conv-dw-summed-over-groups", "conv2d with 2 groups: dw summed over the batch and the "
                    "groups, the sum given to both groups' filters", GROUPED_CONV, "0 conv2d: dE/dweight",
                    "groups-summed", {0: _grouped_dw_summed}),
    WrongDerivation("convtranspose-output-padding-ignored", "conv_transpose2d with stride 2, padding 1, "
                    "output_padding 1: the backward reads dout as if the output were 7x7, its last row and column "
                    "(reached by the input) dropped", TRANSPOSED, "0 conv_transpose2d: dE/dinput", "padding",
                    {0: _transposed_output_padding_ignored}),
    WrongDerivation("cross-entropy-onehot-forgotten", "softmax cross-entropy: dlogits = softmax / N, the one-hot "
                    "subtraction left out", CLASSIFIER, "loss: dE/dinput", "one-hot",
                    {"loss": _cross_entropy_onehot_forgotten}),
    WrongDerivation("cross-entropy-mean-forgotten", "softmax cross-entropy under the mean reduction: dlogits = "
                    "softmax - onehot, the division by N left out", CLASSIFIER, "loss: dE/dinput", "batch-reduction",
                    {"loss": _cross_entropy_mean_forgotten}),
    WrongDerivation("relu-ge-instead-of-gt", "relu: dx = dout * (x >= 0), the gradient let through at x == 0 "
                    "(a conv without bias over a black border gives exact zeros)", BORDER, "1 relu: dE/dinput", "kink",
                    {1: _relu_ge}, {1: _relu_forward}, inputs=_black_border),
    WrongDerivation("tanh-of-output", "tanh: dx = dout * (1 - tanh(y)^2), the derivative taken at the output y "
                    "instead of at the input", TANH_MLP, "2 tanh: dE/dinput", "activation-wrong-point",
                    {2: _tanh_of_output}, {2: _tanh_forward}),
    WrongDerivation("fan-out-overwritten", "a residual block: the gradient of a tensor read by two layers (a conv "
                    "and the skip's add) overwritten by the last contribution instead of summed", RESIDUAL,
                    "1 tanh: dE/dinput", "fan-out", accumulate=_overwrite),
    WrongDerivation("batchnorm-no-mean-variance-paths", "batch norm (training, the first layer): dx = gamma * dout / "
                    "std, the paths through the batch mean and variance left out", BATCH_NORM_FIRST,
                    "0 batch_norm2d: dE/dinput", "normalization-paths", {0: _batch_norm_direct_only}),
    WrongDerivation("batchnorm-dy-for-scaled", "batch norm: the mean and variance paths taken from dout where "
                    "dx_hat = gamma * dout was meant (right by accident with gamma = 1)", BATCH_NORM_AFTER_CONV,
                    "1 batch_norm2d: dE/dinput", "normalization-gamma", {1: _batch_norm_dy_for_scaled}),
    WrongDerivation("groupnorm-wrong-axes", "group norm with 2 groups of 4 channels: the channels split as (C/G, G), "
                    "so group g holds channels g, g + G, ...; forward and backward agree with each other (finite "
                    "differences of the forward back the backward), only autograd sees it", GROUP_NORM,
                    "1 group_norm: output", "normalization-axes", {1: _group_norm_interleaved_backward},
                    {1: _group_norm_interleaved_forward}),
    WrongDerivation("layernorm-wrong-axes", "layer norm with the mean and variance over the batch axis (x.mean(0), "
                    "a batch norm) instead of over each sample's features; forward and backward agree with each "
                    "other, only autograd sees it", LAYER_NORM_MLP, "2 layer_norm: output", "normalization-axes",
                    {2: _layer_norm_batch_axis_backward}, {2: _layer_norm_batch_axis_forward}),
    WrongDerivation("embedding-assign", "embedding: dweight[indices] = dout, the rows assigned where a repeated "
                    "index must accumulate (np.add.at, +=): only its last position's gradient kept", EMBEDDED,
                    "0 embedding: dE/dweight", "assigned", {0: _embedding_assigned}),
    WrongDerivation("embedding-padding-gradient", "embedding with padding_idx 1: the padding row given the gradient "
                    "of its positions, where torch holds it at zero", EMBEDDED_PADDED, "0 embedding: dE/dweight",
                    "padding-index", {0: _embedding_padding_gradient}),
    WrongDerivation("nll-mean-over-all", "nll under the mean with 1 of 4 labels ignored: dlog_probs = -onehot / N, "
                    "divided by all N labels where torch divides by the 3 kept", NLL_MLP, "loss: dE/dinput",
                    "batch-reduction", {"loss": _nll_mean_over_all}),
    WrongDerivation("cross-entropy-ignored-counted", "softmax cross-entropy over every step of a sequence under the "
                    "mean, 2 of its 10 labels ignored (ignore_index -100): dlogits divided by all 10 labels where "
                    "torch divides by the 8 kept", TAGGER, "loss: dE/dinput", "batch-reduction",
                    {"loss": _cross_entropy_mean_over_all}),
    WrongDerivation("layernorm-mean-path-left-out", "layer norm over each step's features: dx without the path "
                    "through the mean, -mean(dx_hat) / std, as if the mean were a constant", SEQUENCE_LAYER_NORM,
                    "1 layer_norm: dE/dinput", "normalization-mean-path", {1: _layer_norm_mean_path_left_out}),
    WrongDerivation("dropout-no-scale", "dropout with p = 0.25: dx = dout * mask, the forward's scaling by 1 / (1 - p) "
                    "left out of the backward", DROPOUT_MLP, "3 dropout: dE/dinput", "scaled", {3: _dropout_no_scale}),
    WrongDerivation("softmax-layer-diag-only", "softmax layer: dx = dout * s (1 - s), only the diagonal of the "
                    "Jacobian diag(s) - s s^T", SOFTMAX_MLP, "2 softmax: dE/dinput", "softmax-diagonal",
                    {2: _softmax_diagonal}),
    WrongDerivation("gelu-tanh-for-exact", "gelu (exact): dx from the derivative of the tanh approximation",
                    GELU_MLP, "2 gelu: dE/dinput", "approximation", {2: _gelu_tanh_for_exact}, inputs=_wide),
    WrongDerivation("batchnorm-biased-running-var", "batch norm: the running variance updated with the biased "
                    "batch variance (the one it normalizes with), where torch keeps the unbiased one",
                    BATCH_NORM_AFTER_CONV, "1 batch_norm2d: running_var after step 1", "biased-variance",
                    running_stats=_biased_running_var),
    WrongDerivation("sgd-dampening-first-step", "SGD with momentum 0.9, dampening 0.5: the buffer starts at zero, so "
                    "step 1 moves by (1 - dampening) g instead of g", _linear_sgd(**MOMENTUM, dampening=0.5),
                    "1 linear: weight after step 1", "momentum", optimizer_step=_sgd_dampening_first_step),
    WrongDerivation("sgd-nesterov-lookahead-missing", "SGD with Nesterov momentum: the update uses the buffer, "
                    "g + momentum * buf left out (plain momentum)", _linear_sgd(**MOMENTUM, nesterov=True),
                    "1 linear: weight after step 1", "momentum", optimizer_step=_sgd_nesterov_lookahead_missing),
    WrongDerivation("sgd-buffer-not-kept", "SGD with momentum 0.9: the buffer is not carried from step to step",
                    _linear_sgd(**MOMENTUM), "1 linear: weight after step 2", "momentum",
                    optimizer_step=_sgd_buffer_not_kept),
    WrongDerivation("sgd-weight-decay-forgotten", "SGD with weight decay 0.05: the decay term left out of the "
                    "gradient", _linear_sgd(lr=0.1, weight_decay=0.05), "1 linear: weight after step 1",
                    "weight-decay", optimizer_step=_sgd_weight_decay_forgotten),
    WrongDerivation("adam-no-bias-correction", "Adam: the moments used without bias correction, lr * m / (sqrt(v) + "
                    "eps), so step 1 moves (1 - beta1) / sqrt(1 - beta2) = 3.2 times too far",
                    _linear_trained("adam", lr=0.01), "1 linear: weight after step 1", "bias-correction",
                    optimizer_step=_adam_no_bias_correction),
    WrongDerivation("adamw-coupled-decay", "AdamW with weight decay 0.5: the decay added to the gradient (Adam's L2) "
                    "instead of p = p * (1 - lr * weight_decay) apart from the moments", _linear_trained(
                        "adamw", lr=0.05, weight_decay=0.5), "1 linear: weight after step 1", "weight-decay",
                    optimizer_step=_adamw_coupled_decay),
    WrongDerivation("rmsprop-eps-inside-sqrt", "RMSprop with eps 0.01: g / sqrt(v + eps) instead of "
                    "g / (sqrt(v) + eps)", _linear_trained("rmsprop", lr=0.01, eps=0.01),
                    "1 linear: weight after step 1", "epsilon", optimizer_step=_rmsprop_eps_inside_sqrt),
    WrongDerivation("scheduler-stepped-early", "SGD with StepLR(step_size 1, gamma 0.5): the scheduler stepped "
                    "before the optimizer, so step 1 already runs at half the rate", _linear_sgd(
                        **MOMENTUM, scheduler={"type": "step", "step_size": 1, "gamma": 0.5}),
                    "1 linear: weight after step 1", "schedule", scheduler=_step_lr_stepped_early),
]
