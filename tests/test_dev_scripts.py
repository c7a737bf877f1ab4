"""The team's own long-run scripts (tests/fresh_seeds.py, tests/mutation_sample.py, tests/mutation_groups.py): what
they compute is tested like any other judge."""

import json
import os
import pathlib

import pytest
from mutation_sample import verdicts, wilson

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("detected", "n", "low", "high"), [
    (81, 263, 0.2553, 0.3662),  # Newcombe (1998), Statistics in Medicine 17, table I, method 3
    (0, 10, 0.0, 0.2775),       # nothing detected: the interval still admits 28 %
    (10, 10, 0.7225, 1.0),
    (95, 100, 0.8882, 0.9785),
])
def test_the_score_interval_is_wilsons(detected, n, low, high):
    got = wilson(detected, n)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_the_verdicts_are_read_from_every_meta_file(tmp_path, monkeypatch):
    import mutation_sample
    for path, codes in [("mutants/manual/a.py.meta", {"manual.a.x_f__mutmut_1": 1, "manual.a.x_f__mutmut_2": None}),
                        ("mutants/crosscheck/b/c.py.meta", {"crosscheck.b.c.x_g__mutmut_1": 0})]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(json.dumps({"exit_code_by_key": codes, "durations_by_key": {}}))
    monkeypatch.setattr(mutation_sample, "ROOT", tmp_path)
    assert verdicts() == {"manual.a.x_f__mutmut_1": 1, "manual.a.x_f__mutmut_2": None,
                          "crosscheck.b.c.x_g__mutmut_1": 0}


def test_the_mutation_groups_mutate_every_module_once_with_test_files_that_exist():
    from mutation_groups import CHECKS, GROUPS
    modules = [path for mutate, _ in GROUPS.values() for pattern in mutate for path in ROOT.glob(pattern)
               if path.suffix == ".py"]
    assert sorted(modules) == sorted({*ROOT.glob("manual/**/*.py"), *ROOT.glob("crosscheck/**/*.py")})
    assert len(modules) == len(set(modules))
    for _, tests in GROUPS.values():
        assert all((ROOT / f"tests/test_{name}.py").is_file() for name in tests), tests
    assert all((ROOT / name).is_file() for name in CHECKS)


def test_a_group_adds_its_modules_and_test_files_to_the_mutmut_table():
    import tomllib

    from mutation_groups import configured
    pyproject = (ROOT / "pyproject.toml").read_text()
    table = tomllib.loads(configured(pyproject, "judges"))["tool"]["mutmut"]
    assert table == tomllib.loads(pyproject)["tool"]["mutmut"] | {
        "only_mutate": ["crosscheck/compare.py", "crosscheck/tolerances.py", "crosscheck/numerical.py",
                        "crosscheck/gradcheck.py", "crosscheck/diagnose.py", "crosscheck/hypotheses.py"],
        "pytest_add_cli_args_test_selection": [
            "tests/test_judges.py", "tests/test_suite_can_fail.py", "tests/test_check.py", "tests/test_user_api.py",
            "tests/test_numerical.py", "tests/test_diagnose.py", "tests/test_diagnose_rules.py",
            "tests/test_diagnose_report.py", "tests/test_hypotheses.py", "tests/test_gradcheck.py",
            "tests/test_catalogue.py", "tests/test_catalogue_formulas.py", "tests/test_explain_diagnose_cli.py",
            "tests/test_attention.py", "tests/test_recurrent.py", "tests/test_sequences.py",
            "tests/test_judges_boundaries_more.py", "tests/test_diagnosis_boundaries.py",
            "tests/test_classify_rules.py", "tests/test_loss_hypotheses.py", "tests/test_graph.py",
            "tests/test_compare_numerical_edges.py", "tests/test_hypotheses_scales_edges.py",
            "tests/test_gradcheck_edges.py", "tests/test_mutants_judges_review.py",
            "tests/test_mutants_judges_nudge.py", "tests/test_mutants_judges_transposes.py", "tests/test_adapters.py"]}
    with pytest.raises(ValueError, match=r"^pyproject.toml has no \[tool.mutmut\] table$"):
        configured("[tool.ruff]\n", "judges")


def test_a_group_runs_in_a_copy_of_the_checkout_that_keeps_what_did_not_change(tmp_path):
    from mutation_groups import copy_checkout
    copy_checkout(tmp_path)
    for name in ("crosscheck/compare.py", "tests/mutation_groups.py", "pyproject.toml"):
        assert (tmp_path / name).read_bytes() == (ROOT / name).read_bytes()
    assert not (tmp_path / ".git").exists()
    changed, kept = tmp_path / "crosscheck/compare.py", tmp_path / "manual/optim.py"
    changed.write_text("# changed\n")
    stamp = kept.stat().st_mtime_ns - 10**9
    os.utime(kept, ns=(stamp, stamp))
    copy_checkout(tmp_path)
    assert changed.read_bytes() == (ROOT / "crosscheck/compare.py").read_bytes()
    assert kept.stat().st_mtime_ns == stamp


def test_a_group_reports_each_module_and_every_mutant_not_detected(tmp_path):
    from mutation_groups import report, summary
    for path, codes in [("mutants/manual/a.py.meta", {"manual.a.x_f__mutmut_1": 1, "manual.a.x_f__mutmut_2": 0,
                                                       "manual.a.x_f__mutmut_3": -24, "manual.a.x_f__mutmut_4": 1}),
                        ("mutants/crosscheck/b/c.py.meta", {"crosscheck.b.c.x_g__mutmut_1": 33,
                                                            "crosscheck.b.c.x_g__mutmut_2": None})]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(json.dumps({"exit_code_by_key": codes, "durations_by_key": {}}))
    assert report(*summary(tmp_path)) == [
        "crosscheck/b/c.py: 2 mutants, 0 killed (0.0%); no tests 1, not checked 1",
        "manual/a.py: 4 mutants, 3 killed (75.0%); survived 1",
        "  no tests: crosscheck.b.c.x_g__mutmut_1",
        "  not checked: crosscheck.b.c.x_g__mutmut_2",
        "  survived: manual.a.x_f__mutmut_2",
    ]


def _metas(where, codes, hashes):
    """mutmut's .meta files under where/mutants: {module path: {mutant: exit code}}, {module path: {function: hash}}."""
    for module, by_key in codes.items():
        path = where / "mutants" / f"{module}.meta"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"exit_code_by_key": by_key, "hash_by_function_name": hashes.get(module, {}),
                                    "durations_by_key": {}}))


def test_the_selection_fingerprint_is_the_one_mutmut_recorded():
    from mutation_groups import selection_hash
    # the manual group's 21 test files of 48b1156, and the fingerprint mutmut 3.8.1 wrote for them in its stats
    names = ["functional", "kernels", "network", "optim", "recurrent", "attention", "seed_network", "normalization",
             "dropout", "embedding", "sequences", "graph", "bad_input", "hostile_input", "readme", "user_api",
             "conv_transpose_checks", "functional_edges", "recurrent_optim_edges"]
    files = ["tests/test_judges.py", "tests/test_suite_can_fail.py", *(f"tests/test_{n}.py" for n in names)]
    assert selection_hash(files) == "cd1e3fe8ceff"


@pytest.mark.parametrize(("before", "after", "kept"), [
    (["tests/a.py"], ["tests/a.py", "tests/b.py"], True),   # grew: nothing killed can come back to life
    (["tests/a.py", "tests/b.py"], ["tests/a.py"], False),  # shrank: a verdict may rest on the file dropped
    (["tests/a.py"], ["tests/b.py"], False),                # replaced
    (["tests/a.py"], ["tests/a.py"], False),                # the same: mutmut keeps everything itself
])
def test_a_group_keeps_killed_verdicts_only_when_its_test_files_grew(tmp_path, before, after, kept):
    from mutation_groups import keep_killed, selection_hash
    codes = {"manual/a.py": {"manual.a.x_f__mutmut_1": 1, "manual.a.x_f__mutmut_2": 0, "manual.a.x_f__mutmut_3": 33,
                             "manual.a.x_f__mutmut_4": None, "manual.a.x_f__mutmut_5": 36}}
    _metas(tmp_path, codes, {})
    stats = {"config_fingerprint": {"test_selection": selection_hash(before), "timeout": "t"}, "other": [1]}
    (tmp_path / "mutants" / "mutmut-stats.json").write_text(json.dumps(stats))
    (tmp_path / "selection.json").write_text(json.dumps(before))
    line = keep_killed(tmp_path, after)
    meta = json.loads((tmp_path / "mutants/manual/a.py.meta").read_text())["exit_code_by_key"]
    written = json.loads((tmp_path / "mutants" / "mutmut-stats.json").read_text())
    if kept:
        assert line == "the test files grew from 1 to 2: killed verdicts kept, 2 others to test again"
        assert meta == {"manual.a.x_f__mutmut_1": 1, "manual.a.x_f__mutmut_2": None, "manual.a.x_f__mutmut_3": None,
                        "manual.a.x_f__mutmut_4": None, "manual.a.x_f__mutmut_5": 36}
        assert written == {"config_fingerprint": {"test_selection": selection_hash(after), "timeout": "t"},
                           "other": [1]}
    else:
        assert line is None
        assert meta == codes["manual/a.py"] and written == stats


def test_a_group_keeps_nothing_without_a_record_or_with_a_fingerprint_of_another_list(tmp_path):
    from mutation_groups import keep_killed
    _metas(tmp_path, {"manual/a.py": {"manual.a.x_f__mutmut_1": 0}}, {})
    assert keep_killed(tmp_path, ["tests/a.py", "tests/b.py"]) is None  # no stats, no selection.json
    stats = {"config_fingerprint": {"test_selection": "0123456789ab"}}
    (tmp_path / "mutants" / "mutmut-stats.json").write_text(json.dumps(stats))
    assert keep_killed(tmp_path, ["tests/a.py", "tests/b.py"]) is None
    (tmp_path / "selection.json").write_text(json.dumps(["tests/a.py"]))  # the stats are of another list
    assert keep_killed(tmp_path, ["tests/a.py", "tests/b.py"]) is None
    assert json.loads((tmp_path / "mutants/manual/a.py.meta").read_text())["exit_code_by_key"] == {
        "manual.a.x_f__mutmut_1": 0}


def test_a_fresh_verdict_counts_while_its_function_is_unchanged(tmp_path):
    from mutation_groups import report, summary
    _metas(tmp_path, {"crosscheck/b.py": {"crosscheck.b.x_f__mutmut_1": 0, "crosscheck.b.x_f__mutmut_2": 0,
                                          "crosscheck.b.x_g__mutmut_1": 0, "crosscheck.b.xǁCǁm__mutmut_1": 0}},
           {"crosscheck/b.py": {"x_f": "aaa", "x_g": "bbb", "xǁCǁm": "ccc"}})
    (tmp_path / "fresh.json").write_text(json.dumps({
        "crosscheck.b.x_f__mutmut_1": [1, "aaa"],      # killed in a fresh process: counts
        "crosscheck.b.x_f__mutmut_2": [0, "aaa"],      # survived there too
        "crosscheck.b.x_g__mutmut_1": [1, "old"],      # x_g changed since: mutmut's verdict stands
        "crosscheck.b.xǁCǁm__mutmut_1": [36, "ccc"]}))  # a method's mutant, timed out
    assert report(*summary(tmp_path)) == [
        "crosscheck/b.py: 4 mutants, 2 killed (50.0%); survived 2",
        "  survived: crosscheck.b.x_f__mutmut_2",
        "  survived: crosscheck.b.x_g__mutmut_1",
    ]


def test_fresh_tests_each_mutant_in_a_new_process_that_imports_it(tmp_path, capsys):
    """demo.VALUE is computed when demo is imported, as the catalogue's entries are: a worker forked after the import
    cannot see mutant 1; a new process does."""
    from mutation_groups import fresh
    (tmp_path / "pyproject.toml").write_text('[tool.mutmut]\npytest_add_cli_args = ["-p", "no:cacheprovider"]\n')
    (tmp_path / "mutants" / "tests").mkdir(parents=True)
    (tmp_path / "mutants" / "demo.py").write_text(
        "import os\n"
        "MUTANT = os.environ.get('MUTANT_UNDER_TEST')\n"
        "VALUE = 2 if MUTANT == 'demo.x_f__mutmut_1' else 1\n"
        "OTHER = 2 if MUTANT == 'demo.x_g__mutmut_1' else 1\n"
        "if MUTANT == 'demo.x_f__mutmut_3':\n"
        "    raise ImportError('broken at import')\n")
    (tmp_path / "mutants" / "tests" / "test_demo.py").write_text(
        "import demo\n\n\ndef test_value():\n    assert demo.VALUE == 1\n\n\ndef test_other():\n"
        "    assert demo.OTHER == 1\n")
    codes = {f"demo.x_f__mutmut_{i}": 0 for i in (1, 2, 3)} | {"demo.x_g__mutmut_1": 0}
    _metas(tmp_path, {"demo.py": codes}, {"demo.py": {"x_f": "fff", "x_g": "ggg"}})
    assert fresh(tmp_path, ["demo.x_f__*"], ["tests/test_demo.py"], timeout=120) == 3
    assert json.loads((tmp_path / "fresh.json").read_text()) == {
        "demo.x_f__mutmut_1": [1, "fff"], "demo.x_f__mutmut_2": [0, "fff"], "demo.x_f__mutmut_3": [1, "fff"]}
    assert capsys.readouterr().out.splitlines() == [
        "1/3 demo.x_f__mutmut_1: killed", "2/3 demo.x_f__mutmut_2: survived", "3/3 demo.x_f__mutmut_3: killed"]
    # -k leaves test_other out, the one test that sees x_g's mutant: it survives; then, named again without -k,
    # the survivors are tested again (x_f's 2 and x_g's 1) and the current kills are not
    assert fresh(tmp_path, ["demo.x_g*"], ["tests/test_demo.py"], timeout=120, keyword="value") == 1
    assert json.loads((tmp_path / "fresh.json").read_text())["demo.x_g__mutmut_1"] == [0, "ggg"]
    assert fresh(tmp_path, ["demo.*"], ["tests/test_demo.py"], timeout=120) == 2
    assert json.loads((tmp_path / "fresh.json").read_text()) == {
        "demo.x_f__mutmut_1": [1, "fff"], "demo.x_f__mutmut_2": [0, "fff"], "demo.x_f__mutmut_3": [1, "fff"],
        "demo.x_g__mutmut_1": [1, "ggg"]}


def test_fresh_refuses_tests_that_fail_without_a_mutant_and_counts_a_timeout(tmp_path, monkeypatch):
    import subprocess

    from mutation_groups import fresh
    (tmp_path / "pyproject.toml").write_text("[tool.mutmut]\n")
    _metas(tmp_path, {"demo.py": {"demo.x_f__mutmut_1": 0}}, {"demo.py": {"x_f": "fff"}})

    def failing(command, **kwargs):
        return subprocess.CompletedProcess(command, 1)
    monkeypatch.setattr(subprocess, "run", failing)
    with pytest.raises(SystemExit, match=r"^the tests fail without a mutant: .* -m pytest -x -q tests/t.py in "):
        fresh(tmp_path, ["demo.*"], ["tests/t.py"], timeout=1)

    def slow(command, env, **kwargs):
        if env["MUTANT_UNDER_TEST"]:
            raise subprocess.TimeoutExpired(command, kwargs["timeout"])
        return subprocess.CompletedProcess(command, 0)
    monkeypatch.setattr(subprocess, "run", slow)
    assert fresh(tmp_path, ["demo.*"], ["tests/t.py"], timeout=1) == 1
    assert json.loads((tmp_path / "fresh.json").read_text()) == {"demo.x_f__mutmut_1": [36, "fff"]}


def _recorded(where):
    """Metas of two functions and a method, with a fresh verdict: what the record is written from."""
    _metas(where, {"crosscheck/b.py": {"crosscheck.b.x_f__mutmut_1": 1, "crosscheck.b.x_f__mutmut_2": 0,
                                       "crosscheck.b.x_f__mutmut_3": 33, "crosscheck.b.x_f__mutmut_4": None,
                                       "crosscheck.b.x_f__mutmut_5": 37, "crosscheck.b.x_g__mutmut_1": -24,
                                       "crosscheck.b.x_g__mutmut_2": 0, "crosscheck.b.xǁCǁm__mutmut_1": 36}},
           {"crosscheck/b.py": {"x_f": "aaa", "x_g": "bbb", "xǁCǁm": "ccc"}})
    (where / "fresh.json").write_text(json.dumps({"crosscheck.b.x_g__mutmut_2": [1, "bbb"]}))


def test_a_record_keeps_each_function_hash_and_a_letter_per_mutant(tmp_path):
    from mutation_groups import write_record
    _recorded(tmp_path)
    path = tmp_path / "record" / "harness.json"
    assert write_record(tmp_path, path, ["tests/a.py"], "3.8.1") == {"k": 4, "s": 1, "n": 1, ".": 1, "x": 1}
    assert json.loads(path.read_text()) == {
        "mutmut": "3.8.1", "tests": ["tests/a.py"],
        "modules": {"crosscheck/b.py": {"crosscheck.b.x_f": ["aaa", "ksn.x"], "crosscheck.b.x_g": ["bbb", "kk"],
                                        "crosscheck.b.xǁCǁm": ["ccc", "k"]}},
        "reviewed": {}}


@pytest.mark.parametrize(("files", "line", "restored"), [
    (["tests/a.py"], "harness.json: 3 verdicts restored",
     {"crosscheck.b.x_f__mutmut_1": 1, "crosscheck.b.x_f__mutmut_2": 0, "crosscheck.b.x_f__mutmut_3": 33}),
    (["tests/a.py", "tests/b.py"], "harness.json: 1 kills (the test files grew since) restored",
     {"crosscheck.b.x_f__mutmut_1": 1}),
    (["tests/b.py"], "harness.json: a test file it was reached with is not in the group now, nothing restored",
     None),
])
def test_a_new_machine_starts_from_the_record_where_the_text_and_the_tests_allow(tmp_path, files, line, restored):
    """crosscheck/b.py has no meta yet (mutmut has not run here): it gets the record's hashes and verdicts, not those
    of its fourth and fifth mutants ('.' not checked, 'x' another code). c.py's meta is mutmut's: x_h's text changed
    since the record, and x_k's mutant is decided here already."""
    from mutation_groups import restore_record
    c_codes = {"crosscheck.c.x_h__mutmut_1": None, "crosscheck.c.x_k__mutmut_1": 0}
    _metas(tmp_path, {"crosscheck/c.py": c_codes}, {"crosscheck/c.py": {"x_h": "new", "x_k": "kkk"}})
    path = tmp_path / "harness.json"
    path.write_text(json.dumps({"mutmut": "3.8.1", "tests": ["tests/a.py"], "modules": {
        "crosscheck/b.py": {"crosscheck.b.x_f": ["aaa", "ksn.x"]},
        "crosscheck/c.py": {"crosscheck.c.x_h": ["old", "k"], "crosscheck.c.x_k": ["kkk", "k"]}}, "reviewed": {}}))
    assert restore_record(tmp_path, path, files, "3.8.1") == line
    b = tmp_path / "mutants/crosscheck/b.py.meta"
    c = json.loads((tmp_path / "mutants/crosscheck/c.py.meta").read_text())
    assert c["exit_code_by_key"] == c_codes and c["hash_by_function_name"] == {"x_h": "new", "x_k": "kkk"}
    if restored is None:
        assert not b.exists()
    else:
        # the keys mutmut's SourceFileMutationData.load() reads, and the hash it compares its own with
        assert json.loads(b.read_text()) == {"exit_code_by_key": restored, "hash_by_function_name": {"x_f": "aaa"},
                                             "durations_by_key": {}, "estimated_durations_by_key": {}}
    assert restore_record(tmp_path, tmp_path / "none.json", files, "3.8.1") is None
    # another mutmut numbers its mutants its own way
    assert restore_record(tmp_path / "other", path, files, "3.9.0") == (
        "harness.json: mutants of mutmut 3.8.1, this is 3.9.0: nothing restored")
    assert not (tmp_path / "other").exists()


def test_a_review_counts_while_its_function_is_unchanged_and_the_score_leaves_equivalents_out(tmp_path):
    from mutation_groups import report, review, score, summary, write_record
    _recorded(tmp_path)
    path = tmp_path / "harness.json"
    write_record(tmp_path, path, ["tests/a.py"], "3.8.1")
    # a kill is not reviewed (x_f's first mutant by mutmut, x_g's second in a fresh process); the others are
    assert review(tmp_path, path, ["crosscheck.b.x_f__mutmut_[1-4]", "crosscheck.b.x_g*"], "equivalent",
                  "same values") == [f"crosscheck.b.x_f__mutmut_{i}" for i in (2, 3, 4)]
    assert review(tmp_path, path, ["crosscheck.b.x_f__mutmut_4"], "killed", "tests/test_x.py::test_y") == [
        "crosscheck.b.x_f__mutmut_4"]
    record = json.loads(path.read_text())
    assert record["reviewed"] == {"crosscheck.b.x_f__mutmut_2": ["aaa", "equivalent", "same values"],
                                  "crosscheck.b.x_f__mutmut_3": ["aaa", "equivalent", "same values"],
                                  "crosscheck.b.x_f__mutmut_4": ["aaa", "killed", "tests/test_x.py::test_y"]}
    counts, missed = summary(tmp_path, record)
    assert report(counts, missed) == [
        "crosscheck/b.py: 8 mutants, 5 killed (62.5%); equivalent 2, exit 37 1",
        "  exit 37: crosscheck.b.x_f__mutmut_5"]
    assert score(counts) == "score: 5 killed of 6 mutants not equivalent (83.3%); 2 equivalent"
    # x_f's text changes: the review no longer counts, and the next record drops it
    meta = tmp_path / "mutants/crosscheck/b.py.meta"
    data = json.loads(meta.read_text())
    data["hash_by_function_name"]["x_f"] = "changed"
    meta.write_text(json.dumps(data))
    assert summary(tmp_path, record)[0]["crosscheck/b.py"] == {"killed": 4, "survived": 1, "no tests": 1,
                                                               "not checked": 1, "exit 37": 1}
    write_record(tmp_path, path, ["tests/a.py"], "3.8.1")
    assert json.loads(path.read_text())["reviewed"] == {}


def test_fast_forks_a_child_per_mutant_with_its_fastest_tests_and_keeps_only_clean_kills(tmp_path, monkeypatch):
    """demo.f reads the mutant at each call, as mutmut's trampolines do. Mutant 1 is killed by the fast test, 2
    passes it, 3 runs forever, 4 is seen only by a test slower than --max-duration, 5 is decided already; g's mutant
    fails a test that also fails without a mutant, which is no kill."""
    from mutation_groups import fast, fast_plan
    mutants = tmp_path / "mutants"
    (mutants / "tests").mkdir(parents=True)
    (mutants / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    (mutants / "demo.py").write_text(
        "import os\n\n\ndef f():\n    mutant = os.environ['MUTANT_UNDER_TEST']\n"
        "    while mutant == 'demo.x_f__mutmut_3':\n        pass\n"
        "    return {'demo.x_f__mutmut_1': 2, 'demo.x_f__mutmut_4': 3}.get(mutant, 1)\n")
    (mutants / "tests" / "test_demo.py").write_text(
        "import demo\n\n\ndef test_fast():\n    assert demo.f() in (1, 3)\n\n\n"
        "def test_slow():\n    assert demo.f() == 1\n\n\ndef test_broken():\n    assert False\n")
    codes = {f"demo.x_f__mutmut_{i}": None for i in (1, 2, 3, 4)} | {"demo.x_f__mutmut_5": 0,
                                                                     "demo.x_g__mutmut_1": None}
    _metas(tmp_path, {"demo.py": codes}, {"demo.py": {"x_f": "fff", "x_g": "ggg"}})
    fast_test, slow_test, broken = (f"tests/test_demo.py::test_{n}" for n in ("fast", "slow", "broken"))
    (mutants / "mutmut-stats.json").write_text(json.dumps({
        "tests_by_mangled_function_name": {"demo.x_f": [slow_test, fast_test], "demo.x_g": [broken]},
        "duration_by_test": {fast_test: 0.01, slow_test: 2.0, broken: 0.01}}))
    assert fast_plan(tmp_path, [], max_tests=5, max_duration=0.5) == {
        f"demo.x_f__mutmut_{i}": [fast_test] for i in (1, 2, 3, 4)} | {"demo.x_g__mutmut_1": [broken]}
    assert fast_plan(tmp_path, ["demo.x_f__mutmut_2"], max_tests=5, max_duration=3)["demo.x_f__mutmut_2"] == [
        fast_test, slow_test]
    assert fast_plan(tmp_path, [], max_tests=0, max_duration=3) == {}
    lines = []
    counts = fast(tmp_path, [], ["tests/test_demo.py"], workers=2, max_tests=5, max_duration=0.5, timeout=3,
                  out=lines.append)
    assert counts == {"killed": 1, "passed": 2, "no verdict": 2}
    assert sorted(line.partition(" ")[2] for line in lines) == [
        f"demo.x_f__mutmut_1: killed by {fast_test}", "demo.x_f__mutmut_2: passed", "demo.x_f__mutmut_3: no verdict",
        "demo.x_f__mutmut_4: passed", f"demo.x_g__mutmut_1: killed by {broken}"]
    assert json.loads((tmp_path / "fresh.json").read_text()) == {"demo.x_f__mutmut_1": [1, "fff"]}
    assert json.loads((tmp_path / "fast.json").read_text()) == {
        "demo.x_f__mutmut_1": [1, fast_test, "fff", 1], "demo.x_f__mutmut_2": [0, None, "fff", 1],
        "demo.x_f__mutmut_3": [None, None, "fff", 1], "demo.x_f__mutmut_4": [0, None, "fff", 1],
        "demo.x_g__mutmut_1": [1, broken, "ggg", 1]}
    # a current kill is not planned again, and a current outcome is not tested again: only the one with no verdict
    assert "demo.x_f__mutmut_1" not in fast_plan(tmp_path, [], max_tests=5, max_duration=0.5)
    lines.clear()
    assert fast(tmp_path, [], ["tests/test_demo.py"], max_tests=5, max_duration=0.5, timeout=1,
                out=lines.append) == {"killed": 1, "passed": 2, "no verdict": 2}
    assert lines == ["5 demo.x_f__mutmut_3: no verdict"]
    # with the slow test allowed, those that passed one test are tested again with two: mutant 4 is killed; the
    # fast test, which killed mutant 1, runs first
    lines.clear()
    assert fast(tmp_path, ["demo.x_f__mutmut_[24]"], ["tests/test_demo.py"], max_tests=5, max_duration=3,
                timeout=10, out=lines.append) == {"killed": 2, "passed": 1, "no verdict": 2}
    assert sorted(lines) == ["5 demo.x_f__mutmut_2: passed", f"5 demo.x_f__mutmut_4: killed by {slow_test}"]
    assert json.loads((tmp_path / "fresh.json").read_text()) == {"demo.x_f__mutmut_1": [1, "fff"],
                                                                 "demo.x_f__mutmut_4": [1, "fff"]}
    # a later run starts with the kills fast.json holds: each function's killing tests, to run first
    import mutation_groups
    calls = []
    monkeypatch.setattr(mutation_groups, "forked", lambda *args: calls.append(args) or {})
    fast(tmp_path, ["demo.x_f__mutmut_3"], ["tests/test_demo.py"], max_tests=5, max_duration=3, out=lines.append)
    assert calls[0][2] == [("demo.x_f__mutmut_3", "demo.x_f__mutmut_3", [fast_test, slow_test])]
    assert calls[0][6] == {"demo.x_f": [fast_test, slow_test], "demo.x_g": [broken]}
    # tests named first run before the plan's; a mutant that passed is tested again only if that adds a test
    calls.clear()
    fast(tmp_path, ["demo.x_f__mutmut_2"], ["tests/test_demo.py"], max_tests=5, max_duration=3, out=lines.append,
         first=[slow_test])
    assert calls[0][2] == []
    calls.clear()
    fast(tmp_path, ["demo.x_f__mutmut_2"], ["tests/test_demo.py"], max_tests=5, max_duration=3, out=lines.append,
         first=[broken, slow_test])
    assert calls[0][2] == [("demo.x_f__mutmut_2", "demo.x_f__mutmut_2", [broken, slow_test, fast_test])]


def test_forked_runs_try_the_latest_killer_of_a_function_first():
    from mutation_groups import ForkedRuns
    runs = ForkedRuns([], workers=1, timeout=1, done=None)
    assert runs.order("m.x_f__mutmut_1", ["t1", "t2", "t3"]) == ["t1", "t2", "t3"]
    runs.killed("m.x_f__mutmut_1", "t3")
    runs.killed("m.x_f__mutmut_2", "t9")
    runs.killed("m.xǁCǁm__mutmut_1", "t2")
    assert runs.killers == {"m.x_f": ["t9", "t3"], "m.xǁCǁm": ["t2"]}
    # t9 is not among mutant 3's tests; another function's killer changes nothing
    assert runs.order("m.x_f__mutmut_3", ["t1", "t2", "t3"]) == ["t3", "t1", "t2"]
    assert runs.order("m.x_g__mutmut_1", ["t1", "t2", "t3"]) == ["t1", "t2", "t3"]
    runs.killed("m.x_f__mutmut_4", "t3")
    assert runs.killers["m.x_f"] == ["t3", "t9"]


def _checkout(root):
    """A git checkout at root with a tracked file, an ignored one and a mutation record."""
    import subprocess
    (root / "tests" / "mutation_record").mkdir(parents=True)
    (root / "a.py").write_text("A = 1\n")
    (root / ".gitignore").write_text("build/\n")
    (root / "tests" / "mutation_record" / "judges.json").write_text("{}\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "."], cwd=root, check=True)


def test_the_fresh_seed_digest_is_the_suites_files_and_nothing_else(tmp_path):
    from fresh_seeds import digest
    _checkout(tmp_path)
    first = digest(tmp_path)
    (tmp_path / "tests" / "fresh_seeds_record.json").write_text('{"runs": []}\n')  # the records: not the suite
    (tmp_path / "tests" / "mutation_record" / "judges.json").write_text('{"reviewed": {}}\n')
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "x.py").write_text("ignored\n")
    assert digest(tmp_path) == first
    (tmp_path / "a.py").write_text("A = 2\n")  # a tracked file's bytes
    changed = digest(tmp_path)
    assert changed != first
    (tmp_path / "a.py").write_text("A = 1\n")
    assert digest(tmp_path) == first
    (tmp_path / "tests" / "test_new.py").write_text("")  # an untracked file, even empty
    assert digest(tmp_path) not in (first, changed)


def test_fresh_seed_runs_on_the_same_files_add_up_and_report_counts_only_them(tmp_path, monkeypatch, capsys):
    import fresh_seeds
    _checkout(tmp_path)
    record = tmp_path / "tests" / "fresh_seeds_record.json"
    outcomes = {11: 0, 12: 0, 13: 1, 14: 0}
    monkeypatch.setattr(fresh_seeds, "run", lambda seed: (outcomes[seed], f"{seed} passed", 2.4, "the log"))
    assert fresh_seeds.main(["--seeds", "11,12"], record, tmp_path) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "2 runs, 0 failed; seeds: 11,12",
        f"on files {fresh_seeds.digest(tmp_path)[:12]}, with the runs recorded before: 2 runs, 0 failed; seeds: 11,12"]
    assert fresh_seeds.main(["2", "--report"], record, tmp_path) == 0
    assert fresh_seeds.main(["3", "--report"], record, tmp_path) == 1  # fewer runs than asked for
    assert fresh_seeds.main(["--seeds", "13"], record, tmp_path) == 1
    out = capsys.readouterr().out
    assert "seed      13  FAIL" in out and "the log" in out
    assert out.splitlines()[-1].endswith("3 runs, 1 failed; seeds: 11,12,13; failed: 13")
    assert fresh_seeds.main(["3", "--report"], record, tmp_path) == 1  # enough runs, one failed
    runs = json.loads(record.read_text())["runs"]
    assert [(r["seed"], r["passed"], r["seconds"], r["summary"]) for r in runs] == [
        (11, True, 2, "11 passed"), (12, True, 2, "12 passed"), (13, False, 2, "13 passed")]
    (tmp_path / "a.py").write_text("A = 2\n")  # other files: the runs before do not count
    capsys.readouterr()
    assert fresh_seeds.main(["1", "--report"], record, tmp_path) == 1
    assert capsys.readouterr().out.endswith(": 0 runs, 0 failed; seeds: \n")
    assert fresh_seeds.main(["--seeds", "14"], record, tmp_path) == 0
    assert fresh_seeds.main(["1", "--report"], record, tmp_path) == 0


def test_a_fresh_seed_run_during_which_the_files_changed_is_not_recorded(tmp_path, monkeypatch, capsys):
    import fresh_seeds
    _checkout(tmp_path)
    record = tmp_path / "tests" / "fresh_seeds_record.json"

    def run(seed):
        (tmp_path / "a.py").write_text(f"A = {seed}\n")  # an edit while the suite ran
        return 0, "passed", 1.0, ""
    monkeypatch.setattr(fresh_seeds, "run", run)
    assert fresh_seeds.main(["--seeds", "5,6"], record, tmp_path) == 0
    out = capsys.readouterr().out
    assert out.count("the files changed while it ran, not recorded") == 2
    assert not record.exists()
