"""The entry point's edges (crosscheck.cli.main and its one error printer): -h as the top-level help, Ctrl-C under
--json as a JSON document, a crash before any command runs still one line with exit 4, and error()'s defaults."""


import pytest

from crosscheck import cli


def test_dash_h_prints_the_top_level_help_not_seeds(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    long = capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        cli.main(["-h"])
    assert info.value.code == 0
    assert capsys.readouterr().out == long
    assert long.startswith("usage: crosscheck [-h] [--version] [--traceback] COMMAND ...\n")


def test_ctrl_c_with_json_is_a_json_document_on_stdout(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.RUN, "seed", interrupted)
    assert cli.main(["--json"]) == 130
    assert capsys.readouterr() == ('{"error": "interrupted", "exit": 130}\n', "")


def test_a_crash_before_the_command_is_known_is_one_line_exit_4(monkeypatch, capsys):
    # A C function raising (no frame of the code under test): crosscheck's own failure, before any --junit-xml
    # or --markdown exists to write it to.
    monkeypatch.setattr(cli, "build_parser", {}.popitem)
    assert cli.main([]) == 4
    assert capsys.readouterr() == ("", "crosscheck: error: crosscheck itself failed with KeyError: 'popitem(): "
                                   "dictionary is empty' (a bug in crosscheck, please report it); --traceback "
                                   "shows where\n")


def test_error_by_default_is_one_line_on_stderr_with_exit_2(capsys):
    assert cli.error("first\nsecond") == 2
    assert capsys.readouterr() == ("", "crosscheck: error: first second\n")
