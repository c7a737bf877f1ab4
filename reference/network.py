"""A network description (netdesc.description) as a torch.nn.Sequential; every derivative comes from autograd.

The Sequential's parameters are named "<layer index>.weight" / "<layer index>.bias" in torch's layouts, the
names and shapes of manual.network, so the manual parameters are copied in with ``load_state_dict``. Layer
input gradients come from ``torch.autograd.grad`` of the loss with respect to each layer's input, updates
from ``torch.optim.SGD``'s functional form (reference.optim). Nothing here is differentiated by hand.
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from netdesc.inputs import check_inputs
from reference import optim

MODULES = {
    "conv2d": lambda layer, o: nn.Conv2d(
        layer.in_shape[0], o["out_channels"], o["kernel_size"], o["stride"], o["padding"], o["dilation"],
        bias=o["bias"],
    ),
    "max_pool2d": lambda layer, o: nn.MaxPool2d(o["kernel_size"], o["stride"], o["padding"]),
    "avg_pool2d": lambda layer, o: nn.AvgPool2d(o["kernel_size"], o["stride"], o["padding"]),
    "linear": lambda layer, o: nn.Linear(layer.in_shape[0], o["out_features"], bias=o["bias"]),
    "flatten": lambda layer, o: nn.Flatten(),
    "relu": lambda layer, o: nn.ReLU(),
    "tanh": lambda layer, o: nn.Tanh(),
    "sigmoid": lambda layer, o: nn.Sigmoid(),
    "leaky_relu": lambda layer, o: nn.LeakyReLU(o["negative_slope"]),
}


def _half_squared_error(pred, target, reduction):
    """The slides' E = sum (target - pred)^2 / 2 (torch has no such loss); "mean" divides by the batch size."""
    E = ((target - pred) ** 2).sum() / 2
    return E / pred.shape[0] if reduction == "mean" else E


LOSSES = {
    "softmax_cross_entropy": functional.cross_entropy,
    "mse": functional.mse_loss,
    "half_squared_error": _half_squared_error,
    "binary_cross_entropy": functional.binary_cross_entropy,
    "binary_cross_entropy_with_logits": functional.binary_cross_entropy_with_logits,
}


def build(spec, params):
    """The nn.Sequential of the description holding copies of the manual parameters, in their dtype."""
    net = nn.Sequential(*(MODULES[layer.type](layer, layer.options) for layer in spec.layers))
    # assign=True keeps the copies' dtype (a plain load would cast them to the modules' float32).
    net.load_state_dict({name: torch.from_numpy(np.array(p)) for name, p in params.items()}, strict=True, assign=True)
    return net


def loss(spec, pred, target):
    """The description's loss of pred against target (torch tensors), as torch defines it."""
    return LOSSES[spec.loss.type](pred, target, reduction=spec.loss.reduction)


def _tensors(spec, params, x, target):
    check_inputs(spec, params, x, target)
    return build(spec, params), torch.from_numpy(x), torch.from_numpy(target)


def run(spec, params, x, target):
    """Forward and backward by autograd -> manual.network.Backprop's fields as a dict of NumPy values."""
    net, x, target = _tensors(spec, params, x, target)
    inputs, h = [], x.requires_grad_()
    for module in net:
        inputs.append(h)
        h = module(h)
    outputs = [*inputs[1:], h]
    E = loss(spec, h, target)
    names = [name for name, _ in net.named_parameters()]
    grads = torch.autograd.grad(E, [*inputs, h, *net.parameters()])
    numpy = lambda t: t.detach().numpy()  # noqa: E731
    return {
        "outputs": [numpy(t) for t in outputs],
        "loss": numpy(E),
        "loss_grad": numpy(grads[len(inputs)]),
        "input_grads": [numpy(g) for g in grads[: len(inputs)]],
        "param_grads": {name: numpy(g) for name, g in zip(names, grads[len(inputs) + 1:], strict=True)},
    }


def train(spec, params, x, target, steps=None):
    """`steps` (default: the description's) steps of torch.optim.SGD on one batch -> (E before each step,
    final params as NumPy arrays named as manual.network's)."""
    net, x, target = _tensors(spec, params, x, target)
    optimizer = optim.SGD(net.parameters(), **spec.optimizer.settings())
    losses = []
    for _ in range(spec.optimizer.steps if steps is None else steps):
        E = loss(spec, net(x), target)
        optimizer.step(torch.autograd.grad(E, optimizer.params))
        losses.append(E.detach().numpy())
    return np.stack(losses), {name: p.detach().numpy().copy() for name, p in net.named_parameters()}
