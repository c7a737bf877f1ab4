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
            "tests/test_attention.py", "tests/test_recurrent.py", "tests/test_sequences.py"]}
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
