"""``crosscheck explain`` and ``crosscheck diagnose``: the text, --json, exit codes 0 / 1 / 2, one-line errors,
and the module convention of --module."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.nn import functional as TF

from crosscheck import cli, render
from crosscheck.catalogue import catalogue
from crosscheck.render import first_wrong
from crosscheck.subjects import SeedCase
from manual import seed_network
from reference import network as reference_net
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


def test_explain_in_float32_judges_every_equation_by_float32s_tolerance(capsys):
    code, out, _ = _run(["explain", "--dtype", "float32", "--k", "1x2", "--shape", "3x3"], capsys)
    assert code == 0 and out.rstrip().endswith("all 20 equations agree")
    assert out.splitlines()[2:4] == ["  f 1x2, W 6x1, b 1; N = 1, seed 0, float32, alpha = 0.5",
                                     "  agree: |manual - autograd| <= 1e-06 + 0.0001 |autograd|"]  # docs/tolerances.md
    # the update's "before" is the given f, printed the same way
    given = next(line for line in out.splitlines() if line.startswith("    f         "))
    update = out.split("f <- f - alpha dE/df")[1].splitlines()
    assert update[2] == given.replace("    f         ", "    before    ")


def test_explain_summarizes_large_arrays(capsys):
    _, out, _ = _run(["explain", "--shape", "9", "--k", "2"], capsys)
    assert "..." in out.split("dE/dZ1 = dE/dH1 * dH1/dZ1")[1].split("dZ1/df")[0]
    assert "shape (8, 8, 2, 2): not printed, 256 values" in out


# --- explain --layer batchnorm -------------------------------------------------------------------------------------

BATCH_NORM_LINES = ["mu = mean of x over the batch", "var = mean of (x - mu)^2 (biased)",
                    "x_hat = (x - mu) / s, s = sqrt(var + eps)", "y = gamma x_hat + beta",
                    "dE/dgamma = sum dE/dy * x_hat", "dE/dbeta = sum dE/dy", "dE/dx_hat = dE/dy * gamma",
                    "direct: dE/dx_hat / s", "through mu: -mean(dE/dx_hat) / s",
                    "through var: -x_hat mean(dE/dx_hat x_hat) / s", "dE/dx = direct + through mu + through var"]


def _verdicts(out):
    """{equation: "agree" or "DIFFER"} of an explain text."""
    found = {}
    for line in out.splitlines():
        text, _, verdict = line.strip().rpartition(" ")
        if line.startswith("  ") and verdict in ("agree", "DIFFER"):
            found[text.strip()] = verdict
    return found


@pytest.mark.parametrize("dtype, seed", [("float64", 0), ("float64", 7), ("float32", 3)])
def test_explain_batchnorm_walks_the_forward_and_the_three_paths_all_agreeing(dtype, seed, capsys):
    code, out, _ = _run(["explain", "--layer", "batchnorm", "--dtype", dtype, "--seed", str(seed)], capsys)
    assert code == 0 and _verdicts(out) == dict.fromkeys(BATCH_NORM_LINES, "agree")
    positions = [out.index(f"\n  {line}") for line in BATCH_NORM_LINES]
    assert positions == sorted(positions) and out.rstrip().endswith("all 11 equations agree")
    assert "code      manual/functional.py:" in out and "_normalize_backward_terms" in out


def test_explain_batchnorm_prints_the_values_torch_finds(capsys):
    # the x the command draws for seed 5, its mean and the dE/dx of torch's own batch_norm on it, computed here
    _, out, _ = _run(["explain", "--layer", "batchnorm", "--seed", "5"], capsys)
    rows = out.split("    x         ")[1].split("    gamma")[0]
    x = torch.tensor(np.array([[float(v) for v in row.strip(" []").split()] for row in rows.splitlines()]))
    assert x.shape == (4, 3)
    mean = out.split("mu = mean of x over the batch")[1].split("var =")[0]
    expected = np.array2string(x.mean(0).numpy(), precision=4, sign=" ")
    assert f"manual    {expected}" in mean and f"autograd  {expected}" in mean
    # the paths add up to torch's batch_norm's gradient: torch.autograd.grad, nothing of manual/ or reference/
    from crosscheck.render import explain_batchnorm_text
    rng = np.random.default_rng(5)
    drawn = rng.normal(size=(4, 3)) * rng.uniform(0.5, 2, size=3) + rng.normal(size=3)
    np.testing.assert_allclose(drawn, x.numpy(), atol=5e-5)  # the printed x, 4 decimals
    gamma, beta, dy = (torch.tensor(rng.normal(size=shape)) for shape in ((3,), (3,), (4, 3)))
    x = torch.tensor(drawn, requires_grad=True)
    dx, = torch.autograd.grad((TF.batch_norm(x, None, None, gamma, beta, training=True) * dy).sum(), x)
    block = out.split("dE/dx = direct + through mu + through var")[1]
    assert f"autograd  {np.array2string(dx.numpy(), precision=4, sign=' ')}".splitlines()[0] in block
    assert explain_batchnorm_text(5)[0] == out.rstrip("\n")


def test_the_autograd_paths_add_up_to_torchs_batch_norm_gradient():
    rng = np.random.default_rng(11)
    x, dy = rng.normal(size=(3, 2, 2, 2)), rng.normal(size=(3, 2, 2, 2))
    gamma, beta = rng.normal(size=2), rng.normal(size=2)
    paths = reference_net.batch_norm_paths(x, gamma, beta, dy)
    t = torch.tensor(x, requires_grad=True)
    y = TF.batch_norm(t, None, None, torch.tensor(gamma), torch.tensor(beta), training=True)
    dx, = torch.autograd.grad((y * torch.tensor(dy)).sum(), t)
    np.testing.assert_allclose(paths["direct"] + paths["through_mean"] + paths["through_var"], dx.numpy(),
                               rtol=1e-10, atol=1e-12)
    var, mean = torch.var_mean(torch.tensor(x), dim=(0, 2, 3), correction=0)
    np.testing.assert_allclose(paths["mean"], mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(paths["var"], var.numpy(), rtol=1e-12)
    # the mean's path is one value per channel; the three differ from one another
    assert np.allclose(paths["through_mean"], paths["through_mean"][:1, :, :1, :1])
    assert not np.allclose(paths["direct"], dx.numpy()) and not np.allclose(paths["through_var"], 0)


@pytest.mark.parametrize("name, wrong", [
    ("batchnorm-no-mean-variance-paths", {"through mu: -mean(dE/dx_hat) / s", "through var: -x_hat mean(dE/dx_hat "
                                          "x_hat) / s", "dE/dx = direct + through mu + through var"}),
    ("batchnorm-dy-for-scaled", {"direct: dE/dx_hat / s", "through mu: -mean(dE/dx_hat) / s", "through var: -x_hat "
                                 "mean(dE/dx_hat x_hat) / s", "dE/dx = direct + through mu + through var"}),
])
def test_explain_batchnorm_shows_the_paths_a_wrong_backward_leaves_out(name, wrong, capsys):
    code, out, _ = _run(["explain", "--layer", "batchnorm", "--inject", name], capsys)
    assert code == 1 and f"injected wrong derivation: {name}" in out
    verdicts = _verdicts(out)
    assert {text for text, verdict in verdicts.items() if verdict == "DIFFER"} == wrong
    assert set(verdicts) == set(BATCH_NORM_LINES)
    if name == "batchnorm-no-mean-variance-paths":  # the two paths left out: manual's rows are 0
        block = out.split("through mu: -mean(dE/dx_hat) / s")[1].split("autograd")[0]
        assert "manual    [[ 0.  0.  0.]" in block


def test_explain_batchnorm_by_default_walks_seed_0_under_the_dtypes_tolerance():
    text, agree = render.explain_batchnorm_text(dtype="float32")
    assert agree and text.splitlines()[:3] == [
        f"Batch norm in training mode by hand (NumPy) and by autograd (PyTorch {torch.__version__}):",
        "  x 4x3 (N = 4 samples, C = 3 channels): each channel normalized over its 4 values, eps 1e-5; seed 0, float32",
        "  E = sum(dE/dy * y), dE/dy drawn at random; agree: |manual - autograd| <= 1e-06 + 0.0001 |autograd|"]


def test_explain_batchnorm_refuses_a_mistake_outside_batch_norm(capsys):
    code, _, err = _run(["explain", "--layer", "batchnorm", "--inject", "conv2d-dw-flipped"], capsys)
    assert code == 2 and err.strip().endswith("--inject: got 'conv2d-dw-flipped', needs a wrong batch-norm backward: "
                                              "batchnorm-no-mean-variance-paths, batchnorm-dy-for-scaled")
    assert len(err.strip().splitlines()) == 1


# --- explain --layer lstm ------------------------------------------------------------------------------------------

LSTM_FORWARD = ["h_{t-1}: step t-1's hidden state", "c_{t-1}: step t-1's cell state",
                "i = sigmoid(a_i), the input gate", "f = sigmoid(a_f), the forget gate",
                "g = tanh(a_g), the candidate cell", "o = sigmoid(a_o), the output gate", "c_t = f * c_{t-1} + i * g",
                "h_t = o * tanh(c_t)"]
LSTM_STEP = ["dE/dh_t = dE/dout_t + dh_next", "dE/do = dE/dh_t * tanh(c_t)",
             "dE/dc_t = dc_next + dE/dh_t o (1 - tanh(c_t)^2)", "dE/di = dE/dc_t * g", "dE/df = dE/dc_t * c_{t-1}",
             "dE/dg = dE/dc_t * i", "dE/da_i = dE/di * i (1 - i)", "dE/da_f = dE/df * f (1 - f)",
             "dE/da_g = dE/dg * (1 - g^2)", "dE/da_o = dE/do * o (1 - o)",
             "dE/da = [da_i da_f da_g da_o], torch's order", "dE/dc_{t-1} = dE/dc_t * f, to step t-1",
             "dE/dh_{t-1} = dE/da W_hh, to step t-1"]
LSTM_WEIGHTS = ["dE/dW_ih = sum over t of dE/da_t^T x_t", "dE/dW_hh = sum over t of dE/da_t^T h_{t-1}",
                "dE/db_ih = sum over t and N of dE/da_t", "dE/db_hh = the same sum"]
LSTM_LINES = LSTM_FORWARD + LSTM_STEP + LSTM_WEIGHTS


def _printed(out, equation, label):
    """The array printed under `equation` (or in the given block, equation None) on the `label` line -> float64."""
    block = out.split("\ngiven\n")[1] if equation is None else out.split(f"\n  {equation}")[1]
    lines = block.splitlines()
    at = next(k for k, line in enumerate(lines) if line.startswith(f"    {label:<10}"))
    rows = [lines[at][14:]]
    for line in lines[at + 1:]:
        if not line.startswith(" " * 14) or not line.strip():
            break
        rows.append(line[14:])
    values = [[float(v) for v in row.strip(" []").split()] for row in rows]
    return np.array(values if len(values) > 1 else values[0])


@pytest.mark.parametrize("dtype, seed", [("float64", 0), ("float64", 4), ("float32", 2)])
def test_explain_lstm_walks_one_step_all_agreeing(dtype, seed, capsys):
    code, out, _ = _run(["explain", "--layer", "lstm", "--dtype", dtype, "--seed", str(seed)], capsys)
    assert code == 0 and _verdicts(out) == dict.fromkeys(LSTM_LINES, "agree")
    positions = [out.index(f"\n  {line}") for line in LSTM_LINES]
    assert positions == sorted(positions) and out.rstrip().endswith("all 25 equations agree")
    assert f"seed {seed}, {dtype}" in out and "the step walked: t = 1 of 0..2" in out
    assert max(len(line) for line in out.splitlines()) <= 100
    # each line points at the line of manual/recurrent.py that computes it
    source = (ROOT / "manual" / "recurrent.py").read_text().splitlines()
    for equation, text in (("dE/dc_t = dc_next", "dc = dc_next + dh * o"), ("c_t = f * c_{t-1}", "c = f * c_prev"),
                           ("dE/dc_{t-1}", "dc_prev = dc * f"), ("dE/da = [", "np.concatenate([da_i"),
                           ("dE/dh_t = dE/dout_t", "dh = dseq[t] + dnext[0]")):
        code_line = out.split(f"\n  {equation}")[1].splitlines()[1]
        where = code_line.split()[1]
        assert where.startswith("manual/recurrent.py:"), code_line
        assert text in source[int(where.split(":")[1]) - 1]


def test_explain_lstm_prints_the_values_torch_finds(capsys):
    # the sequence the command draws for seed 6 (the printed x_t and W_ih are its values), then torch.nn.LSTM run
    # as three modules, one per step, each from the one before's final states: what step 2 sends back to h_1 and
    # c_1, and what step 1 sends back to h_0 and c_0, are torch.autograd.grad's, nothing of manual/ or reference/
    _, out, _ = _run(["explain", "--layer", "lstm", "--seed", "6"], capsys)
    rng = np.random.default_rng(6)
    weights = [rng.uniform(-0.5 ** 0.5, 0.5 ** 0.5, size=shape) for shape in ((8, 3), (8, 2), (8,), (8,))]
    x, dout = torch.tensor(rng.normal(size=(3, 2, 3))), torch.tensor(rng.normal(size=(3, 2, 2)))
    np.testing.assert_allclose(_printed(out, None, "W_ih"), weights[0], atol=5e-5)
    np.testing.assert_allclose(_printed(out, None, "x_t"), x[1].numpy(), atol=5e-5)
    modules = [torch.nn.LSTM(3, 2, dtype=torch.float64) for _ in range(3)]
    with torch.no_grad():
        for module in modules:
            for name, w in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), weights, strict=True):
                getattr(module, name).copy_(torch.tensor(w))
    E, states, finals = 0, None, []
    for t, module in enumerate(modules):
        output, states = module(x[t:t + 1], states)
        E = E + (output * dout[t:t + 1]).sum()
        finals.append(states)
    (h0, c0), (h1, c1) = finals[:2]
    dh_next, dc_next, dh_prev, dc_prev = torch.autograd.grad(E, (h1, c1, h0, c0), retain_graph=True)
    for printed, expected in ((_printed(out, None, "dh_next"), dh_next), (_printed(out, None, "dc_next"), dc_next),
                              (_printed(out, "dE/dc_{t-1} = dE/dc_t * f", "manual"), dc_prev),
                              (_printed(out, "dE/dh_{t-1} = dE/da W_hh", "autograd"), dh_prev),
                              (_printed(out, "c_t = f * c_{t-1} + i * g", "manual"), c1),
                              (_printed(out, "h_t = o * tanh(c_t)", "autograd"), h1)):
        np.testing.assert_allclose(printed, expected[0].detach().numpy(), atol=5e-5)
    dw_ih = sum(torch.autograd.grad(E, [m.weight_ih_l0 for m in modules]))
    np.testing.assert_allclose(_printed(out, "dE/dW_ih = sum over t", "manual"), dw_ih.numpy(), atol=5e-5)
    from crosscheck.render import explain_lstm_text
    assert explain_lstm_text(6)[0] == out.rstrip("\n")


FUTURE_LEFT_OUT = set(LSTM_STEP[2:10]) - {"dE/da_o = dE/do * o (1 - o)"} | set(LSTM_STEP[10:]) | set(LSTM_WEIGHTS)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name, wrong", [
    ("lstm-cell-future-left-out", FUTURE_LEFT_OUT),
    ("lstm-gate-order-ifog", {"dE/da = [da_i da_f da_g da_o], torch's order", "dE/dh_{t-1} = dE/da W_hh, to step t-1",
                              *LSTM_WEIGHTS}),
])
def test_explain_lstm_shows_the_line_a_wrong_step_leaves_autograd(name, wrong, dtype, capsys):
    code, out, _ = _run(["explain", "--layer", "lstm", "--inject", name, "--dtype", dtype], capsys)
    assert code == 1 and f"injected wrong derivation: {name}, in every step's backward" in out
    verdicts = _verdicts(out)
    assert set(verdicts) == set(LSTM_LINES)
    assert {text for text, verdict in verdicts.items() if verdict == "DIFFER"} == wrong
    first = next(line for line in LSTM_LINES if line in wrong)
    assert out.rstrip().endswith(f"{len(wrong)} of 25 equations differ, the first: {first}")
    assert "crosscheck/catalogue/recurrent.py:" in out.split(f"\n  {first}")[1].splitlines()[1]
    if name == "lstm-cell-future-left-out":  # manual's dE/dc_t is autograd's without what arrives from the future
        manual, autograd = (_printed(out, "dE/dc_t = dc_next", side) for side in ("manual", "autograd"))
        np.testing.assert_allclose(manual, autograd - _printed(out, None, "dc_next"), atol=3e-4)


def test_explain_lstm_by_default_walks_seed_0_in_three_sections():
    text, agree = render.explain_lstm_text(dtype="float32")
    assert agree and text.splitlines()[:5] == [
        f"One LSTM step by hand (NumPy) and by autograd (PyTorch {torch.__version__}):",
        "  x: T = 3 steps of N = 2 samples by F = 3 features, H = 2, h and c from 0; seed 0, float32",
        "  a = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh (N x 4H): the gates i, f, g, o in torch's order",
        "  E = sum over t of dE/dout_t * h_t, dE/dout drawn at random; the step walked: t = 1 of 0..2",
        "  agree: |manual - autograd| <= 1e-06 + 0.0001 |autograd|"]
    assert [line for line in text.splitlines() if line and not line.startswith(" ")][1:] == [
        "given",
        "forward: step t (the steps before it the same way, from h = c = 0)",
        "backward: step t, from dE/dh_t and the cell state's gradient from the future",
        "over the whole sequence: every step's dE/da summed (autograd: torch.nn.LSTM)",
        "all 25 equations agree"]


def test_explain_lstm_refuses_a_mistake_outside_the_lstm_step(capsys):
    code, _, err = _run(["explain", "--layer", "lstm", "--inject", "gru-bptt-cut-after-one-step"], capsys)
    assert code == 2 and err.strip().endswith("--inject: got 'gru-bptt-cut-after-one-step', needs a wrong LSTM step "
                                              "backward: lstm-cell-future-left-out, lstm-gate-order-ifog")
    assert len(err.strip().splitlines()) == 1


# --- diagnose ----------------------------------------------------------------------------------------------

def test_the_catalogue_reads_as_a_table_by_default():
    (entry,) = [e for e in catalogue() if e.name == "sgd-wrong-sign"]
    assert render.catalogue_text([entry]) == (
        "1 wrong derivations; crosscheck diagnose --wrong NAME runs one\n"
        "\n"
        "name                             first wrong quantity             class\n"
        "sgd-wrong-sign                   W after step 1                   update-sign\n"
        "    seed: w <- w + alpha dE/dw: the update climbs the error")


def test_diagnose_list_names_every_entry(capsys):
    code, out, _ = _run(["diagnose", "--list"], capsys)
    assert code == 0
    assert out.startswith(f"{len(catalogue())} wrong derivations")
    for entry in catalogue():
        assert f"\n{entry.name:<32} {first_wrong(entry):<32} {entry.kind}\n" in out
    code, out, _ = _run(["diagnose", "--list", "--json"], capsys)
    assert out.startswith('[\n  {\n    "name": "')  # indented by two, as every --json document
    listed = json.loads(out)
    assert [e["name"] for e in listed] == [e.name for e in catalogue()]
    by_name = {e["name"]: e for e in listed}
    assert by_name["scheduler-stepped-early"]["network"] == "flatten-linear" and listed[0]["dtypes"] == ["float64"]
    assert by_name["attention-heads-merged-wrong"]["network"] == "multihead_attention-flatten-linear"
    assert by_name["lstm-cell-future-left-out"]["network"] == "lstm-flatten-linear"


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


def test_each_forward_quantity_points_at_its_own_line():
    """Z1 .. E each at the line of manual/seed_network.py that assigns it (these survive mutation testing's rewrite
    of the file: the forward's own lines are read where they stand)."""
    places = render.in_slides_file()
    lines = pathlib.Path(seed_network.__file__).read_text().splitlines()
    for quantity in ("Z1", "H1", "Z2", "O", "E"):
        file, number = places[quantity].split(":")
        assert file == "manual/seed_network.py"
        assert lines[int(number) - 1].strip().startswith(f"{quantity} = "), (quantity, places[quantity])


# --- diagnose on the sequence examples: the time step, the quantity and the class ------------------------------------

# Walking as the gradient flows (the top of the stack first, from the last step): at the last step no gradient comes
# from the future yet, so a path from the future left out shows one step earlier, in the quantity it feeds (the cell
# state's gradient, or h's); gates stacked i, f, o, g are each right by name, and send h_{t-1} a wrong gradient
# through W_hh. The recurrent layer is layer 1, after the embedding; char-gru-lm's gru has two layers, the top first.
EXAMPLE_STEPS = [("lstm-classifier", "lstm-cell-future-left-out", 0, 7, "dc", "bptt-cell-future"),
                 ("lstm-classifier", "lstm-gate-order-ifog", 0, 7, "dh", "gate-order"),
                 ("char-gru-lm", "gru-bptt-cut-after-one-step", 1, 8, "dh", "bptt-truncated")]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("example, name, stack_layer, steps, quantity, kind", EXAMPLE_STEPS, ids=lambda v: str(v))
def test_diagnose_localizes_a_recurrent_mistake_in_a_sequence_example(example, name, stack_layer, steps, quantity,
                                                                       kind, dtype, capsys):
    spec = str(ROOT / "examples" / f"{example}.toml")
    code, out, _ = _run(["diagnose", "--spec", spec, "--inject", name, "--dtype", dtype, "--json"], capsys)
    d = json.loads(out)
    layer_type = name.split("-")[0]
    assert code == 1 and d["quantity"] == f"1 {layer_type}: dE/dinput" and d["class"]["kind"] == kind
    assert d["time_step"] == {"layer": 1, "type": layer_type, "stack_layer": stack_layer, "step": steps - 2,
                              "steps": steps, "from_end": 1, "quantity": quantity}
    code, out, _ = _run(["diagnose", "--spec", spec, "--inject", name, "--dtype", dtype], capsys)
    assert code == 1 and f"layer {stack_layer} of the {layer_type}'s stack, step t = {steps - 2} of {steps} " \
        "(1 before the last" in " ".join(out.split())


# --- diagnose on a residual network: the block and the branch ------------------------------------------------------

RESNET_SMALL = str(ROOT / "examples" / "resnet-small.toml")


@pytest.mark.parametrize("index, where", [
    (3, 'in layer 3 conv2d, on the main branch of the residual block that ends in add "block1_skip" (layer 8)'),
    (13, 'in layer 13 conv2d "block2_conv2", on the main branch of the residual block that ends in add '
         '"block2_skip" (layer 17)'),
    (15, 'in layer 15 conv2d "projection", on the skip (shortcut) branch of the residual block that ends in add '
         '"block2_skip" (layer 17)'),
])
def test_a_diagnosis_on_resnet_small_names_the_layer_the_block_and_the_branch(index, where, capsys):
    code, out, _ = _run(["diagnose", "--spec", RESNET_SMALL, "--inject", f"scaled@{index}"], capsys)
    assert code == 1 and f"first wrong quantity: {index} conv2d: dE/dinput" in out
    assert where in " ".join(line.strip() for line in out.splitlines())
    code, out, _ = _run(["diagnose", "--spec", RESNET_SMALL, "--inject", f"scaled@{index}", "--json"], capsys)
    place = json.loads(out)["place"]
    add, branch = (8, "main") if index == 3 else (17, "skip" if index == 15 else "main")
    assert place == {"layer": index, "type": "conv2d", "name": {3: None, 13: "block2_conv2", 15: "projection"}[index],
                     "add": {8: "block1_skip", 17: "block2_skip"}[add], "add_index": add, "branch": branch}


def test_every_layer_of_the_residual_example_has_its_place():
    from crosscheck.diagnose import residual_place
    from netdesc.description import load_spec

    spec = load_spec(ROOT / "examples" / "residual.toml")
    places = [residual_place(spec, layer.index) for layer in spec.layers]
    # the stem and the block's input before the fork, the add itself and everything after it: outside the block
    assert [(p["name"], p["add"], p["branch"]) for p in places[:6]] == [
        ("stem", None, None), ("block_in", None, None), (None, "skip", "main"), (None, "skip", "main"),
        (None, "skip", "main"), ("skip", None, None)]
    assert all(p["add"] is None for p in places[5:])


def test_two_branches_of_one_length_are_named_by_the_adds_input():
    from crosscheck.diagnose import place_text, residual_place
    from netdesc.description import parse_spec

    spec = parse_spec({"input_shape": [2, 3, 3], "layers": [
        {"type": "relu", "name": "fork"}, {"type": "tanh", "inputs": ["fork"]},
        {"type": "sigmoid", "inputs": ["fork"], "name": "right"}, {"type": "add", "inputs": [1, 2]}],
        "loss": {"type": "mse"}})
    assert residual_place(spec, 2)["branch"] == "input[1]" and residual_place(spec, 1)["branch"] == "input[0]"
    assert place_text(residual_place(spec, 2)) == 'in layer 2 sigmoid "right", on input[1] of the residual block ' \
        'that ends in add "layer 3 add" (layer 3)'
    assert place_text(residual_place(spec, 0)) == 'in layer 0 relu "fork"'


def test_a_named_layer_outside_every_block_is_named_and_an_unnamed_one_not_placed(capsys):
    code, out, _ = _run(["diagnose", "--spec", RESNET_SMALL, "--inject", "scaled@0"], capsys)
    assert code == 1 and "first wrong quantity: 0 conv2d: dE/dinput" in out and "  in layer" not in out
    code, out, _ = _run(["diagnose", "--spec", str(ROOT / "examples" / "residual.toml"), "--inject", "scaled@7"],
                        capsys)
    assert code == 1 and '\n  in layer 7 conv2d "branch_1x1"\n' in out


def test_diagnose_a_description_without_a_mistake_finds_none(capsys):
    code, out, _ = _run(["diagnose", "--spec", str(ROOT / "examples" / "residual.toml"), "--seed", "2"], capsys)
    assert code == 0 and "no diagnosis: all" in out


def test_diagnose_inject_needs_a_description(capsys):
    code, _, err = _run(["diagnose", "--wrong", "conv2d-dw-flipped", "--inject", "scaled@1"], capsys)
    assert code == 2 and err.strip().endswith("--inject: got 'scaled@1' without --spec, needs --spec FILE, the "
                                              "description it changes (--wrong brings its own network)")


@pytest.mark.source
def test_a_decorated_equation_is_found_where_its_original_is_written():
    """A function wrapped by a decorator (functools.wraps, as profilers and mutation testers do) points at the line
    of its own def in manual/, not at the wrapper's file."""
    import functools

    from crosscheck.render import _where_in_manual
    from manual import functional as F

    @functools.wraps(F._normalize_backward)
    def wrapper(*args, **kwargs):
        return F._normalize_backward(*args, **kwargs)

    line = F._normalize_backward.__code__.co_firstlineno
    assert _where_in_manual(wrapper) == f"manual/functional.py:{line} _normalize_backward"
    lines = (ROOT / "manual" / "functional.py").read_text().splitlines()
    assert lines[line - 1].startswith("def _normalize_backward(")
    found = _where_in_manual(wrapper, containing="through_mean")
    assert found.startswith("manual/functional.py:") and "through_mean" in lines[int(found.split()[0][21:]) - 1]
