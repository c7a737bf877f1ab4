"""The checker's and the texts' edges: float32's float64 witness asked for by name and its reasons in the table's
summary (the first witnessed row's name with its own reason); the chaos note naming the quantity a nudge moved most;
a catalogue entry's own network named after the entry, at seed 0; a diagnosis' place line for a named layer outside
every residual block and for an unnamed layer inside one; explain's arrays printed the same whatever NumPy's global
print options."""

import re

import numpy as np

from crosscheck import render
from crosscheck.catalogue import find
from crosscheck.check import chaos, check, entry_subject
from crosscheck.compare import compare
from crosscheck.diagnose import Diagnosis
from crosscheck.hypotheses import Classification
from crosscheck.subjects import SeedCase, SeedSubject, Step, wobble

# --- float32's float64 witness, through check() and the table ----------------------------------------------------


class _Float32Sums:
    """A float32 subject as check() sees it: "a" and "b" rounded by autograd past the table, manual exactly on the
    float64 witness; "c" agreeing by the table alone."""

    title = "three float32 sums"
    dtype = "float32"
    wrong = None
    values = {"a": (1.0003, 1.0), "b": (2.002, 2.0), "c": (3.0, 3.0)}  # (manual, autograd)

    def walk(self):
        return [Step("", name, np.array([m], np.float32), np.array([a], np.float32))
                for name, (m, a) in self.values.items()]

    def witnesses(self):  # autograd in float64 on the same values: manual's own, exactly
        return {name: np.array([m], np.float32).astype(np.float64) for name, (m, _) in self.values.items()}


def test_float32_rows_the_table_fails_agree_by_their_own_witness_and_the_table_names_the_first():
    result = check(_Float32Sums(), train=False)
    assert result.passed
    assert render.table(["header"], result) == "\n".join([
        "header",
        "",
        "quantity               shape               max abs err  max rel err  result",
        "a                      (1,)                  3.000e-04    3.000e-04  ok",
        "b                      (1,)                  2.000e-03    1.000e-03  ok",
        "c                      (1,)                  0.000e+00    0.000e+00  ok",
        "",
        "all 3 quantities agree",
        "2 quantities agree by a second judge (the float64 witness, the nudged run, the lockstep or manual's own "
        "forward values, docs/tolerances.md), not by the table alone; a: float32 rounding: manual is within 1e-06 + "
        "0.0001 * |w| + 100 * 3.000e-04 of w, autograd in float64 on the same values (3.000e-04: autograd's own "
        "largest error)",
    ])


# --- the chaos note ----------------------------------------------------------------------------------------------

def test_the_chaos_note_names_the_quantity_the_nudge_moved_most():
    subject = SeedSubject(SeedCase(lr=7.0))  # 50 steps at lr 7: a one-ulp nudge moves autograd's run by percents
    moved = {step.name: compare(step.name, step.manual, step.autograd, "float64") for step in wobble(subject)}
    name = max(moved, key=lambda k: moved[k].max_abs_error)
    assert chaos(subject) == (f"a one-ulp nudge of the parameters moves autograd's own run by up to "
                              f"{moved[name].max_abs_error:.3e} ({name}), more than the tolerance")
    assert re.fullmatch(r"[\w /.]+ (after 50 steps|at steps 1\.\.50)", name)


# --- a catalogue entry's own network ------------------------------------------------------------------------------

def test_an_entry_on_a_described_network_is_named_after_the_entry_at_seed_0():
    entry = find("conv2d-stride-ignored-dx")
    subject = entry_subject(entry)
    assert (subject.spec.name, subject.seed, subject.title) == (
        "conv2d-stride-ignored-dx", 0, "network conv2d-stride-ignored-dx, seed 0")
    assert entry_subject(entry, seed=3).title == "network conv2d-stride-ignored-dx, seed 3"


# --- a diagnosis' place line ------------------------------------------------------------------------------------

def _placed(place):
    first = compare("2 conv2d: dE/dweight", np.array([1.0, 2.0]), np.array([1.0, 3.0]), "float64")
    return render.diagnosis_text(Diagnosis("a test subject", "float64", ("p", first.name), first,
                                           Classification("unclassified", "none fits"), place=place)).splitlines()


def test_a_named_layer_outside_every_block_and_an_unnamed_one_inside_a_block_each_get_their_place_line():
    named = {"layer": 2, "type": "conv2d", "name": "c2", "add": None, "add_index": None, "branch": None}
    unnamed = {"layer": 2, "type": "conv2d", "name": None, "add": "layer 4 add", "add_index": 4, "branch": "main"}
    head = ["diagnosis: a test subject, float64",
            "walked 2 quantities in the order the computation makes them; the first 1 agree",
            "",
            "first wrong quantity: 2 conv2d: dE/dweight, shape (2,)"]
    tail = ["  max abs err 1.000e+00, max rel err 3.333e-01 (allowed 1e-12 + 1e-10 * |autograd|)",
            "class: no hypothesis fits (unclassified)",
            "  none fits"]
    assert _placed(named) == [*head, '  in layer 2 conv2d "c2"', *tail]
    assert _placed(unnamed) == [*head, '  in layer 2 conv2d, on the main branch of the residual block that ends in '
                                'add "layer 4 add" (layer', "    4)", *tail]  # wrapped at 100 columns
    assert _placed(named | {"name": None}) == [*head, *tail]  # a layer outside every block, unnamed: no line


# --- explain's arrays --------------------------------------------------------------------------------------------

def test_explains_arrays_do_not_follow_numpys_global_print_options():
    """X 8x8 (64 values, past the threshold of 40) printed with three values at each edge whatever the caller set."""
    subject = SeedSubject(SeedCase(batch=1))
    text, agree = render.explain_text(subject)
    with np.printoptions(edgeitems=1, precision=2, linewidth=40, threshold=1000, sign="-"):
        assert render.explain_text(subject) == (text, agree)
    lines = text.splitlines()
    assert lines[lines.index("given") + 1:][:7] == [
        "    X         [[ 0.1257 -0.1321  0.6404 ...  0.3616  1.304   0.9471]",
        "               [-0.7037 -1.2654 -0.6233 ... -0.2188 -1.2459 -0.7323]",
        "               [-0.5443 -0.3163  0.4116 ...  1.3665 -0.6652  0.3515]",
        "               ...",
        "               [-1.2591  1.5139  1.3459 ... -0.3139  1.458   1.9603]",
        "               [ 1.8016  1.3151  0.3574 ...  0.6565 -1.2884  0.3951]",
        "               [ 0.4299  0.696  -1.1841 ... -1.1698  1.7394 -0.4959]]"]
