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
            "tests/test_gradcheck_edges.py"]}
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
