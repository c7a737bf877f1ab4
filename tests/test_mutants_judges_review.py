"""The judges' edges that a review of surviving mutants found unpinned: the "epsilon" hypothesis' RMSprop step
(eps inside the square root) keeps torch's state layout, a momentum buffer only where momentum > 0, as
manual.optim.rmsprop_step does, over steps that feed its state back to it."""

import numpy as np

from crosscheck.hypotheses import _rmsprop_eps_inside
from manual import optim


def test_rmsprop_eps_inside_keeps_no_momentum_buffer_without_momentum():
    p = {"w": np.array([1.0, -2.0, 0.5])}
    grads = {"w": np.array([0.3, -0.1, 2.0])}
    settings = dict(lr=0.1, alpha=0.9, eps=1e-2, weight_decay=0.0, momentum=0.0, centered=False)
    params, state = p, {}
    for _ in range(2):
        params, state = _rmsprop_eps_inside(params, grads, state, **settings)
    manual_params, manual_state = p, {}
    for _ in range(2):
        manual_params, manual_state = optim.rmsprop_step(manual_params, grads, manual_state, **settings)
    assert sorted(state["w"]) == sorted(manual_state["w"]) == ["square_avg", "step"]
    v1 = 0.1 * grads["w"] ** 2
    v2 = 0.9 * v1 + 0.1 * grads["w"] ** 2
    expected = p["w"] - 0.1 * grads["w"] / np.sqrt(v1 + 1e-2) - 0.1 * grads["w"] / np.sqrt(v2 + 1e-2)
    np.testing.assert_allclose(params["w"], expected, rtol=1e-12)
