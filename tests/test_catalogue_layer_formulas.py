"""Two helpers of the general layers' wrong derivations (crosscheck.catalogue.layers) compute what they claim on every
input they can get, not only on the demonstration networks':

- the pool forward the max- and average-pool entries run (``_pool_forward``) is manual.functional's pool with the
  layer's kernel, stride and padding, all three read from its options, so it is torch's pool output even where
  the stride is not the kernel and the windows reach into the padding (the entries' networks have neither); it is
  built here at test time as well as taken from the entries, which built theirs at import;
- softmax cross-entropy without the one-hot divides by the loss's own divisor, 1 under the sum reduction or a mean
  over a single kept label, not by some floor above it: dlogits = softmax * dout there.
"""

import numpy as np
import pytest
import torch

from crosscheck.catalogue import find
from crosscheck.catalogue import layers as wrong_layers
from manual import functional as F

# 2 samples of 2 channels of 5x5; windows of 3 at stride 2 reaching 1 into the padding
X = np.random.default_rng(13).standard_normal((2, 2, 5, 5))
POOL = {"kernel_size": (3, 3), "stride": (2, 2), "padding": (1, 1)}


def _close(mine, theirs):
    assert mine is not None and np.asarray(mine).shape == np.asarray(theirs).shape
    np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)


POOLS = {"max": (F.max_pool2d_forward, torch.nn.functional.max_pool2d),
         "avg": (F.avg_pool2d_forward, torch.nn.functional.avg_pool2d)}


@pytest.mark.parametrize("kind", POOLS)
def test_the_pool_forward_is_torchs_pool_with_every_option_and_caches_its_input_and_options(kind):
    """Kernel 3, stride 2, padding 1 on 5x5: torch's 3x3 output (a stride left at the kernel size would give 2x2, a
    padding left out 2x2, the padding read as the stride 5x5); the cache is the input and the options themselves,
    which the entries' backwards read the windows from."""
    pool, torch_pool = POOLS[kind]
    want = torch_pool(torch.from_numpy(X), 3, 2, 1).numpy()
    assert want.shape == (2, 2, 3, 3)
    out, (x, o) = wrong_layers._pool_forward(pool)(X, {}, POOL)
    _close(out, want)
    assert x is X and o is POOL


@pytest.mark.parametrize(("name", "kind"), [("max-pool-every-element", "max"), ("max-pool-last-tie", "max"),
                                            ("avg-pool-not-divided", "avg")])
def test_the_pool_entries_forward_is_torchs_pool_with_every_option(name, kind):
    """The forward each pool entry replaces its layer's with (built at import) is torch's pool of that kind, on options
    the entry's own network does not have (stride 2 under a kernel of 3, padding 1)."""
    forward = find(name).forward[2]
    out, (x, o) = forward(X, {}, POOL)
    _close(out, POOLS[kind][1](torch.from_numpy(X), 3, 2, 1).numpy())
    assert x is X and o is POOL


@pytest.mark.parametrize(("reduction", "labels"), [("sum", [2, 0, 3]), ("mean", [-100, 1, -100])],
                         ids=["sum", "mean-over-one-label"])
def test_cross_entropy_without_the_one_hot_under_a_divisor_of_1_is_softmax_times_dout(reduction, labels):
    """Summed, or averaged over the single label kept: dlogits = dout * softmax on the kept rows, 0 on the ignored
    ones, torch's gradient with dout * onehot put back, nothing divided."""
    rng = np.random.default_rng(12)
    logits, labels, dout = rng.standard_normal((3, 4)), np.array(labels), 0.75
    t = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.cross_entropy(t, torch.from_numpy(labels), reduction=reduction, ignore_index=-100).backward(
        torch.tensor(dout, dtype=torch.float64))
    _, cache = F.softmax_cross_entropy_forward(logits, labels, reduction, -100)
    dlogits, none = find("cross-entropy-onehot-forgotten").backward["loss"](dout, cache)
    kept = labels != -100
    onehot = np.eye(4)[np.where(kept, labels, 0)] * kept[:, None]
    _close(dlogits, t.grad.numpy() + dout * onehot)
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    _close(dlogits, dout * softmax * kept[:, None])
    assert none is None
