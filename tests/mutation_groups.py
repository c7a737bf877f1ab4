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

    python tests/mutation_groups.py GROUP [MUTANT ...] --fast [--workers W] [--max-tests N] [--max-duration S]

mutmut's loop starts a pytest session per mutant and runs every test that reaches the function: a survivor of a
helper that 500 tests call costs minutes. `--fast` (after mutmut's first pass has written its stats) collects the
group's tests once and forks a child per mutant not decided, which runs the fastest tests that reach its function
(at most N, each under S seconds by the stats) and stops at the first failure. A kill by some of the group's tests
is a kill by the group: it goes to fresh.json once the failing test has passed in the same forked way without a
mutant. fast.json keeps each outcome as it comes, so a run stopped halfway goes on where it stopped. A mutant that
passes its tests stays undecided, for mutmut's loop or a review; one that takes longer than --timeout is no verdict.

    python tests/mutation_groups.py GROUP MUTANT ... --review equivalent|killed WHY

mutants/ lives in .mutation/, which no clone carries: tests/mutation_record/GROUP.json does. Each run ends by writing
it (each function's hash and one letter per mutant: k killed, s survived, n no tests, . not checked, x anything else;
the test files they were reached with; mutmut's version, whose numbering the letters follow), and a run on a new
machine starts from it: a verdict is restored where the function's text and mutmut's version are unchanged, all of
them if the test files are the same, the kills only if the files grew, none if a file is gone. A survivor read by a
person is recorded with `--review`: "equivalent" and why no test can tell it from the original, or "killed" and the
test that kills it; the review is kept while the function's text is unchanged, and the report counts it.
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
RECORD = ROOT / "tests" / "mutation_record"  # each group's verdicts, committed: mutants/ does not travel
CODE = {"k": 1, "s": 0, "n": 33}  # a recorded letter -> the exit code restored; "." and "x" restore nothing
CHECKS = "tests/test_judges.py", "tests/test_suite_can_fail.py"  # the judges' own tests: in every group
GROUPS = {
    # the comparison rule, the tolerance table, finite differences, gradcheck and the diagnosis
    "judges": (["crosscheck/compare.py", "crosscheck/tolerances.py", "crosscheck/numerical.py",
                "crosscheck/gradcheck.py", "crosscheck/diagnose.py", "crosscheck/hypotheses.py"],
               ["check", "user_api", "numerical", "diagnose", "diagnose_rules", "diagnose_report", "hypotheses",
                "gradcheck", "catalogue", "catalogue_formulas", "explain_diagnose_cli", "attention", "recurrent",
                "sequences", "judges_boundaries_more", "diagnosis_boundaries", "classify_rules", "loss_hypotheses",
                "graph", "compare_numerical_edges", "hypotheses_scales_edges", "gradcheck_edges",
                "mutants_judges_review", "mutants_judges_nudge", "mutants_judges_transposes", "adapters"]),
    # the hand-written backprop
    "manual": (["manual/*"],
               ["functional", "kernels", "network", "optim", "recurrent", "attention", "seed_network",
                "normalization", "dropout", "embedding", "sequences", "graph", "bad_input", "hostile_input",
                "readme", "user_api", "conv_transpose_checks", "functional_edges", "recurrent_optim_edges",
                "recurrent_sequence_edges", "recurrent_backward_edges", "attention_checks_edges", "batch_norm_edges",
                "functional_input_edges", "recurrent_weight_checks",
                "attention_mask_edges", "kernels_edges", "pooling_edges", "layer_norm_edges", "optim_normalize_edges",
                "conv_output_edges", "network_backward_edges", "kernels_more_edges",
                "mutants_manual_seed_train", "mutants_manual_shapes"]),
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
                 "filter_figures_edges", "picture_style", "mutants_cli_main", "mutants_cli_train",
                 "mutants_reports_runfile", "mutants_subjects_walk", "mutants_subjects_seed", "mutants_train_api",
                 "mutants_plots_runs", "mutants_plots_panels", "mutants_train_plugin", "mutants_render_check",
                 "mutants_api_catalogue", "mutants_catalogue_layers", "mutants_cli_parser"]),
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


def mutated(name):
    """The function a mutant changes: 'crosscheck.a.x_f__mutmut_3' -> 'crosscheck.a.x_f'."""
    return name.rpartition("__mutmut_")[0]


def _where_from(name):
    """A mutant's module path and mangled function: 'crosscheck.a.x_f__mutmut_3' -> ('crosscheck/a.py', 'x_f')."""
    module, _, function = mutated(name).rpartition(".")
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


def letter(code):
    """The record's letter of a mutmut exit code."""
    return "k" if code in DETECTED else {0: "s", 33: "n", 5: "n", None: "."}.get(code, "x")


def reviews(record, metas):
    """{mutant name: (verdict, why)} of the record's reviews whose function's text is still the one reviewed."""
    return {name: (verdict, why) for name, (digest, verdict, why) in record.get("reviewed", {}).items()
            if function_hash(metas, name) == digest}


def summary(where, record=None):
    """{module path: Counter of verdicts}, [(verdict, mutant name)] not detected, over where/mutants/**.meta, with
    where/fresh.json's verdicts in place of mutmut's and a current review (record's) in place of any other than a
    kill."""
    counts, missed = {}, []
    metas = read_metas(where)
    fresh = fresh_verdicts(where, metas)
    reviewed = reviews(record or {}, metas)
    for module, data in metas.items():
        for name, code in data["exit_code_by_key"].items():
            code = fresh.get(name, code)
            verdict = "killed" if code in DETECTED else NAMES.get(code, f"exit {code}")
            if verdict != "killed" and name in reviewed:
                verdict = reviewed[name][0]
            counts.setdefault(module, Counter())[verdict] += 1
            if verdict not in ("killed", "equivalent"):
                missed.append((verdict, name))
    return counts, missed


def mutmut_version():
    """The installed mutmut's version: its mutants' numbers, which the record's letters follow, are its own."""
    from importlib.metadata import version
    return version("mutmut")


def write_record(where, path, files, mutmut):
    """where's verdicts into the record at path (see the module's text), with the version of mutmut that made the
    mutants, keeping the record's reviews that are still current -> {letter: count}."""
    metas = read_metas(where)
    fresh = fresh_verdicts(where, metas)
    old = json.loads(path.read_text()) if path.is_file() else {}
    modules, counts = {}, Counter()
    for module, data in metas.items():
        by_function = {}
        for name, code in data["exit_code_by_key"].items():
            function, _, number = name.rpartition("__mutmut_")
            by_function.setdefault(function, {})[int(number)] = letter(fresh.get(name, code))
        modules[module] = {}
        for function, letters in sorted(by_function.items()):
            text = "".join(letters.get(i, ".") for i in range(1, max(letters) + 1))
            modules[module][function] = [function_hash(metas, f"{function}__mutmut_1"), text]
            counts.update(letters.values())
    reviewed = {name: [function_hash(metas, name), *verdict] for name, verdict in reviews(old, metas).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mutmut": mutmut, "tests": files, "modules": modules,
                                "reviewed": dict(sorted(reviewed.items()))}, indent=1, ensure_ascii=False) + "\n")
    return dict(counts)


def restore_record(where, path, files, mutmut):
    """Before a run: the record's verdicts into where/mutants/**.meta, for each mutant not decided there whose
    function's text is the one recorded (a meta mutmut has not written yet takes the record's hashes, and mutmut keeps
    its verdicts while the text is unchanged) -> a line to print, or None without a record."""
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record["mutmut"] != mutmut:
        return f"{path.name}: mutants of mutmut {record['mutmut']}, this is {mutmut}: nothing restored"
    if not set(record["tests"]) <= set(files):
        return f"{path.name}: a test file it was reached with is not in the group now, nothing restored"
    keep = "ksn" if record["tests"] == files else "k"
    restored = 0
    for module, functions in record["modules"].items():
        meta = where / "mutants" / f"{module}.meta"
        data = json.loads(meta.read_text()) if meta.is_file() else {
            "exit_code_by_key": {}, "hash_by_function_name": {}, "durations_by_key": {},
            "estimated_durations_by_key": {}}
        codes, hashes = data["exit_code_by_key"], data["hash_by_function_name"]
        for function, (digest, letters) in functions.items():
            if hashes.setdefault(function.rpartition(".")[2], digest) != digest:
                continue
            for number, mark in enumerate(letters, 1):
                name = f"{function}__mutmut_{number}"
                if mark in keep and codes.get(name) is None:
                    codes[name] = CODE[mark]
                    restored += 1
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps(data, indent=4))
    kind = "verdicts" if keep == "ksn" else "kills (the test files grew since)"
    return f"{path.name}: {restored} {kind} restored"


def review(where, path, patterns, verdict, why):
    """Record a person's verdict on each mutant matching `patterns` that is not killed (survived, not checked: passed
    its tests in --fast, or no tests), with the hash of its function's text -> the names recorded."""
    metas = read_metas(where)
    fresh = fresh_verdicts(where, metas)
    record = json.loads(path.read_text())
    names = [name for data in metas.values() for name, code in data["exit_code_by_key"].items()
             if any(fnmatch.fnmatch(name, pattern) for pattern in patterns)
             and letter(fresh.get(name, code)) != "k"]
    for name in names:
        record["reviewed"][name] = [function_hash(metas, name), verdict, why]
    record["reviewed"] = dict(sorted(record["reviewed"].items()))
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return names


def report(counts, missed):
    """The lines printed at the end of a run."""
    lines = []
    for module, c in counts.items():
        total = sum(c.values())
        lines.append(f"{module}: {total} mutants, {c['killed']} killed ({c['killed'] / total:.1%}); "
                     + ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k != "killed"))
    return lines + [f"  {verdict}: {name}" for verdict, name in missed]


def score(counts):
    """The group's score line: killed over all mutants but the equivalent ones."""
    total = sum(counts.values(), Counter())
    decided = sum(total.values()) - total["equivalent"]
    return (f"score: {total['killed']} killed of {decided} mutants not equivalent "
            f"({total['killed'] / max(decided, 1):.1%}); {total['equivalent']} equivalent")


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


def fast_plan(where, patterns, max_tests, max_duration):
    """{mutant: [test ids]} for each mutant not decided (by mutmut or a current kill in fresh.json) that matches
    `patterns` (all if none): the fastest tests mutmut's stats say reach its function, at most max_tests, each under
    max_duration seconds; a mutant with no such test is left out."""
    metas = read_metas(where)
    stats = json.loads((where / "mutants" / "mutmut-stats.json").read_text())
    reach, duration = stats["tests_by_mangled_function_name"], stats["duration_by_test"]
    done = {name for name, code in fresh_verdicts(where, metas).items() if code in DETECTED}
    plan = {}
    for data in metas.values():
        for name, code in data["exit_code_by_key"].items():
            if code is not None or name in done or (patterns and not any(
                    fnmatch.fnmatch(name, pattern) for pattern in patterns)):
                continue
            tests = sorted((t for t in reach.get(mutated(name.replace("__init__.", "")), ())
                            if duration.get(t, max_duration + 1) <= max_duration), key=lambda t: (duration[t], t))
            if tests[:max_tests]:
                plan[name] = tests[:max_tests]
    return plan


class ForkedRuns:
    """A pytest plugin that, once the tests are collected, runs each of `jobs` ((key, mutant, [test ids])) in a forked
    child with the mutant chosen ("" none; at most `workers` children at once) and calls done(key, code, the failing
    test's id or None): code 1 a test failed, 0 all passed, None the child ran past `timeout` seconds or died. A test
    that killed a mutant of a function runs first for the function's next mutants (the latest killer first): the
    mutants of one line or one string are mostly killed by the same test."""

    def __init__(self, jobs, workers, timeout, done, killers=None):
        self.jobs, self.workers, self.timeout, self.done = jobs, workers, timeout, done
        self.killers = killers or {}  # {function: [test ids that killed one of its mutants, the latest first]}

    def order(self, mutant, tests):
        """`tests` with the function's killers first."""
        killers = [t for t in self.killers.get(mutated(mutant), []) if t in tests]
        return killers + [t for t in tests if t not in killers]

    def killed(self, mutant, test):
        """`test` killed `mutant`: first among its function's killers."""
        killers = self.killers.setdefault(mutated(mutant), [])
        killers[:] = [test, *(t for t in killers if t != test)]

    def pytest_runtestloop(self, session):
        import time

        from _pytest.runner import runtestprotocol
        items = {item.nodeid: item for item in session.items}
        running, jobs = {}, list(self.jobs)
        while jobs or running:
            while jobs and len(running) < self.workers:
                key, mutant, tests = jobs.pop(0)
                tests = self.order(mutant, tests)
                reader, writer = os.pipe()
                pid = os.fork()
                if pid == 0:  # the child: run the tests, report the first that fails
                    os.close(reader)
                    os.environ["MUTANT_UNDER_TEST"] = mutant
                    failed = next((t for t in tests if t in items and any(
                        r.failed for r in runtestprotocol(items[t], nextitem=None, log=False))), "")
                    os.write(writer, failed.encode())
                    os._exit(1 if failed else 0)
                os.close(writer)
                running[pid] = (key, mutant, reader, time.monotonic())
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                for pid, (*_, start) in list(running.items()):
                    if time.monotonic() - start > self.timeout:
                        os.kill(pid, 9)
                time.sleep(0.02)
                continue
            key, mutant, reader, _ = running.pop(pid)
            with os.fdopen(reader, "rb") as stream:
                failed = stream.read().decode()
            code = os.waitstatus_to_exitcode(status)
            if failed:
                self.killed(mutant, failed)
            self.done(key, code if code in (0, 1) else None, failed or None)
        return True


def forked(where, files, jobs, workers, timeout, each=None, killers=None):
    """Run `jobs` ((key, mutant, [test ids])) as ForkedRuns (with `killers`) in a child process in where/mutants
    (mutmut's mutated tree), calling each(key, code, failing test) as each job ends -> {key: [code, failing test]}."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        import pytest
        os.close(reader)
        os.chdir(where / "mutants")
        sys.path.insert(0, str(where / "mutants"))
        os.environ["MUTANT_UNDER_TEST"] = ""
        out = os.fdopen(writer, "w")

        def done(key, code, failed):
            out.write(json.dumps([key, code, failed]) + "\n")
            out.flush()

        code = pytest.main(["-q", "-p", "no:cacheprovider", *files],
                           plugins=[ForkedRuns(jobs, workers, timeout, done, killers)])
        out.close()
        os._exit(0 if code in (0, 5) else 3)
    os.close(writer)
    found = {}
    with os.fdopen(reader) as stream:
        for line in stream:
            key, code, failed = json.loads(line)
            found[key] = [code, failed]
            if each:
                each(key, code, failed)
    os.waitpid(pid, 0)
    return found


def fast(where, patterns, files, workers=2, max_tests=150, max_duration=0.5, timeout=60, out=print, first=()):
    """Test each undecided mutant matching `patterns` (all if none) with its fastest tests (fast_plan), after the
    test ids `first` (tests the stats do not link, or that the fastest leave out: the docs' --help blocks for a
    parser's help texts), in forked children. Each outcome is saved as it comes to where/fast.json ({mutant: [code,
    failing test, function's hash, tests planned]}); a mutant with a current outcome there is not tested again, unless
    it passed fewer tests than it has now (a larger max_tests or max_duration, or tests `first`: the plan's fastest
    tests come first). The tests that killed a function's mutants in fast.json run first for its others. Then each
    failing test is run without a mutant in the same way, and a kill whose test passed there goes to where/fresh.json
    -> {"killed": n, "passed": n, "no verdict": n} over fast.json's current outcomes (a kill whose test fails alone
    is no verdict)."""
    metas = read_metas(where)
    path = where / "fast.json"
    outcomes = {name: entry for name, entry in (json.loads(path.read_text()) if path.is_file() else {}).items()
                if entry[2] == function_hash(metas, name)}
    plan = {name: [*first, *(t for t in tests if t not in first)]
            for name, tests in fast_plan(where, patterns, max_tests, max_duration).items()}
    plan = {name: tests for name, tests in plan.items()
            if outcomes.get(name, [None])[0] is None or outcomes[name][0] == 0 and outcomes[name][3] < len(tests)}

    def each(mutant, code, failed):
        outcomes[mutant] = [code, failed, function_hash(metas, mutant), len(plan[mutant])]
        path.write_text(json.dumps(outcomes, indent=1))
        out(f"{len(outcomes)} {mutant}: " + {1: f"killed by {failed}", 0: "passed"}.get(code, "no verdict"))

    killers = {}  # the kills fast.json holds already, as ForkedRuns keeps them
    for mutant, (code, failed, *_) in outcomes.items():
        if code == 1:
            killers.setdefault(mutated(mutant), []).append(failed)
    forked(where, files, [(mutant, mutant, tests) for mutant, tests in plan.items()], workers, timeout, each,
           {function: list(dict.fromkeys(tests)) for function, tests in killers.items()})
    culprits = sorted({failed for code, failed, *_ in outcomes.values() if code == 1})
    clean = forked(where, files, [(test, "", [test]) for test in culprits], workers, timeout) if culprits else {}
    fresh_path = where / "fresh.json"
    found = json.loads(fresh_path.read_text()) if fresh_path.is_file() else {}
    counts = Counter()
    for mutant, (code, failed, digest, _) in outcomes.items():
        killed = code == 1 and clean.get(failed, [None])[0] == 0
        if killed:
            found[mutant] = [1, digest]
        counts["killed" if killed else "passed" if code == 0 else "no verdict"] += 1
    fresh_path.write_text(json.dumps(found, indent=1))
    return dict(counts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("group", choices=sorted(GROUPS))
    parser.add_argument("mutants", nargs="*", help="mutant names to test again (wildcards as mutmut's)")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--fresh", action="store_true",
                        help="test the named mutants each in a new pytest process (code that runs at import)")
    parser.add_argument("--tests", nargs="+", metavar="NAME", help="with --fresh: these tests/test_NAME.py files")
    parser.add_argument("--keyword", "-k", help="with --fresh: only the tests pytest's -k selects")
    parser.add_argument("--timeout", type=float,
                        help="with --fresh or --fast: seconds a mutant may take (default 600, with --fast 60)")
    parser.add_argument("--fast", action="store_true",
                        help="after mutmut's first pass: each undecided mutant against its fastest tests, forked")
    parser.add_argument("--workers", type=int, default=2, help="with --fast: children at once")
    parser.add_argument("--max-tests", type=int, default=150, help="with --fast: tests per mutant")
    parser.add_argument("--max-duration", type=float, default=0.5, help="with --fast: seconds a chosen test took")
    parser.add_argument("--first", nargs="+", default=(), metavar="TEST",
                        help="with --fast: test ids to run first for each mutant, before its fastest tests")
    parser.add_argument("--review", nargs=2, metavar=("VERDICT", "WHY"),
                        help="record the named survivors as 'equivalent' (WHY: the reason) or 'killed' (WHY: the test)")
    args = parser.parse_args(argv)
    if (args.fresh or args.review) and not args.mutants:
        parser.error("--fresh and --review need the names of the mutants")
    if args.review and args.review[0] not in ("equivalent", "killed"):
        parser.error(f"--review: got {args.review[0]!r}, needs 'equivalent' or 'killed'")
    where, record = ROOT / ".mutation" / args.group, RECORD / f"{args.group}.json"
    if args.review:
        for name in review(where, record, args.mutants, *args.review):
            print(f"{args.review[0]}: {name}")
        return 0
    copy_checkout(where)
    (where / "pyproject.toml").write_text(configured((ROOT / "pyproject.toml").read_text(), args.group))
    files = tomllib.loads((where / "pyproject.toml").read_text())["tool"]["mutmut"][
        "pytest_add_cli_args_test_selection"]
    restored = restore_record(where, record, files, mutmut_version())
    if restored:
        print(restored)
    if args.fast:
        print(fast(where, args.mutants, files, args.workers, args.max_tests, args.max_duration, args.timeout or 60,
                   first=args.first))
    elif args.fresh:
        fresh(where, args.mutants, [f"tests/test_{name}.py" for name in args.tests] if args.tests else files,
              args.timeout or 600, args.keyword)
    else:
        kept = keep_killed(where, files)
        if kept:
            print(kept)
        # before the run: a run stopped halfway has the stats of `files` already, and a selection.json of the list
        # before would make the next call's keep_killed keep nothing (and mutmut forget every verdict)
        (where / "selection.json").write_text(json.dumps(files))
        subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children),
                        *args.mutants], cwd=where)
    write_record(where, record, files, mutmut_version())
    counts, missed = summary(where, json.loads(record.read_text()))
    print("\n".join([*report(counts, missed), score(counts)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
