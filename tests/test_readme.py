"""The README's own promises: CI runs its test command, and its slides-to-code table names what the code computes.

Its sample output, its command lines and its links are checked with every page of docs/ in tests/test_docs.py."""

import pathlib
import re

from manual import seed_network

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SEED_NETWORK = (ROOT / "manual" / "seed_network.py").read_text()


def _blocks(language):
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.S | re.M)


def test_ci_runs_the_readmes_test_command():
    setup = next(b for b in _blocks("bash") if "python3 -m tox" in b)
    main_command, test_command = (line.split("#")[0].strip() for line in setup.strip().splitlines())
    assert main_command.endswith("python3 -m crosscheck")
    assert test_command in (ROOT / ".ci" / "run").read_text()


def _slides_table():
    """The rows of the table from the slides' equations to the code: (slides, name, value, shape, function)."""
    lines = README.split("| slides ", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    return [[cell.strip().strip("`") for cell in line.strip().strip("|").split(" | ")] for line in lines]


def test_the_slides_table_names_what_the_seed_network_computes():
    rows = _slides_table()
    assert [name for _, name, *_ in rows[:-1]] == list(seed_network.EQUATIONS)  # every factor, in backward's order
    for _, name, _, _, function in rows:
        assert function.startswith(f"{name}(") and f"def {function}:" in SEED_NETWORK, function
        assert name == "sgd_step" or f'g["{name}"] = eq["{name}"]' in SEED_NETWORK, name
