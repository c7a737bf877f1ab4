"""``crosscheck verify``: the table per layer and parameter, --json, --spec-json, exit codes 0 / 1 / 2."""

import json
import pathlib
import subprocess
import sys
import tomllib

import pytest

import netdesc.description
from crosscheck import cli
from crosscheck.subjects import NetworkSubject
from netdesc.description import load_spec

ROOT = pathlib.Path(__file__).resolve().parents[1]
LENET = str(ROOT / "examples" / "lenet5.toml")
SMALL = str(ROOT / "examples" / "small3conv.toml")


def test_the_header_names_the_optimizer_and_its_scheduler(capsys):
    adam = str(ROOT / "examples" / "small3conv-adam.toml")
    assert cli.main(["verify", "--spec", adam, "--steps", "2", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert ("Adam lr 0.01, betas (0.9, 0.99), eps 1e-08, weight decay 0.001, amsgrad true, 2 steps, "
            "CosineAnnealingLR T_max 10, eta_min 0.001\n") in out
    assert "weight after step 2" in out and out.endswith("all 55 quantities agree\n")


def _rows(out):
    """The table's rows as (layer, quantity, result) from the lines between the header and the summary."""
    lines = out.split("\n\n")[1].splitlines()[1:]
    return [(line[:16].strip(), line[17:39].strip(), line.split()[-1]) for line in lines]


def test_lenet5_table_has_a_row_per_layer_and_parameter_and_exits_0(capsys):
    assert cli.main(["verify", "--spec", LENET, "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"network lenet5 ({LENET}): hand-derived NumPy vs PyTorch")
    assert "input (1, 28, 28) per sample, batch 2, 12 layers, loss softmax_cross_entropy (mean), seed 0, float64" in out
    assert "SGD lr 0.02, momentum 0.9, dampening 0, nesterov false, weight decay 0.0005, 2 steps" in out
    assert "\nlayer            quantity               shape               max abs err  max rel err  result\n" in out
    rows = _rows(out)
    types = ["conv2d", "tanh", "avg_pool2d", "conv2d", "relu", "max_pool2d", "flatten", "linear", "relu", "linear",
             "relu", "linear"]
    for i, kind in enumerate(types):
        assert (f"{i} {kind}", "output", "ok") in rows and (f"{i} {kind}", "dE/dinput", "ok") in rows
    for i in (0, 3, 7, 9, 11):
        for quantity in ("dE/dweight", "dE/dbias", "weight after 2 steps", "bias after 2 steps"):
            assert (f"{i} {types[i]}", quantity, "ok") in rows
    assert ("loss", "E", "ok") in rows and ("loss", "E at steps 1..2", "ok") in rows
    assert out.rstrip().endswith(f"all {len(rows)} quantities agree")


def test_json_output(capsys):
    assert cli.main(["verify", "--spec", SMALL, "--json", "--dtype", "float32", "--seed", "3", "--steps", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["passed"] is True and result["spec"] == "small3conv" and result["source"] == SMALL
    assert (result["seed"], result["dtype"], result["steps"], result["injected"]) == (3, "float32", 3, None)
    assert result["tolerance"] == {"rtol": 1e-4, "atol": 1e-6}
    dw = next(q for q in result["quantities"] if q["layer"] == "3 conv2d" and q["quantity"] == "dE/dweight")
    assert dw["shape"] == [6, 4, 3, 2] and dw["passed"] and dw["name"] == "3 conv2d: dE/dweight"


def test_spec_json_gives_the_numbers_of_the_file(capsys):
    text = json.dumps(tomllib.loads(pathlib.Path(SMALL).read_text()))
    cli.main(["verify", "--spec", SMALL, "--json", "--steps", "2", "--seed", "1"])
    from_file = json.loads(capsys.readouterr().out)
    cli.main(["verify", "--spec-json", text, "--json", "--steps", "2", "--seed", "1"])
    from_text = json.loads(capsys.readouterr().out)
    assert from_text["source"] == "--spec-json"
    assert from_text["quantities"] == from_file["quantities"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_injected_wrong_backward_exits_1_and_names_the_layer(dtype, capsys):
    assert cli.main(["verify", "--spec", LENET, "--inject", "3", "--steps", "1", "--dtype", dtype]) == 1
    out = capsys.readouterr().out
    rtol = {"float64": "1e-08", "float32": "0.01"}[dtype]
    assert f"injected wrong derivation: scaled@3 (layer 3 (conv2d)'s backward scaled by 1 + {rtol})" in out
    first = out.split("the first: ")[1]
    assert first.startswith("3 conv2d: dE/dinput differs; worst element at index")
    assert ("3 conv2d", "dE/dweight", "MISMATCH") in _rows(out)
    assert ("4 relu", "dE/dinput", "ok") in _rows(out)  # computed before the wrong step


def test_injected_json_has_no_infinities(capsys):
    assert cli.main(["verify", "--spec", SMALL, "--inject", "0", "--json", "--steps", "1"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["passed"] is False and result["injected"].startswith("scaled@0 (layer 0 (conv2d)'s backward")


@pytest.mark.parametrize(("argv", "message"), [
    ([], "one of the arguments --spec --spec-json is required"),
    (["--spec", LENET, "--spec-json", "{}"], "argument --spec-json: not allowed with argument --spec"),
    (["--spec", LENET, "--seed", "-1"], "seed: got -1, needs an integer >= 0"),
    (["--spec", LENET, "--steps", "0"], "steps: got 0, needs an integer >= 1"),
    (["--spec", LENET, "--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
    (["--spec", LENET, "--inject", "12"], "--inject: got layer '12', needs a layer index in [0, 11]"),
    (["--spec", LENET, "--inject", "-1"], "--inject: got layer '-1', needs a layer index in [0, 11]"),
    (["--spec", LENET, "--inject", "conv"], "--inject: got 'conv', needs one of scaled-dE_dW, "),
    (["--spec", LENET, "--inject", "batchnorm-biased-running-var"],
     "--inject: batchnorm-biased-running-var changes a batch norm's running statistics; the description has none\n"),
    (["--spec-json", "[1, 2"], "spec JSON: not valid JSON: "),
    (["--spec", ""], ".: got a directory, needs a .toml or .json description"),
    (["--spec", LENET, "--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    assert cli.main(["verify", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"crosscheck: error: {message}")
    assert captured.err.count("\n") == 1


def test_a_running_statistics_mistake_is_found_after_the_first_step(capsys):
    """Every batch norm's running mean and variance, torch's buffers, are compared after every step."""
    normalized = str(pathlib.Path(LENET).parent / "normalized.toml")
    assert cli.main(["verify", "--spec", normalized, "--inject", "batchnorm-biased-running-var", "--steps", "1"]) == 1
    out = capsys.readouterr().out
    assert "the first: 8 batch_norm1d: running_var after step 1 differs" in out
    assert "1 batch_norm2d   running_var after step 1" in out  # both batch norms, the later one first


def test_a_multi_line_error_is_printed_on_one_line(monkeypatch, capsys):
    def two_lines(text):
        raise cli.InputError("first line\nsecond line")

    monkeypatch.setattr(netdesc.description, "spec_from_json", two_lines)
    assert cli.main(["verify", "--spec-json", "{}"]) == 2
    assert capsys.readouterr().err == "crosscheck: error: first line second line\n"


def test_check_options_refuses_an_unknown_dtype():
    with pytest.raises(cli.InputError, match="dtype: got 'float16', needs one of float64, float32"):
        NetworkSubject(load_spec(SMALL), dtype="float16")


def test_verify_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["verify", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ["--spec", "--spec-json", "--seed", "--dtype", "--steps", "--inject", "--json"]:
        assert option in out


def test_seed_network_help_points_to_verify(capsys):
    with pytest.raises(SystemExit):
        cli.main(["seed", "--help"])
    assert "crosscheck verify --spec FILE" in capsys.readouterr().out


def test_python_dash_m_verify_reproduces_a_spec_json_command():
    spec = {"input_shape": [1, 4, 4], "layers": [{"type": "flatten"}, {"type": "linear", "out_features": 2}],
            "loss": {"type": "mse"}, "optimizer": {"steps": 2}}
    command = [sys.executable, "-m", "crosscheck", "verify", "--spec-json", json.dumps(spec), "--seed", "7"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("quantities agree")


def test_the_columns_widen_to_their_longest_entry(capsys):
    """A transformer's layer type and parameter names are longer than the usual columns: every row's shape still
    starts where the heading's "shape" does, and the usual widths stay where nothing is longer."""
    spec = {"input_shape": [3, 4], "layers": [{"type": "transformer_encoder", "num_heads": 2, "dim_feedforward": 3},
                                              {"type": "flatten"}, {"type": "linear", "out_features": 2}],
            "loss": {"type": "mse"}, "optimizer": {"steps": 1}}
    assert cli.main(["verify", "--spec-json", json.dumps(spec)]) == 0
    heading, *rows = capsys.readouterr().out.split("\n\n")[1].splitlines()
    long_where, long_quantity = "0 transformer_encoder", "self_attn.out_proj.weight after 1 steps"
    assert heading.index("quantity") == len(long_where) + 1
    assert heading.index("shape") == len(long_where) + 1 + len(long_quantity) + 1
    assert any(long_where in row and long_quantity in row for row in rows)
    assert all(row.index("(") == heading.index("shape") for row in rows)
    assert cli.main(["verify", "--spec", SMALL, "--steps", "1"]) == 0
    heading = capsys.readouterr().out.split("\n\n")[1].splitlines()[0]
    assert (heading.index("quantity"), heading.index("shape")) == (17, 40)
