"""The catalogue of wrong derivations: each one is flagged in float32 and float64, localized at the quantity it
breaks first and classified as the kind of mistake it is; finite differences side with autograd."""

import pytest

from crosscheck import diagnose
from crosscheck.catalogue import layers as wrong_layers
from crosscheck.catalogue import seed as wrong
from crosscheck.seed_check import SeedCase
from netdesc.description import parse_spec

ENTRIES = diagnose.catalogue()
FLAGGED = [pytest.param(e, dtype, id=f"{e}-{dtype}") for e in ENTRIES for dtype in e.dtypes]
# The variant of SGD each momentum entry gets wrong, as its classification must name it.
MOMENTUM = {"sgd-dampening-first-step": "started at zero", "sgd-nesterov-lookahead-missing": "look-ahead",
            "sgd-buffer-not-kept": "not carried"}


def test_the_catalogue_covers_the_seed_network_and_the_general_layers():
    assert len(ENTRIES) >= 15
    assert len({e.name for e in ENTRIES}) == len(ENTRIES)
    assert ENTRIES[:5] == wrong.WRONG_DERIVATIONS[:5]  # the first five keep their names and behaviour
    assert {e.kind for e in ENTRIES} <= set(diagnose.CLASSES) - {"unclassified"}
    assert len(wrong.ENTRIES) >= 10 and len(wrong_layers.STACK_CATALOGUE) >= 10
    types = {layer["type"] for e in wrong_layers.STACK_CATALOGUE for layer in e.spec["layers"]}
    assert types >= {"conv2d", "max_pool2d", "avg_pool2d", "relu", "tanh", "linear"}


@pytest.mark.parametrize(("entry", "dtype"), FLAGGED)
def test_entry_is_flagged_localized_and_classified(entry, dtype):
    result = diagnose.diagnose_entry(entry, dtype)
    assert result.wrong, f"{entry} went unnoticed in {dtype}"
    assert result.quantity == diagnose.expected_name(entry), result.report()
    assert result.classification.kind == entry.kind, result.report()
    if entry.name in MOMENTUM:
        assert MOMENTUM[entry.name] in result.classification.detail


@pytest.mark.parametrize("entry", [e for e in ENTRIES if "float32" not in e.dtypes], ids=str)
def test_a_change_of_1e_minus_6_is_within_float32s_tolerance(entry):
    assert "1e-6" in entry.description
    assert not diagnose.diagnose_entry(entry, "float32").wrong


@pytest.mark.parametrize("entry", ENTRIES, ids=str)
def test_finite_differences_side_with_autograd(entry):
    result = diagnose.diagnose_entry(entry, "float64")
    if " after step " in result.quantity:
        assert result.numerical is None  # an update: no gradient to difference
    elif entry.kind == "kink":
        assert result.numerical.supports == "unreliable" and result.numerical.kinks > 0
        assert all(e.kink for e in result.worst)
    elif "1e-6" in entry.description:
        assert result.numerical.supports == "both"  # finer than finite differences resolve
    else:
        assert result.numerical.supports == "autograd", result.report()
        assert all(abs(e.numerical - e.autograd) <= 1e-6 * (1 + abs(e.autograd)) for e in result.worst)


@pytest.mark.parametrize("entry", ENTRIES, ids=str)
def test_the_real_code_passes_each_entrys_network(entry):
    """The entry's network without its mistake: no diagnosis, and the quantity it names exists there."""
    if getattr(entry, "network", None) == "seed":
        result = diagnose.diagnose_seed(SeedCase(**entry.case))
    else:
        result = diagnose.diagnose_stack(parse_spec(entry.spec, entry.name), inputs=entry.inputs)
    assert not result.wrong, result.report()
    assert diagnose.expected_name(entry) in result.checked


def test_other_seeds_and_the_default_dtype():
    entry = diagnose.find("conv2d-dw-flipped")
    for seed in (1, 2):
        result = diagnose.diagnose_entry(entry, seed=seed)
        assert result.dtype == "float64" and f"seed {seed}" in result.subject
        assert result.classification.kind == "kernel-flipped"
    assert "seed5" in diagnose.diagnose_entry(diagnose.find("flipped-sign-dE_dO"), seed=5).subject


def test_unknown_entry_is_named():
    with pytest.raises(diagnose.InputError, match=r"--wrong: got 'nope', needs one of scaled-dE_dW, "):
        diagnose.find("nope")


def test_entries_read_by_name():
    assert str(wrong_layers.STACK_CATALOGUE[0]) == wrong_layers.STACK_CATALOGUE[0].name
    assert diagnose.network_of(diagnose.find("relu-ge-instead-of-gt")) == "conv2d-relu-flatten-linear"
    assert diagnose.network_of(diagnose.find("sgd-wrong-sign")) == "seed"
