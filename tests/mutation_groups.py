"""Mutation testing one group of modules at a time, each group with the test files that exercise it.

    python tests/mutation_groups.py GROUP [MUTANT ...] [--max-children C]      (tox -e mutation-group -- judges)
    python tests/mutation_groups.py GROUP MUTANT ... --fresh [--tests NAME ...]

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

mutmut 3 forgets every verdict when the list of test files changes. A list that only grew cannot save a mutant that
was killed (every test that killed it still runs), so the group keeps the killed verdicts (selection.json records the
list) and tests again only those that were not killed.

Code that runs when a module is imported (the catalogue's entries are built at import) escapes mutmut's workers:
they are forked from a process that imported the module before a mutant was chosen, and the stats credit the call
to whichever test imported it first. `--fresh` tests each named mutant (wildcards as mutmut's) in a new pytest
process started with the mutant chosen, over the group's test files or `--tests`; the verdicts go to fresh.json with
the mutated function's hash, and count in the report instead of mutmut's while that function's text is unchanged.
"""

import argparse
import fnmatch
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tomllib
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
                "sequences", "judges_boundaries_more", "diagnosis_boundaries", "classify_rules", "loss_hypotheses",
                "graph", "compare_numerical_edges", "hypotheses_scales_edges", "gradcheck_edges"]),
    # the hand-written backprop
    "manual": (["manual/*"],
               ["functional", "kernels", "network", "optim", "recurrent", "attention", "seed_network",
                "normalization", "dropout", "embedding", "sequences", "graph", "bad_input", "hostile_input",
                "readme", "user_api", "conv_transpose_checks", "functional_edges", "recurrent_optim_edges",
                "recurrent_sequence_edges", "recurrent_backward_edges", "attention_checks_edges", "batch_norm_edges",
                "functional_input_edges", "recurrent_weight_checks",
                "attention_mask_edges", "kernels_edges", "pooling_edges", "layer_norm_edges", "optim_normalize_edges",
                "conv_output_edges", "network_backward_edges", "kernels_more_edges"]),
    # everything else the harness is: walks, the user API and its adapters, training runs, reports, the CLI
    "harness": (["crosscheck/check.py", "crosscheck/api.py", "crosscheck/adapters.py", "crosscheck/subjects.py",
                 "crosscheck/train.py", "crosscheck/cli.py", "crosscheck/render.py", "crosscheck/reports.py",
                 "crosscheck/runfile.py", "crosscheck/plots.py", "crosscheck/pytest_plugin.py",
                 "crosscheck/frames.py", "crosscheck/__init__.py", "crosscheck/__main__.py", "crosscheck/catalogue/*"],
                ["check", "user_api", "user_api_findings", "adapters", "bad_input", "hostile_input", "wrong_shapes",
                 "cli", "verify_cli", "ci_formats", "limits", "runfile", "spec", "train", "plots", "pytest_plugin",
                 "catalogue", "explain_diagnose_cli", "diagnose", "docs", "check_api_edges", "adapters_edges",
                 "pytest_plugin_reports_edges", "render_cli_edges", "catalogue_formulas", "catalogue_layer_formulas",
                 "catalogue_optimizer_formulas", "catalogue_sequence_formulas", "catalogue_networks",
                 "plots_train_edges", "render_diagnose_edges", "subjects_check_edges", "check_layer_run_edges",
                 "check_layer_arguments_edges", "check_layer_judge_edges", "training_subjects_edges",
                 "runfile_inject_edges", "seed_walk_edges", "figures_edges", "optim", "divergence_train_edges",
                 "filter_figures_edges", "picture_style"]),
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


def _where_from(name):
    """A mutant's module path and mangled function: 'crosscheck.a.x_f__mutmut_3' -> ('crosscheck/a.py', 'x_f')."""
    module, _, function = name.rpartition("__mutmut_")[0].rpartition(".")
    return module.replace(".", "/") + ".py", function


def function_hash(metas, name):
    """The hash mutmut keeps of the text of the function a mutant changes (None if it keeps none)."""
    module, function = _where_from(name)
    return metas.get(module, {}).get("hash_by_function_name", {}).get(function)


def fresh_verdicts(where, metas):
    """{mutant name: exit code} of where/fresh.json, each kept while its function's hash is still the meta's."""
    path = where / "fresh.json"
    found = json.loads(path.read_text()) if path.is_file() else {}
    return {name: code for name, (code, digest) in found.items() if function_hash(metas, name) == digest}


def read_metas(where):
    """{module path: the meta's JSON} over where/mutants/**.meta."""
    return {meta.relative_to(where / "mutants").as_posix().removesuffix(".meta"): json.loads(meta.read_text())
            for meta in sorted((where / "mutants").rglob("*.meta"))}


def summary(where):
    """{module path: Counter of verdicts}, [(verdict, mutant name)] not detected, over where/mutants/**.meta, with
    where/fresh.json's verdicts in place of mutmut's."""
    counts, missed = {}, []
    metas = read_metas(where)
    fresh = fresh_verdicts(where, metas)
    for module, data in metas.items():
        for name, code in data["exit_code_by_key"].items():
            code = fresh.get(name, code)
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


def selection_hash(files):
    """mutmut's fingerprint of a list of test files (its Config.config_fingerprint()["test_selection"])."""
    return hashlib.sha256(repr(tuple(files)).encode()).hexdigest()[:12]


def keep_killed(where, files):
    """Before a run whose test files are `files`: if where/selection.json's earlier list is a part of them, keep the
    killed verdicts (mutmut would forget them all) and set every other decided one back to untested -> a line to
    print, or None when there is nothing to keep."""
    stats_path, chosen = where / "mutants" / "mutmut-stats.json", where / "selection.json"
    if not (stats_path.is_file() and chosen.is_file()):
        return None
    before = json.loads(chosen.read_text())
    stats = json.loads(stats_path.read_text())
    fingerprint = stats.get("config_fingerprint", {})
    if (before == files or not set(before) <= set(files)
            or fingerprint.get("test_selection") != selection_hash(before)):
        return None
    again = 0
    for module, data in read_metas(where).items():
        codes = data["exit_code_by_key"]
        retest = [name for name, code in codes.items() if code is not None and code not in DETECTED]
        codes.update(dict.fromkeys(retest, None))
        again += len(retest)
        (where / "mutants" / f"{module}.meta").write_text(json.dumps(data, indent=4))
    fingerprint["test_selection"] = selection_hash(files)
    stats_path.write_text(json.dumps(stats))
    return (f"the test files grew from {len(before)} to {len(files)}: killed verdicts kept, {again} others "
            "to test again")


def pytest_command(where, files):
    """The pytest command line of a fresh run: mutmut's own options (-x, the table's pytest_add_cli_args)."""
    table = tomllib.loads((where / "pyproject.toml").read_text())["tool"]["mutmut"]
    return [sys.executable, "-m", "pytest", "-x", "-q", *table.get("pytest_add_cli_args", []), *files]


def fresh(where, patterns, files, timeout, keyword=None):
    """Test each mutant matching `patterns` in a new pytest process over `files` (the tests matching `keyword`, as
    pytest's -k, if given) started with the mutant chosen; each verdict is saved to where/fresh.json as it comes,
    with the function's hash; a kill that is still current is not tested again. Pytest's own exit code is the
    verdict (0 survived, 5 no tests); any other failure is a kill, because the same command passes without a
    mutant (checked first). Returns the number tested."""
    metas = read_metas(where)
    path = where / "fresh.json"
    done = {name for name, code in fresh_verdicts(where, metas).items() if code in DETECTED}
    names = [name for data in metas.values() for name in data["exit_code_by_key"]
             if any(fnmatch.fnmatch(name, pattern) for pattern in patterns) and name not in done]
    command = pytest_command(where, files) + ([] if keyword is None else ["-k", keyword])
    found = json.loads(path.read_text()) if path.is_file() else {}

    def run(mutant):
        env = os.environ | {"MUTANT_UNDER_TEST": mutant, "PYTHONPATH": str(where / "mutants")}
        try:
            return subprocess.run(command, cwd=where / "mutants", env=env, capture_output=True,
                                  timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return 36  # mutmut's timeout

    if names and run("") != 0:
        raise SystemExit(f"the tests fail without a mutant: {' '.join(command)} in {where / 'mutants'}")
    for i, name in enumerate(names, 1):
        code = run(name)
        code = {0: 0, 5: 33, 36: 36}.get(code, 1)
        found[name] = [code, function_hash(metas, name)]
        path.write_text(json.dumps(found, indent=1))
        print(f"{i}/{len(names)} {name}: {NAMES.get(code, 'killed')}", flush=True)
    return len(names)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("group", choices=sorted(GROUPS))
    parser.add_argument("mutants", nargs="*", help="mutant names to test again (wildcards as mutmut's)")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--fresh", action="store_true",
                        help="test the named mutants each in a new pytest process (code that runs at import)")
    parser.add_argument("--tests", nargs="+", metavar="NAME", help="with --fresh: these tests/test_NAME.py files")
    parser.add_argument("--keyword", "-k", help="with --fresh: only the tests pytest's -k selects")
    parser.add_argument("--timeout", type=float, default=600, help="with --fresh: seconds a mutant may take")
    args = parser.parse_args(argv)
    if args.fresh and not args.mutants:
        parser.error("--fresh needs the names of the mutants to test")
    where = ROOT / ".mutation" / args.group
    copy_checkout(where)
    (where / "pyproject.toml").write_text(configured((ROOT / "pyproject.toml").read_text(), args.group))
    files = tomllib.loads((where / "pyproject.toml").read_text())["tool"]["mutmut"][
        "pytest_add_cli_args_test_selection"]
    if args.fresh:
        fresh(where, args.mutants, [f"tests/test_{name}.py" for name in args.tests] if args.tests else files,
              args.timeout, args.keyword)
    else:
        kept = keep_killed(where, files)
        if kept:
            print(kept)
        # before the run: a run stopped halfway has the stats of `files` already, and a selection.json of the list
        # before would make the next call's keep_killed keep nothing (and mutmut forget every verdict)
        (where / "selection.json").write_text(json.dumps(files))
        subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children),
                        *args.mutants], cwd=where)
    print("\n".join(report(*summary(where))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
