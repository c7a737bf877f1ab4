"""What of a diagnosis' report is pinned: its places (a layer's description name, the place inside an attention
layer found on the subject's own forward, masks, input and dtype, with or without the backward's named terms),
its JSON form (every key, the injected mistake, the comparison and the finite differences' verdict), its worst
elements (beyond the dtype's tolerance only, worst first, ties in index order) and its kink probes (which differing
elements finite differences are asked about one by one, and that a quantity probed element by element is not
probed again)."""

import dataclasses
import json

import numpy as np
import pytest
from runs import attention_terms_changed, diagnose_entry, diagnose_seed

from crosscheck import numerical
from crosscheck.catalogue import find
from crosscheck.check import overrides, scaled_backward
from crosscheck.diagnose import diagnose, residual_place
from crosscheck.subjects import NetworkSubject, SeedCase, SeedSubject, Step
from manual import network as manual_net
from netdesc.description import parse_spec
from netdesc.inputs import dropout_masks, init_params, random_batch

HEAD = [{"type": "flatten"}, {"type": "linear", "out_features": 3}]


class Walked:
    """A subject whose walk is given: steps built by hand, in `dtype`, judged by the table alone."""

    title, wrong = "walked", None

    def __init__(self, steps, dtype="float64"):
        self.steps, self.dtype = steps, dtype

    def walk(self):
        return iter(self.steps)

    def witnesses(self):
        return {}


# --- the worst elements -------------------------------------------------------------------------------------


def test_the_worst_elements_are_those_beyond_the_tolerance_worst_first():
    """float64: |m - a| <= 1e-12 + 1e-10 |a| passes. At a = 0 an excess of exactly 1 is within the tolerance, 1.5
    beyond it; the sign flip is the worst."""
    a = np.array([0.0, 0.0, 0.0, 1.0])
    m = np.array([1e-12, 1.5e-12, 0.0, -1.0])
    d = diagnose(Walked([Step("", "q", m, a)]))
    assert [(e.index, e.manual, e.autograd) for e in d.worst] == [((3,), -1.0, 1.0), ((1,), 1.5e-12, 0.0)]


def test_the_worst_elements_of_a_float32_quantity_are_read_against_float32s_tolerance():
    """1e-6 relative is within float32's rtol 1e-4, far beyond float64's 1e-10: not among the worst."""
    a = np.array([1.0, 2.0, 3.0], np.float32)
    m = np.array([-1.0, 2.0 * (1 + 1e-6), 3.0], np.float32)
    assert m[1] != a[1]
    d = diagnose(Walked([Step("", "q", m, a)], "float32"))
    assert [e.index for e in d.worst] == [(0,)]


def test_worst_elements_of_equal_excess_come_in_index_order():
    rng = np.random.default_rng(0)
    a = np.ones(40)
    difference = rng.choice([1.0, 2.0], 40)
    d = diagnose(Walked([Step("", "q", a + difference, a)]))
    expected = [i for i in range(40) if difference[i] == 2.0][:5]
    assert [e.index for e in d.worst] == [(i,) for i in expected]


# --- the kink probes -----------------------------------------------------------------------------------------

JUMP, SMALL = 0.5, 1e-4  # |manual - autograd| at 1: a kink's jump (numerical.jump), and less than one


def _kink_step(size, differing, jumps, kinks=None):
    """A quantity of `size` elements, autograd 1 everywhere; E = sum(x) + sum(|x_i|) over the `kinks` (by default
    every element up to the last of the `jumps` but those) at x = 0: finite differences give 1 everywhere and a kink
    at those. Manual differs at the first `differing` elements, by less the later the element (so its index is its
    rank among the worst): by a kink's jump up to the last of the `jumps`, by less than one after it."""
    last = max(jumps, default=-1)
    kinks = [i for i in range(last + 1) if i not in jumps] if kinks is None else kinks
    weights = np.zeros(size)
    weights[kinks] = 1.0
    site = numerical.Site("q", np.zeros(size), lambda xs: xs.sum(axis=1) + np.abs(xs) @ weights)
    rank = np.arange(size)
    difference = np.where(rank <= last, JUMP - 1e-3 * rank, SMALL * (1 - rank / 1000))
    difference[differing:] = 0.0
    a = np.ones(size)
    jumps_seen = numerical.jump(a + difference, a)
    assert jumps_seen[: last + 1].all() and not jumps_seen[last + 1 :].any()
    return Step("", "q", a + difference, a, site=lambda: site)


@pytest.mark.parametrize(("jumps", "kind"), [((65,), "unclassified"), ((), "kink")], ids=["jump", "no-jump"])
def test_every_differing_element_of_a_quantity_probed_element_by_element_is_asked_about_a_kink(jumps, kind):
    """300 elements (finite differences take every one), 200 differing (more than 2 * KINK_PROBES), the worst 65 at
    a kink. With a kink's jump at the 66th too, where there is none, and every differing element asked, that one is
    seen: no convention at a kink explains the differences. With every difference smaller than a jump, one does."""
    kinks = list(range(65))
    d = diagnose(Walked([_kink_step(300, 200, jumps, kinks)]))
    assert d.numerical.mode == "elements"
    assert d.classification.kind == kind


@pytest.mark.parametrize(
    ("differing", "jumps", "kind"),
    [
        (192, (65,), "kink"),  # 64 spread over the other 128: every other one, the 66th between two probes
        (129, (66, 70), "unclassified"),  # 64 spread over the other 65 miss at most one of two
        (129, (128,), "unclassified"),  # the spread reaches the least differing element
        (3, (), "kink"),  # few: every one
    ],
    ids=["spread-every-other", "spread-all-but-one", "spread-to-the-last", "few"],
)
def test_a_quantity_probed_in_random_directions_asks_its_worst_and_a_spread_about_a_kink(differing, jumps, kind):
    """600 elements (finite differences take random directions): beyond 2 * KINK_PROBES differing elements the 64
    worst and 64 more spread evenly over the rest, from its first to its last, are probed one by one (up to it,
    every one). The worst are at a kink, with a kink's jump, up to the last of the `jumps`, which have none: one of
    them among the probes shows that no convention at a kink explains the differences."""
    kinks = list(range(differing)) if not jumps else None
    d = diagnose(Walked([_kink_step(600, differing, jumps, kinks)]))
    assert d.numerical.mode == "directions"
    assert d.classification.kind == kind


def test_the_worst_elements_carry_their_own_finite_differences_and_kinks():
    """E = sum(x) + |x_0| + |x_2| at x = 0 over 600 elements (random directions): the three differing elements are
    probed one by one, central differences 1 at each, a kink at the first and last."""
    step = _kink_step(600, 3, (), [0, 2])
    d = diagnose(Walked([step]))
    assert [(e.index, e.kink) for e in d.worst] == [((0,), True), ((1,), False), ((2,), True)]
    assert [e.numerical for e in d.worst] == pytest.approx([1.0, 1.0, 1.0], abs=1e-8)


def test_a_quantity_probed_element_by_element_is_not_probed_again():
    """Every one of the 300 elements once up and once down, and the point itself: the worst elements' differences
    are read from those."""
    step = _kink_step(300, 200, (65,), list(range(65)))
    site = step.site()
    points = []
    counted = dataclasses.replace(site, value=lambda xs: points.append(len(xs)) or site.value(xs))
    d = diagnose(Walked([dataclasses.replace(step, site=lambda: counted)]))
    assert d.worst[0].numerical == pytest.approx(1.0, abs=1e-8)
    assert sum(points) == 2 * 300 + 1


def test_finite_differences_judge_a_float32_quantity_with_float32s_tolerance():
    """E = sum(c * x): finite differences give c. Autograd off by 3e-5 relative is within fd_tolerance(float32)
    (rtol 1e-4), not within float64's (1e-6): the differences side with autograd against manual's flipped sign."""
    c = np.array([1.0, -2.0, 0.5, 3.0])
    site = numerical.Site("q", np.zeros(4), lambda xs: xs @ c)
    a = (c * (1 + 3e-5)).astype(np.float32)
    d = diagnose(Walked([Step("", "q", -a, a, site=lambda: site)], "float32"))
    assert d.numerical.supports == "autograd"


# --- places ------------------------------------------------------------------------------------------------


def test_a_layer_named_empty_in_its_description_has_no_name_in_its_place():
    spec = parse_spec(
        {
            "input_shape": [2, 4],
            "batch_size": 2,
            "layers": [{"type": "linear", "out_features": 4, "name": ""}, {"type": "tanh", "name": "t"}, *HEAD],
            "loss": {"type": "mse"},
        }
    )
    assert residual_place(spec, 0)["name"] is None
    assert residual_place(spec, 1)["name"] == "t"


def _head_1_dp_doubled(g):
    dP = g["dP"].copy()
    dP[:, 1] *= 2
    return g | {"dP": dP, "dx": g["dx"] * 1.01}


DP_HEAD_1 = {"quantity": "dP", "part": "softmax", "heads": [1], "head": 1, "num_heads": 2}
DX = {"quantity": "dx", "part": "projections", "heads": None, "head": None, "num_heads": 2}


@pytest.mark.parametrize(
    ("change", "inside"),
    [(_head_1_dp_doubled, DP_HEAD_1), (lambda g: g | {"dx": g["dx"] * 1.01}, DX)],
    ids=["dP-head-1", "dx"],
)
def test_an_attention_after_another_layer_is_localized_on_that_layers_output(change, inside):
    """tanh before the attention: both sides' intermediates start from tanh(x), not the network's input x."""
    spec = parse_spec(
        {
            "input_shape": [5, 4],
            "batch_size": 2,
            "layers": [{"type": "tanh"}, {"type": "multihead_attention", "num_heads": 2}, *HEAD],
            "loss": {"type": "mse"},
        }
    )
    d = diagnose(NetworkSubject(spec, wrong=overrides({1: attention_terms_changed(change)})))
    assert d.quantity == "1 multihead_attention: dE/dinput" and d.inside == inside


# dropout before the attention (its input) and after it (its upstream gradient); at seed 21 the second's mask of a
# run's first step (step 0) keeps 5 of its 20 elements and the second step's (step 1) none, at seed 23 the other way
DROPOUT_SPEC = parse_spec(
    {
        "input_shape": [5, 4],
        "batch_size": 1,
        "layers": [
            {"type": "dropout", "p": 0.5},
            {"type": "multihead_attention", "num_heads": 2},
            {"type": "dropout", "p": 0.9},
            *HEAD,
        ],
        "loss": {"type": "mse"},
    }
)


def _head_1_dp_doubled_dx_shifted(g):
    return _head_1_dp_doubled(g) | {"dx": g["dx"] + 1e-3}


@pytest.mark.parametrize(
    ("seed", "kept", "inside"),
    [(21, (5, 0), DP_HEAD_1), (23, (0, 3), DX)],
    ids=["upstream-kept", "upstream-dropped"],
)
def test_an_attention_between_dropouts_is_localized_on_the_masks_of_the_runs_first_step(seed, kept, inside):
    """Head 1's dP doubled and dx shifted by 1e-3: where the step's mask drops the whole upstream gradient, dP is 0
    on both sides and only dx differs. The first dropout drops some of the attention's input, on both sides."""
    first, second = (dropout_masks(DROPOUT_SPEC, 1, seed, step) for step in (0, 1))
    assert (first[2].sum(), second[2].sum()) == kept and 0 < first[0].sum() < first[0].size
    wrong = overrides({1: attention_terms_changed(_head_1_dp_doubled_dx_shifted)})
    d = diagnose(NetworkSubject(DROPOUT_SPEC, seed, wrong=wrong))
    assert d.quantity == "1 multihead_attention: dE/dinput" and d.inside == inside


ATTENTION_NET = find("attention-mask-after-softmax").network  # (T 5, E 4), 2 heads, causal
P_EVERY_HEAD = {"quantity": "P", "part": "softmax", "heads": [0, 1], "head": 0, "num_heads": 2}


def _plain_scaled():
    """multihead_attention's backward scaled by 1.01: no named terms."""
    return scaled_backward(manual_net.BACKWARD["multihead_attention"], 1.01)


def test_an_attention_backward_without_named_terms_has_no_place_inside():
    d = diagnose(NetworkSubject(parse_spec(ATTENTION_NET), wrong=overrides({0: _plain_scaled()})))
    assert d.quantity == "0 multihead_attention: dE/dinput" and d.inside is None


def test_a_wrong_attention_forward_is_localized_whatever_its_backward():
    """The mask applied after the softmax (the catalogue's forward) with a backward that names no terms: the output
    is the first wrong row, and the subject's own forward run again makes P the first intermediate to differ."""
    wrong = overrides({0: _plain_scaled()}, find("attention-mask-after-softmax").forward)
    d = diagnose(NetworkSubject(parse_spec(ATTENTION_NET), wrong=wrong))
    assert d.quantity == "0 multihead_attention: output" and d.inside == P_EVERY_HEAD


def _p_of_head_1_cached_halved(x, p, o):
    """The right output, with head 1's P in the cache halved: only the backward reads it."""
    out, cache = manual_net.FORWARD["multihead_attention"](x, p, o)
    P = cache["attention"]["P"].copy()
    P[:, 1] /= 2
    return out, cache | {"attention": cache["attention"] | {"P": P}}


def test_an_attention_backward_given_a_wrong_cache_is_localized_with_its_own_terms():
    """The backward is the layer's own, its forward replaced: its terms run on the cache the subject's forward left.
    dP = dheads v^T reads no P; dv = P^T dheads is the first to differ, in head 1."""
    wrong = overrides(forward={0: _p_of_head_1_cached_halved})
    d = diagnose(NetworkSubject(parse_spec(ATTENTION_NET), wrong=wrong))
    assert d.quantity == "0 multihead_attention: dE/dinput"
    assert d.inside == {"quantity": "dv", "part": "values", "heads": [1], "head": 1, "num_heads": 2}


def test_the_attention_intermediates_are_judged_in_the_subjects_dtype():
    """A float32 subject (no wrong derivation) given float64 values: as its output row, every intermediate is of
    another dtype, and the first, qkv, differs in every head."""
    spec = parse_spec(ATTENTION_NET)
    params, (x, target) = init_params(spec, np.float64, 0), random_batch(spec, np.float64, 0)
    d = diagnose(NetworkSubject(spec, dtype="float32", data=(x, target, params)))
    assert d.quantity == "0 multihead_attention: output" and "dtype mismatch" in d.first.problem
    assert d.inside == {"quantity": "qkv", "part": "projections", "heads": [0, 1], "head": 0, "num_heads": 2}


# --- the JSON form -------------------------------------------------------------------------------------------

KEYS = set(
    "subject dtype injected wrong quantity checked comparison class worst numerical place time_step inside".split()
)


def test_the_json_form_of_a_diagnosis_of_a_catalogued_mistake():
    entry = find("attention-scale-forgotten")
    result = diagnose_entry(entry)
    d = json.loads(json.dumps(result.as_dict(), allow_nan=False))
    assert set(d) == KEYS
    assert d["subject"] == f"network {entry.name}, seed 0" and d["dtype"] == "float64"
    assert d["injected"] == f"{entry.name} ({entry.description})" and d["wrong"] is True
    assert d["quantity"] == "0 multihead_attention: dE/dinput" == d["comparison"]["name"]
    assert d["comparison"]["passed"] is False
    assert d["numerical"]["supports"] == "autograd" and d["numerical"]["mode"] == "elements"
    assert d["inside"] == {"quantity": "dq", "part": "projections", "heads": [0, 1], "head": 0, "num_heads": 2}
    assert d["place"]["layer"] == 0 and d["time_step"] is None


def test_the_json_form_of_a_correct_network_names_nothing_injected():
    d = diagnose_seed(SeedCase(batch=1)).as_dict()
    assert set(d) == KEYS
    assert d["subject"] == SeedSubject(SeedCase(batch=1)).title  # a diagnosis that finds nothing names its subject
    assert d["injected"] is None and d["numerical"] is None and d["inside"] is None and d["dtype"] == "float64"
