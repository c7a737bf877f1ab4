"""Resource limits up front: a run whose arrays cannot fit is refused before any allocation, with one line naming
the size, what makes it and the budget (exit 2); descriptions nested too deeply are refused as bad input; and the
frames of the code under test are told from the harness's and the libraries'."""

import argparse
import json
import os
import sys
import types

import numpy as np
import pytest

import netdesc
from crosscheck import cli, frames
from crosscheck.subjects import (
    BYTES_PER_ELEMENT,
    NetworkSubject,
    SeedCase,
    SeedSubject,
    check_memory,
    memory_budget,
    size_text,
)
from netdesc import InputError
from netdesc.description import load_spec, parse_spec


def _error(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    return code, captured.err


def test_an_image_that_cannot_fit_is_refused_before_it_is_drawn(capsys):
    # X 4x1000x1000 with its 3 shifted copies and itself: 4e6 * 4; the 998x998 hidden layer with its 3x3 patches
    # and itself: 4 * 996004 * 10; W and its copies: 996004 * 1 * 5 values; 64 bytes each.
    elements = 4 * 1000 * 1000 * 4 + 4 * 996004 * 10 + 996004 * 5
    code, err = _error(["--shape", "1000", "--max-memory", "1G"], capsys)
    assert code == 2
    assert err == (f"crosscheck: error: memory: the slides' network 1000x1000-k3-out1-N4-sum-float64-seed0 needs "
                   f"about {elements * 64 / 1e9:.3g} GB, more than the budget of 1 GB (--max-memory SIZE sets it)\n")


def test_a_description_with_a_billion_channels_is_refused(capsys):
    spec = {"input_shape": [1, 4, 4], "layers": [{"type": "conv2d", "out_channels": 10**9, "kernel_size": 3},
                                                 {"type": "flatten"}], "loss": {"type": "mse"}}
    code, err = _error(["verify", "--spec-json", json.dumps(spec)], capsys)
    assert code == 2 and err.startswith("crosscheck: error: memory: network 'spec-json' with batch 2 needs about ")
    assert "TB, more than the budget of" in err


def test_every_command_takes_the_budget(capsys):
    module = "examples/diagnose/seed_sigmoid.py"
    for argv in (["verify", "--spec", "examples/lenet5.toml"], ["explain"],
                 ["diagnose", "--wrong", "conv2d-dw-flipped"], ["diagnose", "--module", module]):
        code, err = _error([*argv, "--max-memory", "1k"], capsys)
        assert code == 2 and "more than the budget of 1 kB (--max-memory SIZE sets it)" in err, argv


@pytest.mark.parametrize(("size", "message"), [
    ("12X", "argument --max-memory: got '12X', needs a size in bytes such as 512M, 12G or 800000"),
    ("0", "argument --max-memory: got '0', needs a size in bytes such as 512M, 12G or 800000"),
    ("-5M", "argument --max-memory: got '-5M', needs a size in bytes such as 512M, 12G or 800000"),
])
def test_a_bad_budget_is_bad_input(size, message, capsys):
    assert _error([f"--max-memory={size}"], capsys) == (2, f"crosscheck: error: {message}\n")


@pytest.mark.parametrize(("size", "n"), [
    ("800k", 800_000), ("800K", 800_000), ("2m", 2_000_000), ("2M", 2_000_000), ("12g", 12 * 10**9),
    ("12G", 12 * 10**9), ("2t", 2 * 10**12), ("2T", 2 * 10**12), ("1.5k", 1500), ("800000", 800_000),
    ("1", 1),  # the smallest budget there is
])
def test_budget_sizes_read_in_decimal_units(size, n):
    assert cli._memory(size) == n


def test_a_budget_under_one_byte_is_refused():
    with pytest.raises(argparse.ArgumentTypeError) as info:
        cli._memory("0.9")
    assert str(info.value) == "got '0.9', needs a size in bytes such as 512M, 12G or 800000"


def test_the_budget_boundary():
    """Exactly the budget passes; one byte less refuses."""
    check_memory(1000, "x", budget=1000 * BYTES_PER_ELEMENT)
    with pytest.raises(InputError) as info:
        check_memory(1000, "x", budget=1000 * BYTES_PER_ELEMENT - 1)
    assert str(info.value) == "memory: x needs about 64 kB, more than the budget of 64 kB (--max-memory SIZE sets it)"


def test_the_default_budget_is_half_the_machines_memory():
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert memory_budget() == physical // 2 > 0


@pytest.mark.parametrize(("n", "text"), [(800, "800 bytes"), (999, "999 bytes"), (1000, "1 kB"), (10**6, "1 MB"),
                                         (1_500_000, "1.5 MB"), (12_600_000_000, "12.6 GB"), (10**12, "1 TB"),
                                         (39 * 10**12, "39 TB")])
def test_sizes_read_short(n, text):
    assert size_text(n) == text


def test_the_examples_and_the_grid_fit_a_small_machine():
    """Every shipped description and the largest benchmark case stay under 4 GB."""
    for name in ("lenet5", "small3conv", "residual", "slides"):
        NetworkSubject(load_spec(f"examples/{name}.toml"), max_memory=4 * 10**9)
    SeedSubject(SeedCase(input_shape=(64, 64), kernel_shape=(5, 5), batch=256), max_memory=4 * 10**9)


def test_descriptions_nested_too_deeply_are_bad_input(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    path = tmp_path / "deep.json"
    path.write_text(deep)
    with pytest.raises(InputError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}: nested too deeply to read, needs a description of a few levels"
    assert cli.main(["verify", "--spec-json", deep]) == 2


def test_a_huge_number_in_a_description_is_refused_not_allocated():
    spec = parse_spec({"input_shape": [1, 10**6, 10**6], "layers": [{"type": "flatten"}],
                       "loss": {"type": "mse"}})
    with pytest.raises(InputError, match=r"^memory: network 'spec' with batch 2 needs about .* TB"):
        NetworkSubject(spec)


@pytest.mark.parametrize(("filename", "under_test"), [
    ("/home/me/my_layer.py", True),
    ("numpy/random/_common.pyx", False),  # a compiled library's frame
    (cli.__file__, False),
    (netdesc.__file__, False),
    (os.__file__, False),
    (np.__file__, False),
    ("<string>", False),
])
def test_which_frames_are_the_code_under_test(filename, under_test):
    assert frames.under_test(filename) is under_test


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_numpy_and_torch_loaded_from_elsewhere_are_libraries(library, monkeypatch):
    """A numpy or torch imported from a folder outside site-packages (a source build on PYTHONPATH): its frames,
    and those of its neighbours in that folder, are still a library's."""
    monkeypatch.setitem(sys.modules, library, types.SimpleNamespace(__file__=f"/opt/build/{library}/__init__.py"))
    assert frames.under_test(f"/opt/build/{library}/linalg.py") is False
    assert frames.under_test("/opt/build/other.py") is False
    assert frames.under_test("/opt/elsewhere/my_layer.py") is True


@pytest.mark.parametrize(("error", "text"), [
    (ValueError("two\nlines"), "ValueError: two lines"),
    (ValueError("SIZE MAX"), "ValueError: SIZE MAX"),
    (KeyError(), "KeyError"),
    (ValueError(""), "ValueError"),
])
def test_an_error_is_named_on_one_line(error, text):
    assert frames.what(error) == text


@pytest.mark.parametrize("argv", [["--steps", "100001"],
                                  ["verify", "--spec", "examples/lenet5.toml", "--steps", "100001"]])
def test_a_training_run_is_bounded(argv, capsys):
    assert _error(argv, capsys) == (2, "crosscheck: error: steps: got 100001, needs at most 100,000 (a training run on "
                                       "one batch)\n")


def test_the_steps_bound_is_inclusive_and_reaches_descriptions():
    assert SeedCase(steps=100_000).steps == 100_000
    with pytest.raises(InputError) as info:
        parse_spec({"input_shape": [1, 2, 2], "layers": [{"type": "flatten"}], "loss": {"type": "mse"},
                    "optimizer": {"steps": 10**13}})
    assert str(info.value) == ("optimizer: steps: got 10000000000000, needs at most 100,000 (a training run on one "
                               "batch)")
