"""An edge of manual/seed_network.py that the rest of the suite passes by: train checks its reduction at the
boundary, with X, Y and params, before the first forward pass.

A bad reduction never reaches forward. forward would refuse it too (its n_of checks the word), with the same
message, so only whether the network ran before the refusal tells the two apart: a spy on seed_network.forward
counts the calls. The expected message is the one check_reduction writes for the word 'avg'.
"""

import pytest

from crosscheck.subjects import SeedCase
from manual import seed_network
from netdesc import InputError


def test_train_refuses_a_bad_reduction_before_the_first_forward_pass(monkeypatch):
    X, Y, params = SeedCase(batch=2, n_out=2).inputs()
    calls = []
    real_forward = seed_network.forward

    def spy(*args, **kwargs):
        calls.append(args)
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(seed_network, "forward", spy)
    with pytest.raises(InputError, match=r"reduction: got 'avg', needs one of sum, mean"):
        seed_network.train(X, Y, params, 0.1, 1, reduction="avg")
    assert calls == []  # refused at the boundary, with X, Y and params: the network never ran
    seed_network.train(X, Y, params, 0.1, 1, reduction="mean")  # the spy itself lets a good run through
    assert len(calls) == 1
