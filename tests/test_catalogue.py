"""The catalogue of wrong derivations: each one is flagged in float32 and float64, localized at the quantity it
breaks first and classified as the kind of mistake it is; finite differences side with autograd."""

import pytest
from runs import SEED_BASE, diagnose_entry, diagnose_network, diagnose_seed

from crosscheck.catalogue import catalogue, find
from crosscheck.catalogue import layers as wrong_layers
from crosscheck.catalogue import seed as wrong
from crosscheck.hypotheses import CLASSES
from crosscheck.render import diagnosis_text, first_wrong, network_of
from crosscheck.subjects import SeedCase
from netdesc import InputError
from netdesc.description import parse_spec

ENTRIES = catalogue()
FLAGGED = [pytest.param(e, dtype, id=f"{e}-{dtype}") for e in ENTRIES for dtype in e.dtypes]
# The variant of SGD each momentum entry gets wrong, as its classification must name it.
def _seed(entry):
    """The entry's own seed, shifted by SEED_BASE (None, the entry's own, when it is 0)."""
    return entry.case.get("seed", 0) + SEED_BASE if SEED_BASE else None


MOMENTUM = {"sgd-dampening-first-step": "started at zero", "sgd-nesterov-lookahead-missing": "look-ahead",
            "sgd-buffer-not-kept": "not carried"}


def test_the_catalogue_covers_the_seed_network_and_the_general_layers():
    assert len(ENTRIES) >= 15
    assert len({e.name for e in ENTRIES}) == len(ENTRIES)
    assert ENTRIES[:len(wrong.ENTRIES)] == wrong.ENTRIES  # the slides' network first
    assert {e.kind for e in ENTRIES} <= set(CLASSES) - {"unclassified"}
    assert len(wrong.ENTRIES) >= 10 and len(wrong_layers.ENTRIES) >= 10
    types = {layer["type"] for e in wrong_layers.ENTRIES for layer in e.network["layers"]}
    assert types >= {"conv2d", "max_pool2d", "avg_pool2d", "relu", "tanh", "linear"}


@pytest.mark.parametrize(("entry", "dtype"), FLAGGED)
def test_entry_is_flagged_localized_and_classified(entry, dtype):
    result = diagnose_entry(entry, dtype, _seed(entry))
    assert result.wrong, f"{entry} went unnoticed in {dtype}"
    assert result.quantity == first_wrong(entry), diagnosis_text(result)
    assert result.classification.kind == entry.kind, diagnosis_text(result)
    if entry.name in MOMENTUM:
        assert MOMENTUM[entry.name] in result.classification.detail


@pytest.mark.parametrize("entry", [e for e in ENTRIES if "float32" not in e.dtypes], ids=str)
def test_a_change_of_1e_minus_6_is_within_float32s_tolerance(entry):
    assert "1e-6" in entry.description
    assert not diagnose_entry(entry, "float32", _seed(entry)).wrong


@pytest.mark.parametrize("entry", ENTRIES, ids=str)
def test_finite_differences_side_with_autograd(entry):
    result = diagnose_entry(entry, "float64", _seed(entry))
    if " after step " in result.quantity:
        assert result.numerical is None  # an update: no gradient to difference
    elif entry.kind == "kink":
        assert result.numerical.supports == "unreliable" and result.numerical.kinks > 0
        assert all(e.kink for e in result.worst)
    elif "1e-6" in entry.description:
        assert result.numerical.supports == "both"  # finer than finite differences resolve
    else:
        assert result.numerical.supports == "autograd", diagnosis_text(result)
        # at a kink (a tie in a pooling window: seeds where the dark border makes them) central differences
        # average the two sides; everywhere else they agree with autograd
        assert all(e.kink or abs(e.numerical - e.autograd) <= 1e-6 * (1 + abs(e.autograd)) for e in result.worst)


@pytest.mark.parametrize("entry", ENTRIES, ids=str)
def test_the_real_code_passes_each_entrys_network(entry):
    """The entry's network without its mistake: no diagnosis, and the quantity it names exists there."""
    if entry.on_seed:
        result = diagnose_seed(SeedCase(**entry.case))
    else:
        result = diagnose_network(parse_spec(entry.network, entry.name), inputs=entry.inputs)
    assert not result.wrong, diagnosis_text(result)
    assert first_wrong(entry) in result.checked


def test_other_seeds_and_the_default_dtype():
    entry = find("conv2d-dw-flipped")
    for seed in (1, 2):
        result = diagnose_entry(entry, seed=seed)
        assert result.dtype == "float64" and f"seed {seed}" in result.subject
        assert result.classification.kind == "kernel-flipped"
    assert "seed5" in diagnose_entry(find("flipped-sign-dE_dO"), seed=5).subject


def test_unknown_entry_is_named():
    with pytest.raises(InputError, match=r"--wrong: got 'nope', needs one of scaled-dE_dW, "):
        find("nope", "--wrong")


def test_entries_read_by_name():
    assert str(wrong_layers.ENTRIES[0]) == wrong_layers.ENTRIES[0].name
    assert network_of(find("relu-ge-instead-of-gt")) == "conv2d-relu-flatten-linear"
    assert network_of(find("sgd-wrong-sign")) == "seed"
