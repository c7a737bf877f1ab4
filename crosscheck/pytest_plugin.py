"""pytest plugin: the ``layer_check`` fixture, assert_layer_matches with the command line's settings.

    def test_swish(layer_check):
        layer_check(swish_forward, swish_backward, torch_swish, shapes=[(4, 5), (5,)])

Options: ``--crosscheck-seeds N`` checks seeds 0 .. N-1 (default: check_layer's 0, 1, 2), e.g. many more in a
nightly job; ``--crosscheck-gradcheck`` adds torch.autograd.gradcheck to every check. Arguments given in the
call win over both. Load it with ``pytest_plugins = ["crosscheck.pytest_plugin"]`` in a conftest.py or with
``-p crosscheck.pytest_plugin``. (No pytest11 entry point on purpose: an auto-loaded plugin would be imported
before coverage starts and marked for assertion rewriting in every pytest run of the environment.)

Where a test used the fixture, pytest's terminal report ends with a section "crosscheck layer checks": how many
checks ran, passed and failed, and one line per failing check naming the test, the layer and the first quantity that
differs. Each check is recorded on its test's item, attached to the test's report (so that pytest-xdist's workers
send it along) and gathered from the reports by LayerChecks, kept in config.stash[LAYER_CHECKS].
"""

import argparse

import pytest

LAYER_CHECKS = pytest.StashKey["LayerChecks"]()
_PENDING = pytest.StashKey[list]()  # on a test's item: its checks not yet attached to one of its reports
ATTRIBUTE = "crosscheck_layer_checks"  # the report attribute that carries them


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


class LayerChecks:
    """The layer checks of this run, gathered from the test reports: (test id, record) with record a dict of the
    layer, whether it passed and, where it did not, the first difference."""

    def __init__(self):
        self.checks = []

    def pytest_runtest_logreport(self, report):
        self.checks += [(report.nodeid, record) for record in getattr(report, ATTRIBUTE, ())]

    def pytest_terminal_summary(self, terminalreporter):
        if not self.checks:
            return
        failed = [(test, record) for test, record in self.checks if not record["passed"]]
        terminalreporter.section("crosscheck layer checks")
        terminalreporter.write_line(f"{len(self.checks)} layer checks ran: {len(self.checks) - len(failed)} passed, "
                                    f"{len(failed)} failed")
        for test, record in failed:
            terminalreporter.write_line(f"FAILED {test}: {record['layer']}, {record['first']}")


def pytest_configure(config):
    config.stash[LAYER_CHECKS] = LayerChecks()
    config.pluginmanager.register(config.stash[LAYER_CHECKS], "crosscheck-layer-checks")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    pending = item.stash.get(_PENDING, [])
    if pending:
        setattr(report, ATTRIBUTE, list(pending))
        pending.clear()
    return report


def _record(node, layer, first=None):
    node.stash.setdefault(_PENDING, []).append({"layer": layer, "passed": first is None, "first": first})


def _first_difference(result):
    if not result.failures:
        return "nothing was compared"
    row = result.failures[0]
    return f"first differing quantity {row.quantity} ({row.case})"


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
        from crosscheck.api import check_layer
        from netdesc.checks import InputError

        try:
            result = check_layer(*args, **{**defaults, **options})
        except InputError as err:
            _record(request.node, "the call", f"bad arguments: {err}")
            raise
        if result.passed:
            _record(request.node, result.layer)
            return result
        _record(request.node, result.layer, _first_difference(result))
        raise AssertionError(result.report(failures_only=True))  # assert_layer_matches' report

    return check
