"""Edges of the slides' network's walk (crosscheck.subjects.SeedSubject) and of the files and pictures of a run that
other tests leave open: a hand-written dE/dZ2 or dE/dZ1 with the sigmoid's local derivative left out or applied
twice is named as such at its own row (the rows above it right), and a dH1/dZ1 taken at the output H1 as the wrong
point; the updates after step 1 count one optimizer step, every other row none; the memory a slides' network needs
counts W's n_hidden * n_out values per sample and once more (seed_elements), so that a budget one byte short refuses
it; the training figure draws each series in its pair of colours, manual a broad pale band, autograd a thin dashed
line with small markers, the epochs' points marked on both; a run's temporary file is a hidden file beside its
target, named after it (its first 40 characters), this process and 4 random bytes, so that a file name of
255 bytes can be saved."""

import os
import re

import numpy as np
import pytest
from run_files import synthetic_run

from crosscheck import plots, reports, runfile
from crosscheck.check import overrides
from crosscheck.diagnose import diagnose
from crosscheck.subjects import SEED_UPDATED, SeedCase, SeedSubject, seed_elements
from manual import kernels
from manual.seed_network import EQUATIONS
from netdesc import InputError

# --- a slides' equation wrong in its activation: named at its own row -------------------------------------------

MISSING_AT_DE = "manual = dE/d(output): the local derivative left out"
TWICE_AT_DE = "manual = autograd * the local derivative: applied twice"

# (id, the equation replaced, its replacement, the row it breaks first, the class, its sentence)
ACTIVATION_MISTAKES = [
    ("dE_dZ2-missing", "dE_dZ2", lambda dE_dO, dO_dZ2: dE_dO, "dE/dZ2", "activation-missing", MISSING_AT_DE),
    ("dE_dZ2-twice", "dE_dZ2", lambda dE_dO, dO_dZ2: EQUATIONS["dE_dZ2"](dE_dO, dO_dZ2) * dO_dZ2, "dE/dZ2",
     "activation-twice", TWICE_AT_DE),
    ("dE_dZ1-missing", "dE_dZ1", lambda dE_dH1, dH1_dZ1: dE_dH1.reshape(dH1_dZ1.shape), "dE/dZ1",
     "activation-missing", MISSING_AT_DE),
    ("dE_dZ1-twice", "dE_dZ1", lambda dE_dH1, dH1_dZ1: EQUATIONS["dE_dZ1"](dE_dH1, dH1_dZ1) * dH1_dZ1, "dE/dZ1",
     "activation-twice", TWICE_AT_DE),
    # sigmoid'(Z1) = H1 (1 - H1) with H1 = sigmoid(Z1), but fed sigmoid(H1) as if H1 were Z1
    ("dH1_dZ1-at-the-output", "dH1_dZ1", lambda H1, Z1: EQUATIONS["dH1_dZ1"](kernels.sigmoid(H1.copy()), Z1),
     "dH1/dZ1", "activation-wrong-point", "manual = the derivative taken at the output instead of at the input"),
]


@pytest.mark.parametrize(("equation", "replacement", "row", "kind", "detail"),
                         [m[1:] for m in ACTIVATION_MISTAKES], ids=[m[0] for m in ACTIVATION_MISTAKES])
def test_a_wrong_activation_in_the_chain_is_named_at_its_own_row(equation, replacement, row, kind, detail):
    """The walk hands each row its hypotheses from autograd's values: dE/dZ2's from Z2 and dE/dO, dE/dZ1's from Z1
    and dE/dH1 (unflattened to Z1's shape), dH1/dZ1's from Z1; the equations above the replaced one are right, so
    its row is the first that differs and the mistake is named there, in float32 as in float64."""
    for dtype in ("float64", "float32"):
        subject = SeedSubject(SeedCase(input_shape=(6, 5), kernel_shape=(3, 2), n_out=2, batch=3, dtype=dtype),
                              overrides(backward={equation: replacement}))
        result = diagnose(subject)
        assert result.quantity == row
        assert (result.classification.kind, result.classification.detail) == (kind, detail)


# --- the steps behind a row ---------------------------------------------------------------------------------------

def test_the_updates_after_step_1_count_one_step_and_the_rest_none():
    """Step.steps: the optimizer steps behind a quantity, 1 for W, b and f after step 1, 0 for the forward values
    and the gradients."""
    steps = {step.name: step.steps for step in SeedSubject(SeedCase()).walk()}
    updates = [f"{k} after step 1" for k in SEED_UPDATED]
    assert [steps.pop(name) for name in updates] == [1, 1, 1]
    assert set(steps.values()) == {0} and len(steps) == 17  # 5 forward values, 12 factors of the chain rule


# --- the memory a slides' network needs -------------------------------------------------------------------------

def test_the_memory_of_the_slides_network_counts_every_output_weight():
    """6x5 input, 3x2 filter, 4 outputs, 3 samples: n_hidden = 4 * 4 = 16; X with its KW = 2 shifted copies
    3 * 30 * 3 = 270, the patches and the hidden layer 3 * 16 * (6 + 1) = 336, W's 16 * 4 values for each of the 3
    samples and once more 16 * 4 * 4 = 256: 862 values of 64 bytes, 55,168 bytes. A budget of exactly that is
    enough, one byte less is not."""
    case = SeedCase(input_shape=(6, 5), kernel_shape=(3, 2), n_out=4, batch=3)
    assert seed_elements(case) == 862
    SeedSubject(case, max_memory=55_168)
    with pytest.raises(InputError) as err:
        SeedSubject(case, max_memory=55_167)
    assert str(err.value) == ("memory: the slides' network 6x5-k3x2-out4-N3-sum-float64-seed0 needs about 55.2 kB, "
                              "more than the budget of 55.2 kB (--max-memory SIZE sets it)")


# --- the training figure's lines --------------------------------------------------------------------------------

def _style(line):
    return (line.get_color(), line.get_linestyle(), line.get_linewidth(), line.get_alpha(), line.get_marker(),
            line.get_markersize())


def test_each_series_is_a_pale_band_of_manual_under_autograds_dashed_line():
    """The loss in BLUES and the accuracies in BLUES (training) and GREENS (held-out): manual in the lighter
    colour, solid, 3.5 wide at alpha 0.45; autograd in the darker one, dashed, 1.3 wide, opaque. The loss has no
    markers; each epoch's accuracy is marked by a circle on both sides, autograd's of size 3, manual's of the default
    size."""
    from matplotlib import rcParams

    figure = plots.training_figure(synthetic_run(steps=30, epochs=3))
    loss, accuracy = figure.axes
    default = rcParams["lines.markersize"]
    assert plots.BLUES == ("tab:blue", "navy") and plots.GREENS == ("tab:green", "darkgreen")
    assert [_style(line) for line in loss.get_lines()] == [
        ("tab:blue", "-", 3.5, 0.45, "None", default), ("navy", "--", 1.3, None, "None", 3)]
    assert [_style(line) for line in accuracy.get_lines()] == [
        ("tab:blue", "-", 3.5, 0.45, "o", default), ("navy", "--", 1.3, None, "o", 3),
        ("tab:green", "-", 3.5, 0.45, "o", default), ("darkgreen", "--", 1.3, None, "o", 3)]


# --- a run's temporary file ---------------------------------------------------------------------------------------

def test_a_runs_files_are_written_through_hidden_temporaries_beside_them(tmp_path):
    """While a file is written, the file open is ".<the target's name>.<this process>.<4 random bytes in hex>.tmp" in
    the target's folder; afterwards only the targets are there."""
    seen = {}

    def writer(name):
        def write(f):
            seen[name] = f.name
            f.write(b"x")
        return write

    targets = [tmp_path / "run.npz", tmp_path / "run.json"]
    runfile.write_atomically({target: writer(target.name) for target in targets})
    for target in targets:
        temporary = os.fspath(seen[target.name])
        assert os.path.dirname(temporary) == os.fspath(tmp_path)
        assert re.fullmatch(rf"\.{re.escape(target.name)}\.{os.getpid()}\.[0-9a-f]{{8}}\.tmp",
                            os.path.basename(temporary)), temporary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json", "run.npz"]
    assert seen["run.npz"] != seen["run.json"]


def test_a_temporary_takes_the_first_40_characters_of_its_targets_name(tmp_path):
    """A name of 41 characters or more gives its first 40 to the temporary: with the process id and the random part
    added it stays below a file name's 255 bytes, even in 4-byte UTF-8 characters."""
    for name, kept in [("a" * 40, "a" * 40), ("b" * 41, "b" * 40), ("ü" * 127 + ".npz", "ü" * 40)]:
        temporary = reports.temporary_beside(tmp_path / name)
        assert temporary.parent == tmp_path
        assert re.fullmatch(rf"\.{kept}\.{os.getpid()}\.[0-9a-f]{{8}}\.tmp", temporary.name), temporary.name
    assert reports.temporary_beside(tmp_path / "x") != reports.temporary_beside(tmp_path / "x")


@pytest.mark.parametrize("character", ["r", "ü"], ids=["ascii", "two-byte"])
def test_a_file_name_of_255_bytes_can_be_saved(tmp_path, character):
    """A file name may have 255 bytes: a run, its summary and a report saved under such a name are written through
    their temporaries, and read back."""
    stem = character * ((255 - len(".json")) // len(character.encode()))
    run = synthetic_run(steps=3, epochs=1)
    path, beside = runfile.save_run(tmp_path / f"{stem}.npz", run)
    assert (path.name, beside.name) == (f"{stem}.npz", f"{stem}.json")
    assert len(os.fsencode(beside.name)) in (254, 255)
    assert np.array_equal(runfile.load_run(path)["loss_manual"], run["loss_manual"])
    report = tmp_path / f"{stem}.xml"
    reports.write_atomically(report, "<testsuites/>\n")
    assert report.read_text() == "<testsuites/>\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, beside.name, report.name])
