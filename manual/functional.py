"""Layers of a small CNN as forward/backward pairs in torch's layouts (NumPy only).

Contract (the same as ``torch.autograd.Function``):
``<op>_forward(*inputs, **options) -> (out, cache)`` and ``<op>_backward(dout, cache) -> tuple`` with one
gradient per forward input, in order, the layer input included; None for data that gets no gradient
(targets, labels, a missing bias). Layouts are torch's: images (N, C, H, W), conv weight (F, C, KH, KW),
linear weight (out, in). Every function keeps the dtype it is given (float32 or float64), checks its
inputs before any arithmetic (``InputError`` naming the argument, what it got and what it needs) and is
vectorized: the only Python loops run over the KH*KW kernel taps, never over samples or positions.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from manual.kernels import sigmoid
from netdesc.checks import (
    InputError,
    check_float_array,
    check_labels,
    check_number,
    check_positive_int,
    check_reduction,
    check_same_dtype,
    check_shape,
)

__all__ = [
    "add_backward", "add_forward", "concat_backward", "concat_forward",
    "avg_pool2d_backward", "avg_pool2d_forward", "binary_cross_entropy_backward", "binary_cross_entropy_forward",
    "binary_cross_entropy_with_logits_backward", "binary_cross_entropy_with_logits_forward", "conv2d_backward",
    "conv2d_forward", "flatten_backward", "flatten_forward", "half_squared_error_backward",
    "half_squared_error_forward", "leaky_relu_backward", "leaky_relu_forward", "linear_backward", "linear_forward",
    "max_pool2d_backward", "max_pool2d_forward", "mse_backward", "mse_forward", "relu_backward", "relu_forward",
    "sigmoid", "sigmoid_backward", "sigmoid_forward", "softmax_cross_entropy_backward",
    "softmax_cross_entropy_forward", "tanh_backward", "tanh_forward",
]

# torch's binary_cross_entropy: log is clamped at -100 in the forward, and the backward divides by
# max(x (1 - x), EPSILON) with ATen's EPSILON = 1e-12 held as a float32 (9.99999996e-13, also for float64;
# measured against torch), so that x = 0 or 1 gives a large finite gradient, not inf.
BCE_LOG_FLOOR = -100.0
BCE_EPSILON = float(np.float32(1e-12))


# --- shared checks and index helpers -------------------------------------------------------------

def _pair(name, value, minimum):
    """An int or an (h, w) pair of ints, each >= minimum -> (h, w)."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise InputError(f"{name}: got {value!r}, needs an int or an (h, w) pair of ints >= {minimum}")
    return tuple(check_positive_int(name, v, minimum) for v in pair)


def _check_dout(dout, shape, dtype):
    """dout must be an array shaped and typed like the forward output (a scalar for a loss)."""
    if shape == () and isinstance(dout, (int, float, np.integer, np.floating)) and not isinstance(dout, bool):
        dout = np.asarray(dout, dtype=dtype)
    if not isinstance(dout, np.ndarray) or dout.shape != shape or dout.dtype != dtype:
        got = f"shape {dout.shape} dtype {dout.dtype}" if isinstance(dout, np.ndarray) else type(dout).__name__
        raise InputError(f"dout: got {got}, needs an array of shape {shape} and dtype {dtype} (the forward output's)")
    return dout


def _out_size(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _check_out_size(x, kernel, stride, padding, dilation):
    """-> (OH, OW), or InputError when the (dilated) kernel does not fit the padded input once."""
    (H, W), (KH, KW) = x.shape[2:], kernel
    OH = _out_size(H, KH, stride[0], padding[0], dilation[0])
    OW = _out_size(W, KW, stride[1], padding[1], dilation[1])
    if OH < 1 or OW < 1:
        span = ((KH - 1) * dilation[0] + 1, (KW - 1) * dilation[1] + 1)
        padded = (H + 2 * padding[0], W + 2 * padding[1])
        raise InputError(
            f"x: got spatial size {(H, W)} (padded {padded}) and an effective kernel of {span}, which gives an "
            f"empty {OH}x{OW} output; needs a padded input at least as large as the (dilated) kernel"
        )
    return OH, OW


def _pad(x, padding, value):
    """Pad the two spatial axes of (N, C, H, W) by (ph, pw) on each side with `value` (for pooling)."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    N, C, H, W = x.shape
    xp = np.full((N, C, H + 2 * ph, W + 2 * pw), value, dtype=x.dtype)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    return xp


def _windows(xp, kernel, stride, out_size):
    """A view (N, C, KH, KW, OH, OW) of the padded input: [n, c, i, j, oh, ow] = xp[n, c, oh*sh + i, ow*sw + j]."""
    (KH, KW), (sh, sw), (OH, OW) = kernel, stride, out_size
    # sliding_window_view gives [n, c, a, b, i, j] = xp[n, c, a + i, b + j]; keep every stride-th start a, b.
    win = sliding_window_view(xp, (KH, KW), axis=(2, 3))[:, :, : (OH - 1) * sh + 1 : sh, : (OW - 1) * sw + 1 : sw]
    return win.transpose(0, 1, 4, 5, 2, 3)


def _inside(out_len, in_len, k, stride, pad, dil):
    """Along one axis, for kernel tap k, where output o reads input o*stride + k*dil - pad: the outputs
    [lo, hi) that read a real pixel rather than padding, and the slice of input pixels they read."""
    lo = max(0, -((k * dil - pad) // stride))  # ceil((pad - k*dil) / stride): the first o reading index >= 0
    hi = max(lo, min(out_len, (in_len - 1 + pad - k * dil) // stride + 1))  # one past the last o reading < in_len
    if hi == lo:  # this tap reads only padding; an explicit empty slice, since a computed stop of -1 would wrap
        return lo, hi, slice(0, 0)
    start = lo * stride + k * dil - pad
    return lo, hi, slice(start, start + (hi - lo - 1) * stride + 1, stride)


def _taps(x_shape, kernel, stride, padding, dilation, out_size):
    """Per kernel tap (i, j): (i, j, (r0, r1, c0, c1), index into x) with out[..., r0:r1, c0:c1] reading x[index];
    the outputs outside that rectangle read zero padding. This is how padding is done without a padded copy."""
    (H, W), (KH, KW), (OH, OW) = x_shape[2:], kernel, out_size
    for i in range(KH):
        r0, r1, rows = _inside(OH, H, i, stride[0], padding[0], dilation[0])
        for j in range(KW):
            c0, c1, cols = _inside(OW, W, j, stride[1], padding[1], dilation[1])
            yield i, j, (r0, r1, c0, c1), (slice(None), slice(None), rows, cols)


def _im2col(x, kernel, stride, padding, dilation, out_size, extra_rows):
    """-> cols (N, C*KH*KW + extra_rows, OH*OW): row c*KH*KW + i*KW + j holds what tap (i, j) of channel c
    reads at each output position (0 where it reads padding); the extra rows are left for the caller."""
    (N, C), (KH, KW), (OH, OW) = x.shape[:2], kernel, out_size
    K = C * KH * KW
    cols = np.empty((N, K + extra_rows, OH, OW), dtype=x.dtype)
    for i, j, (r0, r1, c0, c1), source in _taps(x.shape, kernel, stride, padding, dilation, out_size):
        tap = cols[:, i * KW + j : K : KH * KW]  # (N, C, OH, OW), a view
        tap[:, :, r0:r1, c0:c1] = x[source]
        tap[:, :, :r0], tap[:, :, r1:], tap[:, :, :, :c0], tap[:, :, :, c1:] = 0, 0, 0, 0  # the padding
    return cols.reshape(N, K + extra_rows, OH * OW)


def _col2im(dwin, x_shape, stride, padding, dilation):
    """The adjoint of reading windows: add every window gradient (N, C, KH, KW, OH, OW) back to the pixel it
    read -> dx (N, C, H, W); what was read from padding is dropped.

    One vectorized add per kernel tap: for a fixed tap the output positions read distinct pixels, so the
    strided `+=` never writes one element twice; overlapping windows accumulate across taps.
    """
    KH, KW, OH, OW = dwin.shape[2:]
    dx = np.zeros(x_shape, dtype=dwin.dtype)
    for i, j, (r0, r1, c0, c1), source in _taps(x_shape, (KH, KW), stride, padding, dilation, (OH, OW)):
        dx[source] += dwin[:, :, i, j, r0:r1, c0:c1]
    return dx


def _check_weighted(name, x, w, b, ndim):
    """The input and weight as float arrays of `ndim` dimensions, the bias 1-D or None, all of one dtype."""
    x = check_float_array(name, x, ndim=ndim)
    w = check_float_array("w", w, ndim=ndim)
    arrays = {name: x, "w": w}
    if b is not None:
        arrays["b"] = b = check_float_array("b", b, ndim=1)
    check_same_dtype(**arrays)
    return x, w, b


# --- conv2d --------------------------------------------------------------------------------------

def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, flip=False):
    """2-D cross-correlation as torch.nn.functional.conv2d (groups = 1, zero padding).

    x (N, C, H, W), w (F, C, KH, KW), b (F,) or None -> out (N, F, OH, OW) with
    out[n, f, oh, ow] = b[f] + sum_{c,i,j} w[f, c, i, j] * xp[n, c, oh*sh + i*dh, ow*sw + j*dw]
    (xp: x zero-padded) and OH = floor((H + 2*ph - dh*(KH - 1) - 1) / sh) + 1, OW likewise.
    stride, padding, dilation: an int or an (h, w) pair.

    flip=True computes the true convolution: the kernel is flipped in both spatial axes before the
    cross-correlation, w[f, c, KH-1-i, KW-1-j]. The gradient then reaches w through the flip, so dw is
    the cross-correlation gradient flipped back; returning it un-flipped is the textbook mistake.
    """
    x, w, b = _check_weighted("x", x, w, b, ndim=4)
    N, C, H, W = x.shape
    F, Cw, KH, KW = w.shape
    if Cw != C:
        raise InputError(f"w: got {Cw} input channels (shape {w.shape}), needs {C}, the channels of x {x.shape}")
    if b is not None:
        check_shape("b", b, (F,), "one bias per output channel of w")
    if not isinstance(flip, (bool, np.bool_)):
        raise InputError(f"flip: got {flip!r}, needs True or False")
    stride, padding, dilation = _pair("stride", stride, 1), _pair("padding", padding, 0), _pair("dilation", dilation, 1)
    OH, OW = _check_out_size(x, (KH, KW), stride, padding, dilation)

    wk = w[:, :, ::-1, ::-1] if flip else w  # the kernel actually slid over the input
    K = C * KH * KW
    # im2col: cols[n] is (K, OH*OW), so one matmul per sample gives NCHW directly. A bias is the weight of
    # one more row of ones: no extra pass over the output, and db falls out of the same product as dw.
    cols = _im2col(x, (KH, KW), stride, padding, dilation, (OH, OW), extra_rows=int(b is not None))
    weights = wk.reshape(F, K)
    if b is not None:
        cols[:, K] = 1
        weights = np.concatenate([weights, b[:, None]], axis=1)
    out = np.matmul(weights, cols)  # (N, F, OH*OW)
    return out.reshape(N, F, OH, OW), (cols, wk, x.shape, (OH, OW), stride, padding, dilation, flip)


def conv2d_backward(dout, cache, input_grad=True):
    """Gradients of conv2d_forward -> (dx, dw, db); db is None without a bias.

    dw[f, k] = sum_{n,p} dout[n, f, p] * cols[n, k, p] and db[f] = sum_{n,p} dout[n, f, p] (the row of ones);
    dx is dcols = w^T dout added back to the pixels each column was read from (col2im).
    Pass ``input_grad=False`` to skip dx (returned as None) when x is data, as torch does.
    """
    cols, wk, x_shape, (OH, OW), stride, padding, dilation, flip = cache
    (N, C), (F, _, KH, KW) = x_shape[:2], wk.shape
    K = C * KH * KW
    d = _check_dout(dout, (N, F, OH, OW), cols.dtype).reshape(N, F, OH * OW)
    dweights = np.matmul(d, cols.transpose(0, 2, 1)).sum(axis=0)  # per sample (F, K [+ 1 bias]), summed over N
    db = dweights[:, K] if cols.shape[1] > K else None
    dwk = dweights[:, :K].reshape(wk.shape)
    dw = dwk[:, :, ::-1, ::-1] if flip else dwk  # w reaches the product flipped, so its gradient flips back
    dx = None
    if input_grad:
        dcols = np.matmul(wk.reshape(F, K).T, d)  # (N, K, OH*OW)
        dx = _col2im(dcols.reshape(N, C, KH, KW, OH, OW), x_shape, stride, padding, dilation)
    return dx, np.ascontiguousarray(dw), db


# --- pooling -------------------------------------------------------------------------------------

def _pool_setup(x, kernel_size, stride, padding):
    """Check a pooling call like torch does -> (x, kernel, stride, padding, (OH, OW))."""
    x = check_float_array("x", x, ndim=4)
    kernel = _pair("kernel_size", kernel_size, 1)
    stride = kernel if stride is None else _pair("stride", stride, 1)
    padding = _pair("padding", padding, 0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise InputError(f"padding: got {padding}, needs at most half the kernel size {kernel} (torch's rule)")
    return x, kernel, stride, padding, _check_out_size(x, kernel, stride, padding, (1, 1))


def max_pool2d_forward(x, kernel_size, stride=None, padding=0):
    """Max pooling as torch.nn.functional.max_pool2d (ceil_mode False): (N, C, H, W) -> (N, C, OH, OW).

    stride defaults to kernel_size; padding pads with -inf and must be at most kernel_size // 2, so every
    window holds a real pixel. OH = floor((H + 2*ph - KH) / sh) + 1, OW likewise.
    Ties: the whole gradient of a window goes to its first maximal element in row-major window order
    (torch's CPU kernel); with overlapping windows a pixel collects the gradient of every window it wins.
    """
    x, kernel, stride, padding, (OH, OW) = _pool_setup(x, kernel_size, stride, padding)
    N, C = x.shape[:2]
    xp = _pad(x, padding, -np.inf)
    win = _windows(xp, kernel, stride, (OH, OW)).reshape(N, C, kernel[0] * kernel[1], OH, OW)
    arg = win.argmax(axis=2)  # np.argmax returns the first maximum: torch's tie rule
    out = np.take_along_axis(win, arg[:, :, None], axis=2)[:, :, 0]
    return out, (arg, x.shape, x.dtype, kernel, stride, padding)


def max_pool2d_backward(dout, cache):
    """dx = dout routed to each window's argmax, accumulated over windows -> (dx,)."""
    arg, x_shape, dtype, (KH, KW), stride, padding = cache
    dout = _check_dout(dout, arg.shape, dtype)
    taps = np.arange(KH * KW).reshape(KH * KW, 1, 1)
    dwin = np.where(taps == arg[:, :, None], dout[:, :, None], 0)  # (N, C, KH*KW, OH, OW), one-hot per window
    dwin = dwin.reshape(*x_shape[:2], KH, KW, *arg.shape[2:])
    return (_col2im(dwin, x_shape, stride, padding, (1, 1)),)


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0):
    """Average pooling as torch.nn.functional.avg_pool2d (ceil_mode False, count_include_pad True).

    (N, C, H, W) -> (N, C, OH, OW), each output the sum of its window divided by KH*KW, zero padding
    included; stride defaults to kernel_size; padding at most kernel_size // 2. OH = floor((H + 2*ph - KH) / sh) + 1.
    """
    x, kernel, stride, padding, out_size = _pool_setup(x, kernel_size, stride, padding)
    xp = _pad(x, padding, 0)
    out = _windows(xp, kernel, stride, out_size).sum(axis=(2, 3)) / (kernel[0] * kernel[1])
    return out, (x.shape, x.dtype, kernel, stride, padding, out.shape)


def avg_pool2d_backward(dout, cache):
    """Every pixel of a window gets dout / (KH*KW), accumulated over windows -> (dx,)."""
    x_shape, dtype, (KH, KW), stride, padding, out_shape = cache
    dout = _check_dout(dout, out_shape, dtype)
    N, C, OH, OW = out_shape
    dwin = np.broadcast_to((dout / (KH * KW))[:, :, None, None], (N, C, KH, KW, OH, OW))
    return (_col2im(dwin, x_shape, stride, padding, (1, 1)),)


# --- activations ---------------------------------------------------------------------------------

def sigmoid_forward(z):
    """out = 1 / (1 + exp(-z)), any shape (manual.kernels.sigmoid: it never overflows)."""
    out = sigmoid(check_float_array("z", z))
    return out, out


def sigmoid_backward(dout, cache):
    """dz = dout * out * (1 - out) -> (dz,)."""
    out = cache
    dout = _check_dout(dout, out.shape, out.dtype)
    return (dout * (out * (1 - out)),)


def flatten_forward(x):
    """(N, ...) -> (N, prod(...)), row-major, as torch.flatten(x, 1)."""
    x = check_float_array("x", x)
    if x.ndim < 1:
        raise InputError("x: got a 0-D array, needs at least 1-D (N, ...)")
    return x.reshape(x.shape[0], -1), (x.shape, x.dtype)


def flatten_backward(dout, cache):
    """dx = dout in the input's shape -> (dx,)."""
    shape, dtype = cache
    dout = _check_dout(dout, (shape[0], int(np.prod(shape[1:]))), dtype)
    return (dout.reshape(shape),)


def tanh_forward(x):
    """out = tanh(x), any shape."""
    out = np.tanh(check_float_array("x", x))
    return out, out


def tanh_backward(dout, cache):
    """dx = dout * (1 - out^2) -> (dx,)."""
    out = cache
    dout = _check_dout(dout, out.shape, out.dtype)
    return (dout * (1 - out * out),)


def relu_forward(x):
    """out = max(x, 0), any shape."""
    x = check_float_array("x", x)
    out = np.zeros_like(x)
    np.maximum(x, out, out=out)  # two arrays take NumPy's SIMD loop: 2-3x faster than np.maximum(x, 0)
    return out, x


def relu_backward(dout, cache):
    """dx = dout where x > 0, else 0; at x == 0 exactly the gradient is 0, as torch's -> (dx,)."""
    x = cache
    dout = _check_dout(dout, x.shape, x.dtype)
    return (dout * (x > 0),)  # a product with the mask: np.where is ~15x slower on a random mask


def leaky_relu_forward(x, negative_slope=0.01):
    """out = x where x > 0, else negative_slope * x, any shape."""
    x = check_float_array("x", x)
    # a Python float keeps x's dtype (a NumPy float64 would promote float32)
    slope = check_number("negative_slope", negative_slope, "a finite real number")
    return np.where(x > 0, x, x * slope), (x, slope)


def leaky_relu_backward(dout, cache):
    """dx = dout where x > 0, else negative_slope * dout; at x == 0 exactly: negative_slope, as torch -> (dx,)."""
    x, slope = cache
    dout = _check_dout(dout, x.shape, x.dtype)
    return (np.where(x > 0, dout, dout * slope),)


# --- merges: several inputs into one output ------------------------------------------------------

def _merge_inputs(xs):
    """Two or more float arrays of one dtype, each with a batch axis -> the arrays."""
    if len(xs) < 2:
        raise InputError(f"xs: got {len(xs)} array{'s' * (len(xs) != 1)}, needs 2 or more to merge")
    arrays = {f"xs[{k}]": check_float_array(f"xs[{k}]", x) for k, x in enumerate(xs)}
    check_same_dtype(**arrays)
    return xs


def add_forward(*xs):
    """out = xs[0] + xs[1] + ..., summed left to right; every input of one shape."""
    xs = _merge_inputs(xs)
    for k, x in enumerate(xs[1:], 1):
        check_shape(f"xs[{k}]", x, xs[0].shape, "the shape of xs[0]: add sums inputs of one shape")
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out, (len(xs), out.shape, out.dtype)


def add_backward(dout, cache):
    """d xs[k] = dout for every input -> (dout, dout, ...), one per input (the same array, never to be written)."""
    count, shape, dtype = cache
    dout = _check_dout(dout, shape, dtype)
    return (dout,) * count


def concat_forward(*xs, dim=0):
    """torch.cat(xs, dim + 1): the inputs (N, ...) joined along per-sample axis `dim` (0: channels or features);
    their other axes must match."""
    xs = _merge_inputs(xs)
    dim = check_positive_int("dim", dim, 0)
    if dim + 1 >= xs[0].ndim:
        raise InputError(f"dim: got {dim}, needs one of the {xs[0].ndim - 1} per-sample axes of xs[0] "
                         f"(shape {xs[0].shape}, the batch axis first)")
    for k, x in enumerate(xs[1:], 1):
        if x.ndim != xs[0].ndim or np.delete(x.shape, dim + 1).tolist() != np.delete(xs[0].shape, dim + 1).tolist():
            raise InputError(f"xs[{k}]: got shape {x.shape}, needs the shape of xs[0] {xs[0].shape} on every axis "
                             f"but axis {dim + 1}")
    out = np.concatenate(xs, axis=dim + 1)
    return out, (np.cumsum([x.shape[dim + 1] for x in xs])[:-1], dim + 1, out.shape, out.dtype)


def concat_backward(dout, cache):
    """d xs[k] = dout's slice along the joined axis that came from xs[k] -> one gradient per input."""
    splits, axis, shape, dtype = cache
    dout = _check_dout(dout, shape, dtype)
    return tuple(np.split(dout, splits, axis=axis))


# --- linear --------------------------------------------------------------------------------------

def linear_forward(x, w, b=None):
    """torch.nn.functional.linear: x (N, in), w (out, in), b (out,) or None -> y (N, out) = x @ w.T + b."""
    x, w, b = _check_weighted("x", x, w, b, ndim=2)
    if w.shape[1] != x.shape[1]:
        raise InputError(
            f"w: got {w.shape[1]} input features (shape {w.shape}), needs {x.shape[1]}, the features of x {x.shape}"
        )
    if b is not None:
        check_shape("b", b, (w.shape[0],), "one bias per output feature of w")
    y = x @ w.T
    if b is not None:
        y += b
    return y, (x, w, b is not None)


def linear_backward(dout, cache):
    """-> (dx = dout @ w, dw = dout^T @ x, db = sum_n dout or None)."""
    x, w, has_bias = cache
    dout = _check_dout(dout, (x.shape[0], w.shape[0]), x.dtype)
    return dout @ w, dout.T @ x, dout.sum(axis=0) if has_bias else None


# --- losses: (pred, target, reduction) -> a 0-d array; backward -> (dpred, None) ------------------

def _loss_inputs(pred, target, reduction, pred_name="pred", target_name="target"):
    """Check a loss call -> (pred, target, divisor of "mean" over all elements, or 1 for "sum")."""
    pred = check_float_array(pred_name, pred)
    target = check_float_array(target_name, target)
    check_same_dtype(**{pred_name: pred, target_name: target})
    check_shape(target_name, target, pred.shape, f"the shape of {pred_name}")
    check_reduction(reduction)
    if pred.size == 0:
        raise InputError(f"{pred_name}: got an empty array of shape {pred.shape}, needs at least one element")
    return pred, target, pred.size if reduction == "mean" else 1


def _check_probabilities(name, p):
    if np.any((p < 0) | (p > 1)):
        bad = tuple(int(i) for i in np.argwhere((p < 0) | (p > 1))[0])
        raise InputError(f"{name}: got {p[bad]} at index {bad}, needs probabilities in [0, 1]")


def half_squared_error_forward(pred, target, reduction="mean"):
    """The slides' E = sum (target - pred)^2 / 2; "mean" divides by the batch size N = pred.shape[0].

    pred, target: (N, ...) -> E: 0-d array of pred's dtype.
    """
    pred, target, _ = _loss_inputs(pred, target, reduction)
    if pred.ndim == 0:
        raise InputError("pred: got a 0-d array, needs a batch axis (N, ...) for the batch mean")
    scale = pred.shape[0] if reduction == "mean" else 1
    diff = pred - target
    E = (diff * diff).sum() / (2 * scale)
    return np.asarray(E, dtype=pred.dtype), (diff, scale)


def half_squared_error_backward(dout, cache):
    """dpred = (pred - target) * dout / (N or 1) -> (dpred, None)."""
    diff, scale = cache
    dout = _check_dout(dout, (), diff.dtype)
    return (diff * (np.asarray(dout, dtype=diff.dtype) / scale), None)


def mse_forward(pred, target, reduction="mean"):
    """torch.nn.functional.mse_loss: sum (pred - target)^2, divided by the number of elements for "mean"."""
    pred, target, scale = _loss_inputs(pred, target, reduction)
    diff = pred - target
    return np.asarray((diff * diff).sum() / scale, dtype=pred.dtype), (diff, scale)


def mse_backward(dout, cache):
    """dpred = 2 (pred - target) * dout / scale -> (dpred, None)."""
    diff, scale = cache
    dout = _check_dout(dout, (), diff.dtype)
    return diff * (2 * dout / scale), None


def binary_cross_entropy_forward(pred, target, reduction="mean"):
    """torch.nn.functional.binary_cross_entropy on probabilities pred in [0, 1], target in [0, 1]:
    l = -(target * max(log pred, -100) + (1 - target) * max(log(1 - pred), -100)), summed or averaged
    over all elements. The clamp keeps pred = 0 or 1 finite, as torch's."""
    pred, target, scale = _loss_inputs(pred, target, reduction)
    _check_probabilities("pred", pred)
    _check_probabilities("target", target)
    with np.errstate(divide="ignore"):  # log(0) = -inf is expected here and clamped on the next line
        log_p = np.maximum(np.log(pred), BCE_LOG_FLOOR)
        log_1mp = np.maximum(np.log1p(-pred), BCE_LOG_FLOOR)
    loss = -(target * log_p + (1 - target) * log_1mp).sum() / scale
    return np.asarray(loss, dtype=pred.dtype), (pred, target, scale)


def binary_cross_entropy_backward(dout, cache):
    """dpred = dout * (pred - target) / max(pred (1 - pred), EPSILON) / scale, torch's formula -> (dpred, None).

    At pred = 0 or 1 this is torch's large finite value, not the derivative of the clamped forward.
    """
    pred, target, scale = cache
    dout = _check_dout(dout, (), pred.dtype)
    return dout * (pred - target) / np.maximum(pred * (1 - pred), BCE_EPSILON) / scale, None


def binary_cross_entropy_with_logits_forward(pred, target, reduction="mean"):
    """torch.nn.functional.binary_cross_entropy_with_logits: the BCE of sigmoid(pred), computed stably as
    l = (1 - target) * z + max(-z, 0) + log(1 + exp(-|z|)) with z = pred (exp only of values <= 0)."""
    z, target, scale = _loss_inputs(pred, target, reduction)
    _check_probabilities("target", target)
    loss = ((1 - target) * z + np.maximum(-z, 0) + np.log1p(np.exp(-np.abs(z)))).sum() / scale
    return np.asarray(loss, dtype=z.dtype), (z, target, scale)


def binary_cross_entropy_with_logits_backward(dout, cache):
    """dz = dout * (sigmoid(z) - target) / scale -> (dz, None)."""
    z, target, scale = cache
    dout = _check_dout(dout, (), z.dtype)
    return (sigmoid(z) - target) * (dout / scale), None


def softmax_cross_entropy_forward(logits, labels, reduction="mean"):
    """torch.nn.functional.cross_entropy with class labels: logits (N, C), labels (N,) integers in [0, C).

    l_n = -log softmax(logits_n)[labels_n] = logsumexp(logits_n) - logits_n[labels_n], summed or averaged
    over the batch; log-softmax is computed after subtracting each row's maximum, so nothing overflows.
    """
    logits = check_float_array("logits", logits, ndim=2)
    check_reduction(reduction)
    N, C = logits.shape
    if N == 0 or C == 0:
        raise InputError(f"logits: got shape {logits.shape}, needs at least one sample and one class")
    check_labels(labels, C, N, "one class label per row of logits")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    scale = N if reduction == "mean" else 1
    loss = -log_probs[np.arange(N), labels].sum() / scale
    return np.asarray(loss, dtype=logits.dtype), (log_probs, labels, scale)


def softmax_cross_entropy_backward(dout, cache):
    """dlogits = (softmax(logits) - onehot(labels)) * dout / scale -> (dlogits, None)."""
    log_probs, labels, scale = cache
    dout = _check_dout(dout, (), log_probs.dtype)
    dlogits = np.exp(log_probs)
    dlogits[np.arange(len(labels)), labels] -= 1
    return dlogits * (dout / scale), None
