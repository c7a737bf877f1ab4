"""Edges of the pytest plugin's surface and of the report files (crosscheck.pytest_plugin, crosscheck.reports).

The plugin: its options' section of ``pytest --help`` read whole (the group's title, each option's help), the option
group "crosscheck" that a conftest.py can add its own options to, the values a user's fixture reads with
config.getoption, the exact title of the terminal summary's section, and the summary's plugin name, which
``-p no:crosscheck-layer-checks`` blocks. The reports: a folder that exists but cannot be written to is refused
before the run, and both report files are UTF-8 whatever the locale, called in this process as well as under an
ASCII locale.
"""

import os
import pathlib
import re

import pytest
from test_ci_formats import _under_an_ascii_locale
from test_pytest_plugin import SUMMARY_TESTS

from crosscheck import reports

pytest_plugins = ["pytester"]

TITLE = "manual layers against torch autograd (backprop-crosscheck):"


def _pytest(pytester, monkeypatch, *args):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return pytester.runpytest("-p", "crosscheck.pytest_plugin", "-p", "no:cacheprovider", *args)


def _help_section(lines):
    """The plugin's section of pytest --help, from its title to the blank line after it, as one line of words (the
    help text wraps with the terminal's width)."""
    start = lines.index(TITLE)
    end = lines.index("", start)
    return " ".join(" ".join(lines[start:end]).split())


# --- the options ---------------------------------------------------------------------------------------------------

def test_the_help_shows_the_options_under_the_plugins_title(pytester, monkeypatch):
    result = _pytest(pytester, monkeypatch, "--help")
    assert _help_section(result.stdout.lines) == (
        f"{TITLE} --crosscheck-seeds=N layer_check checks seeds 0 .. N-1 (default: 0, 1, 2) --crosscheck-gradcheck "
        "layer_check also runs torch.autograd.gradcheck on the manual pair, per seed in float64")


def test_a_conftest_can_add_its_options_to_the_crosscheck_group(pytester, monkeypatch):
    """parser.getgroup("crosscheck") in a conftest.py finds the plugin's group: the option shows in its section."""
    pytester.makeconftest("""
        def pytest_addoption(parser):
            parser.getgroup("crosscheck").addoption("--team-seeds", metavar="N", help="the team's own seeds")
    """)
    result = _pytest(pytester, monkeypatch, "--help")
    assert _help_section(result.stdout.lines).endswith(
        "per seed in float64 --team-seeds=N the team's own seeds")


OPTIONS_TEST = """
def test_options(request):
    print("\\nOPTIONS", repr(request.config.getoption("crosscheck_seeds")),
          repr(request.config.getoption("crosscheck_gradcheck")))
"""


@pytest.mark.parametrize(("args", "expected"), [((), "OPTIONS None False"),
                                                (("--crosscheck-seeds=4", "--crosscheck-gradcheck"), "OPTIONS 4 True")])
def test_a_users_fixture_reads_the_options(pytester, monkeypatch, args, expected):
    """crosscheck_seeds: None where not given (layer_check's own seeds), else the count; crosscheck_gradcheck a
    flag, False or True, as any store_true option of pytest's."""
    pytester.makepyfile(test_user=OPTIONS_TEST)
    result = _pytest(pytester, monkeypatch, "-s", *args)
    result.assert_outcomes(passed=1)
    assert expected in result.stdout.lines


# --- the terminal summary --------------------------------------------------------------------------------------

def test_the_summarys_section_is_titled_crosscheck_layer_checks(pytester, monkeypatch):
    pytester.makepyfile(test_layers=SUMMARY_TESTS)
    result = _pytest(pytester, monkeypatch)
    titles = [line for line in result.stdout.lines if "layer checks" in line and line.startswith("=")]
    assert len(titles) == 1 and re.fullmatch("=+ crosscheck layer checks =+", titles[0]), titles


def test_blocking_the_summarys_plugin_name_leaves_the_checks_running(pytester, monkeypatch):
    """The summary is the plugin "crosscheck-layer-checks": -p no:crosscheck-layer-checks turns it off, while
    layer_check still passes and fails the same tests."""
    pytester.makepyfile(test_layers=SUMMARY_TESTS)
    result = _pytest(pytester, monkeypatch, "-p", "no:crosscheck-layer-checks")
    result.assert_outcomes(passed=2, failed=3)
    assert "layer checks ran" not in result.stdout.str()
    assert not any("crosscheck layer checks" in line for line in result.stdout.lines)


# --- the report files ----------------------------------------------------------------------------------------------

def _folders_it_cannot_write_to(tmp_path):
    """Folders that exist where this process really cannot create a file: a read-only one of its own (not as root,
    who may write anyway), one it may write to but not enter, and Linux's /proc/sys (not even root)."""
    read_only, not_searchable = tmp_path / "read-only", tmp_path / "not-searchable"
    for folder, mode in [(read_only, 0o555), (not_searchable, 0o600)]:
        folder.mkdir()
        folder.chmod(mode)
    found = []
    for folder in [read_only, not_searchable, pathlib.Path("/proc/sys")]:
        if not folder.is_dir():
            continue
        try:
            with open(folder / "probe", "x"):
                pass
        except OSError:
            found.append(folder)
        else:
            os.unlink(folder / "probe")
    return found


def test_a_folder_that_exists_but_cannot_be_written_to_is_refused(tmp_path):
    folders = _folders_it_cannot_write_to(tmp_path)
    if not folders:
        pytest.skip("no folder here that this process cannot write to")
    try:
        for folder in folders:
            text = str(folder / "report.xml")
            with pytest.raises(reports.InputError) as info:
                reports.output_path(text, "--junit-xml", replaced=True)
            assert str(info.value) == f"--junit-xml: got {text!r}, needs a file in a folder it may write to"
    finally:
        for folder in folders:
            if tmp_path in folder.parents:
                folder.chmod(0o755)


@pytest.mark.parametrize(("write", "name"), [("append_markdown", "summary.md"), ("write_atomically", "junit.xml")])
def test_a_report_file_is_utf8_here_and_under_an_ascii_locale(tmp_path, write, name):
    """The same UTF-8 bytes whether written in this process or by a Python whose locale is ASCII."""
    text = "## \u2705 caf\u00e9 \u2713\n"
    getattr(reports, write)(tmp_path / name, text)
    assert (tmp_path / name).read_bytes() == text.encode("utf-8")
    other = tmp_path / "ascii" / name
    other.parent.mkdir()
    assert _under_an_ascii_locale(f"reports.{write}(sys.argv[1], {ascii(text)})", other) == text.encode("utf-8")
