"""The team's own long-run scripts (tests/fresh_seeds.py, tests/mutation_sample.py): what they compute is tested
like any other judge."""

import json

import pytest
from mutation_sample import verdicts, wilson


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
