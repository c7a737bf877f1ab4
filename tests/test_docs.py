"""What the README and docs/*.md show is what the code does: every `$ python3 -m crosscheck ...` block is run and
its output compared, every whole example file is shown verbatim, every command line names options that exist,
and every link stays inside the repository."""

import argparse
import os
import pathlib
import re
import shlex

import pytest

from crosscheck import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = "$ python3 -m crosscheck"


def blocks(page, language=None):
    """The fenced code blocks of a page, in order, as (language, text); of one language when given."""
    found, current, lang = [], None, ""
    for line in page.read_text().splitlines(keepends=True):
        if line.startswith("```"):
            if current is None:
                current, lang = [], line[3:].strip()
            else:
                if language is None or lang == language:
                    found.append((lang, "".join(current)))
                current = None
        elif current is not None:
            current.append(line)
    assert current is None, f"{page.name}: a code block is not closed"
    return found


def prose(page):
    """The page without its fenced code blocks."""
    return re.sub(r"^```.*?^```[ \t]*$", "", page.read_text(), flags=re.S | re.M)


def _name(page):
    return str(page.relative_to(ROOT))


def _command_id(page, text):
    args = re.sub(r"'.*'", "TEXT", text.splitlines()[0][len(COMMAND):].split("  #")[0].strip())
    return f"{_name(page)}:{args}"


CONSOLE = [pytest.param(page, text, id=_command_id(page, text))
           for page in PAGES for _, text in blocks(page) if text.startswith(COMMAND)]

# What may differ from machine to machine: the error digits (with the BLAS), long float reprs, torch's version.
_MASKS = [(re.compile(r"[-+]?\d\.\d+e[-+]\d+"), "<err>"), (re.compile(r"[-+]?\d+\.\d{9,}"), "<float>"),
          (re.compile(r"PyTorch \S+"), "PyTorch <version>"), (re.compile(r"\d+\.\d+ ms\b"), "<ms>")]


if "MUTANT_UNDER_TEST" in os.environ:  # mutmut rewrites the source: explain's line numbers are not the file's
    _MASKS.append((re.compile(r"((?:manual|crosscheck)/[\w/]+\.py):\d+"), r"\1:<line>"))


def _masked(line):
    for pattern, placeholder in _MASKS:
        line = pattern.sub(placeholder, line)
    return line.rstrip()


def _matches(shown, printed):
    """Line by line after masking; a line `...` in the shown text stands for any number of printed lines."""
    pattern = "".join(r"(?:.*\n)*?" if line == "..." else re.escape(_masked(line)) + r"\n" for line in shown)
    return re.fullmatch(pattern, "".join(_masked(line) + "\n" for line in printed)) is not None


def test_the_readme_shows_a_commands_output():
    assert any(param.values[0].name == "README.md" for param in CONSOLE)


def run(args):
    """cli.main(args) -> its exit code, --help's too (argparse exits), help wrapped at 100 columns."""
    os.environ["COLUMNS"] = "100"
    try:
        return cli.main(args)
    except SystemExit as exit:
        return exit.code
    finally:
        del os.environ["COLUMNS"]


@pytest.mark.parametrize(("page", "block"), CONSOLE)
def test_shown_output_is_what_the_command_prints(page, block, capsys):
    command, *shown = block.rstrip("\n").split("\n")
    args = shlex.split(command[len(COMMAND):], comments=True)
    marker = re.search(r"#\s*exit\s+(\d+)\s*$", command)
    code = run(args)
    captured = capsys.readouterr()
    printed = (captured.out + captured.err).rstrip("\n").split("\n")
    assert code == (int(marker.group(1)) if marker else 0), f"{_name(page)}: {command}: exit code {code}"
    assert _matches(shown, printed), (f"{_name(page)}: `{command}` prints something else now; regenerate the block "
                                      f"from its output:\n" + "\n".join(printed))


def _examples():
    return {p.read_text(): p for p in (ROOT / "examples").rglob("*.py")}


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_whole_example_files_are_shown_verbatim(page):
    """A python block that opens with a module docstring is a whole file of examples/, character for character."""
    for _, text in blocks(page, "python"):
        if text.startswith('"""'):
            assert text in _examples(), f"{_name(page)}: a python block is no longer the file it shows:\n{text}"


def test_the_user_layer_example_is_shown_verbatim():
    example = (ROOT / "examples" / "user_layer" / "test_my_layer.py").read_text()
    assert any(example == text for page in PAGES for _, text in blocks(page, "python"))


def _parsers():
    """{command: its parser}, "" being the top-level parser."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {"": parser, **sub.choices}


def _command_lines(page):
    """Every crosscheck command line of a page: in bash blocks and in inline code."""
    lines = [line for _, text in blocks(page, "bash") for line in text.splitlines()]
    lines += re.findall(r"`([^`\n]*)`", prose(page))
    return [re.sub(r"^.*?\b(?:python3? -m )?crosscheck\b", "", line.split("&&")[-1].split("#")[0]).strip()
            for line in lines if re.search(r"(?:^|python3? -m |\s)crosscheck(?:\s|$)", line)]


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_command_lines_name_commands_and_options_that_exist(page):
    parsers = _parsers()
    for args in _command_lines(page):
        words = args.split()
        command = words[0] if words and words[0] in parsers else "seed"
        help_text = parsers[command].format_help() + parsers[""].format_help()
        for option in re.findall(r"(?:^|\s)(--?[a-zA-Z][\w-]*)", args):
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text), (
                f"{_name(page)}: `crosscheck {args}`: {option} is not an option of crosscheck {command}")


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_links_stay_inside_the_repository(page):
    text = prose(page)
    assert "://" not in text, f"{_name(page)} links outside the repository"
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), f"{_name(page)}: broken link {target}"


def test_the_readme_is_short_and_leads_to_every_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for page in PAGES[1:]:
        assert f"](docs/{page.name})" in readme, f"the README does not link docs/{page.name}"
