"""Rewrite every `$ python3 -m crosscheck ...` block of README.md and docs/*.md with what the command prints now.

    python tests/regenerate_docs.py

A block with lines `...` keeps its pieces between them, each as long as it is now: the first from the start of the
new output, the last from its end, one in between from the line that starts as its first line does (a row's name).
tests/test_docs.py then compares the pages with the commands; run this after a change of what they print.
"""

import contextlib
import io
import pathlib
import re
import shlex
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
import test_docs  # noqa: E402

COMMAND = "$ python3 -m crosscheck"
BLOCK = re.compile(r"^```[^\n]*\n(\$ python3 -m crosscheck[^\n]*)\n(.*?)^```", re.S | re.M)


def printed(command):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        test_docs.run(shlex.split(command[len(COMMAND):], comments=True))
    return (out.getvalue() + err.getvalue()).rstrip("\n").split("\n")


def regenerate(match):
    command, shown = match[1], match[2].rstrip("\n").split("\n")
    lines = printed(command)
    if "..." in shown:
        pieces, piece = [], []
        for line in shown:
            if line == "...":
                pieces.append(piece)
                piece = []
            else:
                piece.append(line)
        pieces.append(piece)
        new = []
        for i, piece in enumerate(pieces):
            if i:
                new.append("...")
            if i == 0:
                new += lines[:len(piece)]
            elif i == len(pieces) - 1:
                new += lines[len(lines) - len(piece):] if piece else []
            else:
                at = next((j for j, line in enumerate(lines) if line[:40] == piece[0][:40]), None)
                new += piece if at is None else lines[at:at + len(piece)]
        lines = new
    fence = match[0].split("\n", 1)[0]
    return "\n".join([fence, command, *lines, "```"])


def main():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        new = BLOCK.sub(regenerate, text)
        if new != text:
            page.write_text(new)
            print(f"rewrote {page.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
