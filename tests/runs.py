"""Short ways for the tests to run the one checker (crosscheck.check) and the diagnosis on a subject, with a
catalogued wrong derivation or hand-written overrides."""

from crosscheck.catalogue import find
from crosscheck.check import check, entry_subject, overrides, scaled
from crosscheck.diagnose import diagnose
from crosscheck.subjects import NetworkSubject, SeedSubject


def network_rows(spec, seed=0, dtype="float64", steps=None, layer_backward=None, layer_forward=None, train=True,
                 optimizer_step=None, inputs=None):
    """The rows of crosscheck.check for a described network, with replaced layer functions where given."""
    wrong = None
    if layer_backward or layer_forward or optimizer_step or inputs:
        wrong = overrides(layer_backward, layer_forward, optimizer_step, inputs, network=spec.name)
    return list(check(NetworkSubject(spec, seed, dtype, steps, wrong), train).rows)


def scaled_at(spec, index, dtype="float64"):
    """{index: that layer's backward scaled by 1 + 100 * rtol}, as crosscheck verify --inject INDEX swaps in."""
    return scaled(spec, index, dtype).backward


def seed_results(case, wrong_name=None, train=True):
    """The Comparisons of crosscheck.check for the slides' network, with a catalogued wrong derivation."""
    subject = SeedSubject(case, None if wrong_name is None else find(wrong_name))
    return [row.result for row in check(subject, train).rows]


def seed_pairs(case, training=False):
    """[(row name, manual, autograd)] of the walk (or of the training run) of the slides' network."""
    subject = SeedSubject(case)
    return [(s.name, s.manual, s.autograd) for s in (subject.training() if training else subject.walk())]


def diagnose_entry(entry, dtype=None, seed=None):
    return diagnose(entry_subject(entry, dtype, seed))


def diagnose_seed(case, equations=None):
    return diagnose(SeedSubject(case, None if equations is None else overrides(equations, network="seed")))


def diagnose_network(spec, seed=0, dtype="float64", layer_backward=None, inputs=None):
    wrong = None if layer_backward is None and inputs is None else overrides(layer_backward, inputs=inputs)
    return diagnose(NetworkSubject(spec, seed, dtype, wrong=wrong))
