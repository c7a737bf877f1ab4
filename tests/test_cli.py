"""The crosscheck command: the table, --json, exit codes 0 / 1 / 2, one-line errors."""

import json
import operator
import pathlib
import runpy
import subprocess
import sys
import warnings

import pytest

from crosscheck import cli
from crosscheck.catalogue import seed as wrong
from crosscheck.subjects import SeedCase
from manual import seed_network

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_default_run_prints_the_table_and_exits_0(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert "case 8x8-k3-out1-N4-sum-float64-seed0" in out
    assert "quantity" in out and "max abs err" in out and "max rel err" in out
    for name in ["Z1", "H1", "dE/dO", "dO/dZ2", "dZ2/dH1", "dH1/dZ1", "dZ1/df", "dE/df", "dE/dW", "dE/db",
                 "W after step 1", "E at steps 1..50", "f after 50 steps"]:
        assert f"\n{name} " in out
    assert "MISMATCH" not in out
    assert out.rstrip().endswith("all 24 quantities agree")


@pytest.mark.parametrize("entry", [e for e in wrong.ENTRIES if not e.case], ids=str)
def test_injected_wrong_derivation_exits_1(entry, capsys):
    assert cli.main(["--inject", entry.name, "--steps", "3"]) == 1
    out = capsys.readouterr().out
    assert f"injected wrong derivation: {entry.name}" in out
    assert "MISMATCH" in out
    first = out.split("the first: ")[1]
    assert first.startswith(entry.first_wrong.replace("_d", "/d", 1))


def test_json_output(capsys):
    assert cli.main(["--json", "--shape", "5x7", "--k", "2x3", "--n-out", "3", "-N", "2", "--dtype", "float32",
                     "--reduction", "mean", "--seed", "4", "--lr", "0.1", "--steps", "5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('{\n  "case": {\n    "input_shape": [\n      5,\n')  # indented by two
    result = json.loads(out)
    assert list(result) == ["case", "id", "subject", "dtype", "injected", "tolerance", "passed", "compared",
                            "quantities"]
    assert result["passed"] is True
    assert result["id"] == "5x7-k2x3-out3-N2-mean-float32-seed4"
    assert result["subject"] == "seed network 5x7-k2x3-out3-N2-mean-float32-seed4" and result["injected"] is None
    assert result["case"] == {"input_shape": [5, 7], "kernel_shape": [2, 3], "n_out": 3, "batch": 2, "seed": 4,
                              "dtype": "float32", "reduction": "mean", "lr": 0.1, "steps": 5}
    # the 17 quantities of the slides' walk, 3 parameters after one step, the loss and 3 parameters after 5 steps
    assert result["compared"] == len(result["quantities"]) == 24
    assert result["tolerance"] == {"rtol": 1e-4, "atol": 1e-6}
    names = [q["name"] for q in result["quantities"]]
    assert names[:5] == ["Z1", "H1", "Z2", "O", "E"] and names[-1] == "f after 5 steps"
    dW = next(q for q in result["quantities"] if q["name"] == "dE/dW")
    assert dW["shape"] == [20, 3] and dW["passed"] and dW["max_abs_error"] < 1e-5


def test_a_case_as_a_dict_holds_lists_as_json_reads_back():
    """case.as_dict() is what --json writes and reads back: the shapes are lists, so the two compare equal."""
    data = SeedCase(input_shape=(5, 7), kernel_shape=(2, 3)).as_dict()
    assert json.loads(json.dumps(data)) == data and data["input_shape"] == [5, 7]


def test_json_mismatch_has_no_infinities(capsys):
    assert cli.main(["--json", "--inject", "transposed-dE_dW", "--steps", "2"]) == 1
    result = json.loads(capsys.readouterr().out)
    dW = next(q for q in result["quantities"] if q["name"] == "dE/dW")
    assert dW["max_abs_error"] is None and "manual equals autograd transposed" in dW["problem"]
    assert result["passed"] is False


def test_chaotic_training_gives_no_verdict_and_no_false_alarm(capsys):
    # 50 steps at lr 0.5 with a 32x32 filter over 16 summed samples oscillate: a one-ulp nudge moves
    # autograd's own run by more than the tolerance, so the training rows cannot judge the gradients.
    code = cli.main(["--shape", "32", "--k", "32", "-N", "16", "--n-out", "3"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("  unstable") == 4 and "MISMATCH" not in out
    assert "20 of 24 quantities agree; 4 give no verdict" in out
    assert "training is chaotic: a one-ulp nudge of the parameters moves autograd's own run" in out


def test_a_training_mismatch_in_a_stable_run_stays_a_mismatch(monkeypatch, capsys):
    real_train = seed_network.train

    def drifting_train(*args, **kwargs):  # a bug only the training loop has: the final W drifts
        errors, params = real_train(*args, **kwargs)
        return errors, {**params, "W": params["W"] * (1 + 1e-6)}

    monkeypatch.setattr(seed_network, "train", drifting_train)
    assert cli.main(["--steps", "3"]) == 1
    out = capsys.readouterr().out
    assert "W after 3 steps" in out.split("the first: ")[1] and "unstable" not in out


def test_json_carries_the_unstable_note(capsys):
    assert cli.main(["--json", "--shape", "32", "--k", "32", "-N", "16", "--n-out", "3"]) == 0
    rows = json.loads(capsys.readouterr().out)["quantities"]
    assert [r["name"] for r in rows if r["note"]] == ["E at steps 1..50", "W after 50 steps", "b after 50 steps",
                                                      "f after 50 steps"]
    assert all(r["passed"] for r in rows)


def test_a_closed_pipe_is_not_an_error(monkeypatch):
    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError

        def fileno(self):
            return 99

    redirected = []
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    monkeypatch.setattr(cli.os, "dup2", lambda fd, target: redirected.append(target))
    assert cli.main(["--steps", "1"]) == 0
    assert redirected == [99]


def test_console_script_exits_with_mains_code(monkeypatch):
    monkeypatch.setattr(cli, "main", lambda: 1)
    with pytest.raises(SystemExit) as info:
        cli.console_main()
    assert info.value.code == 1


def test_the_console_script_drops_only_openblass_false_invalid_flag_of_matmul(monkeypatch):
    """The command's own process ignores numpy's "invalid value encountered in matmul", a false flag of the BLAS it
    ships (docs/testing.md), first among its warning filters; an overflow in matmul still warns."""
    monkeypatch.setattr(cli.signal, "signal", lambda signum, handler: None)
    seen = []

    def main():
        action, message, category, module, lineno = warnings.filters[0]
        seen.append((action, message.pattern, category, module, lineno))
        warnings.warn("invalid value encountered in matmul", RuntimeWarning, stacklevel=1)  # ignored: no error
        with pytest.raises(RuntimeWarning, match="overflow"):
            warnings.warn("overflow encountered in matmul", RuntimeWarning, stacklevel=1)
        return 0
    monkeypatch.setattr(cli, "main", main)
    with warnings.catch_warnings():
        with pytest.raises(SystemExit) as info:
            cli.console_main()
    assert info.value.code == 0
    assert seen == [("ignore", "invalid value encountered in matmul", RuntimeWarning, None, 0)]


def test_ctrl_c_ends_the_console_script_at_once_with_one_line(monkeypatch, capsys):
    handlers, left = {}, []
    monkeypatch.setattr(cli.signal, "signal", lambda signum, handler: handlers.setdefault(signum, handler))
    monkeypatch.setattr(cli.os, "_exit", left.append)
    monkeypatch.setattr(cli, "main", lambda: 0)
    for argv, printed in ((["crosscheck"], ("", "crosscheck: error: interrupted\n")),
                          (["crosscheck", "--json"], ('{"error": "interrupted", "exit": 130}\n', ""))):
        handlers.clear()
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit):
            cli.console_main()
        handlers[cli.signal.SIGINT](cli.signal.SIGINT, None)
        assert left.pop() == 130 and capsys.readouterr() == printed


def test_python_dash_m_runs_the_same_command(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["crosscheck", "--steps", "2", "--shape", "4"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("crosscheck", run_name="__main__")
    assert info.value.code == 0
    assert "all 24 quantities agree" in capsys.readouterr().out


def test_installed_console_script_runs():
    script = pathlib.Path(sys.executable).with_name("crosscheck")
    done = subprocess.run([str(script), "--steps", "1", "--shape", "3"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "all 24 quantities agree" in done.stdout


def test_help_lists_the_commands_and_the_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: crosscheck [-h] [--version] [--traceback] COMMAND ..." in out
    for command in ["seed", "verify", "explain", "diagnose"]:
        assert f"\n    {command} " in out
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("crosscheck 0.")


@pytest.mark.parametrize("argv", [["seed", "--help"], ["--shape", "4", "--help"]])
def test_help_lists_the_options(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: crosscheck seed")
    for option in ["--shape", "--k", "--n-out", "--batch", "--seed", "--dtype", "--reduction", "--lr", "--steps",
                   "--inject", "--json"]:
        assert option in out


# --- exit codes that never confuse a crash with a mismatch ---------------------------------------------------

RAISING_MODULE = '''def bad_dO_dZ2(O):
    raise ValueError("my sigmoid derivative is broken")


LAYER_BACKWARD = {"dO_dZ2": bad_dO_dZ2}
'''


def test_the_code_under_test_raising_exits_3_with_one_line_naming_it(tmp_path, capsys):
    module = tmp_path / "mine.py"
    module.write_text(RAISING_MODULE)
    assert cli.main(["diagnose", "--module", str(module)]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (f"crosscheck: error: the code under test raised ValueError: my sigmoid derivative is "
                            f"broken (in bad_dO_dZ2, {module}:2); --traceback shows where\n")


def test_traceback_shows_the_users_frame(tmp_path, capsys):
    module = tmp_path / "mine.py"
    module.write_text(RAISING_MODULE)
    assert cli.main(["diagnose", "--module", str(module), "--traceback"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert f'File "{module}", line 2, in bad_dO_dZ2' in err
    assert err.endswith(f"crosscheck: error: the code under test raised ValueError: my sigmoid derivative is broken "
                        f"(in bad_dO_dZ2, {module}:2)\n")


def test_an_error_with_json_is_a_json_document(tmp_path, capsys):
    module = tmp_path / "mine.py"
    module.write_text(RAISING_MODULE)
    assert cli.main(["diagnose", "--module", str(module), "--json"]) == 3
    out = json.loads(capsys.readouterr().out)
    assert out["exit"] == 3 and out["error"].startswith("the code under test raised ValueError: my sigmoid")
    assert cli.main(["--json", "--k", "9"]) == 2
    assert json.loads(capsys.readouterr().out) == {
        "error": "kernel_shape: got 9x9, needs at most the input's 8x8", "exit": 2}


def test_a_failure_of_crosscheck_itself_exits_4_not_1(monkeypatch, capsys):
    # Raised with no frame outside the harness (a C function called from cli.main): crosscheck's own failure.
    monkeypatch.setitem(cli.RUN, "seed", operator.attrgetter("no_such_option"))
    assert cli.main([]) == 4
    assert capsys.readouterr().err == (
        "crosscheck: error: crosscheck itself failed with AttributeError: 'Namespace' object has no attribute "
        "'no_such_option' (a bug in crosscheck, please report it); --traceback shows where\n")


def test_an_exception_without_a_message_is_named(monkeypatch, capsys):
    monkeypatch.setitem(cli.RUN, "seed", lambda args: {}.popitem())  # the lambda is in a test file: under test
    assert cli.main([]) == 3
    assert "crosscheck: error: the code under test raised KeyError: 'popitem(): dictionary is empty' (in <lambda>, " \
        in capsys.readouterr().err
    assert cli.raised(KeyError(), shown=True) == (
        "crosscheck itself failed with KeyError (a bug in crosscheck, please report it)", 4)
    assert cli.raised(KeyError()) == (
        "crosscheck itself failed with KeyError (a bug in crosscheck, please report it); --traceback shows where", 4)


def test_ctrl_c_exits_130_with_one_line(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.RUN, "verify", interrupted)
    assert cli.main(["verify", "--spec", "examples/lenet5.toml"]) == 130
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "crosscheck: error: interrupted\n")


def test_a_real_process_exits_3_without_a_traceback(tmp_path):
    module = tmp_path / "mine.py"
    module.write_text(RAISING_MODULE)
    done = subprocess.run([sys.executable, "-m", "crosscheck", "diagnose", "--module", str(module)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 3 and "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1


def test_a_module_given_by_a_relative_path_is_still_the_code_under_test(tmp_path, monkeypatch, capsys):
    (tmp_path / "mine.py").write_text(RAISING_MODULE)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["diagnose", "--module", "mine.py"]) == 3
    assert f"(in bad_dO_dZ2, {tmp_path / 'mine.py'}:2)" in capsys.readouterr().err
