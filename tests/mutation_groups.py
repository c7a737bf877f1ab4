"""Mutation testing one group of modules at a time, each group with the test files that exercise it.

    python tests/mutation_groups.py GROUP [MUTANT ...] [--max-children C]      (tox -e mutation-group -- judges)

`tox -e mutation` mutates all of manual/ and crosscheck/ at once: its first pass runs the whole suite serially under
mutmut's trampolines, and every mutant of a helper that most tests call runs most of the suite. On two cores that is
most of a day. A group mutates some modules and selects the test files that exercise them (GROUPS): the first pass
takes minutes, and a mutant the group's tests kill is killed by the whole suite, so a group's score is a lower bound
of the whole suite's.

The group runs in .mutation/GROUP/: a copy of this checkout's files (tracked and untracked, not ignored; uncommitted
changes included) whose [tool.mutmut] gets the group's `only_mutate` and `pytest_add_cli_args_test_selection`.
.mutation/GROUP/mutants/ keeps every verdict: a second call tests only the functions whose text changed, and
mutants named on the command line (after a new test) are tested again. At the end it prints each module's counts
and every survivor; `cd .mutation/GROUP && python -m mutmut show NAME` shows one.
"""

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
from collections import Counter

from mutation_sample import DETECTED, NAMES  # mutmut's exit codes, read the same way by both scripts

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHECKS = "tests/test_judges.py", "tests/test_suite_can_fail.py"  # the judges' own tests: in every group
GROUPS = {
    # the comparison rule, the tolerance table, finite differences, gradcheck and the diagnosis
    "judges": (["crosscheck/compare.py", "crosscheck/tolerances.py", "crosscheck/numerical.py",
                "crosscheck/gradcheck.py", "crosscheck/diagnose.py", "crosscheck/hypotheses.py"],
               ["check", "user_api", "numerical", "diagnose", "diagnose_rules", "diagnose_report", "hypotheses",
                "gradcheck", "catalogue", "catalogue_formulas", "explain_diagnose_cli", "attention", "recurrent",
                "sequences"]),
    # the hand-written backprop
    "manual": (["manual/*"],
               ["functional", "kernels", "network", "optim", "recurrent", "attention", "seed_network",
                "normalization", "dropout", "embedding", "sequences", "graph", "bad_input", "hostile_input",
                "readme", "user_api", "conv_transpose_checks", "functional_edges", "recurrent_optim_edges",
                "recurrent_sequence_edges", "recurrent_backward_edges", "attention_checks_edges", "batch_norm_edges",
                "functional_input_edges", "recurrent_weight_checks",
                "attention_mask_edges", "kernels_edges", "pooling_edges", "layer_norm_edges", "optim_normalize_edges",
                "conv_output_edges", "network_backward_edges"]),
    # everything else the harness is: walks, the user API and its adapters, training runs, reports, the CLI
    "harness": (["crosscheck/check.py", "crosscheck/api.py", "crosscheck/adapters.py", "crosscheck/subjects.py",
                 "crosscheck/train.py", "crosscheck/cli.py", "crosscheck/render.py", "crosscheck/reports.py",
                 "crosscheck/runfile.py", "crosscheck/plots.py", "crosscheck/pytest_plugin.py",
                 "crosscheck/frames.py", "crosscheck/__init__.py", "crosscheck/__main__.py", "crosscheck/catalogue/*"],
                ["check", "user_api", "user_api_findings", "adapters", "bad_input", "hostile_input", "wrong_shapes",
                 "cli", "verify_cli", "ci_formats", "limits", "runfile", "spec", "train", "plots", "pytest_plugin",
                 "catalogue", "explain_diagnose_cli", "diagnose", "docs"]),
}


def configured(pyproject, group):
    """pyproject.toml's text with the group's modules and test files added under [tool.mutmut]."""
    modules, tests = GROUPS[group]
    files = [*CHECKS, *(f"tests/test_{name}.py" for name in tests)]
    head, sep, tail = pyproject.partition("[tool.mutmut]\n")
    if not sep:
        raise ValueError("pyproject.toml has no [tool.mutmut] table")
    return (f"{head}{sep}only_mutate = {json.dumps(modules)}\n"
            f"pytest_add_cli_args_test_selection = {json.dumps(files)}\n{tail}")


def copy_checkout(dest):
    """This checkout's files (tracked and untracked, not ignored) into dest; files whose bytes are unchanged are left
    alone, so mutmut sees only what changed."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, listed):
        src, dst = ROOT / name, dest / name
        if src.is_file() and not (dst.is_file() and dst.read_bytes() == src.read_bytes()):
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def summary(where):
    """{module path: Counter of verdicts}, [(verdict, mutant name)] not detected, over where/mutants/**.meta."""
    counts, missed = {}, []
    for meta in sorted((where / "mutants").rglob("*.meta")):
        module = meta.relative_to(where / "mutants").as_posix().removesuffix(".meta")
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            verdict = "killed" if code in DETECTED else NAMES.get(code, f"exit {code}")
            counts.setdefault(module, Counter())[verdict] += 1
            if verdict != "killed":
                missed.append((verdict, name))
    return counts, missed


def report(counts, missed):
    """The lines printed at the end of a run."""
    lines = []
    for module, c in counts.items():
        total = sum(c.values())
        lines.append(f"{module}: {total} mutants, {c['killed']} killed ({c['killed'] / total:.1%}); "
                     + ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k != "killed"))
    return lines + [f"  {verdict}: {name}" for verdict, name in missed]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("group", choices=sorted(GROUPS))
    parser.add_argument("mutants", nargs="*", help="mutant names to test again")
    parser.add_argument("--max-children", type=int, default=2)
    args = parser.parse_args(argv)
    where = ROOT / ".mutation" / args.group
    copy_checkout(where)
    (where / "pyproject.toml").write_text(configured((ROOT / "pyproject.toml").read_text(), args.group))
    subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children), *args.mutants],
                   cwd=where)
    print("\n".join(report(*summary(where))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
