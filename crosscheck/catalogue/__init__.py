"""The catalogue of deliberately wrong derivations, kept apart from the real code (NumPy only; manual/ never
imports it).

A wrong derivation is the real backward with one thing changed, plus where the harness must localize it and how
it must classify it. One type serves every subject:

- on the slides' network (``network="seed"``) ``backward`` swaps equations of manual.seed_network's chain rule by
  name (``{"dH1_dZ1": ...}``), ``optimizer_step`` replaces its SGD step, ``case`` gives the SeedCase fields it needs;
- on a described network (``network`` the description as a dict) ``backward`` and ``forward`` swap one layer's
  functions, by layer index or "loss", ``optimizer_step`` replaces the optimizer's step (manual.optim.sgd_step,
  adam_step, ...), ``scheduler`` its learning-rate scheduler (manual.optim.step_lr, cosine_lr), ``inputs`` draws
  the batch, ``accumulate`` replaces the sum of a fan-out's gradients, ``running_stats`` a batch norm's update of
  its running statistics.

``first_wrong`` is the name of the first row the checker must flag, ``kind`` the class crosscheck.diagnose must
give it, ``dtypes`` where the harness can flag it at all.
"""

from dataclasses import dataclass, field

from netdesc.checks import InputError


@dataclass(frozen=True)
class WrongDerivation:
    name: str
    description: str
    network: object  # "seed", or a network description (a dict, netdesc.description's format)
    first_wrong: str
    kind: str
    backward: dict = field(default_factory=dict)
    forward: dict = field(default_factory=dict)
    optimizer_step: object = None
    inputs: object = None  # (spec, dtype, seed) -> (x, target); netdesc.inputs.random_batch otherwise
    case: dict = field(default_factory=dict)  # SeedCase fields the entry needs (the slides' network only)
    dtypes: tuple = ("float64", "float32")
    accumulate: object = None  # (total, grad) -> total: replaces manual.network.accumulate, a fan-out's sum
    scheduler: object = None  # (lr, epoch, **options) -> lr: replaces the description's scheduler (manual.optim)
    running_stats: object = None  # replaces manual.functional.batch_norm_running_stats, its signature

    def __str__(self):
        return self.name

    @property
    def on_seed(self):
        return self.network == "seed"


def catalogue():
    """Every entry: the slides' network's first, then the general layers', the recurrent layers', attention's."""
    from crosscheck.catalogue import attention, layers, recurrent, seed

    return [*seed.ENTRIES, *layers.ENTRIES, *recurrent.ENTRIES, *attention.ENTRIES]


def find(name, option="--inject"):
    """The entry called `name`; InputError naming the option and listing the names otherwise."""
    entries = catalogue()
    for entry in entries:
        if entry.name == name:
            return entry
    raise InputError(f"{option}: got {name!r}, needs one of {', '.join(e.name for e in entries)}")
