"""Finite differences, a third witness beside the manual backward and autograd (central differences, float64).

A ``Site`` is the error E as a function of one array x (a layer input, a parameter, an intermediate), evaluated
at a stack of points at once: ``value(xs)`` maps (P, *x.shape) to (P,). Perturbed points are stacked along that
leading axis and evaluated a chunk at a time; ``batch_folded`` and ``channel_folded`` fold the stack into a
layer's batch or output-channel axis so that one forward call serves a whole chunk. Everything is cast to
float64, whatever the case dtype.

Probes: every element (``element_differences``) up to FULL_LIMIT elements, beyond that a few random unit
directions v (``directional_differences``, the fast mode), comparing (E(x + hv) - E(x - hv)) / 2h with <g, v>.

Step and thresholds, with the reason beside each number: EPS, FD_TOLERANCE, KINK_RTOL and KINK_ATOL below.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from crosscheck.compare import ManualFailure, compare, excess
from crosscheck.tolerances import Tolerance, tolerance_for
from manual import kernels
from manual import network as manual_net
from netdesc.description import BATCH_NORMS, INDEXED, parse_spec

# h_i = EPS * max(1, |x_i|). Central differences err by h^2 |E'''| / 6 (truncation) plus about u |E| / h
# (rounding, u = 2.2e-16 the float64 unit roundoff, times the ulps a forward pass loses). At EPS = 1e-6 that is
# ~2e-13 |E'''| + ~1e-9 |E|, near the optimum step u^(1/3) ~ 6e-6 of central differences.
EPS = 1e-6
FD_TOLERANCE = Tolerance(
    rtol=1e-6,
    atol=1e-6,
    why=(
        "central differences at EPS = 1e-6 are good to ~1e-9 (truncation ~1e-13, rounding ~1e-10 |E| / 1e-6, "
        "summed over many terms); the largest error measured over the layer cases, the seed network and the "
        "examples is 1/80 of this threshold, which is still far below what a wrong derivation changes (a sign, "
        "a factor N, a missing term: O(1) relative). A gradient off by 1e-6 relative, which the float64 table "
        "catches, is finer than finite differences resolve: the verdict says so"
    ),
)
# One-sided differences differ by h |E''| where E is smooth (1e-6 max(1, |x|) |E''|, plus ~1e-9 max(1, |E|) of
# rounding) and by the jump of the derivative where a kink (ReLU at 0, a max-pool tie) lies within the step:
# O(the upstream gradient). A probe is a kink when the gap exceeds KINK_RTOL * max(|one-sided|) + KINK_ATOL:
# smooth E stays silent unless |E''| exceeds both ~10 (absolute) and 1e3 |E'|; on every layer case, the seed
# network and the examples the smooth gaps stay below 1/14 of the threshold, and the ties of a ReLU followed by
# a max-pool (lenet5, small3conv) lie 60 to 180 times above it, in random directions too. A jump below 1e-5
# goes unseen: it moves a central difference by at most half of it.
KINK_RTOL = 1e-3
KINK_ATOL = 1e-5
FULL_LIMIT = 512  # elements probed one by one up to this size; random directions beyond
DIRECTIONS = 6  # random unit directions in the fast mode
CHUNK_ELEMENTS = 1 << 21  # stacked points per forward call times the elements each one computes


@dataclass(frozen=True)
class Site:
    """E as a function of one array x (float64): value(xs (P, *x.shape)) -> (P,); cost: elements computed per
    point, to size the chunks (0: x.size)."""

    name: str
    x: np.ndarray
    value: Callable
    cost: int = 0


def looped(fn):
    """A site value from fn(point) -> scalar, called once per point: the fallback."""
    return lambda xs: np.array([fn(x) for x in xs], dtype=np.float64)


def batch_folded(fn, reduce):
    """A site value for fn that treats its batch axis independently: the points (P, N, ...) go in as one batch
    (P*N, ...); reduce maps the outputs (P, N, ...) to (P,)."""
    def value(xs):
        P, N = xs.shape[:2]
        out = fn(xs.reshape(P * N, *xs.shape[2:]))
        return reduce(out.reshape(P, N, *out.shape[1:]))
    return value


def unfolded(fn, reduce):
    """A site value for fn whose batch samples depend on each other (a batch norm's batch statistics): one call per
    point (N, ...); reduce maps the outputs (P, N, ...) to (P,)."""
    return lambda xs: np.concatenate([reduce(fn(x)[None]) for x in xs]).astype(np.float64)


def channel_folded(fn, reduce):
    """A site value for a parameter with a leading output-channel axis (conv weight (F, C, KH, KW), linear weight
    (out, in), a bias (F,)): the points (P, F, ...) go in as P*F channels, fn -> (N, P*F, ...); reduce maps
    (P, N, F, ...) to (P,)."""
    def value(ps):
        P = len(ps)
        out = fn(ps.reshape(P * ps.shape[1], *ps.shape[2:]))
        N = out.shape[0]
        return reduce(np.moveaxis(out.reshape(N, P, out.shape[1] // P, *out.shape[2:]), 1, 0))
    return value


def mapped(site, x, to_site):
    """The same E seen through another array x: to_site maps points (P, *x.shape) to (P, *site.x.shape)."""
    return Site(site.name, np.asarray(x, np.float64), lambda xs: site.value(to_site(xs)), site.cost)


# --- probing ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Differences:
    """Finite differences at the probes of one site: elements (flat `indices`) or unit `directions` (k, *shape)."""

    site: str
    shape: tuple
    central: np.ndarray  # (probes,) (E(x + h) - E(x - h)) / 2h
    forward: np.ndarray  # (E(x + h) - E(x)) / h
    backward: np.ndarray  # (E(x) - E(x - h)) / h
    indices: np.ndarray | None = None
    directions: np.ndarray | None = None

    @property
    def mode(self):
        return "elements" if self.directions is None else "directions"

    @property
    def kinks(self):
        """(probes,) bool: where the one-sided differences part by more than smooth curvature explains."""
        scale = np.maximum(np.abs(self.forward), np.abs(self.backward))
        return np.abs(self.forward - self.backward) > KINK_RTOL * scale + KINK_ATOL

    def project(self, grad):
        """A gradient (shape) at the probes: its elements, or <grad, v> per direction -> (probes,)."""
        g = np.asarray(grad, np.float64)
        if self.directions is None:
            return g.reshape(-1)[self.indices]
        return np.tensordot(self.directions, g, axes=g.ndim)


def _evaluate(site, count, points):
    """site.value over points(start, stop) for start < stop <= count -> (count,), a chunk at a time."""
    chunk = max(1, CHUNK_ELEMENTS // max(site.cost, site.x.size, 1))
    return np.concatenate([site.value(points(i, min(i + chunk, count))) for i in range(0, count, chunk)])


def _differences(site, f_plus, f_minus, steps, **probes):
    f0 = site.value(site.x[None])[0]
    return Differences(site.name, site.x.shape, (f_plus - f_minus) / (2 * steps), (f_plus - f0) / steps,
                       (f0 - f_minus) / steps, **probes)


def element_differences(site, indices=None, eps=EPS):
    """Central and one-sided differences at every element (or at the flat `indices`) -> Differences."""
    x = site.x.reshape(-1)
    indices = np.arange(x.size) if indices is None else np.asarray(indices, dtype=np.intp).reshape(-1)
    # The step actually taken, (x + h) - x, is exactly representable: dividing by it removes one rounding.
    steps = (x[indices] + eps * np.maximum(1.0, np.abs(x[indices]))) - x[indices]

    def points(start, stop):  # point 2j moves element indices[j] up by steps[j], point 2j + 1 down
        j = np.arange(start, stop)
        xs = np.repeat(x[None], stop - start, axis=0)
        xs[j - start, indices[j // 2]] += np.where(j % 2 == 0, 1.0, -1.0) * steps[j // 2]
        return xs.reshape(stop - start, *site.x.shape)

    f = _evaluate(site, 2 * len(indices), points)
    return _differences(site, f[0::2], f[1::2], steps, indices=indices)


def directional_differences(site, count=DIRECTIONS, seed=0, eps=EPS):
    """The fast mode: differences along `count` random unit directions v -> Differences (directions (count, ...))."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((count, site.x.size))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    step = eps * max(1.0, float(np.abs(site.x).max(initial=0.0)))
    x = site.x.reshape(-1)

    def points(start, stop):  # point 2j moves along v[j] by +step, point 2j + 1 by -step
        j = np.arange(start, stop)
        return (x + np.where(j % 2 == 0, step, -step)[:, None] * v[j // 2]).reshape(stop - start, *site.x.shape)

    f = _evaluate(site, 2 * count, points)
    return _differences(site, f[0::2], f[1::2], step, directions=v.reshape(count, *site.x.shape))


def differences(site, eps=EPS):
    """Every element up to FULL_LIMIT elements, random directions beyond."""
    return element_differences(site, eps=eps) if site.x.size <= FULL_LIMIT else directional_differences(site, eps=eps)


# --- the verdict --------------------------------------------------------------------------------------

def fd_tolerance(dtype):
    """FD_TOLERANCE, loosened to the case dtype's table entry where that is wider (float32 gradients)."""
    table = tolerance_for(dtype)
    return Tolerance(max(FD_TOLERANCE.rtol, table.rtol), max(FD_TOLERANCE.atol, table.atol), FD_TOLERANCE.why)


def against(diffs, name, grad, dtype, keep=None):
    """A gradient (manual or autograd) at the probes against the central differences -> Comparison."""
    grad = grad if isinstance(grad, ManualFailure) else np.asarray(grad)
    if not isinstance(grad, ManualFailure) and grad.shape != diffs.shape:
        grad = ManualFailure(f"shape {grad.shape}, the quantity's shape is {diffs.shape}")
    keep = np.ones(diffs.central.shape, bool) if keep is None else keep
    projected_grad = grad if isinstance(grad, ManualFailure) else diffs.project(grad)[keep]
    return compare(name, projected_grad, diffs.central[keep], np.float64, fd_tolerance(dtype))


SUPPORTS = {
    (False, True): ("autograd", "finite differences side with autograd: the manual derivation is wrong"),
    (True, False): ("manual", "finite differences side with the manual derivation: suspect the reference"),
    (True, True): ("both", "manual and autograd differ by less than finite differences can resolve"),
    (False, False): ("neither", "finite differences agree with neither side"),
}


@dataclass(frozen=True)
class Verdict:
    """Which side the finite differences support at one quantity."""

    supports: str  # "autograd", "manual", "both", "neither" or "unreliable"
    detail: str
    mode: str
    probes: int
    kinks: int
    vs_manual: object = None  # Comparison over the probes away from kinks
    vs_autograd: object = None

    def as_dict(self):
        d = {k: getattr(self, k) for k in ("supports", "detail", "mode", "probes", "kinks")}
        for side in ("vs_manual", "vs_autograd"):
            d[side] = None if getattr(self, side) is None else getattr(self, side).as_dict()
        return d


def jump(m, a):
    """Per element, whether manual and autograd differ by as much as finite differences see as a kink's jump
    (KINK_RTOL, KINK_ATOL): a smaller difference, at a kink or not, they cannot tell from noise."""
    m, a = np.asarray(m, np.float64), np.asarray(a, np.float64)
    return ~(np.abs(m - a) <= KINK_RTOL * np.maximum(np.abs(m), np.abs(a)) + KINK_ATOL)


def _decided(m, a, central, dtype):
    """Per probe away from the detected kinks, whether manual and autograd differ where finite differences could
    tell them apart: not where they agree within finite differences' own tolerance (`fd_tolerance`: a smaller gap is
    below what a difference of E resolves), nor where the central difference lies strictly between them with a gap
    smaller than a kink's jump (`jump`): a ReLU at 0 under an upstream gradient too small to show its kink."""
    differ = ~(excess(m, a, fd_tolerance(dtype)) <= 1)
    hidden_kink = (np.minimum(m, a) < central) & (central < np.maximum(m, a)) & ~jump(m, a)
    return differ & ~hidden_kink


def verdict(diffs, manual, autograd, dtype):
    """Where manual and autograd disagree: which one the finite differences support -> Verdict.

    "unreliable" when a kink lies within the step at every probe, or when away from the kinks the two sides agree,
    or differ only as at a kink too small to be seen as one (`_decided`): then they differ only where finite
    differences cannot decide.
    """
    kinks = diffs.kinks
    keep = ~kinks
    common = dict(mode=diffs.mode, probes=len(kinks), kinks=int(kinks.sum()))
    if kinks.any():
        shaped = not isinstance(manual, ManualFailure) and np.shape(manual) == diffs.shape
        outside = shaped and not _decided(diffs.project(manual)[keep], diffs.project(autograd)[keep],
                                          diffs.central[keep], dtype).any()
        if kinks.all() or outside:
            return Verdict("unreliable", "finite differences unreliable here: a kink (ReLU at 0, a max-pool tie) "
                           "lies within the step where the two sides differ", **common)
    vs_manual = against(diffs, f"{diffs.site} (manual vs finite differences)", manual, dtype, keep)
    vs_autograd = against(diffs, f"{diffs.site} (autograd vs finite differences)", autograd, dtype, keep)
    supports, detail = SUPPORTS[vs_manual.passed, vs_autograd.passed]
    return Verdict(supports, detail, vs_manual=vs_manual, vs_autograd=vs_autograd, **common)


# --- sites of a described network (manual.network's forward) and of the seed network -----------------

def _layer_params(params, layer):
    return {kind: params[f"{layer.index}.{kind}"] for kind in layer.param_shapes()}


def _losses(spec, target):
    """reduce: the last outputs (P, N, ...) -> E at each of the P points (one loss call per point)."""
    loss_forward, _ = manual_net.LOSS[spec.loss.type]
    options = manual_net.loss_options(spec)
    return lambda outs: np.array([loss_forward(out, target, spec.loss.reduction, **options)[0] for out in outs])


def _tiled(a, P):
    """A batch (N, ...) repeated for P stacked points -> (P*N, ...), point-major as batch_folded stacks them."""
    return np.concatenate([a] * P)


def _after(spec, params, x, outputs, index, masks):
    """The last output of the network as a function of layer `index`'s output h, a batch of P stacked points
    (P*N, *out_shape): the graph re-run with that output replaced, the earlier outputs (and the dropout masks)
    tiled alongside."""
    def fn(h):
        P = len(h) // len(x)
        given = {j: _tiled(outputs[j], P) for j in range(index)} | {index: h}
        tiled = {i: _tiled(mask, P) for i, mask in masks.items()}
        return manual_net.forward(spec, params, _tiled(x, P), given_outputs=given, masks=tiled)[0][-1]
    return fn


def _through(spec, params, x, outputs, layer, k, masks):
    """The last output as a function of layer's k-th input alone (P*N stacked points): layer's other inputs tiled,
    its output computed (a dropout's with its mask tiled), the rest of the graph re-run from there."""
    after = _after(spec, params, x, outputs, layer.index, masks)
    sources = [x if j < 0 else outputs[j] for j in layer.inputs]

    def fn(h):
        P = len(h) // len(x)
        mine = [h if m == k else _tiled(s, P) for m, s in enumerate(sources)]
        inputs = tuple(mine) if layer.merge else mine[0]
        p = _layer_params(params, layer) | (
            {"mask": _tiled(masks[layer.index], P)} if layer.index in masks else {})
        return after(manual_net.FORWARD[layer.type](inputs, p, layer.options)[0])
    return fn


def _param_value(params, layer, kind, h, reduce, coupled):
    """Site value of one parameter of `layer` (input h): the points stacked along its output channels, the
    layer's other parameter tiled alongside, one forward call per chunk; reduce maps (P, N, F, ...) to (P,).
    A normalization's gamma and beta, a grouped conv's parameters (stacked filters would be re-split among its
    groups) and any parameter of a network whose samples are coupled: one call per point."""
    mine = _layer_params(params, layer)
    # stacked along the output channels, axis 1 of the output: a linear's on flat features only (on (T, F) they are
    # the last axis)
    foldable = (layer.type == "linear" and len(layer.in_shape) == 1) or (layer.type == "conv2d"
                                                                          and layer.options["groups"] == 1)
    if coupled or not foldable:  # an embedding table's rows are no output channels either
        pad = layer.options.get("padding_idx")

        def held(p):  # torch holds an embedding's padding row constant: its gradient is 0 by convention
            return p if pad is None else np.concatenate([p[:pad], mine[kind][pad:pad + 1], p[pad + 1:]])

        def each(ps):
            return np.stack([manual_net.FORWARD[layer.type](h, mine | {kind: held(p)}, layer.options)[0] for p in ps])
        return lambda ps: reduce(each(ps))

    def fn(stacked):
        P = len(stacked) // len(mine[kind])
        p = {k: stacked if k == kind else np.concatenate([v] * P) for k, v in mine.items()}
        return manual_net.FORWARD[layer.type](h, p, layer.options)[0]
    return channel_folded(fn, reduce)


def network_sites(spec, params, x, target, masks=None):
    """{name: Site} for E of a described network at (params, x, target), cast to float64, named as
    crosscheck.verify names the rows: "loss: dE/dinput", "<i> <type>: dE/dinput" (a merge layer's
    "<i> <type>: dE/dinput[k]", one per input), "<i> <type>: dE/d<kind>".

    A layer's input site is E as a function of that layer's input alone, where other layers read the same tensor
    (fan-out): the layer's share of the gradient, which is what its backward returns. ``masks``: the dropout masks
    of the step (manual.network.forward's), held fixed: E is differenced as the function that step computes."""
    masks = masks or {}
    params = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x = x if spec.indexed else np.asarray(x, np.float64)
    target = target if spec.loss.classes else np.asarray(target, np.float64)
    N, losses = spec.batch_size, _losses(spec, target)
    coupled = any(layer.type in BATCH_NORMS for layer in spec.layers)  # then no point may share a batch with another
    fold = unfolded if coupled else batch_folded
    outputs, _ = manual_net.forward(spec, params, x, masks=masks)
    cost = [N * sum(int(np.prod(s.out_shape)) for s in spec.layers[i:]) for i in range(len(spec.layers) + 1)]
    sites = {"loss: dE/dinput": Site("loss: dE/dinput", outputs[-1], batch_folded(lambda h: h, losses), cost[-1])}
    for layer in spec.layers:
        where = f"{layer.index} {layer.type}"
        for k, j in enumerate(() if layer.type in INDEXED else layer.inputs):  # indices: nothing to difference
            name = f"{where}: dE/dinput[{k}]" if layer.merge else f"{where}: dE/dinput"
            fn = _through(spec, params, x, outputs, layer, k, masks)
            sites[name] = Site(name, x if j < 0 else outputs[j], fold(fn, losses), cost[layer.index])
        for kind in layer.param_shapes():
            name = f"{where}: dE/d{kind}"
            after = fold(_after(spec, params, x, outputs, layer.index, masks), losses)
            h = x if layer.inputs[0] < 0 else outputs[layer.inputs[0]]
            value = _param_value(params, layer, kind, h, after, coupled)
            sites[name] = Site(name, params[f"{layer.index}.{kind}"], value, cost[layer.index])
    return sites


def seed_spec(input_shape, kernel_shape, n_out, batch, reduction):
    """The slides' network as a description: conv (1 -> 1, no bias), sigmoid, flatten, linear, sigmoid, E."""
    return parse_spec({
        "name": "slides", "input_shape": [1, *input_shape], "batch_size": batch,
        "layers": [{"type": "conv2d", "out_channels": 1, "kernel_size": list(kernel_shape), "bias": False},
                   {"type": "sigmoid"}, {"type": "flatten"}, {"type": "linear", "out_features": n_out},
                   {"type": "sigmoid"}],
        "loss": {"type": "half_squared_error", "reduction": reduction},
    })


def _sigmoid_sum(zs):
    """Sum of sigmoid(z) per point (P, ...) -> (P,): its derivative at element i is sigmoid'(z_i)."""
    return kernels.sigmoid(zs).reshape(len(zs), -1).sum(axis=1)


# The slides' quantities that seed_sites differences (the local Jacobians dZ2/dW, dZ2/dH1, dZ1/df are compared
# directly).
SEED_SITES = ("dE_dO", "dO_dZ2", "dE_dZ2", "dE_dW", "dE_db", "dE_dH1", "dH1_dZ1", "dE_dZ1", "dE_df")


def seed_sites(X, Y, params, reduction):
    """{slides' quantity: Site} for the seed network: dE_dO, dE_dZ2, dE_dH1, dE_dZ1, dE_dW, dE_db, dE_df, and the
    local factors dO_dZ2, dH1_dZ1 (the derivative of sum sigmoid(z) is sigmoid'(z) element by element).

    X (N, H, W), Y (N, n_out), params f (KH, KW), W (n_hidden, n_out), b (n_out,) as manual.seed_network takes
    them; the network runs as the description seed_spec, with f = conv weight[0, 0] and W = linear weight^T.
    """
    (N, H, W_), (KH, KW), n_out = X.shape, params["f"].shape, params["b"].shape[0]
    spec = seed_spec((H, W_), (KH, KW), n_out, N, reduction)
    torch_names = {"0.weight": params["f"][None, None], "3.weight": params["W"].T, "3.bias": params["b"]}
    s = network_sites(spec, torch_names, X[:, None], Y)
    Z1 = s["1 sigmoid: dE/dinput"].x[:, 0]
    sites = {
        "dE_dO": s["loss: dE/dinput"],
        "dE_dZ2": s["4 sigmoid: dE/dinput"],
        "dE_dH1": s["3 linear: dE/dinput"],
        "dE_dZ1": mapped(s["1 sigmoid: dE/dinput"], Z1, lambda zs: zs[:, :, None]),
        "dE_dW": mapped(s["3 linear: dE/dweight"], params["W"], lambda ws: ws.transpose(0, 2, 1)),
        "dE_db": s["3 linear: dE/dbias"],
        "dE_df": mapped(s["0 conv2d: dE/dweight"], params["f"], lambda fs: fs[:, None, None]),
        "dO_dZ2": Site("", s["4 sigmoid: dE/dinput"].x, _sigmoid_sum),
        "dH1_dZ1": Site("", Z1, _sigmoid_sum),
    }
    return {name: replace(site, name=name) for name, site in sites.items()}  # named as the slides name them
