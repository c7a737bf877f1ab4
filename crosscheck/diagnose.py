"""Localization and classification: the first quantity of a subject's walk (crosscheck.subjects: forward, backward
from the loss, the first updates) where the manual side leaves autograd, and what kind of mistake it is.

``diagnose`` compares the walk's quantities in turn (crosscheck.compare, the dtype's tolerance) and stops at the
first that differs. There it tests the step's hypotheses (crosscheck.hypotheses) and asks finite differences
(crosscheck.numerical) which side they support and what the worst elements' third value is.
"""

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from crosscheck import numerical
from crosscheck.check import judge, witness
from crosscheck.compare import ManualFailure, compare, excess
from crosscheck.hypotheses import Classification, classify
from crosscheck.tolerances import tolerance_for
from manual import attention as manual_attention
from manual import network as manual_net
from netdesc.description import RECURRENT
from reference import network as reference_net
from reference.attention import multihead_attention_intermediates, transformer_encoder_intermediates
from reference.recurrent import QUANTITIES, unrolled

TOP_K = 5
# Where a quantity is probed in random directions, the differing elements probed one by one for a kink: the
# KINK_PROBES worst and KINK_PROBES more spread evenly over the rest of them (where every element was probed, all).
KINK_PROBES = 64


@dataclass(frozen=True)
class Element:
    index: tuple
    manual: float
    autograd: float
    numerical: float | None = None
    kink: bool | None = None


def _finite(value):
    return None if isinstance(value, float) and not np.isfinite(value) else value


@dataclass(frozen=True)
class Diagnosis:
    """The first quantity where manual leaves autograd (None: everything agrees), its class, its worst elements
    and what finite differences say there."""

    subject: str
    dtype: str
    checked: tuple  # the names compared, in order, up to and including the first that differs
    first: object = None  # its Comparison
    classification: Classification | None = None
    worst: tuple = ()
    numerical: object = None  # numerical.Verdict
    injected: str = ""
    step: object = field(default=None, repr=False, compare=False)  # the first wrong Step, its arrays for the plot
    place: dict | None = None  # a described network's layer where it is: residual_place
    time_step: dict | None = None  # in a recurrent layer, the first step and quantity that differ: recurrent_place
    inside: dict | None = None  # in a multihead_attention layer: the head and the quantity, attention_place

    @property
    def wrong(self):
        return self.first is not None

    @property
    def quantity(self):
        return self.first.name if self.wrong else None

    def as_dict(self):
        return {
            "subject": self.subject, "dtype": self.dtype, "injected": self.injected or None, "wrong": self.wrong,
            "quantity": self.quantity, "checked": list(self.checked),
            "comparison": self.first.as_dict() if self.wrong else None,
            "class": None if self.classification is None else asdict(self.classification),
            "worst": [{k: _finite(v) for k, v in asdict(e).items()} | {"index": list(e.index)} for e in self.worst],
            "numerical": None if self.numerical is None else self.numerical.as_dict(),
            "place": self.place, "time_step": self.time_step, "inside": self.inside,
        }


# --- where a layer stands in a graph ------------------------------------------------------------------------

def _ancestors(layers, j):
    """Layer j and every layer it reads, back to the network's input (-1, left out)."""
    seen, todo = set(), [j]
    while todo:
        k = todo.pop()
        if k >= 0 and k not in seen:
            seen.add(k)
            todo.extend(layers[k].inputs)
    return seen


def _named(layer):
    """A layer's name in its description, None where it has none (the parser names it by its index)."""
    return None if layer.name in ("", str(layer.index)) else layer.name


def residual_place(spec, index):
    """Where layer `index` of a description stands -> {"layer", "type", "name" (its description name, or None),
    "add" (the name of the first add whose branches it lies on, or "layer i add"; None outside every residual
    block), "add_index", "branch"}. An add's branches are the layers each of its inputs reads back to where they
    fork; the one with the most layers is the "main" branch, a shorter one the "skip" (an identity skip has none,
    a projection shortcut a few); branches of equal length are named by the add's input, "input[k]"."""
    layers = spec.layers
    layer = layers[index]
    place = {"layer": index, "type": layer.type, "name": _named(layer), "add": None, "add_index": None,
             "branch": None}
    for add in layers:
        if add.type != "add":
            continue
        lines = [_ancestors(layers, j) for j in add.inputs]
        shared = set.intersection(*lines)
        sizes = [len(line - shared) for line in lines]
        on = [k for k, line in enumerate(lines) if index in line - shared]
        if on:
            k = on[0]
            branch = "skip" if sizes[k] < max(sizes) else "main" if sizes.count(sizes[k]) == 1 else f"input[{k}]"
            return place | {"add": _named(add) or f"layer {add.index} add", "add_index": add.index, "branch": branch}
    return place


def place_text(place):
    """A residual_place as one line: the layer, its name, the block and branch (outside every block: the layer)."""
    name = f' "{place["name"]}"' if place["name"] else ""
    where = f"layer {place['layer']} {place['type']}{name}"
    if place["add"] is None:
        return f"in {where}"
    branch = {"main": "the main branch", "skip": "the skip (shortcut) branch"}.get(place["branch"], place["branch"])
    return f"in {where}, on {branch} of the residual block that ends in add \"{place['add']}\" (layer " \
        f"{place['add_index']})"


# --- where in time a recurrent layer's backward leaves autograd -----------------------------------------------

def recurrent_place(subject, index):
    """The first time step and quantity where recurrent layer `index`'s backward (manual, as the subject runs it)
    leaves autograd's, walked as the gradient flows: the top layer of its stack first, from its last time step to
    its first, per step "dh", then "dc" (LSTM), then the gates' pre-activations. Manual's side is the per-step
    trace its backward left on the cache (manual.recurrent); autograd's, the layer unrolled in torch
    (reference.recurrent) on autograd's input with autograd's dE/d(output), each step's gradient retained
    -> {"layer", "type", "stack_layer", "step", "steps", "from_end", "quantity"}, or None where the backward left
    no trace or every step agrees."""
    spec, x, params, target = subject.spec, subject.x, subject.params, subject.target
    layer, hooks, masks = spec.layers[index], subject._hooks(), subject.masks(0, len(x))
    outputs, caches = manual_net.forward(spec, params, x, hooks["layer_forward"], masks=masks)
    loss_forward = (hooks["layer_forward"] or {}).get("loss", manual_net.LOSS[spec.loss.type][0])
    _, loss_cache = loss_forward(outputs[-1], target, spec.loss.reduction, **manual_net.loss_options(spec))
    manual_net.backward(spec, caches, loss_cache, hooks["layer_backward"], hooks["accumulate"])
    trace = getattr(caches[index], "trace", None)
    if trace is None:
        return None
    a, j, o = reference_net.run(spec, params, x, target, masks), layer.inputs[0], layer.options
    as64 = lambda v: torch.from_numpy(np.asarray(v, np.float64))  # noqa: E731
    weights = [as64(params[f"{index}.{k}"]) for k in layer.param_shapes()]
    zeros = [torch.zeros(o["num_layers"], len(x), o["hidden_size"], dtype=torch.float64)] * (1 + (layer.type == "lstm"))
    out, _, steps = unrolled(layer.type, as64(x if j < 0 else a["outputs"][j]).requires_grad_(), zeros, weights,
                             nonlinearity=o.get("nonlinearity", "tanh"), bias=o["bias"], batch_first=True)
    out.backward(as64(a["output_grads"][index]))
    tol = tolerance_for(subject.dtype)
    for l in reversed(range(o["num_layers"])):
        T = len(steps[l]["h"])
        for t in reversed(range(T)):
            for q in QUANTITIES[layer.type]:
                if (np.nan_to_num(excess(trace[l][f"d{q}"][t], steps[l][q][t].grad, tol), nan=np.inf) > 1).any():
                    return {"layer": index, "type": layer.type, "stack_layer": l, "step": t, "steps": T,
                            "from_end": T - 1 - t, "quantity": f"d{q}"}
    return None


def time_step_text(place):
    """A recurrent_place as one line."""
    ordinal = "the last step" if place["from_end"] == 0 else f"{place['from_end']} before the last"
    return f"in time: layer {place['stack_layer']} of the {place['type']}'s stack, step t = {place['step']} of " \
        f"{place['steps']} ({ordinal}, counted from the end as the gradient flows): {place['quantity']} is the first " \
        "per-step gradient where manual leaves autograd"


# --- the diagnosis ---------------------------------------------------------------------------------------

def diagnose(subject, top=TOP_K):
    """Compare the subject's walk in order; at the first quantity that differs, classify it -> Diagnosis."""
    dtype, checked, witnesses = subject.dtype, [], witness(subject)
    injected = "" if subject.wrong is None else f"{subject.wrong.name} ({subject.wrong.description})"
    spec, title = getattr(subject, "spec", None), subject.title
    for step in subject.walk():
        checked.append(step.name)
        result = judge(subject, step, witnesses)
        if not result.passed:
            at = step.where.split(" ")[0]
            place = residual_place(spec, int(at)) if spec is not None and at.isdigit() else None
            in_time = recurrent_place(subject, int(at)) if place and place["type"] in RECURRENT \
                and step.quantity.startswith("dE/d") else None
            first = Diagnosis(title, dtype, tuple(checked), result, injected=injected, step=step, place=place,
                              time_step=in_time, inside=attention_place(subject, step))
            return _diagnosis(first, step, top)
    return Diagnosis(title, dtype, tuple(checked), injected=injected)


def _diagnosis(d, step, top):
    m, a = step.manual, np.asarray(step.autograd)
    shaped = not isinstance(m, ManualFailure) and np.shape(m) == a.shape
    site = None if step.site is None else step.site()
    diffs = None if site is None else numerical.differences(site)
    d = replace(d, numerical=None if diffs is None else numerical.verdict(diffs, m, a, d.dtype))
    if shaped and d.first.problem:  # same shape, another dtype
        return replace(d, classification=Classification("unclassified", d.first.problem))
    if not shaped:
        return replace(d, classification=classify(step, m, a, d.dtype))
    ratio = np.nan_to_num(excess(m, a, tolerance_for(d.dtype)), nan=np.inf).reshape(-1)
    differing = np.argsort(-ratio, kind="stable")[: int((ratio > 1).sum())]
    probed = np.union1d(differing[:top], _kink_probes(differing, diffs))
    central, kinks = _probe(site, diffs, probed)
    kinked = kinks is not None and _kinked(np.asarray(m, np.float64).reshape(-1)[probed], a.reshape(-1)[probed], kinks)
    worst = tuple(_element(i, m, a, central, kinks, probed) for i in differing[:top])
    return replace(d, classification=classify(step, m, a, d.dtype, kinked), worst=worst)


def _kink_probes(differing, diffs):
    """The differing elements (worst first) asked whether a kink lies within the step: every one, where finite
    differences took every element anyway or there are few; else the worst and a spread over the rest, so that a
    kink at the worst elements (an exact zero outweighs any scale) cannot hide the many elements far from any."""
    if diffs is None or diffs.mode == "elements" or len(differing) <= 2 * KINK_PROBES:
        return differing
    spread = np.linspace(KINK_PROBES, len(differing) - 1, KINK_PROBES).round().astype(int)
    return np.concatenate([differing[:KINK_PROBES], differing[spread]])


def _kinked(m, a, kinks):
    """Whether a convention at a kink explains the probed differences: a kink at one of them at least, and at none
    of the others a difference that finite differences would have seen as a kink's jump (numerical.jump): a smaller
    one, at a kink or not, says nothing either way."""
    return bool(kinks.any()) and not bool((numerical.jump(m, a) & ~kinks).any())


def _probe(site, diffs, indices):
    """Central differences and kink flags at the flat indices (None, None without a site)."""
    if site is None:
        return None, None
    if diffs.mode == "elements":
        return diffs.central[indices], diffs.kinks[indices]
    probe = numerical.element_differences(site, indices)
    return probe.central, probe.kinks


def _element(i, m, a, central, kinks, probed):
    index = tuple(int(j) for j in np.unravel_index(i, a.shape))
    e = Element(index, float(np.asarray(m).reshape(-1)[i]), float(a.reshape(-1)[i]))
    if central is None:
        return e
    at = int(np.searchsorted(probed, i))
    return Element(e.index, e.manual, e.autograd, float(central[at]), bool(kinks[at]))




# --- inside an attention layer: the head and the quantity -----------------------------------------------------

# A multihead_attention layer's intermediates in the order the computation makes them, each with the part of attention
# it belongs to: the forward's (manual.attention's cache) and the backward's (its backward_terms' gradients by name).
ATTENTION_FORWARD = {"qkv": "projections", "q": "projections", "k": "projections", "v": "values", "scores": "scores",
                     "P": "softmax", "heads": "values", "merged": "values"}
ATTENTION_BACKWARD = {"dmerged": "values", "dheads": "values", "dP": "softmax", "dv": "values", "dscores": "scores",
                      "dq": "projections", "dk": "projections", "dqkv": "projections", "dx": "projections"}
# a transformer_encoder's own, before its attention's in the backward (its "dx" after them: the layer's input)
ENCODER_BACKWARD = {"dlinear2_in": "feed-forward", "dlinear1_out": "feed-forward", "dnorm2_out": "norm2",
                    "dh": "residual"}
ATTENTIONS = {"multihead_attention": manual_attention.multihead_attention_backward_terms,
              "transformer_encoder": manual_attention.transformer_encoder_layer_backward_terms}


def _heads(name, a, H):
    """a quantity split by head: (N, H, ...) along axis 1; qkv's and merged's features, (.., 3E) and (.., E), in
    blocks of d; the others (dx, the encoder's own) not at all: one part, head None."""
    base = name.rsplit(".", 1)[-1]
    if base not in ATTENTION_FORWARD and base not in ATTENTION_BACKWARD or base == "dx":
        return {None: a}
    if base.lstrip("d") in ("qkv", "merged"):
        N, T, F = a.shape
        split = a.reshape(N, T, -1, H, (F // 3 if "qkv" in base else F) // H)  # (N, T, 3 or 1, H, d)
        return {h: split[..., h, :] for h in range(H)}
    return {h: a[:, h] for h in range(H)}


def _intermediates(layer, step, terms, cache, x, up, p):
    """(name, part, manual, autograd) of the layer's intermediates in the order the computation makes them: the
    forward's for its output, else the backward's."""
    o = layer.options
    if layer.type == "multihead_attention":
        ref = multihead_attention_intermediates(x, p["in_proj_weight"], p["out_proj.weight"], p.get("in_proj_bias"),
                                                p.get("out_proj.bias"), num_heads=o["num_heads"],
                                                causal=o["causal"], dout=up)
        if step.quantity == "output":
            return [(n, part, (cache | cache["attention"])[n], ref[n]) for n, part in ATTENTION_FORWARD.items()]
        g = terms(up, cache)
        return [(n, part, g[n], ref[n]) for n, part in ATTENTION_BACKWARD.items()]
    ref = transformer_encoder_intermediates(x, p, num_heads=o["num_heads"], activation=o["activation"],
                                            layer_norm_eps=o["layer_norm_eps"], causal=o["causal"], dout=up)
    if step.quantity == "output":
        manual = cache["self_attn"] | cache["self_attn"]["attention"]
        return [(f"self_attn.{n}", part, manual[n], ref["self_attn"][n]) for n, part in ATTENTION_FORWARD.items()] \
            + [("h", "residual", cache["h"], ref["h"])]
    g = terms(up, cache)
    return [(n, part, g[n], ref[n]) for n, part in ENCODER_BACKWARD.items()] \
        + [(f"self_attn.{n}", part, g["self_attn"][n], ref["self_attn"][n]) for n, part in ATTENTION_BACKWARD.items()] \
        + [("dx", "norm1", g["dx"], ref["dx"])]


def attention_place(subject, step):
    """Where inside a multihead_attention or transformer_encoder layer its first wrong quantity `step` (its output or
    a gradient) leaves autograd -> {"quantity", "part", "heads" (those that differ; None for a quantity without
    heads), "head" (the first), "num_heads"}: the first of the layer's intermediates, in the order the computation
    makes them, that differs from autograd's (reference.attention: torch ops, retain_grad), both sides given
    autograd's input and upstream gradient. None: not such a layer, no intermediate differs, or a backward that
    names no intermediates (manual.attention's own, or one with a ``terms`` attribute returning them as its
    *_backward_terms does)."""
    spec, at = getattr(subject, "spec", None), step.where.split(" ")[0]
    if spec is None or not at.isdigit() or spec.layers[int(at)].type not in ATTENTIONS:
        return None
    layer = spec.layers[int(at)]
    i, wrong = layer.index, subject.wrong
    backward = (wrong.backward if wrong else {}).get(i)
    terms = ATTENTIONS[layer.type] if backward is None else getattr(backward, "terms", None)
    if step.quantity != "output" and terms is None:
        return None
    masks = subject.masks(0, len(subject.x))
    caches = manual_net.forward(spec, subject.params, subject.x, wrong.forward if wrong else None, masks=masks)[1]
    a = reference_net.run(spec, subject.params, subject.x, subject.target, masks)
    j, p = layer.inputs[0], {k: subject.params[f"{i}.{k}"] for k in layer.param_shapes()}
    x = subject.x if j < 0 else a["outputs"][j]
    H = layer.options["num_heads"]
    for name, part, manual, autograd in _intermediates(layer, step, terms, caches[i], x, a["output_grads"][i], p):
        mine, theirs = _heads(name, np.asarray(manual), H), _heads(name, autograd, H)
        heads = [h for h in mine if not compare(name, mine[h], theirs[h], subject.dtype).passed]
        if heads:
            return {"quantity": name, "part": part, "heads": None if heads == [None] else heads, "head": heads[0],
                    "num_heads": H}
    return None


def inside_text(inside):
    """attention_place's answer as one line."""
    where = "a quantity without heads" if inside["head"] is None else \
        f"head {inside['head']} of {inside['num_heads']} (heads {', '.join(map(str, inside['heads']))} differ)"
    return f"inside the attention: {inside['quantity']} ({inside['part']}) is the first of its intermediates to " \
        f"leave autograd, in {where}"
