"""pytest plugin: the ``layer_check`` fixture, assert_layer_matches with the command line's settings.

    def test_swish(layer_check):
        layer_check(swish_forward, swish_backward, torch_swish, shapes=[(4, 5), (5,)])

Options: ``--crosscheck-seeds N`` checks seeds 0 .. N-1 (default: check_layer's 0, 1, 2), e.g. many more in a
nightly job; ``--crosscheck-gradcheck`` adds torch.autograd.gradcheck to every check. Arguments given in the
call win over both. Load it with ``pytest_plugins = ["crosscheck.pytest_plugin"]`` in a conftest.py or with
``-p crosscheck.pytest_plugin``. (No pytest11 entry point on purpose: an auto-loaded plugin would be imported
before coverage starts and marked for assertion rewriting in every pytest run of the environment.)
"""

import argparse

import pytest


def _seed_count(text):
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"got {text!r}, needs an integer >= 1 (the number of seeds)")
    return n


def pytest_addoption(parser):
    group = parser.getgroup("crosscheck", "manual layers against torch autograd (backprop-crosscheck)")
    group.addoption("--crosscheck-seeds", type=_seed_count, default=None, metavar="N",
                    help="layer_check checks seeds 0 .. N-1 (default: 0, 1, 2)")
    group.addoption("--crosscheck-gradcheck", action="store_true", default=False,
                    help="layer_check also runs torch.autograd.gradcheck on the manual pair, per seed in float64")


@pytest.fixture
def layer_check(request):
    """assert_layer_matches(forward, backward, torch_fn, shapes, **options) with the command line's defaults."""
    defaults = {}
    seeds = request.config.getoption("crosscheck_seeds")
    if seeds is not None:
        defaults["seeds"] = tuple(range(seeds))
    if request.config.getoption("crosscheck_gradcheck"):
        defaults["gradcheck"] = True

    def check(*args, **options):
        __tracebackhide__ = True
        # Imported here, not at plugin load: every pytest run of an environment that has this package installed
        # loads the plugin, and only the tests that use the fixture should pay for importing torch.
        from crosscheck.api import assert_layer_matches

        return assert_layer_matches(*args, **{**defaults, **options})

    return check
