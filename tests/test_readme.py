"""The README shows what the code does: its commands, its example and its sample output are checked here."""

import pathlib

from crosscheck import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language=None):
    """The fenced code blocks, in order (of one language, when given)."""
    blocks, current, lang = [], None, ""
    for line in README.splitlines(keepends=True):
        if line.startswith("```"):
            if current is None:
                current, lang = [], line[3:].strip()
            else:
                if language is None or lang == language:
                    blocks.append("".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_ci_runs_the_readmes_test_command():
    setup = next(b for b in _blocks("bash") if "python3 -m tox" in b)
    main_command, test_command = (line.split("#")[0].strip() for line in setup.strip().splitlines())
    assert main_command.endswith("python3 -m crosscheck")
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_readme_shows_the_user_layer_example_verbatim():
    example = (ROOT / "examples" / "user_layer" / "test_my_layer.py").read_text()
    assert example in _blocks("python")


def test_readme_table_matches_the_command(capsys):
    block = next(b for b in _blocks() if b.startswith("$ python3 -m crosscheck\n"))
    assert cli.main([]) == 0
    printed = capsys.readouterr().out

    def rows(text):  # quantity, shape and result; the error digits may differ with the BLAS
        return [(line[:22].strip(), line[23:41].strip(), line.split()[-1]) for line in text.splitlines()
                if line.endswith(("  ok", "  MISMATCH"))]

    assert rows(block) == rows(printed) and len(rows(printed)) == 24


def test_readme_shows_explain_as_it_prints(capsys):
    block = next(b for b in _blocks() if b.startswith("$ python3 -m crosscheck explain\n"))
    assert cli.main(["explain"]) == 0
    printed = capsys.readouterr().out

    def equations(text):
        return [" ".join(line.split()) for line in text.splitlines()
                if line.startswith("  ") and line.rstrip().endswith((" agree", " DIFFER"))]

    assert equations(block) == equations(printed) and len(equations(printed)) == 20
