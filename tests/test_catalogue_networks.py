"""The small networks the catalogue's wrong derivations are shown on are the ones their entries describe: every
description is a valid network (netdesc.description.parse_spec takes it), the layer an entry's first wrong row and
its replaced functions name is that layer, and the settings an entry's description states (the reduction and the
batch its mean needs, the optimizer, its momentum, dampening, Nesterov flag, weight decay, epsilon, scheduler) are
the ones its network runs with."""

import re

import pytest

from crosscheck.catalogue import catalogue, find
from netdesc.description import parse_spec

DESCRIBED = [e for e in catalogue() if not e.on_seed]


def _spec(entry):
    return parse_spec(entry.network, entry.name)


@pytest.mark.parametrize("entry", DESCRIBED, ids=str)
def test_the_first_wrong_row_and_the_replaced_functions_name_layers_of_that_type(entry):
    """'2 conv2d: dE/dinput' is the row of layer 2, a conv2d; 'loss: ...' the loss's; a replaced backward or
    forward keyed by layer index replaces a layer of the network (every key < the number of layers); every layer's
    output has a shape of sizes >= 1 (parse_spec lets a required option given as None through unchecked)."""
    spec = _spec(entry)
    assert all(type(n) is int and n >= 1 for layer in spec.layers for n in layer.out_shape)
    index, kind = re.match(r"(?:(\d+) (\w+)|loss): ", entry.first_wrong).groups()
    if index is not None:
        assert spec.layers[int(index)].type == kind
    for key in {*entry.backward, *entry.forward}:
        assert key == "loss" or 0 <= key < len(spec.layers)


# "conv2d with stride 2", "with padding 1", "with dilation 2", "with 2 groups": the conv2d the entry breaks has them
CONV_OPTIONS = {"conv2d-stride-ignored-dx": ("stride", (2, 2)), "conv2d-padding-wrong-side": ("padding", (1, 1)),
                "conv2d-padding-not-cropped": ("padding", (1, 1)), "conv2d-dilation-ignored-dw": ("dilation", (2, 2)),
                "grouped-conv-dw-summed-over-groups": ("groups", 2)}


@pytest.mark.parametrize(("name", "option", "value"), [(n, *v) for n, v in CONV_OPTIONS.items()])
def test_a_conv_entry_breaks_a_conv2d_with_the_option_it_describes(name, option, value):
    entry = find(name)
    layer = _spec(entry).layers[int(entry.first_wrong.split()[0])]
    assert layer.type == "conv2d" and layer.options[option] == value


@pytest.mark.parametrize("name", ["cross-entropy-mean-forgotten", "nll-mean-over-all", "cross-entropy-ignored-counted"])
def test_an_entry_about_the_mean_runs_under_the_mean_on_more_than_one_label(name):
    spec = _spec(find(name))
    assert spec.loss.reduction == "mean" and spec.batch_size > 1


# the optimizer each entry's description names, with the settings it states
OPTIMIZERS = {
    "sgd-dampening-first-step": ("sgd", {"momentum": 0.9, "dampening": 0.5}),  # "momentum 0.9, dampening 0.5"
    "sgd-nesterov-lookahead-missing": ("sgd", {"nesterov": True}),
    "sgd-buffer-not-kept": ("sgd", {"momentum": 0.9}),
    "sgd-weight-decay-forgotten": ("sgd", {"weight_decay": 0.05}),
    "adam-no-bias-correction": ("adam", {"betas": (0.9, 0.999)}),  # (1 - 0.9) / sqrt(1 - 0.999) = 3.16: "3.2"
    "adamw-coupled-decay": ("adamw", {"weight_decay": 0.5}),
    "rmsprop-eps-inside-sqrt": ("rmsprop", {"eps": 0.01}),
    "scheduler-stepped-early": ("sgd", {}),
}


@pytest.mark.parametrize(("name", "kind", "settings"), [(n, *v) for n, v in OPTIMIZERS.items()])
def test_an_optimizer_entry_trains_with_the_optimizer_and_settings_it_describes(name, kind, settings):
    """Each optimizer entry's network: one linear layer on a 1x3x3 input, the optimizer its description names,
    with every setting it states (a momentum entry's momentum not 0)."""
    spec = _spec(find(name))
    assert [layer.type for layer in spec.layers] == ["flatten", "linear"]
    assert spec.optimizer.type == kind
    assert {k: spec.optimizer.options[k] for k in settings} == settings
    if "momentum" in find(name).kind:
        assert spec.optimizer.options["momentum"] == 0.9


def test_the_early_scheduler_entry_steps_the_rate_by_half_every_step():
    """StepLR(step_size 1, gamma 0.5) on SGD with momentum at lr 0.1."""
    optimizer = _spec(find("scheduler-stepped-early")).optimizer
    assert (optimizer.lr, optimizer.options["momentum"]) == (0.1, 0.9)
    assert (optimizer.scheduler.type, optimizer.scheduler.options) == ("step", {"step_size": 1, "gamma": 0.5})
