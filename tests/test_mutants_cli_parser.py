"""The command line's parser (crosscheck.cli.build_parser) beyond what its --help shows: every command's whole
namespace of defaults, the types its options convert their text to (an int, a float, a shape), and a bad value of
a command's option as argparse's one line with exit 2, never a usage block."""

import pytest

from crosscheck import cli

# (argv, the whole namespace argparse gives it): each command with only what it requires
DEFAULTS = [
    (["seed"], {
        "command": "seed", "traceback": False, "shape": (8, 8), "k": (3, 3), "n_out": 1, "batch": 4, "seed": 0,
        "dtype": "float64", "reduction": "sum", "lr": 0.5, "steps": 50, "inject": None, "json": False,
        "junit_xml": None, "markdown": None, "max_memory": None}),
    (["verify", "--spec", "net.toml"], {
        "command": "verify", "traceback": False, "spec": "net.toml", "spec_json": None, "seed": 0,
        "dtype": "float64", "steps": None, "inject": None, "json": False, "junit_xml": None, "markdown": None,
        "max_memory": None}),
    (["explain"], {
        "command": "explain", "traceback": False, "shape": (4, 4), "k": (2, 2), "seed": 0, "dtype": "float64",
        "lr": 0.5, "inject": None, "layer": "slides", "max_memory": None}),
    (["diagnose", "--list"], {
        "command": "diagnose", "traceback": False, "wrong": None, "module": None, "spec": None, "list": True,
        "dtype": None, "seed": None, "inject": None, "top": 5, "plot": None, "json": False, "junit_xml": None,
        "markdown": None, "max_memory": None}),
    (["train"], {
        "command": "train", "traceback": False, "spec": None, "spec_json": None, "n_out": None, "k": None,
        "epochs": 10, "batch": 32, "lr": None, "steps": None, "seed": 0, "dtype": "float64", "inject": None,
        "save": None, "plots": None, "no_progress": False, "json": False, "junit_xml": None, "markdown": None,
        "max_memory": None}),
    (["plot", "run.npz", "--out", "pictures"], {
        "command": "plot", "traceback": False, "run": "run.npz", "out": "pictures", "format": "both",
        "json": False}),
]


@pytest.mark.parametrize(("argv", "namespace"), DEFAULTS, ids=[argv[0] for argv, _ in DEFAULTS])
def test_each_command_parses_to_its_documented_defaults(argv, namespace):
    assert vars(cli.build_parser().parse_args(argv)) == namespace


# (argv, the options' converted values): numbers as int or float, sizes as (H, W) tuples
TYPED = [
    ("seed --shape 6x5 --k 2 --n-out 3 --batch 7 --seed 9 --lr 0.25 --steps 4",
     {"shape": (6, 5), "k": (2, 2), "n_out": 3, "batch": 7, "seed": 9, "lr": 0.25, "steps": 4}),
    ("seed --k 3x2 -N 5", {"k": (3, 2), "batch": 5}),
    ("verify --spec net.toml --seed 3 --steps 2", {"seed": 3, "steps": 2}),
    ("explain --shape 5 --k 3x2 --seed 7 --lr 2", {"shape": (5, 5), "k": (3, 2), "seed": 7, "lr": 2.0}),
    ("diagnose --list --top 2 --seed 4", {"top": 2, "seed": 4}),
    ("train --epochs 3 --batch 16 --seed 2 --lr 1 --steps 8 --k 2 --n-out 10",
     {"epochs": 3, "batch": 16, "seed": 2, "lr": 1.0, "steps": 8, "k": (2, 2), "n_out": 10}),
]


@pytest.mark.parametrize(("argv", "values"), TYPED,
                         ids=["seed", "seed-short", "verify", "explain", "diagnose", "train"])
def test_options_convert_their_text_to_numbers_and_sizes(argv, values):
    args = vars(cli.build_parser().parse_args(argv.split()))
    got = {name: args[name] for name in values}
    assert got == values
    assert {name: type(value) for name, value in got.items()} == {name: type(v) for name, v in values.items()}


# (argv, the whole stderr line after "crosscheck: error: "): argparse's message for a value of the wrong type
BAD_VALUES = [
    ("seed --k x", "argument --k: got 'x', needs HxW or a single size such as 8x6 or 5"),
    ("seed --n-out one", "argument --n-out: invalid int value: 'one'"),
    ("seed --batch 2.5", "argument --batch/-N: invalid int value: '2.5'"),
    ("verify --spec net.toml --seed x", "argument --seed: invalid int value: 'x'"),
    ("verify --spec net.toml --steps 1.5", "argument --steps: invalid int value: '1.5'"),
    ("explain --shape 4y4", "argument --shape: got '4y4', needs HxW or a single size such as 8x6 or 5"),
    ("explain --k 0", "argument --k: got '0', needs two positive sizes such as 8x6 or one such as 5"),
    ("explain --seed x", "argument --seed: invalid int value: 'x'"),
    ("diagnose --list --top many", "argument --top: invalid int value: 'many'"),
    ("train --epochs ten", "argument --epochs: invalid int value: 'ten'"),
    ("train --seed x", "argument --seed: invalid int value: 'x'"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_VALUES, ids=[argv for argv, _ in BAD_VALUES])
def test_a_bad_value_of_a_commands_option_is_argparses_one_line_with_exit_2(argv, message, capsys):
    assert cli.main(argv.split()) == 2
    assert capsys.readouterr() == ("", f"crosscheck: error: {message}\n")
