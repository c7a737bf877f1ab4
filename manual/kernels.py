"""Named operations, fast, each beside its plain twin (NumPy only).

manual/seed_network.py, the file read next to the slides, calls these by name: ``conv`` (Z1 = conv(X, f)),
``sigmoid`` (H1, O), ``filter_gradient`` (dE/df = conv(X, dE/dZ1)) and ``patches`` (dZ1/df); manual/functional.py's
conv2d calls ``im2col`` (the windows each output reads, as columns) and ``col2im`` (its adjoint). The speed tricks
(byte strides, an in-place sigmoid, whole image rows per copy) live here and nowhere else. manual/recurrent.py calls
``matmul_layout`` (its weights laid out for x @ w.T); manual/functional.py's embedding calls ``scatter_add_rows``
(dweight[v] += dout at every position of index v) and its gelu calls ``erf``. Each fast operation has a
plain twin of a few lines, ``<op>_plain``, in the words of the math (a loop over the filter's taps, thinc's plain
sigmoid); the tests (tests/test_kernels.py) assert that each fast operation equals its twin. Every function keeps
its dtype.
"""

import math

import numpy as np

# --- the fast operations ----------------------------------------------------------------------------------


def conv(X, f):
    """Valid cross-correlation of each image with one filter.

    X: (N, H, W), f: (KH, KW) -> Z1: (N, OH, OW), OH = H-KH+1, OW = W-KW+1, with
    Z1[n, i, j] = sum_{p,q} X[n, i+p, j+q] * f[p, q].
    """
    N, H, W = X.shape
    KH, KW = f.shape
    OH, OW = H - KH + 1, W - KW + 1
    taps = _taps(X, KH, KW)
    # (OH, N*W): row i holds Z1[:, i, :] and W - OW thrown-away places, in a buffer of X's dtype: a float64
    # filter keeps a float32 image's dtype, as the plain twin does
    out = np.matmul(f.reshape(-1), taps, out=np.zeros((OH, N * W), X.dtype))
    return out.reshape(OH, N, W)[:, :, :OW].transpose(1, 0, 2).copy()


def filter_gradient(X, dE_dZ1):
    """dE/df = conv(X, dE/dZ1), the slides' formula: df[p, q] = sum_{n,i,j} X[n, i+p, j+q] * dE_dZ1[n, i, j].

    X: (N, H, W), dE_dZ1: (N, OH, OW) -> (KH, KW) with KH = H-OH+1, KW = W-OW+1.
    """
    N, H, W = X.shape
    OH, OW = dE_dZ1.shape[1:]
    KH, KW = H - OH + 1, W - OW + 1
    R = N * W
    rows = _rows(X, KW)
    # dE_dZ1 in the same row layout, (OH, N, W), zero at the thrown-away places j >= OW. Tap (p, q) of the
    # filter meets X's rows shifted down by p and left by q: the contiguous slice of `rows` that starts at
    # p*R + q. So df[p, q] is one dot product of that slice with dE_dZ1's rows, no copy of X per tap.
    grad = np.empty((OH, N, W), dE_dZ1.dtype)
    grad[:, :, :OW] = dE_dZ1.transpose(1, 0, 2)
    grad[:, :, OW:] = 0
    grad = grad.reshape(-1)
    df = np.empty((KH, KW), X.dtype)
    for p in range(KH):
        for q in range(KW):
            df[p, q] = np.dot(rows[p * R + q:p * R + q + OH * R], grad)
    return df


def patches(X, kernel_shape):
    """dZ1/df: dZ1[n, i, j]/df[p, q] = X[n, i+p, j+q] -> (N, OH, OW, KH, KW).

    A read-only view of X, not a copy: the patches overlap, a copy would be KH*KW times the size of X.
    """
    N, H, W = X.shape
    KH, KW = kernel_shape
    X = np.ascontiguousarray(X)  # X itself, unless it was handed in non-contiguous
    return _view(X, (N, H - KH + 1, W - KW + 1, KH, KW), X.strides + X.strides[1:])


def sigmoid(z):
    """Logistic function 1 / (1 + exp(-z)), in place in one array: exp(-z) overflows to inf for z below about -88
    (float32) or -709 (float64), and 1 / inf = 0 is the right answer there, so the overflow is not an error. (An
    earlier version took exp of -|z| only, with a sign-bit trick and a maximum: 1.5-2x slower, measured.)"""
    z = np.asarray(z)
    e = np.negative(z, out=np.empty_like(z))
    with np.errstate(over="ignore"):
        np.exp(e, out=e)
    e += 1
    return np.divide(1, e, out=e)


def _rows(X, KW):
    """X laid out as (H, N, W), flat: image row h of every sample side by side, one row of R = N*W values,
    then KW - 1 zeros, so that a shift by up to KW - 1 places stays inside."""
    N, H, W = X.shape
    R = N * W
    rows = np.empty(H * R + KW - 1, X.dtype)
    np.copyto(rows[:H * R].reshape(H, N, W), X.transpose(1, 0, 2))
    rows[H * R:] = 0
    return rows


def _taps(X, KH, KW):
    """conv's (OH, KH*KW, N*W) read-only tap matrices.

    shifted[h, q] is row h of _rows(X) shifted left by q (its last q values run into the next row: finite
    values that only reach thrown-away outputs j >= OW). Output row i needs shifted[i+p, q] for every tap
    (p, q), and as shifted is contiguous those KH*KW rows are evenly spaced in memory: a (KH*KW, R) matrix, a
    strided view overlapping the next output row's. conv is then f.flat @ taps, one matrix-vector product
    per output row, looped over in C by numpy's matmul. Memory traffic, not arithmetic, is what a
    one-channel convolution costs: this copies X KW times, where the classic (N*OH*OW, KH*KW) im2col, or
    a shifted copy per tap, copies it KH*KW times; it was the fastest of those measured.
    """
    N, H, W = X.shape
    R = N * W
    rows = _rows(X, KW)
    step = X.itemsize
    shifted = np.empty((H, KW, R), X.dtype)
    np.copyto(shifted, _view(rows, (H, KW, R), (R * step, step, step)))
    return _view(shifted, (H - KH + 1, KH * KW, R), (KW * R * step, R * step, step))


def _view(base, shape, strides):
    """A read-only view of the contiguous array `base` with the given shape and byte strides (as
    numpy.lib.stride_tricks.as_strided, at a tenth of its call cost). The caller keeps it inside `base`."""
    view = np.ndarray(shape, base.dtype, base, 0, strides)
    view.flags.writeable = False
    return view


# im2col copies whole padded rows (stride 1) where the output rows are narrower than this. Measured at 1 thread,
# one conv's forward and backward: 16 wide (N=32, 4 channels), whole rows 1.6x faster in float32, 1.1-1.4x in
# float64; 24 and 32 wide (8 -> 8 and 3 -> 8 channels), the window copy faster by 10-30 %, as there the extra
# Wp - OW columns of every product and the output's copy into that layout cost more than the short rows did.
WHOLE_ROWS_BELOW = 20


def im2col(x, kernel, stride, padding, dilation, out_size):
    """conv2d's columns: x (N, C, H, W) -> (cols (N, C*KH*KW, OH*RW), RW).

    Row c*KH*KW + i*KW + j of cols[n] holds what tap (i, j) of channel c reads, xp[n, c, oh*sh + i*dh, ow*sw + j*dw]
    (xp: x zero-padded), at column oh*RW + ow. RW >= OW is the row width of the columns: with stride 1 and output
    rows narrower than WHOLE_ROWS_BELOW it is the padded width Wp, and the columns ow >= OW hold finite values that
    belong to no output (the caller drops what they give and feeds them a gradient of 0); otherwise RW = OW and
    the windows are copied out of the padded x in one strided copy.

    Why: with stride 1, tap (i, j) reads, for a whole row of outputs and the next ones, one contiguous run of the
    padded image (start i*dh*Wp + j*dw, length OH*Wp), so the copy moves runs of OH*Wp values; a copy of OW values
    per output row costs numpy an inner loop per OW values, and for narrow rows that overhead, not the arithmetic,
    was the time.
    """
    (N, C, H, W), (KH, KW), (OH, OW) = x.shape, kernel, out_size
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    Hp, Wp = H + 2 * ph, W + 2 * pw
    step = x.itemsize
    if (sh, sw) != (1, 1) or OW >= WHOLE_ROWS_BELOW:  # the windows, (N, C, KH, KW, OH, OW), one strided copy
        xp = _padded(x, padding, 0)[: N * C * Hp * Wp].reshape(N, C, Hp, Wp)
        sN, sC, sH, sW = xp.strides
        windows = _view(xp, (N, C, KH, KW, OH, OW), (sN, sC, dh * sH, dw * sW, sh * sH, sw * sW))
        return np.ascontiguousarray(windows).reshape(N, C * KH * KW, OH * OW), OW
    # tap (i, j) of the last row of the last image runs (KW-1)*dw values past the end: a zero tail holds them
    flat = _padded(x, padding, (KW - 1) * dw)
    L = OH * Wp
    runs = _view(flat, (N, C, KH, KW, L), (C * Hp * Wp * step, Hp * Wp * step, dh * Wp * step, dw * step, step))
    return np.ascontiguousarray(runs).reshape(N, C * KH * KW, L), Wp


def col2im(dcols, x_shape, kernel, stride, padding, dilation, out_size):
    """The adjoint of im2col: every column's gradient added back to the pixel it read -> dx (N, C, H, W); what was
    read from padding is dropped. dcols (N, C*KH*KW, OH*RW), RW >= OW columns per output row: im2col's layout (0 in
    the columns ow >= OW), or RW = OW.

    One add per kernel tap (few), each over all the images: for a fixed tap the outputs read distinct pixels, so
    the add never writes one element twice; overlapping windows accumulate across taps.
    """
    (N, C, H, W), (KH, KW), (OH, OW) = x_shape, kernel, out_size
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    Hp, Wp = H + 2 * ph, W + 2 * pw
    step = dcols.itemsize
    RW = dcols.shape[2] // OH
    dflat = np.zeros(N * C * Hp * Wp + (KW - 1) * dw, dcols.dtype)
    dcols = dcols.reshape(N, C, KH, KW, OH * RW)
    for i in range(KH):
        for j in range(KW):
            start = i * dh * Wp + j * dw
            if (sh, sw) == (1, 1) and RW == Wp:  # one run of OH*Wp per image and channel, as im2col read it
                target = np.ndarray((N, C, OH * Wp), dcols.dtype, dflat, start * step,
                                    (C * Hp * Wp * step, Hp * Wp * step, step))
                target += dcols[:, :, i, j]
            else:
                target = np.ndarray((N, C, OH, OW), dcols.dtype, dflat, start * step,
                                    (C * Hp * Wp * step, Hp * Wp * step, sh * Wp * step, sw * step))
                target += dcols[:, :, i, j].reshape(N, C, OH, RW)[..., :OW]
    dxp = dflat[: N * C * Hp * Wp].reshape(N, C, Hp, Wp)
    return dxp[:, :, ph:ph + H, pw:pw + W]


def conv2d_input_grad(dout, wk, groups, x_shape, stride, padding, dilation):
    """conv2d's dx: per group g, dcols = w_g^T dout_g added back to the pixels each column read (col2im).

    dout (N, F, OH, OW), wk (F, C/G, KH, KW) the kernel slid over the input, groups G -> dx x_shape (N, C, H, W).
    With stride 1 the same sums are a stride-1 convolution of dout, zero-padded by (KH-1)*dh - ph rows (and likewise
    columns), with the kernel flipped and its two channel axes swapped: dx[n, c, h, w] = sum_{f,i,j}
    dout[n, f, h + ph - i*dh, w + pw - j*dw] * wk[f, c, i, j]. That reads dout through im2col's whole-row copy and
    writes dx once, where col2im adds KH*KW times into it (three times faster measured, the adds being the cost).
    """
    (N, F, OH, OW), (_, Cg, KH, KW), (H, W), G = dout.shape, wk.shape, x_shape[2:], groups
    Fg = F // G
    pad = ((KH - 1) * dilation[0] - padding[0], (KW - 1) * dilation[1] - padding[1])
    if stride == (1, 1) and min(pad) >= 0:
        flipped = wk[:, :, ::-1, ::-1].reshape(G, Fg, Cg, KH * KW).transpose(0, 2, 1, 3).reshape(G, Cg, Fg * KH * KW)
        cols, RW = im2col(dout, (KH, KW), (1, 1), pad, dilation, (H, W))
        dx = np.matmul(flipped, cols.reshape(N, G, Fg * KH * KW, H * RW)).reshape(x_shape[:2] + (H, RW))
        return np.ascontiguousarray(dx[..., :W])
    dcols = np.matmul(wk.reshape(G, Fg, -1).transpose(0, 2, 1), dout.reshape(N, G, Fg, OH * OW))
    return col2im(dcols.reshape(N, -1, OH * OW), x_shape, (KH, KW), stride, padding, dilation, (OH, OW))


def _padded(x, padding, tail):
    """x (N, C, H, W) zero-padded by (ph, pw) on each side, flat, followed by `tail` zeros."""
    (N, C, H, W), (ph, pw) = x.shape, padding
    Hp, Wp = H + 2 * ph, W + 2 * pw
    flat = np.zeros(N * C * Hp * Wp + tail, x.dtype)  # one memset costs less than zeroing the four borders
    flat[: N * C * Hp * Wp].reshape(N, C, Hp, Wp)[:, :, ph:ph + H, pw:pw + W] = x
    return flat


def matmul_layout(w):
    """w (out, in) with its transpose contiguous: the same matrix, laid out so that x @ w.T is BLAS's plain (N, N)
    product. OpenBLAS's small products with a transposed operand measured 1.3-2x slower (x (32, 64) @ w.T, w
    (256, 64)); a recurrent layer makes one such product per time step with the same w, so it lays w out once."""
    return np.ascontiguousarray(w.T).T


def scatter_add_rows(indices, values, rows):
    """out (rows, E), zeros, then out[indices[k]] += values[k] for every k, repeated indices adding up.
    indices (...) integers in [0, rows), values (..., E).

    np.add.at does this one element at a time; here the positions are sorted by index and each run of equal indices
    is summed in one np.add.reduceat (5x faster measured, 1024 indices into 100 rows of 32).
    """
    indices, values = indices.reshape(-1), values.reshape(indices.size, values.shape[-1])
    out = np.zeros((rows, values.shape[1]), values.dtype)
    if indices.size == 0:
        return out
    order = np.argsort(indices, kind="stable")
    sorted_indices = indices[order]
    starts = np.flatnonzero(np.r_[True, sorted_indices[1:] != sorted_indices[:-1]])
    out[sorted_indices[starts]] = np.add.reduceat(values[order], starts, axis=0)
    return out


# W. J. Cody's rational approximations of erf and erfc (Math. Comp. 23 (1969), 631-637; his CALERF), accurate to
# float64 rounding: erf(x) = x P(x^2) / Q(x^2) for |x| <= 0.46875; erfc(y) = exp(-y^2) P(y) / Q(y) for
# 0.46875 < y <= 4; erfc(y) = exp(-y^2) / y (1/sqrt(pi) + z P(z) / Q(z)), z = 1/y^2, above. Highest power first.
_ERF_SMALL = ((1.85777706184603153e-1, 3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
               3.20937758913846947e03),
              (1.0, 2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03))
_ERFC_MIDDLE = ((2.15311535474403846e-8, 5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
                 2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03, 2.05107837782607147e03,
                 1.23033935479799725e03),
                (1.0, 1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02, 1.62138957456669019e03,
                 3.29079923573345963e03, 4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03))
_ERFC_LARGE = ((1.63153871373020978e-2, 3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
                1.60837851487422766e-2, 6.58749161529837803e-4),
               (1.0, 2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1, 6.05183413124413191e-2,
                2.33520497626869185e-3))
_RSQRT_PI = 0.56418958354775628695


def _rational(coefficients, t):
    """P(t) / Q(t) by Horner's rule, highest power first, in t's dtype (np.polyval would make float32 float64)."""
    p, q = coefficients
    numerator, denominator = np.full_like(t, p[0]), np.full_like(t, q[0])
    for a in p[1:]:
        numerator *= t
        numerator += a
    for b in q[1:]:
        denominator *= t
        denominator += b
    return np.divide(numerator, denominator, out=numerator)


def erf(x):
    """The error function element by element, vectorized (math.erf loops in Python), in x's dtype: Cody's rational
    approximations (above), each evaluated over the whole array on |x| clipped into its range, the right one chosen
    per element (masked indexing of the three ranges measured 5x slower), the sign put back at the end."""
    x = np.asarray(x)
    if x.dtype == np.float16:  # the middle range's polynomials overflow float16 (65504): computed in float32
        return erf(x.astype(np.float32)).astype(np.float16)
    y = np.abs(x)
    with np.errstate(under="ignore", over="ignore"):  # far out, exp(-y^2) -> 0 and erf -> +-1, its limit
        ys = np.minimum(y, 0.46875)
        small = ys * _rational(_ERF_SMALL, ys * ys)
        ym = np.clip(y, 0.46875, 4)
        middle = 1 - np.exp(-ym * ym) * _rational(_ERFC_MIDDLE, ym)
        if x.itemsize < 8:  # float32: erfc(4) = 1.5e-8 is below half an ulp of 1, so erf = 1 above 4
            large = 1
        else:
            yl = np.maximum(y, 4)
            z = 1 / (yl * yl)
            large = 1 - np.exp(-yl * yl) / yl * (_RSQRT_PI - z * _rational(_ERFC_LARGE, z))
    out = np.where(y <= 0.46875, small, np.where(y > 4, large, middle))  # NaN: middle's, NaN
    return np.copysign(out, x, out=out)


# --- their plain twins: the math as written, a few lines each ------------------------------------------------


def conv_plain(X, f):
    """conv as the sum over the filter's taps: Z1 = sum_{p,q} f[p, q] * X[:, p:p+OH, q:q+OW]."""
    (N, H, W), (KH, KW) = X.shape, f.shape
    OH, OW = H - KH + 1, W - KW + 1
    Z1 = np.zeros((N, OH, OW), X.dtype)
    for p in range(KH):
        for q in range(KW):
            Z1 += f[p, q] * X[:, p:p + OH, q:q + OW]
    return Z1


def filter_gradient_plain(X, dE_dZ1):
    """dE/df = conv(X, dE/dZ1): df[p, q] = sum(X[:, p:p+OH, q:q+OW] * dE_dZ1), over the batch too."""
    (H, W), (OH, OW) = X.shape[1:], dE_dZ1.shape[1:]
    df = np.zeros((H - OH + 1, W - OW + 1), X.dtype)
    for p in range(H - OH + 1):
        for q in range(W - OW + 1):
            df[p, q] = (X[:, p:p + OH, q:q + OW] * dE_dZ1).sum()
    return df


def patches_plain(X, kernel_shape):
    """dZ1/df, copied tap by tap: patches[n, i, j, p, q] = X[n, i+p, j+q]."""
    (N, H, W), (KH, KW) = X.shape, kernel_shape
    OH, OW = H - KH + 1, W - KW + 1
    out = np.zeros((N, OH, OW, KH, KW), X.dtype)
    for p in range(KH):
        for q in range(KW):
            out[:, :, :, p, q] = X[:, p:p + OH, q:q + OW]
    return out


def sigmoid_plain(z):
    """1 / (1 + exp(-z)); exp(-z) overflows to inf for z < ~-710 (float64), which still gives 0."""
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-z))


def matmul_layout_plain(w):
    """w as it is."""
    return w


def scatter_add_rows_plain(indices, values, rows):
    """out[indices[k]] += values[k] one position at a time (np.add.at adds repeated indices up)."""
    out = np.zeros((rows, values.shape[-1]), values.dtype)
    np.add.at(out, indices, values)
    return out


_math_erf = np.frompyfunc(math.erf, 1, 1)


def erf_plain(x):
    """math.erf on every element (in float64), back in x's dtype; a 0-d x gives a 0-d array (frompyfunc gives a
    Python float there)."""
    return np.asarray(_math_erf(np.asarray(x, np.float64))).astype(np.asarray(x).dtype)


def im2col_plain(x, kernel, stride, padding, dilation, out_size):
    """im2col tap by tap on the padded x, RW = OW: cols[n, c, i, j, oh, ow] = xp[n, c, oh*sh + i*dh, ow*sw + j*dw]."""
    (N, C), (KH, KW), (sh, sw), (ph, pw), (dh, dw), (OH, OW) = x.shape[:2], kernel, stride, padding, dilation, out_size
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.zeros((N, C, KH, KW, OH, OW), x.dtype)
    for i in range(KH):
        for j in range(KW):
            cols[:, :, i, j] = xp[:, :, i * dh:i * dh + (OH - 1) * sh + 1:sh, j * dw:j * dw + (OW - 1) * sw + 1:sw]
    return cols.reshape(N, C * KH * KW, OH * OW), OW


def col2im_plain(dcols, x_shape, kernel, stride, padding, dilation, out_size):
    """col2im tap by tap onto the padded grid, then cropped; dcols (N, C*KH*KW, OH*OW), RW = OW."""
    (N, C, H, W), (KH, KW), (OH, OW) = x_shape, kernel, out_size
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dcols.dtype)
    dcols = dcols.reshape(N, C, KH, KW, OH, OW)
    for i in range(KH):
        for j in range(KW):
            dxp[:, :, i * dh:i * dh + (OH - 1) * sh + 1:sh, j * dw:j * dw + (OW - 1) * sw + 1:sw] += dcols[:, :, i, j]
    return dxp[:, :, ph:ph + H, pw:pw + W]


def conv2d_input_grad_plain(dout, wk, groups, x_shape, stride, padding, dilation):
    """conv2d's dx as the backward reads: dcols = w_g^T dout_g per group, then col2im_plain."""
    (N, F, OH, OW), (KH, KW), G = dout.shape, wk.shape[2:], groups
    dcols = np.matmul(wk.reshape(G, F // G, -1).transpose(0, 2, 1), dout.reshape(N, G, F // G, OH * OW))
    return col2im_plain(dcols.reshape(N, -1, OH * OW), x_shape, (KH, KW), stride, padding, dilation, (OH, OW))
