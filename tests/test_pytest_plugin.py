"""The pytest plugin (crosscheck.pytest_plugin), run by pytester on users' test files: the layer_check fixture
passes a right layer, fails a wrong one with the readable report at the user's line, and honours
--crosscheck-seeds and --crosscheck-gradcheck.

Each run loads the plugin with -p and turns entry-point autoloading off, so it behaves the same before and after
the package's pytest11 entry point is installed.
"""

import pathlib

import pytest

pytest_plugins = ["pytester"]
ROOT = pathlib.Path(__file__).resolve().parents[1]

USER_TEST = """
import numpy as np
import torch.nn.functional as F
from manual import functional as M


def scaled_dw(dout, cache):
    dx, dw, db = M.linear_backward(dout, cache)
    return dx, dw * {factor}, db


def test_my_linear(layer_check):
    check = layer_check(M.linear_forward, scaled_dw, F.linear, [(4, 5), (3, 5), (3,)]{options})
    seeds = ",".join(str(s) for s in sorted({{row.seed for row in check.rows}}))
    print("SEEDS", seeds, "GRADCHECK", any(row.quantity == "gradcheck" for row in check.rows))
"""


def _run(pytester, monkeypatch, *args, factor=1, options=""):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_user=USER_TEST.format(factor=factor, options=options))
    return pytester.runpytest("-p", "crosscheck.pytest_plugin", "-p", "no:cacheprovider", "-s", *args)


def test_a_right_layer_passes_with_the_default_seeds(pytester, monkeypatch):
    result = _run(pytester, monkeypatch)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*SEEDS 0,1,2 GRADCHECK False*"])


def test_a_wrong_backward_fails_with_the_report_at_the_users_line(pytester, monkeypatch):
    result = _run(pytester, monkeypatch, factor=1.01)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        ">*check = layer_check(M.linear_forward, scaled_dw, F.linear, *",
        "E*AssertionError: linear_forward(4x5, 3x5, 3) against torch autograd: FAILED, 6 of 24 checks differ",
        "E*FAIL seed0-float64  dw differs; worst element at index (*): manual *, autograd *, abs error *, rel error *",
    ])
    assert "crosscheck/api.py" not in result.stdout.str()  # the traceback stops at the user's call


@pytest.mark.parametrize(("args", "expected"), [(("--crosscheck-seeds", "5"), "0,1,2,3,4"),
                                                (("--crosscheck-seeds=1",), "0")])
def test_crosscheck_seeds_sets_how_many_seeds_are_checked(pytester, monkeypatch, args, expected):
    result = _run(pytester, monkeypatch, *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*SEEDS {expected} GRADCHECK False*"])


def test_seeds_given_in_the_call_win_over_the_option(pytester, monkeypatch):
    result = _run(pytester, monkeypatch, "--crosscheck-seeds", "5", options=", seeds=[7]")
    result.stdout.fnmatch_lines(["*SEEDS 7 GRADCHECK False*"])


def test_crosscheck_gradcheck_adds_the_witness(pytester, monkeypatch):
    result = _run(pytester, monkeypatch, "--crosscheck-gradcheck", "--crosscheck-seeds", "1")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*SEEDS 0 GRADCHECK True*"])
    failed = _run(pytester, monkeypatch, "--crosscheck-gradcheck", "--crosscheck-seeds", "1", factor=1.01)
    failed.stdout.fnmatch_lines(["E*FAIL seed0-float64  gradcheck: torch.autograd.gradcheck failed: Jacobian mismatch "
                                 "for output 0 with respect to input 1 (w)*"])


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_a_bad_seed_count_is_a_usage_error(pytester, monkeypatch, value):
    result = _run(pytester, monkeypatch, f"--crosscheck-seeds={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--crosscheck-seeds: got '{value}', needs an integer >= 1 (the number of seeds)*"])


def test_the_options_are_in_the_help(pytester, monkeypatch):
    result = _run(pytester, monkeypatch, "--help")
    result.stdout.fnmatch_lines(["*--crosscheck-seeds=N*", "*--crosscheck-gradcheck*"])


def test_loading_the_plugin_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, crosscheck.pytest_plugin; assert 'torch' not in sys.modules, 'the plugin imported torch'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_public_names_load_on_first_use():
    import crosscheck

    assert set(crosscheck.__all__) >= {"check_layer", "assert_layer_matches", "compare", "TOLERANCES"}
    assert all(getattr(crosscheck, name) is not None for name in crosscheck.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        crosscheck.nope  # noqa: B018


FACTORY_TEST = """
import torch


class Doubling:
    def forward(self, x):
        return 2 * x

    def backward(self, dy):
        return {factor} * dy


def test_doubling(layer_check):
    layer_check(factory=Doubling, torch_fn=lambda x: 2 * x, shapes=[(3,)])
"""


@pytest.mark.parametrize(("factor", "outcome"), [(2, {"passed": 1}), (3, {"failed": 1})])
def test_the_fixture_takes_a_factory(pytester, monkeypatch, factor, outcome):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_user=FACTORY_TEST.format(factor=factor))
    result = pytester.runpytest("-p", "crosscheck.pytest_plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(**outcome)


# --- the summary of layer checks in pytest's terminal report -------------------------------------------------

SUMMARY_TESTS = """
import torch.nn.functional as F
from manual import functional as M


def scaled_dw(dout, cache):
    dx, dw, db = M.linear_backward(dout, cache)
    return dx, dw * 1.01, db


def test_right(layer_check):
    layer_check(M.linear_forward, M.linear_backward, F.linear, [(4, 5), (3, 5), (3,)], seeds=[0])
    layer_check(M.relu_forward, M.relu_backward, F.relu, [(6,)], seeds=[1], dtypes=["float64"])


def test_wrong(layer_check):
    layer_check(M.linear_forward, scaled_dw, F.linear, [(4, 5), (3, 5), (3,)], seeds=[2])


def test_empty(layer_check):
    layer_check(M.relu_forward, M.relu_backward, F.relu, [(0,)], seeds=[0], dtypes=["float32"])


def test_bad_arguments(layer_check):
    layer_check(M.relu_forward, M.relu_backward, F.relu, [(6,)], seeds=[])


def test_without_the_fixture():
    pass
"""

def _summary(lines):
    """The lines of the section "crosscheck layer checks", up to the next section."""
    start = next(i for i, line in enumerate(lines) if "crosscheck layer checks" in line)
    end = next((i for i, line in enumerate(lines[start + 1:], start + 1) if line.startswith("=")), len(lines))
    return lines[start + 1:end]


def test_the_terminal_report_sums_up_the_layer_checks(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_layers=SUMMARY_TESTS)
    result = pytester.runpytest("-p", "crosscheck.pytest_plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=3)
    assert _summary(result.stdout.lines) == [
        "5 layer checks ran: 2 passed, 3 failed",
        "FAILED test_layers.py::test_wrong: linear_forward(4x5, 3x5, 3), first differing quantity dw (seed2-float64)",
        "FAILED test_layers.py::test_empty: relu_forward(0), first differing quantity out (seed0-float32)",
        "FAILED test_layers.py::test_bad_arguments: the call, bad arguments: seeds: got [], needs a non-empty "
        "sequence of integer seeds >= 0, e.g. (0, 1, 2)",
    ]
    header = next(line for line in result.stdout.lines if "crosscheck layer checks" in line)
    assert header.startswith("=") and header.endswith("=")
    shown = (ROOT / "docs" / "ci.md").read_text().split("crosscheck layer checks ====")[1].split("```")[0]
    assert shown.strip("=\n").splitlines() == _summary(result.stdout.lines)  # what docs/ci.md shows


def test_nothing_is_summed_up_where_no_test_used_the_fixture(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest("-p", "crosscheck.pytest_plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "crosscheck layer checks" not in result.stdout.str()


def test_the_summary_gathers_the_checks_of_xdist_workers(pytester, monkeypatch):
    """Each worker attaches its checks to the test reports it sends; the controller prints the summary."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # this checkout's crosscheck, in the worker processes too
    # under mutmut the workers run in pytester's directory, where mutmut finds no configuration to record in
    monkeypatch.delenv("MUTANT_UNDER_TEST", raising=False)
    pytester.makepyfile(test_layers=SUMMARY_TESTS)
    result = pytester.runpytest_subprocess("-p", "xdist.plugin", "-n", "2", "-p", "crosscheck.pytest_plugin",
                                           "-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=2, failed=3)
    summary = _summary(result.stdout.lines)
    assert summary[0] == "5 layer checks ran: 2 passed, 3 failed"
    assert sorted(line.split(":")[2] for line in summary[1:]) == ["test_bad_arguments", "test_empty", "test_wrong"]


def test_a_check_that_compared_nothing_is_named_so():
    from crosscheck.api import LayerCheck, Row
    from crosscheck.compare import Comparison
    from crosscheck.pytest_plugin import _first_difference

    gradcheck_only = LayerCheck("f(3)", (Row(0, "float64", Comparison("gradcheck", (), True, 0.0, 0.0)),))
    assert not gradcheck_only.passed and _first_difference(gradcheck_only) == "nothing was compared"
