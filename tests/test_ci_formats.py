"""CI formats (crosscheck.reports): --junit-xml and --markdown of seed, verify and diagnose.

JUnit XML is validated against tests/junit-10.xsd (the common Jenkins/Ant shape), its counts are held to pytest's own
--junit-xml conventions, and a failing check has exactly one <failure> per differing quantity. The Markdown summary
is compared whole. An exception that ends a run (exit 3, 4) is still written, as one test case with an <error>; bad
input (exit 2) and an interrupted run write nothing.
"""

import errno
import json
import operator
import os
import pathlib
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from xml.etree import ElementTree as ET

import pytest
import xmlschema
from test_docs import blocks

from crosscheck import cli, reports
from crosscheck.check import Result, Row, check, seed_inject
from crosscheck.compare import Comparison
from crosscheck.subjects import SeedCase, SeedSubject

pytest_plugins = ["pytester"]

ROOT = pathlib.Path(__file__).resolve().parents[1]
# a folder no process can create (procfs takes no new entries): a mutant that skips the check this path must fail
# cannot make it exist for the runs after it, as one once made /nonexistent
NOWHERE = "/proc/nonexistent"
SCHEMA = xmlschema.XMLSchema(str(ROOT / "tests" / "junit-10.xsd"))
SMALL3 = str(ROOT / "examples" / "small3conv.toml")
# The slides' network's quantities in the order of the slides, then one SGD step and a 2-step run (README).
SEED_QUANTITIES = ["Z1", "H1", "Z2", "O", "E", "dE/dO", "dO/dZ2", "dE/dZ2", "dZ2/dW", "dE/dW", "dE/db", "dZ2/dH1",
                   "dE/dH1", "dH1/dZ1", "dE/dZ1", "dZ1/df", "dE/df", "W after step 1", "b after step 1",
                   "f after step 1", "E at steps 1..2", "W after 2 steps", "b after 2 steps", "f after 2 steps"]
# Without dH1/dZ1, every quantity downstream of it in the chain rule differs: dE/dZ1, dE/df, the filter's update,
# and the training run (the loss and, through the filter, every parameter). Z1 .. dE/dH1, dZ1/df, W and b after one
# step do not depend on it.
MISSING_DH1_DZ1 = ["dH1/dZ1", "dE/dZ1", "dE/df", "f after step 1", "E at steps 1..2", "W after 2 steps",
                   "b after 2 steps", "f after 2 steps"]
# What may differ from machine to machine in a table: the error digits (with the BLAS), torch's version.
DIGITS = re.compile(r"\d\.\d{3}e[-+]\d\d")


def _run(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _parse(path):
    """Validate against the schema, then -> the <testsuite> element."""
    SCHEMA.validate(str(path))
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites" and len(root) == 1
    return root[0]


def _counts_add_up(suite):
    """pytest's conventions: tests counts every <testcase>; failures, errors and skipped those with that element."""
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases)
    for attribute, element in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
        assert int(suite.get(attribute)) == sum(case.find(element) is not None for case in cases), attribute


def _failures(suite):
    return {case.get("name"): case.find("failure") for case in suite.findall("testcase")
            if case.find("failure") is not None}


# --- JUnit XML from the command line ----------------------------------------------------------------------

def test_a_passing_check_is_one_test_case_per_quantity(tmp_path, capsys):
    report = tmp_path / "junit.xml"
    code, out, err = _run(["seed", "--steps", "2", "--junit-xml", str(report)], capsys)
    assert (code, err) == (0, "") and out.rstrip().endswith("all 24 quantities agree")
    suite = _parse(report)
    classname = "crosscheck.seed.8x8-k3-out1-N4-sum-float64-seed0"
    assert suite.get("name") == classname
    assert [case.get("name") for case in suite.findall("testcase")] == SEED_QUANTITIES
    assert {case.get("classname") for case in suite.findall("testcase")} == {classname}
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("24", "0", "0",
                                                                                                    "0")
    _counts_add_up(suite)
    assert all(len(case) == 0 for case in suite.findall("testcase"))
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert {k: properties[k] for k in ("dtype", "seed", "injected")} == {"dtype": "float64", "seed": "0",
                                                                        "injected": "none"}
    assert properties["torch"] == __import__("torch").__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", properties["crosscheck"])
    started = datetime.fromisoformat(suite.get("timestamp"))
    assert timedelta(0) <= datetime.now(UTC) - started < timedelta(minutes=10)
    assert 0 < float(suite.get("time")) < 600 and suite.get("hostname")
    assert not [p.name for p in tmp_path.iterdir() if p != report]  # the temporary file is gone


def test_a_failing_check_has_one_failure_per_differing_quantity(tmp_path, capsys):
    report = tmp_path / "junit.xml"
    code, _, _ = _run(["--inject", "missing-dH1_dZ1", "--steps", "2", "--junit-xml", str(report)], capsys)
    assert code == 1
    suite = _parse(report)
    _counts_add_up(suite)
    failures = _failures(suite)
    assert list(failures) == MISSING_DH1_DZ1 and suite.get("failures") == str(len(MISSING_DH1_DZ1))
    assert all(len(case.findall("failure")) <= 1 for case in suite.findall("testcase"))
    # the same rows the checker finds differing, by itself
    case = SeedCase(steps=2)
    assert [row.result.name for row in check(SeedSubject(case, seed_inject("missing-dH1_dZ1"))).failed] == \
        MISSING_DH1_DZ1
    first = failures["dH1/dZ1"]
    assert first.get("type") == "mismatch"
    assert re.fullmatch(r"dH1/dZ1 differs; worst element at index \(\d, \d, \d\): manual 1\.0, autograd 0\.\d+, abs "
                        r"error \S+, rel error \S+; pass when \|manual - autograd\| <= 1e-12 \+ 1e-10 \* \|autograd\| "
                        r"\(float64\)", first.get("message"))
    assert first.text.splitlines()[1:] == [
        "pass when |manual - autograd| <= 1e-12 + 1e-10 * |autograd| (float64)",
        "injected wrong derivation: missing-dH1_dZ1 (dE/dZ1 = dE/dH1: the sigmoid derivative dH1/dZ1 left out, taken "
        "as 1)"]
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert properties["injected"] == "missing-dH1_dZ1"


def test_verify_names_the_description_dtype_and_seed(tmp_path, capsys):
    report = tmp_path / "junit.xml"
    code, _, _ = _run(["verify", "--spec", SMALL3, "--steps", "1", "--seed", "3", "--dtype", "float32",
                       "--inject", "scaled@6", "--junit-xml", str(report)], capsys)
    assert code == 1
    suite = _parse(report)
    _counts_add_up(suite)
    assert suite.get("name") == "crosscheck.verify.small3conv-float32-seed3"
    names = [case.get("name") for case in suite.findall("testcase")]
    assert names[0] == "0 conv2d: output" and "loss: E" in names and "6 tanh: dE/dinput" in _failures(suite)
    assert "5 conv2d: output" not in _failures(suite)  # upstream of the scaled backward: agrees
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert {k: properties[k] for k in ("description", "dtype", "seed", "steps", "injected")} == {
        "description": SMALL3, "dtype": "float32", "seed": "3", "steps": "1", "injected": "scaled@6"}


def test_diagnose_puts_the_diagnosis_in_the_first_wrong_quantity(tmp_path, capsys):
    report = tmp_path / "junit.xml"
    code, out, _ = _run(["diagnose", "--wrong", "missing-dH1_dZ1", "--junit-xml", str(report)], capsys)
    assert code == 1 and out.startswith("diagnosis: ")
    suite = _parse(report)
    _counts_add_up(suite)
    assert suite.get("name") == "crosscheck.diagnose.8x8-k3-out1-N4-sum-float64-seed0"
    names = [case.get("name") for case in suite.findall("testcase")]
    assert names == SEED_QUANTITIES[:20]  # the walk: forward, backward, the first updates; no training run
    failures = _failures(suite)
    assert list(failures) == ["dH1/dZ1", "dE/dZ1", "dE/df", "f after step 1"]
    first = failures["dH1/dZ1"].text
    assert "\n\ndiagnosis: seed network 8x8-k3-out1-N4-sum-float64-seed0, float64\n" in first
    assert "first wrong quantity: dH1/dZ1, shape (4, 6, 6)" in first
    assert "class: activation derivative missing (activation-missing)" in first
    assert "finite differences side with autograd: the manual derivation is wrong" in first
    assert all("diagnosis:" not in failure.text for name, failure in failures.items() if name != "dH1/dZ1")


def test_with_json_stdout_stays_json(tmp_path, capsys):
    report = tmp_path / "junit.xml"
    code, out, err = _run(["--json", "--steps", "2", "--junit-xml", str(report)], capsys)
    assert code == 0 and err == ""
    assert [q["name"] for q in json.loads(out)["quantities"]] == SEED_QUANTITIES
    assert len(_parse(report).findall("testcase")) == 24


def test_markdown_to_stdout_with_json_is_bad_input(capsys):
    code, out, err = _run(["--json", "--markdown", "-"], capsys)
    assert (code, err) == (2, "")
    assert json.loads(out) == {"error": "--markdown: got '-' with --json, needs a file path (stdout holds the JSON)",
                               "exit": 2}


def test_an_existing_report_is_replaced_whole(tmp_path, capsys):
    report = tmp_path / "junit.xml"
    report.write_text("x" * 100_000)
    assert cli.main(["--steps", "2", "--junit-xml", str(report)]) == 0
    assert len(_parse(report).findall("testcase")) == 24
    assert os.listdir(tmp_path) == ["junit.xml"]


# --- an exception that ends the run: still a report, one <error> -------------------------------------------

RAISING_MODULE = "def bad(O):\n    raise ValueError('<&> \"quoted\" \\x1b é')\nLAYER_BACKWARD = {'dO_dZ2': bad}\n"


def test_the_code_under_test_raising_is_one_error(tmp_path, capsys):
    module, report, summary = tmp_path / "mine.py", tmp_path / "junit.xml", tmp_path / "summary.md"
    module.write_text(RAISING_MODULE)
    code, out, err = _run(["diagnose", "--module", str(module), "--junit-xml", str(report), "--markdown",
                           str(summary)], capsys)
    message = (f"the code under test raised ValueError: <&> \"quoted\" \x1b é (in bad, {module}:2); --traceback "
               f"shows where")
    assert (code, out, err) == (3, "", f"crosscheck: error: {message}\n")
    suite = _parse(report)
    _counts_add_up(suite)
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("1", "0", "1")
    (case,) = suite.findall("testcase")
    assert (case.get("classname"), case.get("name")) == ("crosscheck.diagnose.8x8-k3-out1-N4-sum-float64-seed0",
                                                         "crosscheck diagnose")
    error = case.find("error")
    shown = message.replace("\x1b", "\\x1b")  # XML 1.0 cannot hold ESC, not even escaped
    assert (error.get("type"), error.get("message"), error.text) == ("raised", shown, shown)
    escaped = str(module).replace("_", "\\_")  # pytest's folder test_the_code_under_test_...
    assert summary.read_text() == (
        "## ❌ crosscheck diagnose: the code under test raised (exit 3)\n\n"
        f"8x8-k3-out1-N4-sum-float64-seed0: the code under test raised ValueError: \\<\\&\\> \"quoted\" \\x1b é (in "
        f"bad, {escaped}:2); --traceback shows where\n\n")


def test_crosscheck_failing_itself_is_one_error(tmp_path, monkeypatch, capsys):
    # Raised with no frame outside the harness (a C function called from cli.main): crosscheck's own failure.
    report = tmp_path / "junit.xml"
    monkeypatch.setitem(cli.RUN, "seed", operator.attrgetter("no_such_option"))
    code, out, err = _run(["--junit-xml", str(report), "--markdown", "-"], capsys)
    message = ("crosscheck itself failed with AttributeError: 'Namespace' object has no attribute 'no_such_option' (a "
               "bug in crosscheck, please report it); --traceback shows where")
    assert (code, err) == (4, f"crosscheck: error: {message}\n")
    (case,) = _parse(report).findall("testcase")
    assert (case.get("classname"), case.get("name")) == ("crosscheck.seed", "crosscheck seed")  # no case known yet
    assert (case.find("error").get("type"), case.find("error").get("message")) == ("internal", message)
    assert out == ("## ❌ crosscheck seed: crosscheck itself failed (exit 4)\n\ncrosscheck itself failed with "
                   "AttributeError: 'Namespace' object has no attribute 'no\\_such\\_option' (a bug in crosscheck, "
                   "please report it); --traceback shows where\n\n")


@pytest.mark.parametrize("option", ["--junit-xml", "--markdown"])
def test_either_report_alone_carries_the_error(option, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(cli.RUN, "seed", operator.attrgetter("no_such_option"))
    assert cli.main([option, str(tmp_path / "report")]) == 4
    assert os.listdir(tmp_path) == ["report"]
    assert "crosscheck itself failed with AttributeError" in (tmp_path / "report").read_text()


def test_a_report_that_cannot_be_written_is_said_on_the_error_line(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "reports"
    folder.mkdir()

    def vanishing(args):  # the folder goes away during the run, then the run raises
        folder.rmdir()
        raise RuntimeError("boom")

    monkeypatch.setitem(cli.RUN, "seed", vanishing)
    code, _, err = _run(["--junit-xml", str(folder / "junit.xml")], capsys)
    assert code == 3
    assert err.startswith("crosscheck: error: the code under test raised RuntimeError: boom (in vanishing, ")
    assert err.endswith(f"; --traceback shows where; and --junit-xml: got '{folder}/junit.xml', cannot write it: No "
                        f"such file or directory\n")


def test_a_summary_that_cannot_be_appended_is_said_on_the_error_line(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "reports"
    folder.mkdir()

    def vanishing(args):
        folder.rmdir()
        raise RuntimeError("boom")

    monkeypatch.setitem(cli.RUN, "seed", vanishing)
    code, _, err = _run(["--markdown", str(folder / "summary.md")], capsys)
    assert code == 3
    assert err.endswith(f"; --traceback shows where; and --markdown: got '{folder}/summary.md', cannot append to it: "
                        f"No such file or directory\n")


def test_the_error_report_is_stamped_when_the_run_started(tmp_path):
    outputs = reports.Outputs("seed", junit=str(tmp_path / "junit.xml"))
    outputs.started = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    outputs.error("boom", 3)
    assert _parse(tmp_path / "junit.xml").get("timestamp") == "2024-05-06T07:08:09+02:00"


def test_the_error_report_takes_its_time_start_and_host():
    started = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    suite = ET.fromstring(reports.junit_error_xml("boom", 4, reports.About("seed"), 0.25, started, "ci"))[0]
    assert (suite.get("time"), suite.get("timestamp"), suite.get("hostname")) == ("0.250", "2024-05-06T07:08:09+02:00",
                                                                                  "ci")
    assert ET.fromstring(reports.junit_error_xml("boom", 4, reports.About("seed")))[0].get("time") == "0.000"


def test_a_report_that_cannot_be_written_after_the_check_is_bad_input(tmp_path, monkeypatch, capsys):
    def full(source, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(reports.os, "replace", full)
    code, out, err = _run(["--steps", "2", "--junit-xml", str(tmp_path / "junit.xml")], capsys)
    assert (code, out) == (2, "")
    assert err == (f"crosscheck: error: --junit-xml: got '{tmp_path}/junit.xml', cannot write it: No space left on "
                   "device\n")
    assert os.listdir(tmp_path) == []  # the temporary file removed too


def test_appending_to_a_missing_folder_names_the_option(tmp_path):
    with pytest.raises(reports.InputError, match=r"^--markdown: got '.*/gone/s\.md', cannot append to it: No such "):
        reports.append_markdown(tmp_path / "gone" / "s.md", "text", "--markdown")
    with pytest.raises(reports.InputError) as info:  # called as the module's docstring shows
        reports.append_markdown(tmp_path / "gone" / "s.md", "text")
    assert str(info.value) == f"path: got '{tmp_path}/gone/s.md', cannot append to it: No such file or directory"


def _under_an_ascii_locale(call, path):
    """Run `from crosscheck import reports; <call>` with sys.argv[1] = path in a Python whose locale is ASCII."""
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", f"import sys; from crosscheck import reports; {call}", str(path)],
                   env=env, check=True, capture_output=True)
    return path.read_bytes()


def test_the_summary_is_utf8_whatever_the_locale(tmp_path):
    """A runner whose locale is ASCII (or cp1252) still gets the summary's ✅ and é, in UTF-8 as GitHub reads it."""
    written = _under_an_ascii_locale("reports.append_markdown(sys.argv[1], '## \\u2705 caf\\u00e9\\n')",
                                     tmp_path / "summary.md")
    assert written == "## ✅ café\n".encode()


# --- bad input and Ctrl-C write nothing ------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["--k", "9"], ["verify", "--spec", "missing.toml"], ["diagnose", "--wrong", "x"]],
                         ids=["seed", "verify", "diagnose"])
def test_bad_input_writes_no_report(argv, tmp_path, capsys):
    report, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    assert cli.main([*argv, "--junit-xml", str(report), "--markdown", str(summary)]) == 2
    assert os.listdir(tmp_path) == []


def test_a_bad_report_path_is_refused_before_the_run(tmp_path, monkeypatch, capsys):
    ran = []
    monkeypatch.setitem(cli.RUN, "seed", ran.append)
    assert cli.main(["--junit-xml", str(tmp_path / "missing" / "junit.xml")]) == 2
    assert cli.main(["--markdown", str(tmp_path)]) == 2
    assert ran == []


def test_a_folder_it_may_not_write_to_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(reports.os, "access", lambda path, mode: False)  # as root, permissions would not stop it
    code, out, err = _run(["--junit-xml", str(tmp_path / "junit.xml")], capsys)
    assert (code, out) == (2, "")
    assert err == (f"crosscheck: error: --junit-xml: got '{tmp_path}/junit.xml', needs a file in a folder it may "
                   "write to\n")


def test_an_interrupted_run_writes_nothing(tmp_path, monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.RUN, "verify", interrupted)
    assert cli.main(["verify", "--spec", SMALL3, "--junit-xml", str(tmp_path / "j.xml")]) == 130
    assert os.listdir(tmp_path) == []


# --- the document itself: escaping, the schema, pytest's conventions --------------------------------------

def _comparison(name, passed=True, error=1e-17, problem="", note="", shape=(2, 3)):
    return Comparison(name, shape, passed, error, 2 * error, (1, 2), 0.5, 0.25, problem, note, 6)


def _result(rows, title="seed network 4x4-k2-out1-N1-sum-float64-seed0", injected=""):
    return Result(title, "float64", tuple(rows), injected)


@pytest.mark.parametrize("quantity, row", [("c", "c"), ("b", "b"), ("x", "b"), ("a", "b"), ("d", "b"), (None, "b")],
                         ids=["its-row", "first-failing", "no-such-row", "a-passing-row", "a-row-without-verdict",
                              "nothing-diagnosed"])
def test_a_diagnosis_goes_to_its_failing_row_else_to_the_first_that_fails(quantity, row):
    rows = [Row("", "a", _comparison("a")), Row("", "d", _comparison("d", False, note="unstable")),
            Row("", "b", _comparison("b", False, error=0.5)), Row("", "c", _comparison("c", False, error=0.5))]
    assert reports._diagnosed_row(_result(rows), quantity) == row
    assert reports._diagnosed_row(_result(rows[:2]), quantity) is None  # nothing fails: no row takes it


def test_a_failure_without_an_injection_says_only_what_differs_and_the_rule():
    rows = [Row("", "dE/dW", _comparison("dE/dW", False, error=0.5))]
    failure = ET.fromstring(reports.junit_xml(_result(rows), reports.About("seed")))[0].find("testcase/failure")
    assert failure.text == ("dE/dW differs; worst element at index (1, 2): manual 0.5, autograd 0.25, abs error "
                            "5.000e-01, rel error 1.000e+00\n"
                            "pass when |manual - autograd| <= 1e-12 + 1e-10 * |autograd| (float64)")


@pytest.mark.parametrize(("seconds", "shown"), [(0.25, "0.250"), (-0.5, "0.000")])
def test_the_time_is_the_runs_in_seconds_never_negative(seconds, shown):
    for text in (reports.junit_xml(_result([Row("", "a", _comparison("a"))]), reports.About("seed"), seconds),
                 reports.junit_error_xml("boom", 3, reports.About("seed"), seconds)):
        assert ET.fromstring(text)[0].get("time") == shown
    assert ET.fromstring(reports.junit_xml(_result([]), reports.About("seed")))[0].get("time") == "0.000"


def test_a_report_file_gets_the_usual_permissions(tmp_path):
    """rw for everyone the umask lets through, as any file a program creates (0o666 & ~umask), never executable."""
    old = os.umask(0o022)
    try:
        reports.write_atomically(tmp_path / "junit.xml", "<testsuites/>")
    finally:
        os.umask(old)
    assert (tmp_path / "junit.xml").stat().st_mode & 0o777 == 0o644


def test_writing_into_a_missing_folder_names_the_path():
    with pytest.raises(reports.InputError) as info:  # called as the module's docstring shows
        reports.write_atomically(f"{NOWHERE}/report.xml", "text")
    assert str(info.value) == f"path: got '{NOWHERE}/report.xml', cannot write it: No such file or directory"


def test_the_junit_report_is_utf8_whatever_the_locale(tmp_path):
    written = _under_an_ascii_locale("reports.write_atomically(sys.argv[1], 'caf\\u00e9 \\u2713')",
                                     tmp_path / "junit.xml")
    assert written == "café ✓".encode()


def test_a_summary_may_go_to_a_file_that_is_not_regular(tmp_path):
    """--markdown appends, so /dev/null or a pipe will do; --junit-xml replaces its file whole, so it needs a regular
    one (tests/test_hostile_input.py). A pipe of the test's own: a mutant must never get to replace /dev/null."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    assert reports.output_path(str(pipe), "--markdown") == pipe
    assert reports.Outputs("seed", markdown=str(pipe)).markdown == pipe


def test_markdown_states_the_rule_of_the_results_dtype():
    result = Result("seed network 4x4-k2-out1-N1-sum-float32-seed0", "float32", (Row("", "Z1", _comparison("Z1")),))
    assert reports.markdown(result, reports.About("seed")).splitlines()[2] == (
        "seed network 4x4-k2-out1-N1-sum-float32-seed0, float32: hand-derived NumPy against PyTorch autograd; pass "
        "when `|manual - autograd| <= 1e-06 + 0.0001 * |autograd|`.")


HOSTILE = "a<b & c>\"d\" 'e' \x00\x07\x1b\x7f αβγ ✓ \U0001f600 \ufffe"


def test_xml_specials_control_characters_and_non_ascii_survive(tmp_path):
    rows = [Row("", HOSTILE, _comparison(HOSTILE, False, problem=f"manual side failed: {HOSTILE}\nsecond line")),
            Row("", "ok", _comparison("ok"))]
    about = reports.About("seed", f"case.{HOSTILE}", {"note": HOSTILE, "empty": ""})
    path = tmp_path / "junit.xml"
    reports.write_atomically(path, reports.junit_xml(_result(rows, injected=HOSTILE), about, 1.5, hostname="h"))
    suite = _parse(path)
    _counts_add_up(suite)
    shown = "a<b & c>\"d\" 'e' \\x00\\x07\\x1b\x7f αβγ ✓ \U0001f600 \\ufffe"
    (failed, passed) = suite.findall("testcase")
    assert failed.get("name") == shown and failed.get("classname") == f"crosscheck.seed.case_{shown}"
    failure = failed.find("failure")
    assert failure.get("message") == (f"{shown}: manual side failed: {shown} second line; pass when |manual - "
                                      "autograd| <= 1e-12 + 1e-10 * |autograd| (float64)")
    assert failure.text.splitlines()[:2] == [f"{shown}: manual side failed: {shown}", "second line"]
    assert failure.text.splitlines()[-1] == f"injected wrong derivation: {shown}"
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert (properties["note"], properties["empty"]) == (shown, "none")
    assert suite.get("hostname") == "h" and suite.get("time") == "1.500"
    assert len(passed) == 0


def test_a_row_without_a_verdict_is_skipped_with_the_reason():
    note = "training is chaotic"
    rows = [Row("", "E at steps 1..50", _comparison("E at steps 1..50", True, note=note)), Row("", "Z1",
                                                                                              _comparison("Z1"))]
    started = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    text = reports.junit_xml(_result(rows), reports.About("seed"), 0.25, started=started, hostname="ci")
    SCHEMA.validate(text)
    suite = ET.fromstring(text)[0]
    _counts_add_up(suite)
    assert (suite.get("skipped"), suite.get("failures"), suite.get("timestamp")) == ("1", "0",
                                                                                    "2024-05-06T07:08:09+02:00")
    skipped = suite.find("testcase").find("skipped")
    assert (skipped.get("type"), skipped.get("message"), skipped.text) == ("no-verdict", f"no verdict: {note}", note)


def test_the_schema_rejects_what_ci_could_not_read():
    """The judge can fail: a suite without tests, a count that is no number, a failure outside a test case."""
    good = '<testsuites><testsuite name="s" tests="1"><testcase name="t"/></testsuite></testsuites>'
    SCHEMA.validate(good)
    for bad in [good.replace(' tests="1"', ""), good.replace('tests="1"', 'tests="one"'),
                good.replace('<testcase name="t"/>', "<failure/>")]:
        with pytest.raises(xmlschema.XMLSchemaValidationError):
            SCHEMA.validate(bad)


PYTEST_FILE = """
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("setup")

def test_passes():
    pass

def test_fails():
    assert 1 == 2

def test_errors(broken):
    pass

@pytest.mark.skip(reason="no")
def test_skipped():
    pass
"""


def test_the_attributes_and_counts_are_pytests_own(pytester, monkeypatch, tmp_path):
    """pytest's --junit-xml validates against the same schema, with the same testsuite attributes and the same
    counting rules as ours."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_mixed=PYTEST_FILE)
    theirs = tmp_path / "pytest.xml"
    pytester.runpytest("-p", "no:cacheprovider", f"--junit-xml={theirs}").assert_outcomes(passed=1, failed=1,
                                                                                          errors=1, skipped=1)
    suite = _parse(theirs)
    _counts_add_up(suite)
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("4", "1", "1",
                                                                                                    "1")
    rows = [Row("", "a", _comparison("a", False)), Row("", "b", _comparison("b")),
            Row("", "c", _comparison("c", True, note="chaotic"))]
    ours = ET.fromstring(reports.junit_xml(_result(rows), reports.About("seed", "x")))[0]
    _counts_add_up(ours)
    assert set(ours.attrib) == set(suite.attrib)
    error = ET.fromstring(reports.junit_error_xml("boom", 3, reports.About("seed")))[0]
    _counts_add_up(error)
    assert set(error.attrib) == set(suite.attrib)


# --- Markdown ----------------------------------------------------------------------------------------------

def test_markdown_of_a_passing_check():
    rows = [Row("", "Z1", _comparison("Z1", shape=(1, 3, 3))), Row("", "dE/df", _comparison("dE/df", error=0.0))]
    assert reports.markdown(_result(rows), reports.About("seed", "4x4")) == """\
## ✅ crosscheck seed: all 2 quantities agree

seed network 4x4-k2-out1-N1-sum-float64-seed0, float64: hand-derived NumPy against PyTorch autograd; pass when \
`|manual - autograd| <= 1e-12 + 1e-10 * |autograd|`.

| quantity | shape | max abs err | max rel err | result |
| --- | --- | ---: | ---: | --- |
| Z1 | (1, 3, 3) | 1.000e-17 | 2.000e-17 | ok |
| dE/df | (2, 3) | 0.000e+00 | 0.000e+00 | ok |

"""


def test_markdown_of_a_failing_check_escapes_its_cells():
    rows = [Row("0 my|layer", "dE/d*w_1", _comparison("0 my|layer: dE/d*w_1", False, error=0.5)),
            Row("loss", "E", _comparison("loss: E", False, problem="shape mismatch: manual (2,), autograd ()")),
            Row("loss", "E at steps 1..3", _comparison("loss: E at steps 1..3", True, note="chaotic"))]
    result = _result(rows, "network `tick` <1>, seed 0", injected="scaled@0 (x < y & [z] #1 ~ \\)")
    assert reports.markdown(result, reports.About("verify", "net")) == """\
## ❌ crosscheck verify: 2 of 3 quantities differ

network \\`tick\\` \\<1\\>, seed 0, float64: hand-derived NumPy against PyTorch autograd; pass when \
`|manual - autograd| <= 1e-12 + 1e-10 * |autograd|`.

Injected wrong derivation: scaled@0 (x \\< y \\& \\[z\\] \\#1 \\~ \\\\)

| layer | quantity | shape | max abs err | max rel err | result |
| --- | --- | --- | ---: | ---: | --- |
| 0 my\\|layer | dE/d\\*w\\_1 | (2, 3) | 5.000e-01 | 1.000e+00 | MISMATCH |
| loss | E | (2, 3) | n/a | n/a | MISMATCH |
| loss | E at steps 1..3 | (2, 3) | 1.000e-17 | 2.000e-17 | unstable |

"""


def test_markdown_above_the_limit_lists_only_what_does_not_agree():
    rows = [Row("", f"q{i}", _comparison(f"q{i}", i != 7, error=0.5 if i == 7 else 0.0)) for i in range(31)]
    assert reports.markdown(_result(rows), reports.About("seed")).split("\n", 4)[4] == """\
| quantity | shape | max abs err | max rel err | result |
| --- | --- | ---: | ---: | --- |
| q7 | (2, 3) | 5.000e-01 | 1.000e+00 | MISMATCH |

30 quantities that agree are not listed (above 30 rows the table lists only the ones that differ or give no verdict).

"""
    agreeing = [Row("", f"q{i}", _comparison(f"q{i}")) for i in range(31)]
    assert reports.markdown(_result(agreeing), reports.About("seed")).split("\n", 4)[4] == (
        "31 quantities that agree are not listed (above 30 rows the table lists only the ones that differ or give no "
        "verdict).\n\n")
    assert len(reports.markdown(_result(agreeing[:30]), reports.About("seed")).splitlines()) == 4 + 2 + 30 + 1


def test_markdown_of_nothing_compared_is_no_pass():
    assert reports.markdown(_result([]), reports.About("seed")).startswith(
        "## ❌ crosscheck seed: nothing was compared\n")


def test_markdown_of_rows_without_a_verdict():
    rows = [Row("", "E", _comparison("E", note="chaotic")), Row("", "Z1", _comparison("Z1"))]
    assert reports.markdown(_result(rows), reports.About("seed")).startswith(
        "## ✅ crosscheck seed: 1 of 2 quantities agree; 1 give no verdict\n")


def _masked(text):
    return DIGITS.sub("<err>", text)


def test_markdown_dash_prints_it_in_place_of_the_table(capsys):
    code, out, err = _run(["seed", "--inject", "missing-dH1_dZ1", "--steps", "2", "--markdown", "-"], capsys)
    assert (code, err) == (1, "")
    table = "\n".join(f"| {name} | {shape} | <err> | <err> | {'MISMATCH' if name in MISSING_DH1_DZ1 else 'ok'} |"
                      for name, shape in zip(SEED_QUANTITIES, [
                          "(4, 6, 6)", "(4, 36)", "(4, 1)", "(4, 1)", "()", "(4, 1)", "(4, 1)", "(4, 1)", "(4, 36)",
                          "(36, 1)", "(1,)", "(1, 36)", "(4, 36)", "(4, 6, 6)", "(4, 6, 6)", "(4, 6, 6, 3, 3)",
                          "(3, 3)", "(36, 1)", "(1,)", "(3, 3)", "(2,)", "(36, 1)", "(1,)", "(3, 3)"], strict=True))
    assert _masked(out) == f"""\
## ❌ crosscheck seed: 8 of 24 quantities differ

seed network 8x8-k3-out1-N4-sum-float64-seed0, float64: hand-derived NumPy against PyTorch autograd; pass when \
`|manual - autograd| <= 1e-12 + 1e-10 * |autograd|`.

Injected wrong derivation: missing-dH1\\_dZ1 (dE/dZ1 = dE/dH1: the sigmoid derivative dH1/dZ1 left out, taken as 1)

| quantity | shape | max abs err | max rel err | result |
| --- | --- | ---: | ---: | --- |
{table}
"""


def test_markdown_of_a_diagnosis(tmp_path, capsys):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    code, out, _ = _run(["diagnose", "--wrong", "missing-dH1_dZ1", "--markdown", str(summary)], capsys)
    assert code == 1 and out.startswith("diagnosis: ")
    text = summary.read_text()
    assert text.startswith("earlier step\n## ❌ crosscheck diagnose: 4 of 20 quantities differ\n\n")  # appended
    assert """
**First wrong quantity: dH1/dZ1**, shape (4, 6, 6); walked 14 quantities in the order the computation makes them, \
the first 13 agree.

**Class:** activation derivative missing (activation-missing): manual = 1: the local derivative left out

Finite differences side with autograd: the manual derivation is wrong.

| quantity | shape | max abs err | max rel err | result |
""" in text
    assert text.rstrip("\n").splitlines()[-1].startswith("| f after step 1 | (3, 3) | ")  # the walk's last
    assert cli.main(["diagnose", "--wrong", "missing-dH1_dZ1", "--markdown", str(summary)]) == 1
    assert summary.read_text() == text + text.removeprefix("earlier step\n")  # appended again, never truncated


def test_markdown_of_a_diagnosis_that_finds_nothing(tmp_path, capsys):
    module = tmp_path / "right.py"
    module.write_text("def dO_dZ2(O):\n    return O * (1 - O)\nLAYER_BACKWARD = {'dO_dZ2': dO_dZ2}\n")
    code, out, _ = _run(["diagnose", "--module", str(module), "--markdown", "-"], capsys)
    assert code == 0
    assert out.startswith("## ✅ crosscheck diagnose: all 20 quantities agree\n\n")
    assert "\n\nNo diagnosis: all 20 quantities agree with autograd (forward, backward from the loss, updates).\n\n" \
        in out


def test_markdown_of_a_diagnosis_without_finite_differences(capsys):
    code, out, _ = _run(["diagnose", "--wrong", "sgd-wrong-sign", "--markdown", "-"], capsys)
    assert code == 1
    paragraphs = out.split("\n\n")
    assert paragraphs[3].startswith("**First wrong quantity: ")
    assert paragraphs[4].startswith("**Class:** update applied with the wrong sign (update-sign): ")
    assert paragraphs[5].startswith("| quantity | shape |")  # no finite differences at an update


def test_diagnose_on_a_described_network(tmp_path, capsys):
    report = tmp_path / "junit.xml"
    code, _, _ = _run(["diagnose", "--wrong", "conv2d-dw-flipped", "--junit-xml", str(report)], capsys)
    assert code == 1
    suite = _parse(report)
    assert re.fullmatch(r"crosscheck\.diagnose\.[\w-]+-float64-seed0", suite.get("name"))
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert (properties["seed"], properties["injected"]) == ("0", "conv2d-dw-flipped")
    assert sum("\ndiagnosis: " in failure.text for failure in _failures(suite).values()) == 1


def test_a_case_id_with_dots_stays_one_class():
    assert reports.About("verify", "v1.2-float64-seed0").classname == "crosscheck.verify.v1_2-float64-seed0"
    assert reports.About("train").classname == "crosscheck.train"


# --- what docs/ci.md shows is what the command writes ------------------------------------------------------

# What may differ from run to run in a report: the error digits, long float reprs, times, the machine, versions.
REPORT_MASKS = [(DIGITS, "<err>"), (re.compile(r"\d+\.\d{9,}"), "<float>"),
                (re.compile(r'(time|timestamp|hostname)="[^"]*"'), r'\1="<...>"'),
                (re.compile(r'(name="(?:crosscheck|torch)" value=)"[^"]*"'), r'\1"<version>"')]


def _masked_report(line):
    for pattern, replacement in REPORT_MASKS:
        line = pattern.sub(replacement, line)
    return line


def test_the_junit_example_of_the_docs_is_what_the_command_writes(tmp_path):
    page = ROOT / "docs" / "ci.md"
    (command,) = [line for _, text in blocks(page, "bash") for line in text.splitlines() if "--junit-xml" in line]
    (shown,) = [text for _, text in blocks(page, "xml")]
    report = tmp_path / "report.xml"
    argv = command.split("#")[0].split()[3:]
    assert cli.main([str(report) if a == "report.xml" else a for a in argv]) == int(command.split("# exit")[1])
    written = [_masked_report(line) for line in report.read_text().splitlines()]
    # each piece between lines "..." is a run of consecutive lines of the written file, in order
    at = 0
    for piece in "\n".join(shown.splitlines()).split("\n...\n"):
        lines = [_masked_report(line) for line in piece.splitlines()]
        starts = [i for i in range(at, len(written)) if written[i:i + len(lines)] == lines]
        assert starts, f"docs/ci.md shows lines the command no longer writes:\n{piece}"
        at = starts[0] + len(lines)
    assert at == len(written) and shown.startswith(written[0])


# --- crosscheck train ----------------------------------------------------------------------------------------

def test_train_is_one_test_case_per_quantity_judged_at_every_step(tmp_path, capsys):
    report, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    code, out, err = _run(["train", "--epochs", "1", "--junit-xml", str(report), "--markdown", str(summary)], capsys)
    assert (code, err) == (0, "") and "manual and autograd agree at all 44 steps" in out
    suite = _parse(report)
    _counts_add_up(suite)
    assert suite.get("name") == "crosscheck.train.slides-digits-k3-out1-float64-seed0"
    assert [case.get("name") for case in suite.findall("testcase")] == [
        "E at steps 1..44", "f at steps 1..44", "W at steps 1..44", "b at steps 1..44"]
    assert suite.get("failures") == "0"
    text = summary.read_text()
    assert "all 4 quantities agree" in text and "E at steps 1..44" in text


def test_train_stopped_by_a_wrong_derivation_fails_its_quantities_with_the_diagnosis(tmp_path, capsys):
    report = tmp_path / "junit.xml"
    code, _, _ = _run(["train", "--inject", "missing-dH1_dZ1", "--junit-xml", str(report)], capsys)
    assert code == 1
    suite = _parse(report)
    _counts_add_up(suite)
    # the step taken again from the same parameters: the loss before it agrees (the forward is right), the filter
    # after it does not; W and b do not depend on dH1/dZ1 in one step
    assert list(_failures(suite)) == ["f at steps 1..1"]
    failure = _failures(suite)["f at steps 1..1"]
    assert "injected wrong derivation: missing-dH1_dZ1" in failure.text
    # the diagnosis names dH1/dZ1, which is no row of a training run: it goes to the first row that differs
    assert ("\n\ndiagnosis: seed network 8x8-k3-out1-N32-mean-float64-seed0, float64\n" in failure.text
            and "\nfirst wrong quantity: dH1/dZ1, shape (32, 6, 6)\n" in failure.text)
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert properties["injected"] == "missing-dH1_dZ1" and properties["dtype"] == "float64"


def test_train_markdown_in_place_of_the_table(capsys):
    code, out, _ = _run(["train", "--spec", str(ROOT / "examples" / "digits-lenet.toml"), "--steps", "2",
                         "--markdown", "-"], capsys)
    assert code == 0 and out.startswith("## ✅ crosscheck train: all 11 quantities agree") and "E manual" not in out
