"""Layers of a small CNN as forward/backward pairs in torch's layouts (NumPy only).

Contract (the same as ``torch.autograd.Function``):
``<op>_forward(*inputs, **options) -> (out, cache)`` and ``<op>_backward(dout, cache) -> tuple`` with one
gradient per forward input, in order, the layer input included; None for data that gets no gradient
(targets, labels, a missing bias). Layouts are torch's: images (N, C, H, W), conv weight (F, C, KH, KW),
linear weight (out, in). Every function keeps the dtype it is given (float32 or float64), checks its
inputs before any arithmetic (``InputError`` naming the argument, what it got and what it needs) and is
vectorized: the only Python loops run over the KH*KW kernel taps, never over samples or positions.
"""

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from manual.kernels import conv2d_input_grad, erf, im2col, scatter_add_rows, sigmoid
from netdesc.checks import (
    InputError,
    check_float_array,
    check_labels,
    check_number,
    check_positive_int,
    check_reduction,
    check_same_dtype,
    check_shape,
    is_int,
)

__all__ = [
    "batch_norm_backward", "batch_norm_forward", "batch_norm_running_stats", "gelu_backward", "gelu_forward",
    "group_norm_backward", "group_norm_forward", "layer_norm_backward", "layer_norm_forward", "log_softmax_backward",
    "log_softmax_forward", "silu_backward", "silu_forward", "softmax_backward", "softmax_forward",
    "add_backward", "add_forward", "concat_backward", "concat_forward",
    "adaptive_avg_pool2d_backward", "adaptive_avg_pool2d_forward", "adaptive_windows",
    "avg_pool2d_backward", "avg_pool2d_forward", "binary_cross_entropy_backward", "binary_cross_entropy_forward",
    "binary_cross_entropy_with_logits_backward", "binary_cross_entropy_with_logits_forward", "conv2d_backward",
    "conv_transpose2d_backward", "conv_transpose2d_forward",
    "dropout_backward", "dropout_forward", "embedding_backward", "embedding_forward", "nll_backward", "nll_forward",
    "conv2d_forward", "flatten_backward", "flatten_forward", "half_squared_error_backward",
    "half_squared_error_forward", "leaky_relu_backward", "leaky_relu_forward", "linear_backward", "linear_forward",
    "max_pool2d_backward", "max_pool2d_forward", "mse_backward", "mse_forward", "relu_backward", "relu_forward",
    "sequence_pool_backward", "sequence_pool_forward",
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


def _check_dout(dout, shape, dtype, name="dout"):
    """dout (or another gradient of a forward output, `name`) must be an array shaped and typed like that output
    (a scalar for a loss)."""
    if shape == () and isinstance(dout, (int, float, np.integer, np.floating)) and not isinstance(dout, bool):
        dout = np.asarray(dout, dtype=dtype)
    if not isinstance(dout, np.ndarray) or dout.shape != shape or dout.dtype != dtype:
        got = f"shape {dout.shape} dtype {dout.dtype}" if isinstance(dout, np.ndarray) else type(dout).__name__
        raise InputError(f"{name}: got {got}, needs an array of shape {shape} and dtype {dtype} (the forward "
                         "output's)")
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


def _im2col(x, kernel, stride, padding, dilation, out_size):
    """-> cols (N, C*KH*KW, OH*OW): row c*KH*KW + i*KW + j holds what tap (i, j) of channel c reads at each
    output position (0 where it reads padding)."""
    (N, C), (KH, KW), (OH, OW) = x.shape[:2], kernel, out_size
    K = C * KH * KW
    cols = np.empty((N, K, OH, OW), dtype=x.dtype)
    for i, j, (r0, r1, c0, c1), source in _taps(x.shape, kernel, stride, padding, dilation, out_size):
        tap = cols[:, i * KW + j : K : KH * KW]  # (N, C, OH, OW), a view
        tap[:, :, r0:r1, c0:c1] = x[source]
        tap[:, :, :r0], tap[:, :, r1:], tap[:, :, :, :c0], tap[:, :, :, c1:] = 0, 0, 0, 0  # the padding
    return cols.reshape(N, K, OH * OW)


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


# --- conv2d ---------------------------------------------------------------------------------------

def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, flip=False, groups=1):
    """2-D cross-correlation as torch.nn.functional.conv2d (zero padding).

    x (N, C, H, W), w (F, C/G, KH, KW), b (F,) or None -> out (N, F, OH, OW) with
    out[n, f, oh, ow] = b[f] + sum_{c,i,j} w[f, c, i, j] * xp[n, g*C/G + c, oh*sh + i*dh, ow*sw + j*dw]
    (xp: x zero-padded; g = f // (F/G), the group of filter f) and OH = floor((H + 2*ph - dh*(KH - 1) - 1) / sh) + 1,
    OW likewise. stride, padding, dilation: an int or an (h, w) pair.

    groups G splits the channels into G blocks of C/G and the filters into G blocks of F/G: filter block g sees
    channel block g only (G = C: depthwise, one filter block per channel). G = 1 is the plain convolution.

    flip=True computes the true convolution: the kernel is flipped in both spatial axes before the
    cross-correlation, w[f, c, KH-1-i, KW-1-j]. The gradient then reaches w through the flip, so dw is
    the cross-correlation gradient flipped back; returning it un-flipped is the textbook mistake.
    """
    x, w, b = _check_weighted("x", x, w, b, ndim=4)
    N, C, H, W = x.shape
    F, Cg, KH, KW = w.shape
    G = check_positive_int("groups", groups)
    if C % G or F % G:
        raise InputError(f"groups: got {G}, needs a divisor of both the {C} channels of x and the {F} filters of w")
    if Cg != C // G:
        raise InputError(f"w: got {Cg} input channels (shape {w.shape}), needs {C // G}, the channels of x {x.shape} "
                         f"per group ({G} groups)")
    if b is not None:
        check_shape("b", b, (F,), "one bias per output channel of w")
    if not isinstance(flip, (bool, np.bool_)):
        raise InputError(f"flip: got {flip!r}, needs True or False")
    stride, padding, dilation = _pair("stride", stride, 1), _pair("padding", padding, 0), _pair("dilation", dilation, 1)
    OH, OW = _check_out_size(x, (KH, KW), stride, padding, dilation)

    wk = w[:, :, ::-1, ::-1] if flip else w  # the kernel actually slid over the input
    # im2col: cols[n] is (C*KH*KW, OH*RW), its rows channel by channel, so group g's rows are one block of
    # C/G*KH*KW and one matmul per sample and group gives NCHW directly. Each output row has RW >= OW columns
    # (manual.kernels.im2col: with stride 1 it reads whole padded rows); the RW - OW extra ones are dropped.
    cols, RW = im2col(x, (KH, KW), stride, padding, dilation, (OH, OW))
    cols = cols.reshape(N, G, Cg * KH * KW, OH * RW)
    weights = wk.reshape(G, F // G, Cg * KH * KW)
    out = np.matmul(weights, cols).reshape(N, F, OH, RW)  # filter block g on channel block g
    if b is not None:
        out += b[:, None, None]
    out = out[..., :OW]  # a view: copying it out would cost a pass over the output
    return out, (cols, wk, x.shape, (OH, OW), stride, padding, dilation, flip, b is not None)


def conv2d_backward(dout, cache, input_grad=True):
    """Gradients of conv2d_forward -> (dx, dw, db); db is None without a bias.

    Per group g: dw_g[f, k] = sum_{n,p} dout_g[n, f, p] * cols_g[n, k, p] and db[f] = sum_{n,p} dout[n, f, p];
    dx is dcols_g = w_g^T dout_g, added back to the pixels each column was read from (col2im).
    Pass ``input_grad=False`` to skip dx (returned as None) when x is data, as torch does.
    """
    cols, wk, x_shape, (OH, OW), stride, padding, dilation, flip, has_bias = cache
    N, F, G = x_shape[0], wk.shape[0], cols.shape[1]
    RW = cols.shape[3] // OH
    dout = _check_dout(dout, (N, F, OH, OW), cols.dtype)
    d = dout
    if RW > OW:  # dout in the columns' layout: the extra columns, which gave no output, get 0
        d = np.zeros((N, F, OH, RW), dout.dtype)
        d[..., :OW] = dout
    d = d.reshape(N, G, F // G, OH * RW)
    dweights = np.matmul(d, cols.transpose(0, 1, 3, 2)).sum(axis=0)  # per sample (G, F/G, C/G*KH*KW), summed over N
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    dwk = dweights.reshape(wk.shape)
    dw = dwk[:, :, ::-1, ::-1] if flip else dwk  # w reaches the product flipped, so its gradient flips back
    # dx: dcols_g = w_g^T dout_g, added back to the pixels each column was read from (col2im)
    dx = conv2d_input_grad(dout, wk, G, x_shape, stride, padding, dilation) if input_grad else None
    return dx, np.ascontiguousarray(dw), db


# --- conv_transpose2d ----------------------------------------------------------------------------

def conv_transpose2d_forward(x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1):
    """2-D transposed convolution as torch.nn.functional.conv_transpose2d (groups = 1): conv2d's input gradient.

    x (N, C, H, W), w (C, F, KH, KW) (torch's layout: input channels first), b (F,) or None -> out (N, F, OH, OW):
    every input pixel scatters w[c, :] * x[n, c, h, w] onto the output from (h*sh - ph, w*sw - pw), tap (i, j)
    landing at (h*sh + i*dh - ph, w*sw + j*dw - pw); what lands outside the output is dropped (the padding).
    OH = (H - 1)*sh - 2*ph + dh*(KH - 1) + oph + 1, OW likewise; output_padding adds rows and columns at the
    bottom and right (needs output_padding < stride or < dilation, torch's rule).
    """
    x, w, b = _check_weighted("x", x, w, b, ndim=4)
    N, C, H, W = x.shape
    Cw, F, KH, KW = w.shape
    if Cw != C:
        raise InputError(f"w: got {Cw} input channels (shape {w.shape}, input channels first), needs {C}, the "
                         f"channels of x {x.shape}")
    if b is not None:
        check_shape("b", b, (F,), "one bias per output channel of w")
    stride, padding, dilation = _pair("stride", stride, 1), _pair("padding", padding, 0), _pair("dilation", dilation, 1)
    output_padding = _pair("output_padding", output_padding, 0)
    if any(op >= s and op >= d for op, s, d in zip(output_padding, stride, dilation, strict=True)):
        raise InputError(f"output_padding: got {output_padding}, needs each smaller than the stride {stride} or the "
                         f"dilation {dilation} (torch's rule)")
    OH, OW = (_transposed_size(*args) for args in zip(
        (H, W), (KH, KW), stride, padding, output_padding, dilation, strict=True))
    if OH < 1 or OW < 1:
        raise InputError(f"padding: got {padding}, which gives an empty {OH}x{OW} output; needs (H - 1)*stride + "
                         "dilation*(KH - 1) + output_padding + 1 > 2*padding")
    # each pixel's contributions, (N, F*KH*KW, H*W) = w^T x per sample, scattered as conv2d's col2im scatters dx
    contributions = np.matmul(w.reshape(C, F * KH * KW).T, x.reshape(N, C, H * W))
    out = _col2im(contributions.reshape(N, F, KH, KW, H, W), (N, F, OH, OW), stride, padding, dilation)
    if b is not None:
        out += b[:, None, None]
    return out, (x, w, stride, padding, dilation, out.shape, b is not None)


def _transposed_size(size, kernel, stride, padding, output_padding, dilation):
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def conv_transpose2d_backward(dout, cache):
    """Gradients of conv_transpose2d_forward -> (dx, dw, db): dout read back through the windows the forward
    scattered into (conv2d's im2col, one window per input pixel), dx = w dcols, dw = x dcols^T summed over the
    batch, db = dout summed over the batch and the positions."""
    x, w, stride, padding, dilation, out_shape, has_bias = cache
    (N, C, H, W), (_, F, KH, KW) = x.shape, w.shape
    dout = _check_dout(dout, out_shape, x.dtype)
    dcols = _im2col(dout, (KH, KW), stride, padding, dilation, (H, W))  # (N, F*KH*KW, H*W)
    dx = np.matmul(w.reshape(C, F * KH * KW), dcols).reshape(x.shape)
    dw = np.matmul(x.reshape(N, C, H * W), dcols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db


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


def adaptive_windows(size, out, dtype=np.float64):
    """torch's adaptive pooling windows along one axis as an averaging matrix (out, size): output i averages the
    inputs [floor(i*size/out), ceil((i+1)*size/out)), so row i holds 1/(its window's length) there, 0 elsewhere.
    Windows of unequal length (and overlapping ones) where out does not divide size."""
    i = np.arange(out)
    start, end = i * size // out, -(-(i + 1) * size // out)  # -(-a // b) = ceil(a / b)
    position = np.arange(size)
    inside = (position >= start[:, None]) & (position < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


def adaptive_avg_pool2d_forward(x, output_size):
    """Adaptive average pooling as torch.nn.functional.adaptive_avg_pool2d: (N, C, H, W) -> (N, C, OH, OW).

    out[n, c, i, j] is the mean of x over rows [floor(i*H/OH), ceil((i+1)*H/OH)) and columns likewise, so with
    the averaging matrices A_h (OH, H) and A_w (OW, W) of ``adaptive_windows``: out = A_h x A_w^T.
    output_size: an int or an (OH, OW) pair; (1, 1) is global average pooling.
    """
    x = check_float_array("x", x, ndim=4)
    OH, OW = _pair("output_size", output_size, 1)
    A_h, A_w = adaptive_windows(x.shape[2], OH, x.dtype), adaptive_windows(x.shape[3], OW, x.dtype)
    out = A_h @ x @ A_w.T
    return out, (A_h, A_w, out.shape, x.dtype)


def adaptive_avg_pool2d_backward(dout, cache):
    """dx = A_h^T dout A_w: every pixel gets dout / (its window's size), summed over the windows it lies in -> (dx,)."""
    A_h, A_w, out_shape, dtype = cache
    dout = _check_dout(dout, out_shape, dtype)
    return (A_h.T @ dout @ A_w,)


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
    if x.ndim < 2:  # torch.flatten(x, 1) has no axis 1 to start from
        raise InputError(f"x: got {x.ndim}-D array of shape {x.shape}, needs at least 2-D (N, ...), as "
                         "torch.flatten(x, 1)")
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
    """torch.nn.functional.linear on the last axis: x (N, *, in), w (out, in), b (out,) or None
    -> y (N, *, out) = x @ w.T + b; a sequence (N, T, in) gives (N, T, out), every step by the same weights."""
    if check_float_array("x", x).ndim < 2:
        raise InputError(f"x: got {x.ndim}-D array of shape {x.shape}, needs 2-D or more (N, *, in_features)")
    w = check_float_array("w", w, ndim=2)
    arrays = {"x": x, "w": w} | ({} if b is None else {"b": check_float_array("b", b, ndim=1)})
    check_same_dtype(**arrays)
    if w.shape[1] != x.shape[-1]:
        raise InputError(
            f"w: got {w.shape[1]} input features (shape {w.shape}), needs {x.shape[-1]}, the features of x {x.shape} "
            "(its last axis)"
        )
    if b is not None:
        check_shape("b", b, (w.shape[0],), "one bias per output feature of w")
    y = x @ w.T
    if b is not None:
        y += b
    return y, (x, w, b is not None)


def linear_backward(dout, cache):
    """-> (dx = dout @ w, dw = dout^T @ x and db = dout summed over every row (the batch and any steps), or None)."""
    x, w, has_bias = cache
    dout = _check_dout(dout, (*x.shape[:-1], w.shape[0]), x.dtype)
    rows, x_rows = dout.reshape(-1, w.shape[0]), x.reshape(-1, x.shape[-1])  # (N*T..., out), (N*T..., in)
    return dout @ w, rows.T @ x_rows, rows.sum(axis=0) if has_bias else None


# --- sequence_pool: a sequence (N, T, F) to one vector per sample -------------------------------------

SEQUENCE_POOL_MODES = ("last", "mean")


def sequence_pool_forward(x, mode="last"):
    """A sequence's features pooled over its steps: x (N, T, F) -> (N, F), the last step x[:, -1] ("last") or the
    mean over the steps x.mean(1) ("mean")."""
    x = check_float_array("x", x, ndim=3)
    if mode not in SEQUENCE_POOL_MODES:
        raise InputError(f"mode: got {mode!r}, needs one of {', '.join(SEQUENCE_POOL_MODES)}")
    if x.shape[1] == 0:
        raise InputError(f"x: got shape {x.shape}, needs at least one step (T >= 1)")
    out = x[:, -1].copy() if mode == "last" else x.mean(axis=1)
    return out, (x.shape, x.dtype, mode)


def sequence_pool_backward(dout, cache):
    """"last": dx[:, T - 1] = dout, every earlier step 0; "mean": dx[:, t] = dout / T at every step -> (dx,)."""
    shape, dtype, mode = cache
    N, T, F = shape
    dout = _check_dout(dout, (N, F), dtype)
    if mode == "mean":
        return (np.broadcast_to(dout[:, None] / dtype.type(T), shape).copy(),)
    dx = np.zeros(shape, dtype)
    dx[:, -1] = dout
    return (dx,)


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


def softmax_cross_entropy_forward(logits, labels, reduction="mean", ignore_index=-100):
    """torch.nn.functional.cross_entropy with class labels: logits (N, C), labels (N,) integers in [0, C) or
    ignore_index; or a sequence, logits (N, T, C) (the classes last: torch's (N, C, T) with the axes moved) and a
    label per step, labels (N, T).

    l = logsumexp(logits_r) - logits_r[labels_r] for every row r (every sample, or every step of every sample), 0
    where the label is ignore_index (torch's default -100), summed, or averaged over the labels kept (nan when
    every label is ignored, as torch); log-softmax is computed after subtracting each row's maximum, so nothing
    overflows.
    """
    logits = check_float_array("logits", logits, ndim=(2, 3))
    check_reduction(reduction)
    if not is_int(ignore_index, -(2 ** 63)):
        raise InputError(f"ignore_index: got {ignore_index!r}, needs an integer")
    C = logits.shape[-1]
    if logits.size == 0:
        raise InputError(f"logits: got shape {logits.shape}, needs at least one sample and one class")
    check_labels(labels, C, logits.shape[:-1], "one class label per row of logits", ignore_index)
    rows, labels = logits.reshape(-1, C), labels.reshape(-1)  # (N*T, C), (N*T,): every step a row
    shifted = rows - rows.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    kept = np.flatnonzero(labels != ignore_index)
    total = -log_probs[kept, labels[kept]].sum()
    scale = len(kept) if reduction == "mean" else 1
    loss = total / scale if scale else np.nan  # the mean over no label: torch's nan
    return np.asarray(loss, dtype=logits.dtype), (log_probs, labels, kept, scale, logits.shape)


def softmax_cross_entropy_backward(dout, cache):
    """dlogits = (softmax(logits) - onehot(labels)) * dout / scale on the rows kept, 0 on the ignored ones
    -> (dlogits, None)."""
    log_probs, labels, kept, scale, shape = cache
    dout = _check_dout(dout, (), log_probs.dtype)
    drows = np.zeros_like(log_probs)
    drows[kept] = np.exp(log_probs[kept])
    drows[kept, labels[kept]] -= 1
    return (drows * (dout / max(scale, 1))).reshape(shape), None


# --- normalization: x_hat = (x - mean) / sqrt(var + eps) over some axes, then gamma * x_hat + beta ---------------

def _normalize(x, axes, eps):
    """-> (x_hat, inv_std): x standardized over `axes` with the biased variance, inv_std = 1 / sqrt(var + eps).

    The statistics are taken in float64 whatever x's dtype: in float32 a mean near the values themselves leaves
    x - mean with few digits (values 1 +- 0.001: x_hat off by 1.9e-5, now by rounding only), and a random network
    of batch 2 went 37 times beyond autograd's own float32 error there (tests/test_no_false_alarms.py)."""
    x64 = x.astype(np.float64, copy=False)
    mean, var = _moments(x64, axes)
    inv_std = 1 / np.sqrt(var + eps)
    return ((x64 - mean) * inv_std).astype(x.dtype), inv_std.astype(x.dtype)


def _moments(x, axes):
    """-> (mean, var) of x over `axes` (kept as size-1 axes), the variance biased: divided by the count M, as torch
    normalizes."""
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    return mean, (centred * centred).mean(axis=axes, keepdims=True)


def _normalize_backward(dx_hat, x_hat, inv_std, axes):
    """dx for x_hat = (x - mean) * inv_std: the sum of its three paths (_normalize_backward_terms)."""
    terms = _normalize_backward_terms(dx_hat, x_hat, inv_std, axes)
    return terms["direct"] + terms["through_mean"] + terms["through_var"]


def _normalize_backward_terms(dx_hat, x_hat, inv_std, axes):
    """dx for x_hat = (x - mean) * inv_std, written as its three paths (M elements per group) -> {"direct",
    "through_mean", "through_var"}:

    - direct: x reaches x_hat itself, dx_hat * inv_std;
    - through the mean: every x moves the mean by 1/M, which moves every x_hat by -inv_std,
      -mean(dx_hat) * inv_std;
    - through the variance: d var / dx = 2 (x - mean) / M and d inv_std / d var = -inv_std^3 / 2, so
      -x_hat * mean(dx_hat * x_hat) * inv_std (the variance's own path through the mean sums to zero).
    """
    direct = dx_hat * inv_std
    through_mean = -dx_hat.mean(axis=axes, keepdims=True) * inv_std
    through_var = -x_hat * (dx_hat * x_hat).mean(axis=axes, keepdims=True) * inv_std
    return {"direct": direct, "through_mean": through_mean, "through_var": through_var}


def _check_affine(x, gamma, beta, shape, meaning):
    """gamma and beta each None or a float array of `shape`, of x's dtype."""
    arrays = {"x": x}
    for name, value in (("gamma", gamma), ("beta", beta)):
        if value is not None:
            arrays[name] = check_float_array(name, value)
            check_shape(name, value, shape, meaning)
    check_same_dtype(**arrays)


def _affine(x_hat, gamma, beta, broadcast):
    """gamma * x_hat + beta, each of gamma and beta left out where None; broadcast: their shape against x_hat."""
    out = x_hat if gamma is None else x_hat * gamma.reshape(broadcast)
    return out if beta is None else out + beta.reshape(broadcast)


def _affine_backward(dout, x_hat, gamma, beta, broadcast, axes):
    """-> (dx_hat = dout * gamma, dgamma = sum dout * x_hat, dbeta = sum dout), summed over `axes` (not gamma's)."""
    dx_hat = dout if gamma is None else dout * gamma.reshape(broadcast)
    dgamma = None if gamma is None else (dout * x_hat).sum(axis=axes)
    dbeta = None if beta is None else dout.sum(axis=axes)
    return dx_hat, dgamma, dbeta


def _check_eps(eps):
    return check_number("eps", eps, "a finite number > 0", minimum=np.finfo(np.float64).tiny)


def layer_norm_forward(x, gamma=None, beta=None, *, normalized_shape, eps=1e-5):
    """torch.nn.functional.layer_norm: each sample normalized over its trailing dims `normalized_shape` D.

    x (N, ..., *D), gamma and beta (*D) or None -> out like x, out = gamma * (x - mean) / sqrt(var + eps) + beta,
    mean and biased var over the last len(D) axes of each sample.
    """
    x = check_float_array("x", x)
    shape = tuple(normalized_shape) if isinstance(normalized_shape, (tuple, list)) else (normalized_shape,)
    if not shape or not all(is_int(d, 1) for d in shape) or x.shape[x.ndim - len(shape):] != shape \
            or len(shape) >= x.ndim:
        raise InputError(f"normalized_shape: got {normalized_shape!r}, needs the trailing dims of one sample of x "
                         f"(shape {x.shape}, the batch axis first)")
    _check_affine(x, gamma, beta, shape, "normalized_shape")
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    x_hat, inv_std = _normalize(x, axes, _check_eps(eps))
    return _affine(x_hat, gamma, beta, shape), (x_hat, inv_std, gamma, beta, axes)


def layer_norm_backward(dout, cache):
    """-> (dx, dgamma, dbeta): dgamma, dbeta summed over the leading axes; dx through x_hat's three paths."""
    x_hat, inv_std, gamma, beta, axes = cache
    dout = _check_dout(dout, x_hat.shape, x_hat.dtype)
    leading = tuple(range(axes[0]))
    dx_hat, dgamma, dbeta = _affine_backward(dout, x_hat, gamma, beta, x_hat.shape[axes[0]:], leading)
    return _normalize_backward(dx_hat, x_hat, inv_std, axes), dgamma, dbeta


def _channels(x):
    """(N, C, ...) -> the shape gamma and beta broadcast to: (1, C, 1, ...)."""
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def group_norm_forward(x, gamma=None, beta=None, *, num_groups, eps=1e-5):
    """torch.nn.functional.group_norm: the C channels of each sample split into num_groups groups of C/G
    consecutive channels, each group normalized over its channels and positions.

    x (N, C, ...), gamma and beta (C,) or None -> out like x, gamma and beta per channel.
    """
    x = check_float_array("x", x)
    if x.ndim < 2:
        raise InputError(f"x: got shape {x.shape}, needs (N, C, ...)")
    G = check_positive_int("num_groups", num_groups)
    N, C = x.shape[:2]
    if C % G:
        raise InputError(f"num_groups: got {G}, needs a divisor of the {C} channels of x {x.shape}")
    _check_affine(x, gamma, beta, (C,), "one per channel of x")
    grouped = x.reshape(N, G, -1)  # group g holds channels g*C/G .. (g+1)*C/G - 1, all their positions
    x_hat, inv_std = _normalize(grouped, (2,), _check_eps(eps))
    x_hat = x_hat.reshape(x.shape)
    return _affine(x_hat, gamma, beta, _channels(x)), (x_hat, inv_std, gamma, beta, G)


def group_norm_backward(dout, cache):
    """-> (dx, dgamma, dbeta): dgamma, dbeta summed over all but the channels; dx through each group's x_hat."""
    x_hat, inv_std, gamma, beta, G = cache
    dout = _check_dout(dout, x_hat.shape, x_hat.dtype)
    others = (0, *range(2, x_hat.ndim))
    dx_hat, dgamma, dbeta = _affine_backward(dout, x_hat, gamma, beta, _channels(x_hat), others)
    N = x_hat.shape[0]
    dx = _normalize_backward(dx_hat.reshape(N, G, -1), x_hat.reshape(N, G, -1), inv_std, (2,))
    return dx.reshape(x_hat.shape), dgamma, dbeta


def _batch_norm_stats(running_mean, running_var, x):
    """running_mean, running_var: both None or both (C,) float arrays of x's dtype, the variances > 0."""
    if (running_mean is None) != (running_var is None):
        raise InputError("running_mean, running_var: got one of them, needs both or neither")
    if running_mean is not None:
        C = x.shape[1]
        for name, value in (("running_mean", running_mean), ("running_var", running_var)):
            check_shape(name, check_float_array(name, value), (C,), "one per channel of x")
        check_same_dtype(x=x, running_mean=running_mean, running_var=running_var)
        if np.any(running_var < 0):
            raise InputError(f"running_var: got {running_var.min()}, needs variances >= 0")


def _check_channels(x):
    """Batch statistics need a channel to be taken over (torch gives an empty result for none)."""
    if x.shape[1] == 0:
        raise InputError(f"x: got shape {x.shape}, needs at least one channel (axis 1) for batch statistics")


def _check_momentum(momentum):
    momentum = check_number("momentum", momentum, "a number in [0, 1]", minimum=0)
    if momentum > 1:
        raise InputError(f"momentum: got {momentum!r}, needs a number in [0, 1]")
    return momentum


def batch_norm_forward(x, running_mean=None, running_var=None, gamma=None, beta=None, training=True, momentum=0.1,
                       eps=1e-5):
    """torch.nn.functional.batch_norm (torch's argument order): each channel normalized over the batch and positions.

    x (N, C) or (N, C, L) (BatchNorm1d) or (N, C, H, W) (BatchNorm2d); running_mean, running_var, gamma, beta (C,)
    or None. training: the batch's mean and biased variance over the N*L (or N*H*W) values of each channel; eval:
    the given running statistics (then required). The running statistics are not changed here:
    batch_norm_running_stats gives their update. momentum is only checked, for that function's sake.
    """
    x = check_float_array("x", x, ndim=(2, 3, 4))
    _batch_norm_stats(running_mean, running_var, x)
    _check_affine(x, gamma, beta, (x.shape[1],), "one per channel of x")
    if not isinstance(training, (bool, np.bool_)):
        raise InputError(f"training: got {training!r}, needs True or False")
    _check_momentum(momentum)
    eps, axes, broadcast = _check_eps(eps), (0, *range(2, x.ndim)), _channels(x)
    if training:
        _check_channels(x)
        if x.size // x.shape[1] < 2:
            raise InputError(f"x: got shape {x.shape} in training mode, needs more than one value per channel "
                             "(the batch variance of one value is 0)")
        x_hat, inv_std = _normalize(x, axes, eps)
    else:
        if running_mean is None:
            raise InputError("running_mean: got None in eval mode, needs the running statistics to normalize with")
        inv_std = (1 / np.sqrt(running_var + eps)).reshape(broadcast)
        x_hat = (x - running_mean.reshape(broadcast)) * inv_std
    out = _affine(x_hat, gamma, beta, broadcast)
    return out, (x_hat, inv_std, gamma, beta, training, running_mean is not None)


def batch_norm_backward(dout, cache):
    """-> (dx, None, None, dgamma, dbeta). Training: dx through x_hat's three paths (the batch statistics depend
    on x); eval: dx = dout * gamma * inv_std, the running statistics being constants."""
    x_hat, inv_std, gamma, beta, training, _ = cache
    dout = _check_dout(dout, x_hat.shape, x_hat.dtype)
    axes, broadcast = (0, *range(2, x_hat.ndim)), _channels(x_hat)
    sum_dout, sum_dout_x_hat = dout.sum(axis=axes), (dout * x_hat).sum(axis=axes)
    dgamma = None if gamma is None else sum_dout_x_hat
    dbeta = None if beta is None else sum_dout
    scale = inv_std if gamma is None else gamma.reshape(broadcast) * inv_std  # dx_hat = gamma * dout, then inv_std
    if not training:
        return dout * scale, None, None, dgamma, dbeta
    # _normalize_backward with dx_hat = gamma * dout, gamma per channel: mean(dx_hat) = gamma * sum(dout) / M and
    # mean(dx_hat * x_hat) = gamma * sum(dout * x_hat) / M, the sums dbeta and dgamma already are, so
    # dx = gamma * inv_std * (dout - sum(dout) / M - x_hat * sum(dout * x_hat) / M), built in one buffer
    M = x_hat.size // x_hat.shape[1]
    dx = x_hat * (sum_dout_x_hat.reshape(broadcast) / -M)
    dx += dout
    dx -= sum_dout.reshape(broadcast) / M
    dx *= scale
    return dx, None, None, dgamma, dbeta


def batch_norm_backward_terms(dout, cache):
    """Training mode's dx taken apart (crosscheck explain --layer batchnorm) -> {"dx_hat": dout * gamma, "direct",
    "through_mean", "through_var"}: dx is the sum of the three paths (_normalize_backward_terms)."""
    x_hat, inv_std, gamma, _, _, _ = cache
    dx_hat = dout if gamma is None else dout * gamma.reshape(_channels(x_hat))  # (dgamma and dbeta are not terms)
    return {"dx_hat": dx_hat} | _normalize_backward_terms(dx_hat, x_hat, inv_std, (0, *range(2, x_hat.ndim)))


def batch_norm_running_stats(x, running_mean, running_var, momentum=0.1):
    """The running statistics after one training-mode batch, as torch updates its buffers -> (mean, var), new arrays:
    new = (1 - momentum) * old + momentum * batch, with the batch's UNBIASED variance (divided by M - 1, M the
    values per channel), where the forward normalizes with the biased one."""
    x = check_float_array("x", x, ndim=(2, 3, 4))
    _batch_norm_stats(running_mean, running_var, x)
    if running_mean is None:
        raise InputError("running_mean: got None, needs the running statistics to update")
    momentum = _check_momentum(momentum)
    _check_channels(x)
    axes, M = (0, *range(2, x.ndim)), x.size // x.shape[1]
    if M < 2:
        raise InputError(f"x: got shape {x.shape}, needs more than one value per channel (an unbiased variance)")
    mean = x.mean(axis=axes)
    centred = x - mean.reshape(_channels(x))
    unbiased = np.square(centred, out=centred).sum(axis=axes) / (M - 1)
    return (1 - momentum) * running_mean + momentum * mean, (1 - momentum) * running_var + momentum * unbiased


# --- smooth activations and softmax along an axis -------------------------------------------------------

GELU_APPROXIMATIONS = ("none", "tanh")
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def gelu_forward(x, approximate="none"):
    """torch.nn.functional.gelu: "none" x * Phi(x) = x (1 + erf(x / sqrt 2)) / 2; "tanh"
    x (1 + t) / 2 with t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3). Any shape."""
    x = check_float_array("x", x)
    if approximate not in GELU_APPROXIMATIONS:
        raise InputError(f"approximate: got {approximate!r}, needs one of {', '.join(map(repr, GELU_APPROXIMATIONS))}")
    if approximate == "tanh":
        t = np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3))
        return 0.5 * x * (1 + t), (x, approximate, t)
    Phi = 0.5 * (1 + erf(x / math.sqrt(2)))  # NumPy has no erf: manual.kernels' (math.erf's, vectorized)
    return x * Phi, (x, approximate, Phi)


def gelu_backward(dout, cache):
    """"none": dx = dout * (Phi(x) + x phi(x)), phi the normal density; "tanh": dx = dout * ((1 + t) / 2
    + x (1 - t^2) u' / 2) with u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2) -> (dx,)."""
    x, approximate, value = cache
    dout = _check_dout(dout, x.shape, x.dtype)
    if approximate == "tanh":
        t = value
        du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
        return (dout * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du),)
    phi = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return (dout * (value + x * phi),)


def silu_forward(x):
    """torch.nn.functional.silu: out = x * sigmoid(x), any shape."""
    x = check_float_array("x", x)
    s = sigmoid(x)
    return x * s, (x, s)


def silu_backward(dout, cache):
    """dx = dout * (s + x s (1 - s)), s = sigmoid(x) -> (dx,)."""
    x, s = cache
    dout = _check_dout(dout, x.shape, x.dtype)
    return (dout * (s * (1 + x * (1 - s))),)


def _axis(x, dim):
    """Per-sample axis `dim` (0 the first after the batch axis: torch's dim + 1) of x (N, ...) -> numpy's axis."""
    dim = check_positive_int("dim", dim, 0)
    if dim + 1 >= x.ndim:
        raise InputError(f"dim: got {dim}, needs one of the {x.ndim - 1} per-sample axes of x "
                         f"(shape {x.shape}, the batch axis first)")
    return dim + 1


def softmax_forward(x, dim=0):
    """torch.softmax(x, dim + 1): exp(x) / sum exp(x) along per-sample axis `dim` (0 the channels or features),
    after subtracting the maximum along it, so that nothing overflows. x (N, ...) -> out like x."""
    x = check_float_array("x", x)
    axis = _axis(x, dim)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    s = e / e.sum(axis=axis, keepdims=True)
    return s, (s, axis)


def softmax_backward(dout, cache):
    """dx = s * (dout - sum(dout * s)) along the axis: the full Jacobian diag(s) - s s^T applied -> (dx,)."""
    s, axis = cache
    dout = _check_dout(dout, s.shape, s.dtype)
    return (s * (dout - (dout * s).sum(axis=axis, keepdims=True)),)


def log_softmax_forward(x, dim=0):
    """torch.log_softmax(x, dim + 1): x - logsumexp(x) along per-sample axis `dim`, shifted by the maximum."""
    x = check_float_array("x", x)
    axis = _axis(x, dim)
    shifted = x - x.max(axis=axis, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return out, (out, axis)


def log_softmax_backward(dout, cache):
    """dx = dout - softmax * sum(dout) along the axis, softmax = exp(out) -> (dx,)."""
    out, axis = cache
    dout = _check_dout(dout, out.shape, out.dtype)
    return (dout - np.exp(out) * dout.sum(axis=axis, keepdims=True),)


# --- embedding: rows of a table looked up by integer indices -----------------------------------------------

def _check_indices(name, indices, size, meaning, allowed=None):
    """An integer array whose values lie in [0, size) (or equal `allowed`, an ignored label) -> it."""
    if not isinstance(indices, np.ndarray) or not np.issubdtype(indices.dtype, np.integer):
        got = f"dtype {indices.dtype}" if isinstance(indices, np.ndarray) else type(indices).__name__
        raise InputError(f"{name}: got {got}, needs a NumPy array of integer {meaning}")
    if indices.size and 0 <= indices.min() and indices.max() < size:  # all in range: two reductions, no masks
        return indices
    bad = np.argwhere(((indices < 0) | (indices >= size)) & (indices != allowed))
    if bad.size:
        at = tuple(int(i) for i in bad[0])
        also = "" if allowed is None else f" or {allowed}"
        raise InputError(f"{name}{list(at)}: got {indices[at]}, needs {meaning} in [0, {size - 1}]{also}")
    return indices


def _check_padding_idx(padding_idx, V):
    if padding_idx is not None and not (is_int(padding_idx) and padding_idx < V):
        raise InputError(f"padding_idx: got {padding_idx!r}, needs None or a row of weight in [0, {V - 1}]")
    return padding_idx


def embedding_forward(indices, weight, padding_idx=None):
    """torch.nn.functional.embedding: out[n, l] = weight[indices[n, l]].

    indices (N, L) (any shape) integers in [0, V), weight (V, D) -> out (N, L, D). padding_idx, a row of weight,
    changes nothing here: it only keeps that row's gradient at zero.
    """
    weight = check_float_array("weight", weight, ndim=2)
    indices = _check_indices("indices", indices, weight.shape[0], "rows of weight")
    padding_idx = _check_padding_idx(padding_idx, weight.shape[0])
    return weight[indices], (indices, weight.shape, weight.dtype, padding_idx)


def embedding_backward(dout, cache):
    """dweight[v] = the sum of dout over every position that holds index v: a repeated index accumulates
    (np.add.at; `dweight[indices] = dout` would keep only the last). The padding_idx row gets none; the indices
    are data, no gradient -> (None, dweight)."""
    indices, shape, dtype, padding_idx = cache
    dout = _check_dout(dout, (*indices.shape, shape[1]), dtype)
    dweight = scatter_add_rows(indices, dout, shape[0])  # np.add.at(dweight, indices, dout), faster
    if padding_idx is not None:
        dweight[padding_idx] = 0
    return None, dweight


# --- negative log-likelihood on log-probabilities ----------------------------------------------------------

NLL_REDUCTIONS = ("mean", "sum", "none")
NLL_IGNORE_INDEX = -100  # torch's default ignore_index


def nll_forward(log_probs, labels, reduction="mean", ignore_index=NLL_IGNORE_INDEX):
    """torch.nn.functional.nll_loss: log_probs (N, C) (a log_softmax's output), labels (N,) in [0, C) or
    ignore_index; or a sequence, log_probs (N, T, C) (the classes last: torch's (N, C, T) with the axes moved) and
    labels (N, T).

    l_r = -log_probs[r, labels_r] for every row r (sample, or step of a sample), 0 where labels_r == ignore_index;
    "none" -> (l_r) of the labels' shape, "sum" -> their sum, "mean" -> their sum over the number of labels kept (not
    N; nan when every label is ignored, as torch).
    """
    log_probs = check_float_array("log_probs", log_probs, ndim=(2, 3))
    if reduction not in NLL_REDUCTIONS:
        raise InputError(f"reduction: got {reduction!r}, needs one of {', '.join(NLL_REDUCTIONS)}")
    if not is_int(ignore_index, -(2 ** 63)):
        raise InputError(f"ignore_index: got {ignore_index!r}, needs an integer")
    C = log_probs.shape[-1]
    _check_indices("labels", labels, C, "class labels", ignore_index)
    check_shape("labels", labels, log_probs.shape[:-1], "one class label per row of log_probs")
    kept = labels != ignore_index
    picked = np.zeros(log_probs.shape, bool)
    picked[(*np.nonzero(kept), labels[kept])] = True  # the one-hot of every kept label
    losses = -np.where(picked, log_probs, 0).sum(axis=-1)
    count = int(kept.sum())
    if reduction == "none":
        return losses, (picked.astype(log_probs.dtype), 1, reduction)
    total = losses.sum() if reduction == "sum" or count else np.nan
    scale = count if reduction == "mean" and count else 1
    return np.asarray(total / scale, log_probs.dtype), (picked.astype(log_probs.dtype), scale, reduction)


def nll_backward(dout, cache):
    """dlog_probs = -onehot(kept labels) * dout / (the number kept under "mean"); an ignored row gets 0 ->
    (dlog_probs, None)."""
    onehot, scale, reduction = cache
    if reduction == "none":  # one upstream value per label
        dout = _check_dout(dout, onehot.shape[:-1], onehot.dtype)[..., None]
    else:
        dout = _check_dout(dout, (), onehot.dtype)
    return onehot * (-dout / scale), None


# --- dropout: the harness draws the mask, both sides apply it ----------------------------------------------

def dropout_forward(x, mask=None, p=0.5):
    """torch.nn.functional.dropout in training mode with a given mask: out = x * mask / (1 - p).

    x (N, ...), mask like x, True (or 1) where an element is kept, drawn elsewhere with P(keep) = 1 - p (torch's
    own draw cannot be shared); p = 1 drops everything and gives zeros, as torch does. mask None: eval mode, the
    identity.
    """
    x = check_float_array("x", x)
    p = check_number("p", p, "a number in [0, 1]", minimum=0)
    if p > 1:
        raise InputError(f"p: got {p!r}, needs a number in [0, 1]")
    if mask is None:  # eval mode: every element kept, unscaled
        return x.copy(), (np.ones_like(x), x.dtype)
    if not isinstance(mask, np.ndarray) or mask.dtype.kind not in "biu" or np.any((mask != 0) & (mask != 1)):
        got = f"dtype {mask.dtype}" if isinstance(mask, np.ndarray) else type(mask).__name__
        raise InputError(f"mask: got {got}, needs a NumPy array of booleans (or 0 and 1), True where kept")
    check_shape("mask", mask, x.shape, "the shape of x")
    # the kept elements scaled by 1 / (1 - p), so that the expected output is x; p = 1: zeros, as torch's
    scaled = mask.astype(x.dtype) * x.dtype.type(0 if p == 1 else 1 / (1 - p))
    return x * scaled, (scaled, x.dtype)


def dropout_backward(dout, cache):
    """dx = dout * mask / (1 - p), the same scaled mask as the forward; the mask is data -> (dx, None)."""
    scaled, dtype = cache
    dout = _check_dout(dout, scaled.shape, dtype)
    return dout * scaled, None
