"""``crosscheck explain`` and ``crosscheck diagnose``: the text, --json, exit codes 0 / 1 / 2, one-line errors,
and the module convention of --module."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from crosscheck import cli
from crosscheck.catalogue import catalogue
from crosscheck.render import first_wrong
from crosscheck.subjects import SeedCase
from reference import seed_network as reference_seed

ROOT = pathlib.Path(__file__).resolve().parents[1]
SEED_MODULE = str(ROOT / "examples" / "diagnose" / "seed_sigmoid.py")
STACK_MODULE = str(ROOT / "examples" / "diagnose" / "small3conv_tanh.py")


def _run(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- explain ------------------------------------------------------------------------------------------------

def test_explain_walks_the_slides_equations_in_order(capsys):
    code, out, _ = _run(["explain"], capsys)
    assert code == 0
    order = ["Z1 = conv(X, f)", "H1 = sigmoid(Z1), flattened", "Z2 = W^T H1 + b", "O = sigmoid(Z2)",
             "E = (Y - O)^2 / 2", "dE/dO = O - Y", "dO/dZ2 = O (1 - O)", "dE/dZ2 = dE/dO * dO/dZ2", "dZ2/dW = H1",
             "dE/dW = H1^T dE/dZ2", "dE/db = dE/dZ2", "dZ2/dH1 = W^T", "dE/dH1 = dE/dZ2 W^T",
             "dH1/dZ1 = H1 (1 - H1)", "dE/dZ1 = dE/dH1 * dH1/dZ1", "dZ1/df = the KHxKW patches of X",
             "dE/df = conv(X, dE/dZ1)", "W <- W - alpha dE/dW", "b <- b - alpha dE/db", "f <- f - alpha dE/df"]
    positions = [out.index(f"\n  {equation}") for equation in order]
    assert positions == sorted(positions)
    assert len([line for line in out.splitlines() if line.startswith("  ") and line.endswith(" agree")]) == 20
    assert "DIFFER" not in out
    assert "X 4x4 -> Z1 3x3 -> H1 9 -> Z2 -> O 1 -> E" in out and "f 2x2, W 9x1, b 1; N = 1" in out
    assert out.rstrip().endswith("all 20 equations agree")
    assert max(len(line) for line in out.splitlines()) <= 100


def test_explain_prints_the_values_autograd_finds(capsys):
    case = SeedCase(input_shape=(4, 4), kernel_shape=(2, 2), batch=1, seed=3)
    _, grads = reference_seed.run(*case.inputs()[::2], case.inputs()[1])
    _, out, _ = _run(["explain", "--seed", "3"], capsys)
    block = out.split("dE/dO = O - Y")[1].split("dO/dZ2")[0]
    expected = np.array2string(grads["dE_dO"][0], precision=4, sign=" ")
    assert f"manual    {expected}" in block and f"autograd  {expected}" in block
    update = out.split("b <- b - alpha dE/db")[1]
    before = case.inputs()[2]["b"]
    assert f"before    {np.array2string(before, precision=4, sign=' ')}" in update
    after = before - 0.5 * grads["dE_db"]
    assert f"autograd  {np.array2string(after, precision=4, sign=' ')}" in update


def test_explain_shows_where_a_wrong_derivation_breaks_the_chain(capsys):
    code, out, _ = _run(["explain", "--inject", "twice-dH1_dZ1", "--shape", "5x4", "--k", "3x2", "--dtype",
                         "float32", "--lr", "0.1"], capsys)
    assert code == 1
    assert "injected wrong derivation: twice-dH1_dZ1" in out and "float32, alpha = 0.1" in out
    # the wrong factor dH1/dZ1 is the one multiplied into dE/dZ1: its own row differs first
    assert "  dH1/dZ1 = H1 (1 - H1)                     DIFFER" in out
    assert "  dE/dZ1 = dE/dH1 * dH1/dZ1                 DIFFER" in out
    assert "  dE/dH1 = dE/dZ2 W^T                       agree" in out
    assert out.rstrip().endswith("4 of 20 equations differ, the first: dH1/dZ1 = H1 (1 - H1)")


def test_explain_summarizes_large_arrays(capsys):
    _, out, _ = _run(["explain", "--shape", "9", "--k", "2"], capsys)
    assert "..." in out.split("dE/dZ1 = dE/dH1 * dH1/dZ1")[1].split("dZ1/df")[0]
    assert "shape (8, 8, 2, 2): not printed, 256 values" in out


# --- diagnose ----------------------------------------------------------------------------------------------

def test_diagnose_list_names_every_entry(capsys):
    code, out, _ = _run(["diagnose", "--list"], capsys)
    assert code == 0
    assert out.startswith(f"{len(catalogue())} wrong derivations")
    for entry in catalogue():
        assert f"\n{entry.name:<32} {first_wrong(entry):<32} {entry.kind}\n" in out
    code, out, _ = _run(["diagnose", "--list", "--json"], capsys)
    listed = json.loads(out)
    assert [e["name"] for e in listed] == [e.name for e in catalogue()]
    assert listed[-1]["network"] == "flatten-linear" and listed[0]["dtypes"] == ["float64"]


def test_help_of_the_subcommands(capsys):
    for command, options in (("explain", ["--shape", "--k", "--seed", "--dtype", "--lr", "--inject"]),
                             ("diagnose", ["--wrong", "--module", "--list", "--dtype", "--seed", "--top", "--json",
                                           "LAYER_BACKWARD"])):
        with pytest.raises(SystemExit) as info:
            cli.main([command, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert all(option in out for option in options)


def test_python_dash_m_diagnose_runs_the_same_command():
    command = [sys.executable, "-m", "crosscheck", "diagnose", "--wrong", "sgd-nesterov-lookahead-missing"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "class: momentum buffer mistake (momentum)" in done.stdout


@pytest.mark.source
def test_explain_points_each_equation_into_the_slides_file(capsys):
    """Every equation names its line in manual/seed_network.py, and that line is the equation's own."""
    _, out, _ = _run(["explain"], capsys)
    lines = (ROOT / "manual" / "seed_network.py").read_text().splitlines()
    pointers = [line.split()[1:] for line in out.splitlines() if line.startswith("    code      ")]
    assert len(pointers) == 20
    for place, *what in pointers:
        file, number = place.split(":")
        assert file == "manual/seed_network.py"
        source = lines[int(number) - 1]
        if what:  # an equation of the backward, or the update: its def line
            assert source.startswith(f"def {what[0].split('(')[0]}("), (place, source)
        else:  # a forward line: it assigns the quantity
            assert source.strip().split(" = ")[0] in ("Z1", "H1", "Z2", "O", "E"), (place, source)
