"""A network described as plain data, parsed and checked before any arithmetic (Python and NumPy only).

A description is a TOML or JSON document (or the same dict in Python); shapes are per sample, torch's layouts:

    name = "lenet5"                     # optional; the file's stem otherwise
    input_shape = [1, 28, 28]           # (C, H, W) of one sample, or a sequence's (T, F) (layer 0 recurrent:
                                        # [T, F]); [L] of indices when layer 0 is an embedding (a sequence of
                                        # token ids: it gives (T, E))
    batch_size = 2                      # N, default 2

    [[layers]]                          # in order, each a table: "type" and that type's options
    type = "conv2d"
    out_channels = 6
    kernel_size = 5
    padding = 2
    ...

    [[layers]]                          # a graph: any layer may name itself and read earlier layers
    name = "skip"                       # optional, unique; default: the layer's index as text ("1")
    type = "add"
    inputs = ["input", 0]               # optional: earlier layers by name or index, "input" for the network's
                                        # input; default: the previous layer (layer 0: the network's input)

    [loss]
    type = "softmax_cross_entropy"      # one of LOSSES
    reduction = "mean"                  # "mean" (default) or "sum"
    labels = [3, 7]                     # optional, softmax_cross_entropy and nll: N labels (else drawn from the seed),
                                        # N lists of T on a sequence's output (T, classes)
    ignore_index = -100                 # optional, nll (default -100) and softmax_cross_entropy: the label that
                                        # counts for nothing

    [optimizer]                         # a torch.optim optimizer for the k-step check; every key optional
    type = "sgd"                        # one of OPTIMIZER_DEFAULTS: sgd, adam, adamw, rmsprop, adagrad
    lr = 0.01                           # and that type's options, torch's names and defaults (below)
    momentum = 0.0
    dampening = 0.0
    nesterov = false
    weight_decay = 0.0
    steps = 20

    [optimizer.scheduler]               # optional: torch.optim.lr_scheduler, stepped after every optimizer step
    type = "step"                       # "step" (StepLR: step_size required, gamma 0.1) or "cosine"
    step_size = 5                       # (CosineAnnealingLR: T_max required, eta_min 0.0)
    gamma = 0.5

Optimizer types and their options (torch's defaults; SGD's lr 0.01 where torch's is 1e-3):

    sgd                     lr 0.01, momentum 0, dampening 0, nesterov false, weight_decay 0
    adam                    lr 1e-3, betas [0.9, 0.999], eps 1e-8, weight_decay 0 (L2, added to the gradient),
                            amsgrad false
    adamw                   as adam, weight_decay 1e-2 (decoupled: p = p * (1 - lr * weight_decay))
    rmsprop                 lr 1e-2, alpha 0.99, eps 1e-8, weight_decay 0, momentum 0, centered false
    adagrad                 lr 1e-2, lr_decay 0, weight_decay 0, initial_accumulator_value 0, eps 1e-10

Layer types and their options (default, or "required"), with torch's meanings (``LAYER_OPTIONS``):

    conv2d                  out_channels (required), kernel_size (required), stride 1, padding 0, dilation 1,
                            bias true, in_channels (optional; checked against the input's channels), groups 1
                            (divides the input's channels and out_channels; weight (F, C/groups, KH, KW);
                            groups = the input's channels: depthwise)
    conv_transpose2d        out_channels (required), kernel_size (required), stride 1, padding 0, output_padding 0
                            (each < stride or < dilation), dilation 1, bias true, in_channels (optional; checked);
                            weight (C_in, out_channels, KH, KW); OH = (H - 1)*sh - 2*ph + dh*(KH - 1) + oph + 1
    max_pool2d, avg_pool2d  kernel_size (required), stride (= kernel_size), padding 0 (at most kernel_size // 2)
    adaptive_avg_pool2d     output_size (required; an int or [h, w]; 1 is global average pooling): output i
                            averages rows [floor(i*H/OH), ceil((i+1)*H/OH)), columns likewise (torch's windows)
    linear                  out_features (required), bias true, in_features (optional; checked against the last
                            axis); torch's nn.Linear on the last axis: (F,) -> (out_features,), a sequence (T, F)
                            -> (T, out_features)
    sequence_pool           mode "last" ("last" or "mean"): a sequence (T, F) -> (F,), its last step or the mean over
                            its steps
    leaky_relu              negative_slope 0.01
    flatten, relu, tanh, sigmoid, silu  no options
    gelu                    approximate "none" (erf) or "tanh"
    softmax, log_softmax    dim 0: a per-sample axis (0, the channels or features, is torch's dim 1)
    dropout                 p 0.5: training mode, each element dropped with probability p, the kept ones scaled by
                            1 / (1 - p); the mask is drawn by the harness per step from (seed, step, layer index)
                            (netdesc.inputs.dropout_masks) and given to both sides
    embedding               num_embeddings (required), embedding_dim (required), padding_idx (optional: a row
                            whose gradient stays zero); layer 0 only, reading the network's input: integer indices
                            of shape input_shape = [L] (any shape) in [0, num_embeddings) -> (L, embedding_dim)
    layer_norm              normalized_shape (the trailing dims of its input; default: all of them), eps 1e-5,
                            elementwise_affine true
    group_norm              num_groups (required; divides the channels), eps 1e-5, affine true
    batch_norm1d            eps 1e-5, momentum 0.1, affine true; on (C,) or (C, L), in training mode (the batch's
    batch_norm2d            statistics: two values or more per channel), the same on images (C, H, W)
    rnn                     hidden_size (required), num_layers 1, nonlinearity "tanh" ("tanh" or "relu"), bias
                            true: torch.nn.RNN(batch_first=True) on a sequence (T, F) -> (T, hidden_size), the last
                            layer's output at every step, initial states zero; parameters as torch names them,
                            "<i>.weight_ih_l0" (H, F), "<i>.weight_hh_l0" (H, H), "<i>.bias_ih_l0",
                            "<i>.bias_hh_l0" (H,), then "_l1" (weight_ih_l1 (H, H)), ...
    lstm                    hidden_size (required), num_layers 1, bias true: torch.nn.LSTM, the same, its weights'
                            rows four gate blocks i, f, g, o (4H, F), (4H, H), (4H,)
    gru                     hidden_size (required), num_layers 1, bias true: torch.nn.GRU, the same, three gate
                            blocks r, z, n (3H, F), (3H, H), (3H,)
    add                     (merge) two or more inputs of one shape, summed elementwise
    concat                  (merge) dim 0: two or more inputs joined along per-sample axis `dim` (0, the
                            channels or features, is torch's dim 1); their other axes must match
    multihead_attention     num_heads (required; divides E), bias true, causal false: self-attention on a sequence
                            (T, E) -> (T, E), torch.nn.MultiheadAttention(E, num_heads, bias, batch_first=True)(x, x,
                            x, need_weights=False); parameters "<i>.in_proj_weight" (3E, E) (q, k, v stacked),
                            "<i>.in_proj_bias" (3E,), "<i>.out_proj.weight" (E, E), "<i>.out_proj.bias" (E,); causal:
                            query t attends to keys s <= t only (torch's is_causal, the upper triangle masked)
    transformer_encoder     num_heads (required; divides E), dim_feedforward (required), activation "gelu" (erf) or
                            "relu", layer_norm_eps 1e-5, causal false: (T, E) -> (T, E),
                            torch.nn.TransformerEncoderLayer(E, num_heads, dim_feedforward, dropout=0, activation,
                            layer_norm_eps, batch_first=True, norm_first=True): x + SA(LN1(x)), then + linear2(act(
                            linear1(LN2(.)))); parameters named as its state_dict, "<i>.self_attn.in_proj_weight",
                            ..., "<i>.linear1.weight", ..., "<i>.norm2.bias" (ENCODER_PARAMETERS)

kernel_size, stride, padding and dilation take an int or an [h, w] pair. Losses: softmax_cross_entropy
(torch's cross_entropy with class labels: an output (classes,) with labels (N,), or a sequence's (T, classes)
with a label per step, (N, T), over every step; "mean" divides by the labels not equal to ignore_index, which is
torch's -100 unless given), mse, half_squared_error (the
slides' sum (y - o)^2 / 2, "mean" divides by N), binary_cross_entropy (after a final sigmoid),
binary_cross_entropy_with_logits and nll (torch's nll_loss on log-probabilities, e.g. after a log_softmax, with
class labels, (N,) or a sequence's (N, T) as softmax_cross_entropy's; "mean" divides by the number of labels not
equal to ignore_index). With an ignore_index (nll's, or softmax_cross_entropy's given) a quarter of the labels
drawn from the seed are it. The loss reads the last
layer's output. A layer's output may be read by several later layers (fan-out; so may the network's input), and
every layer but the last must be read by some later one. Only add and concat take more than one input. Every
mistake raises ``InputError`` naming where it is ("layer 2 (conv2d): ...").
"""

import json
import math
import pathlib
import tomllib
from dataclasses import dataclass, field

from netdesc.checks import (
    OPTIMIZER_DEFAULTS,
    REDUCTIONS,
    SCHEDULER_DEFAULTS,
    InputError,
    check_number,
    check_optimizer_settings,
    check_positive_int,
    check_scheduler_settings,
    check_steps,
    is_int,
)

REQUIRED = "required"
_POOL = {"kernel_size": REQUIRED, "stride": None, "padding": 0}
LAYER_OPTIONS = {
    "conv2d": {
        "out_channels": REQUIRED, "kernel_size": REQUIRED, "stride": 1, "padding": 0, "dilation": 1, "bias": True,
        "in_channels": None,  # None: not given, nothing to check
        "groups": 1,
    },
    "conv_transpose2d": {
        "out_channels": REQUIRED, "kernel_size": REQUIRED, "stride": 1, "padding": 0, "output_padding": 0,
        "dilation": 1, "bias": True, "in_channels": None,
    },
    "max_pool2d": _POOL,
    "avg_pool2d": _POOL,
    "adaptive_avg_pool2d": {"output_size": REQUIRED},
    "linear": {"out_features": REQUIRED, "bias": True, "in_features": None},
    "flatten": {},
    "relu": {},
    "tanh": {},
    "sigmoid": {},
    "leaky_relu": {"negative_slope": 0.01},
    "add": {},
    "concat": {"dim": 0},
    "layer_norm": {"normalized_shape": None, "eps": 1e-5, "elementwise_affine": True},  # None: the whole sample
    "group_norm": {"num_groups": REQUIRED, "eps": 1e-5, "affine": True},
    "batch_norm1d": {"eps": 1e-5, "momentum": 0.1, "affine": True},
    "batch_norm2d": {"eps": 1e-5, "momentum": 0.1, "affine": True},
    "gelu": {"approximate": "none"},
    "silu": {},
    "softmax": {"dim": 0},
    "log_softmax": {"dim": 0},
    "embedding": {"num_embeddings": REQUIRED, "embedding_dim": REQUIRED, "padding_idx": None},
    "dropout": {"p": 0.5},
    "sequence_pool": {"mode": "last"},
    "rnn": {"hidden_size": REQUIRED, "num_layers": 1, "nonlinearity": "tanh", "bias": True},
    "lstm": {"hidden_size": REQUIRED, "num_layers": 1, "bias": True},
    "gru": {"hidden_size": REQUIRED, "num_layers": 1, "bias": True},
    "multihead_attention": {"num_heads": REQUIRED, "bias": True, "causal": False},
    "transformer_encoder": {"num_heads": REQUIRED, "dim_feedforward": REQUIRED, "activation": "gelu",
                            "layer_norm_eps": 1e-5, "causal": False},
}
NORMALIZATIONS = ("layer_norm", "group_norm", "batch_norm1d", "batch_norm2d")  # gamma and beta: their weight, bias
BATCH_NORMS = ("batch_norm1d", "batch_norm2d")  # training mode: each sample's output depends on the whole batch
MERGES = ("add", "concat")  # the layer types that read two or more inputs
DROPOUTS = ("dropout",)  # training mode: a mask per step, drawn by the harness (netdesc.inputs.dropout_masks)
INDEXED = ("embedding",)  # the layer types that read integer indices: the network's input, with no gradient
ATTENTIONS = ("multihead_attention", "transformer_encoder")  # on a sequence (T, E), parameters named as torch's
# a transformer_encoder's parameters: torch.nn.TransformerEncoderLayer's state_dict names, in its order
ENCODER_PARAMETERS = ("self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                      "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
                      "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias")
RECURRENT = {"rnn": 1, "lstm": 4, "gru": 3}  # the recurrent layer types and their gate blocks (torch's order)
# the layer types that, as layer 0, read a sequence input_shape [T, F]
SEQUENCE_READERS = (*RECURRENT, *ATTENTIONS)
NETWORK_INPUT = "input"  # what `inputs` calls the network's input; Layer.inputs holds -1 for it
LAYER_KEYS = ("type", "name", "inputs")  # the keys of a layer table beside its type's options
LOSSES = (
    "softmax_cross_entropy", "mse", "half_squared_error", "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "nll",
)
CLASSIFICATIONS = ("softmax_cross_entropy", "nll")  # the losses of class labels, (N,) integers
NLL_IGNORE_INDEX = -100  # torch's default ignore_index
LOSS_OPTIONS = {"type": REQUIRED, "reduction": "mean", "labels": None, "ignore_index": None}
OPTIMIZER_KEYS = {"steps": 20, "scheduler": None}  # the keys of the optimizer table beside "type" and its options
TOP_LEVEL = {"name": None, "input_shape": REQUIRED, "batch_size": 2, "layers": REQUIRED, "loss": REQUIRED,
             "optimizer": None}


@dataclass(frozen=True)
class Layer:
    """One checked layer: its options with defaults filled in, its input and output shape per sample, its name
    and the layers it reads.

    ``inputs`` holds the indices of the layers whose outputs it reads, in order, -1 for the network's input; a
    merge layer (add, concat) reads two or more, and its ``in_shape`` is then the tuple of their shapes.
    """

    index: int
    type: str
    options: dict
    in_shape: tuple
    out_shape: tuple
    name: str = ""
    inputs: tuple = ()

    def __str__(self):
        return f"layer {self.index} ({self.type})"

    @property
    def merge(self):
        return self.type in MERGES

    @property
    def in_shapes(self):
        """One shape per entry of ``inputs``."""
        return self.in_shape if self.merge else (self.in_shape,)

    def param_shapes(self):
        """{"weight": shape, "bias": shape} in torch's layouts: conv (F, C, KH, KW), linear (out, in); a
        normalization's gamma and beta: (C,) per channel, layer norm's normalized_shape; attention's under torch's
        module's names ("in_proj_weight", "out_proj.weight", "self_attn.in_proj_weight", ...)."""
        o = self.options
        if self.type in ATTENTIONS:
            return self._attention_shapes()
        if self.type in NORMALIZATIONS:
            if not o.get("affine", o.get("elementwise_affine")):
                return {}
            shape = o["normalized_shape"] if self.type == "layer_norm" else (self.in_shape[0],)
            return {"weight": shape, "bias": shape}
        if self.type in RECURRENT:
            return _recurrent_params(RECURRENT[self.type], self.in_shape[1], o)
        if self.type == "conv2d":
            shapes = {"weight": (o["out_channels"], self.in_shape[0] // o["groups"], *o["kernel_size"])}
            out = o["out_channels"]
        elif self.type == "conv_transpose2d":  # torch's layout: input channels first
            shapes = {"weight": (self.in_shape[0], o["out_channels"], *o["kernel_size"])}
            out = o["out_channels"]
        elif self.type == "linear":
            shapes = {"weight": (o["out_features"], self.in_shape[-1])}
            out = o["out_features"]
        elif self.type == "embedding":
            return {"weight": (o["num_embeddings"], o["embedding_dim"])}
        else:
            return {}
        if o["bias"]:
            shapes["bias"] = (out,)
        return shapes

    def _attention_shapes(self):
        """nn.MultiheadAttention's (E features): in_proj_weight (3E, E), in_proj_bias (3E,), out_proj.weight (E, E),
        out_proj.bias (E,), the biases with bias only; nn.TransformerEncoderLayer's: those under "self_attn.", linear1
        (F, E), linear2 (E, F) with biases, norm1 and norm2 (E,) each."""
        E = self.in_shape[-1]
        attention = {"in_proj_weight": (3 * E, E), "in_proj_bias": (3 * E,), "out_proj.weight": (E, E),
                     "out_proj.bias": (E,)}
        if self.type == "multihead_attention":
            return {k: s for k, s in attention.items() if self.options["bias"] or not k.endswith("bias")}
        F = self.options["dim_feedforward"]
        shapes = {f"self_attn.{k}": s for k, s in attention.items()} | {
            "linear1.weight": (F, E), "linear1.bias": (F,), "linear2.weight": (E, F), "linear2.bias": (E,),
            "norm1.weight": (E,), "norm1.bias": (E,), "norm2.weight": (E,), "norm2.bias": (E,)}
        return {k: shapes[k] for k in ENCODER_PARAMETERS}


def _recurrent_params(gates, features, o):
    """torch.nn.RNN/LSTM/GRU's parameters, layer after layer: weight_ih_l<l> (G*H, F, then H), weight_hh_l<l>
    (G*H, H), bias_ih_l<l> and bias_hh_l<l> (G*H,) where bias."""
    H, shapes = o["hidden_size"], {}
    for l in range(o["num_layers"]):
        shapes[f"weight_ih_l{l}"] = (gates * H, features if l == 0 else H)
        shapes[f"weight_hh_l{l}"] = (gates * H, H)
        if o["bias"]:
            shapes[f"bias_ih_l{l}"] = shapes[f"bias_hh_l{l}"] = (gates * H,)
    return shapes


@dataclass(frozen=True)
class Loss:
    type: str
    reduction: str
    labels: tuple | None  # a classification's labels from the description, else None (drawn from the seed)
    ignore_index: int | None = None  # nll's (default -100), softmax_cross_entropy's when given, else None

    @property
    def classes(self):
        """Whether the target is class labels, (N,) or a sequence's (N, T), rather than values shaped like the
        output."""
        return self.type in CLASSIFICATIONS


@dataclass(frozen=True)
class Scheduler:
    type: str  # a key of SCHEDULER_DEFAULTS: "step" (StepLR) or "cosine" (CosineAnnealingLR)
    options: dict  # its settings, checked, defaults filled in: step_size, gamma; T_max, eta_min


@dataclass(frozen=True)
class Optimizer:
    """The optimizer of the k-step check: its type (a key of OPTIMIZER_DEFAULTS), its learning rate, its other
    settings (checked, torch's defaults filled in), the number of steps and an optional learning-rate scheduler."""

    lr: float
    steps: int
    type: str = "sgd"
    options: dict = field(default_factory=dict)  # the type's settings but lr
    scheduler: Scheduler | None = None

    def settings(self):
        """The keyword arguments of the type's step in manual.optim (sgd_step, adam_step, ...) and torch.optim's."""
        return {"lr": self.lr, **self.options}


@dataclass(frozen=True)
class Spec:
    name: str
    input_shape: tuple
    batch_size: int
    layers: tuple
    loss: Loss
    optimizer: Optimizer

    @property
    def output_shape(self):
        return self.layers[-1].out_shape

    @property
    def label_shape(self):
        """A classification's labels per sample: () for an output (classes,), (T,) for a sequence's (T, classes)."""
        return self.output_shape[:-1]

    @property
    def indexed(self):
        """Whether the network's input is integer indices (layer 0 an embedding): no gradient, none checked."""
        return self.layers[0].type in INDEXED

    @property
    def vocabulary(self):
        """The number of distinct indices every reader of an indexed input takes: its smallest num_embeddings."""
        return min(layer.options["num_embeddings"] for layer in self.layers if -1 in layer.inputs)

    def param_shapes(self):
        """{"<index>.weight": shape, "<index>.bias": shape}: the names torch.nn.Sequential gives its parameters."""
        return {f"{layer.index}.{k}": s for layer in self.layers for k, s in layer.param_shapes().items()}


# --- option checks: each raises InputError("<option>: got ..., needs ...") -----------------------

def _flag(name, value):
    if not isinstance(value, bool):
        raise InputError(f"{name}: got {value!r}, needs true or false")
    return value


def _pair(minimum):
    def check(name, value):
        pair = list(value) if isinstance(value, (list, tuple)) else [value, value]
        if len(pair) != 2 or not all(is_int(v, minimum) for v in pair):
            raise InputError(f"{name}: got {value!r}, needs an integer >= {minimum} or a pair [h, w] of them")
        return tuple(int(v) for v in pair)
    return check


def _shape_option(name, value):
    shape = list(value) if isinstance(value, (list, tuple)) else [value]
    if not shape or not all(is_int(v, 1) for v in shape):
        raise InputError(f"{name}: got {value!r}, needs an integer >= 1 or a list of them (trailing dims)")
    return tuple(int(v) for v in shape)


def _unit_interval(name, value):
    if check_number(name, value, "a number in [0, 1]", minimum=0) > 1:
        raise InputError(f"{name}: got {value!r}, needs a number in [0, 1]")
    return float(value)


def _one_of(*choices):
    """The check of an option that takes one of a few strings: InputError naming them otherwise."""
    wanted = " or ".join(f'"{choice}"' for choice in choices)

    def check(name, value):
        if value not in choices:
            raise InputError(f"{name}: got {value!r}, needs {wanted}")
        return value
    return check


OPTION_CHECKS = {
    "out_channels": check_positive_int, "in_channels": check_positive_int, "groups": check_positive_int,
    "out_features": check_positive_int, "in_features": check_positive_int,
    "kernel_size": _pair(1), "output_size": _pair(1), "stride": _pair(1), "dilation": _pair(1), "padding": _pair(0),
    "output_padding": _pair(0),
    "bias": _flag, "negative_slope": check_number, "dim": lambda name, value: check_positive_int(name, value, 0),
    "normalized_shape": _shape_option, "num_groups": check_positive_int, "momentum": _unit_interval,
    "eps": lambda name, value: check_number(name, value, "a finite number > 0", minimum=1e-300),
    "elementwise_affine": _flag, "affine": _flag, "approximate": _one_of("none", "tanh"),
    "num_embeddings": check_positive_int, "embedding_dim": check_positive_int,
    "padding_idx": lambda name, value: check_positive_int(name, value, 0), "p": _unit_interval,
    "mode": _one_of("last", "mean"),
    "hidden_size": check_positive_int, "num_layers": check_positive_int, "nonlinearity": _one_of("tanh", "relu"),
    "num_heads": check_positive_int, "causal": _flag, "dim_feedforward": check_positive_int,
    "activation": _one_of("gelu", "relu"),
    "layer_norm_eps": lambda name, value: check_number(name, value, "a finite number > 0", minimum=1e-300),
}


def _table(where, raw):
    if not isinstance(raw, dict):
        raise InputError(f"{where}: got {type(raw).__name__} {raw!r}, needs a table (a dict) of options")
    return raw


def _options(raw, known, skip=()):
    """Fill in defaults, reject unknown and missing options -> a new dict (values not yet checked)."""
    unknown = [k for k in raw if k not in known and k not in skip]
    if unknown:
        raise InputError(f"unknown option {unknown[0]!r}; known options: {', '.join(known) or 'none'}")
    missing = [k for k, default in known.items() if default is REQUIRED and k not in raw]
    if missing:
        raise InputError(f"missing required option {missing[0]!r}")
    return {k: raw.get(k, default) for k, default in known.items()}


def _within(where, check, *args):
    """Run a check, prefixing its InputError with where the mistake is."""
    try:
        return check(*args)
    except InputError as err:
        raise InputError(f"{where}: {err}") from None


# --- shape rules: input shape per sample -> output shape per sample -----------------------------

def _image(shape):
    if len(shape) != 3:
        raise InputError(f"got an input of shape {shape} per sample, needs an image (C, H, W)")
    return shape


def _spatial(shape, kernel, stride, padding, dilation):
    """(OH, OW) = floor((H + 2*ph - dh*(KH - 1) - 1) / sh) + 1, likewise W; InputError when empty."""
    padded = (shape[1] + 2 * padding[0], shape[2] + 2 * padding[1])
    span = ((kernel[0] - 1) * dilation[0] + 1, (kernel[1] - 1) * dilation[1] + 1)  # the dilated kernel
    OH, OW = (padded[0] - span[0]) // stride[0] + 1, (padded[1] - span[1]) // stride[1] + 1
    if OH < 1 or OW < 1:
        raise InputError(
            f"output would be empty ({OH}x{OW}): the input {shape} padded to {padded} "
            f"is smaller than the (dilated) kernel {span}"
        )
    return OH, OW


def _conv2d_shape(o, shape):
    C = _image(shape)[0]
    if o["in_channels"] is not None and o["in_channels"] != C:
        raise InputError(f"in_channels: got {o['in_channels']}, but its input {shape} has {C} channels")
    if C % o["groups"] or o["out_channels"] % o["groups"]:
        raise InputError(f"groups: got {o['groups']}, needs a divisor of both the {C} channels of its input {shape} "
                         f"and its out_channels {o['out_channels']}")
    return (o["out_channels"], *_spatial(shape, o["kernel_size"], o["stride"], o["padding"], o["dilation"]))


def _conv_transpose2d_shape(o, shape):
    """(OH, OW) = ((H - 1)*sh - 2*ph + dh*(KH - 1) + oph + 1, likewise W), torch's; InputError when empty."""
    C = _image(shape)[0]
    if o["in_channels"] is not None and o["in_channels"] != C:
        raise InputError(f"in_channels: got {o['in_channels']}, but its input {shape} has {C} channels")
    op, stride, dilation = o["output_padding"], o["stride"], o["dilation"]
    if any(p >= s and p >= d for p, s, d in zip(op, stride, dilation, strict=True)):
        raise InputError(f"output_padding: got {list(op)}, needs each smaller than the stride {list(stride)} or the "
                         f"dilation {list(dilation)} (torch's rule)")
    size = [(n - 1) * s - 2 * p + d * (k - 1) + q + 1 for n, k, s, p, q, d in zip(
        shape[1:], o["kernel_size"], stride, o["padding"], op, dilation, strict=True)]
    if min(size) < 1:
        raise InputError(f"output would be empty ({size[0]}x{size[1]}): padding {list(o['padding'])} crops more than "
                         f"the input {shape} spreads to")
    return (o["out_channels"], *size)


def _pool_shape(o, shape):
    (ph, pw), (KH, KW) = o["padding"], o["kernel_size"]
    if ph > KH // 2 or pw > KW // 2:
        raise InputError(f"padding: got {[ph, pw]}, needs at most half of kernel_size {[KH, KW]} (torch's rule)")
    return (_image(shape)[0], *_spatial(shape, o["kernel_size"], o["stride"], o["padding"], (1, 1)))


def _linear_shape(o, shape):
    """torch's nn.Linear on the last axis: (F,) -> (out_features,), (T, F) -> (T, out_features)."""
    if o["in_features"] is not None and o["in_features"] != shape[-1]:
        raise InputError(f"in_features: got {o['in_features']}, but its input {shape} has {shape[-1]} features (its "
                         "last axis)")
    return (*shape[:-1], o["out_features"])


def _add_shape(o, shapes):
    if len(set(shapes)) > 1:
        raise InputError(f"got inputs of shapes {', '.join(map(str, shapes))} per sample, needs one shape to add")
    return shapes[0]


def _concat_shape(o, shapes):
    dim, ranks = o["dim"], {len(s) for s in shapes}
    if len(ranks) > 1 or dim >= min(ranks):
        raise InputError(f"dim: got {dim} for inputs of shapes {', '.join(map(str, shapes))} per sample, needs "
                         f"inputs of one rank and an axis among theirs")
    rest = {s[:dim] + s[dim + 1:] for s in shapes}
    if len(rest) > 1:
        raise InputError(f"got inputs of shapes {', '.join(map(str, shapes))} per sample, needs equal sizes on "
                         f"every axis but dim {dim}")
    return (*shapes[0][:dim], sum(s[dim] for s in shapes), *shapes[0][dim + 1:])


def _layer_norm_shape(o, shape):
    if o["normalized_shape"] is None:
        o["normalized_shape"] = shape
    D = o["normalized_shape"]
    if len(D) > len(shape) or shape[len(shape) - len(D):] != D:
        raise InputError(f"normalized_shape: got {list(D)}, needs the trailing dims of its input {shape} per sample")
    return shape


def _group_norm_shape(o, shape):
    if shape[0] % o["num_groups"]:
        raise InputError(f"num_groups: got {o['num_groups']}, needs a divisor of the {shape[0]} channels of its "
                         f"input {shape}")
    return shape


def _batch_norm1d_shape(o, shape):
    if len(shape) not in (1, 2):
        raise InputError(f"got an input of shape {shape} per sample, needs (C,) or (C, L): batch_norm2d takes images")
    return shape


def _softmax_shape(o, shape):
    if o["dim"] >= len(shape):
        raise InputError(f"dim: got {o['dim']}, needs one of the {len(shape)} axes of its input {shape} per sample")
    return shape


def _embedding_shape(o, shape):
    if o["padding_idx"] is not None and o["padding_idx"] >= o["num_embeddings"]:
        raise InputError(f"padding_idx: got {o['padding_idx']}, needs a row in [0, {o['num_embeddings'] - 1}] "
                         f"(num_embeddings {o['num_embeddings']})")
    return (*shape, o["embedding_dim"])


def _sequence(shape):
    if len(shape) != 2:
        raise InputError(f"got an input of shape {shape} per sample, needs a sequence (T, F)")
    return shape


def _sequence_pool_shape(o, shape):
    return _sequence(shape)[1:]


def _recurrent_shape(o, shape):
    return (_sequence(shape)[0], o["hidden_size"])


def _attention_shape(o, shape):
    if len(shape) != 2:
        raise InputError(f"got an input of shape {shape} per sample, needs a sequence (T, E)")
    if shape[1] % o["num_heads"]:
        raise InputError(f"num_heads: got {o['num_heads']}, needs a divisor of the {shape[1]} features E of its "
                         f"input {shape}")
    return shape


SHAPE_RULES = {
    "add": _add_shape,
    "concat": _concat_shape,
    "conv2d": _conv2d_shape,
    "conv_transpose2d": _conv_transpose2d_shape,
    "max_pool2d": _pool_shape,
    "avg_pool2d": _pool_shape,
    "adaptive_avg_pool2d": lambda o, shape: (_image(shape)[0], *o["output_size"]),
    "linear": _linear_shape,
    "flatten": lambda o, shape: (math.prod(shape),),
    "layer_norm": _layer_norm_shape,
    "group_norm": _group_norm_shape,
    "batch_norm1d": _batch_norm1d_shape,
    "batch_norm2d": lambda o, shape: _image(shape),
    "softmax": _softmax_shape,
    "log_softmax": _softmax_shape,
    "embedding": _embedding_shape,
    "sequence_pool": _sequence_pool_shape,
    **{kind: _recurrent_shape for kind in RECURRENT},
    "multihead_attention": _attention_shape,
    "transformer_encoder": _attention_shape,
}


def _layer(index, kind, raw, in_shape, name, inputs):
    options = _options(raw, LAYER_OPTIONS[kind], skip=LAYER_KEYS)
    for option, value in options.items():
        if value is not None or LAYER_OPTIONS[kind][option] is REQUIRED:  # null is "the default", and has none
            options[option] = OPTION_CHECKS[option](option, value)
    if options.get("stride", 1) is None:  # a pool's stride defaults to its kernel size
        options["stride"] = options["kernel_size"]
    out_shape = SHAPE_RULES.get(kind, lambda o, shape: shape)(options, in_shape)
    return Layer(index, kind, options, in_shape, out_shape, name, inputs)


def _name(index, raw, names):
    """The layer's name (default: its index as text), unique among the layers before it."""
    name = raw.get("name", str(index))
    if not isinstance(name, str) or name == NETWORK_INPUT:
        raise InputError(f"name: got {name!r}, needs a string other than {NETWORK_INPUT!r}")
    if name in names:
        given = "" if "name" in raw else " (its index, the default name)"
        raise InputError(f"name: got {name!r}{given}, but layer {names[name]} already has that name; "
                         "names must be unique")
    return name


def _source(index, ref, names, later):
    """One entry of `inputs` -> the index of the layer it names (-1: the network's input)."""
    is_index = isinstance(ref, int) and not isinstance(ref, bool)
    if ref == NETWORK_INPUT:
        return -1
    if isinstance(ref, str) and ref in names:
        return names[ref]
    if is_index and 0 <= ref < index:
        return ref
    ahead = later.get(ref) if isinstance(ref, str) else ref if is_index and ref >= index else None
    if ahead is not None:
        raise InputError(f"inputs: got {ref!r} (layer {ahead}), needs an earlier layer: a layer reads only the "
                         "layers before it (a forward reference or a cycle)")
    known = ", ".join(repr(n) for n in [NETWORK_INPUT, *names])
    raise InputError(f"inputs: got {ref!r}, needs the name or index of an earlier layer, or {NETWORK_INPUT!r}; "
                     f"known: {known}")


def _inputs(index, kind, raw, names, later):
    """The layer's `inputs` resolved to indices (-1: the network's input); default: the previous layer."""
    refs = raw.get("inputs", [index - 1 if index else NETWORK_INPUT])
    if not isinstance(refs, list):
        raise InputError(f"inputs: got {refs!r}, needs a list of earlier layers' names or indices, "
                         f"or {NETWORK_INPUT!r}")
    sources = tuple(_source(index, ref, names, later) for ref in refs)
    if kind in MERGES and len(sources) < 2:
        raise InputError(f"inputs: got {len(sources)} input{'s' * (len(sources) != 1)} {refs!r}, needs 2 or more "
                         f"to {kind}")
    if kind not in MERGES and len(sources) != 1:
        raise InputError(f"inputs: got {len(sources)} inputs {refs!r}, needs exactly 1 (only "
                         f"{' and '.join(MERGES)} merge several)")
    return sources


def _parse_layer(index, raw, layers, input_shape, later):
    raw = _table(f"layer {index}", raw)
    kind = raw.get("type")
    if kind not in LAYER_OPTIONS:
        raise InputError(f"layer {index}: unknown type {kind!r}; known types: {', '.join(LAYER_OPTIONS)}")
    names = {layer.name: layer.index for layer in layers}
    name = _within(f"layer {index} ({kind})", _name, index, raw, names)
    inputs = _within(f"layer {index} ({kind})", _inputs, index, kind, raw, names, later)
    shapes = tuple(input_shape if j < 0 else layers[j].out_shape for j in inputs)
    return _within(f"layer {index} ({kind})", _layer, index, kind, raw, shapes if kind in MERGES else shapes[0],
                   name, inputs)


def _later_names(raw_layers):
    """{name: index} of every layer table with a string name, for naming a forward reference."""
    return {raw["name"]: i for i, raw in enumerate(raw_layers) if isinstance(raw, dict) and isinstance(
        raw.get("name"), str)}


def _check_indexed(layers):
    """An embedding is layer 0 and reads the network's input, integer indices, which only embeddings read."""
    indexed = layers[0].type in INDEXED
    for layer in layers:
        reads_input = -1 in layer.inputs
        if layer.type in INDEXED and (layer.index or not reads_input):
            inputs = [NETWORK_INPUT if j < 0 else j for j in layer.inputs]
            raise InputError(f"{layer}: got it reading {inputs}, needs to be layer 0 reading the network's input "
                             f"({NETWORK_INPUT!r}): an embedding reads integer indices")
        if indexed and reads_input and layer.type not in INDEXED:
            raise InputError(f"{layer}: got it reading the network's input, integer indices (layer 0 is an "
                             "embedding), needs an embedding to read them")


def _check_read(layers):
    """Every layer but the last must be read by a later one: its output would reach no loss."""
    read = {j for layer in layers for j in layer.inputs}
    for layer in layers[:-1]:
        if layer.index not in read:
            raise InputError(f"{layer}: its output ({layer.name!r}) is read by no later layer, needs a reader: "
                             "only the last layer's output reaches the loss")


def _check_batch_statistics(layers, batch_size):
    """A batch norm in training mode needs two values or more per channel: torch raises on one."""
    for layer in layers:
        if layer.type in BATCH_NORMS and batch_size * math.prod(layer.in_shape[1:]) < 2:
            raise InputError(f"{layer}: got batch_size {batch_size} and an input of shape {layer.in_shape} per "
                             "sample, one value per channel; needs more than one for the batch's statistics")


# --- loss, optimizer, the whole description -------------------------------------------------------

def _loss(raw, spec_layers, batch_size):
    o = _options(raw, LOSS_OPTIONS)
    if o["reduction"] not in REDUCTIONS:
        raise InputError(f"reduction: got {o['reduction']!r}, needs one of {', '.join(REDUCTIONS)}")
    last = spec_layers[-1]
    if o["type"] in CLASSIFICATIONS and len(last.out_shape) not in (1, 2):
        raise InputError(f"got {last}'s output of shape {last.out_shape} per sample, needs flat logits (classes,) or a "
                         "sequence's (T, classes)")
    if o["type"] == "binary_cross_entropy" and last.type != "sigmoid":
        raise InputError(f"needs probabilities: the last layer must be a sigmoid, got {last}")
    ignore_index = o["ignore_index"]
    if o["type"] == "nll" or (o["type"] in CLASSIFICATIONS and ignore_index is not None):
        ignore_index = NLL_IGNORE_INDEX if ignore_index is None else ignore_index
        if not is_int(ignore_index, -(2 ** 63)):
            raise InputError(f"ignore_index: got {ignore_index!r}, needs an integer (a class, or one outside them "
                             f"such as torch's {NLL_IGNORE_INDEX})")
    elif ignore_index is not None:
        raise InputError(f"ignore_index: got {ignore_index!r}, but only {' and '.join(CLASSIFICATIONS)} ignore a "
                         "label")
    labels = o["labels"]
    if labels is not None:
        labels = _labels(labels, o["type"], last.out_shape, batch_size, ignore_index)
    return Loss(o["type"], o["reduction"], labels, ignore_index)


def _labels(labels, loss_type, out_shape, batch_size, ignore_index=None):
    """The description's labels: N classes, or for a sequence's output (T, classes) N lists of T -> a tuple."""
    if loss_type not in CLASSIFICATIONS:
        raise InputError(f"labels: only {' and '.join(CLASSIFICATIONS)} take labels; other losses draw targets "
                         "from the seed")
    classes, steps = out_shape[-1], out_shape[:-1]
    needs = f"batch_size = {batch_size} class labels" if not steps else \
        f"batch_size = {batch_size} lists of T = {steps[0]} class labels (one per step)"
    if not isinstance(labels, list) or len(labels) != batch_size or (steps and not all(
            isinstance(row, list) and len(row) == steps[0] for row in labels)):
        raise InputError(f"labels: got {labels!r}, needs a list of {needs}")
    ignored = "" if ignore_index is None else f" or ignore_index {ignore_index}"
    flat = [((n,), label) for n, label in enumerate(labels)] if not steps else \
        [((n, t), label) for n, row in enumerate(labels) for t, label in enumerate(row)]
    for at, label in flat:
        if not is_int(label, -(2 ** 63)) or (not 0 <= label < classes and label != ignore_index):
            where = "][".join(map(str, at))
            raise InputError(f"labels[{where}]: got {label!r}, needs a class in [0, {classes - 1}]{ignored}")
    return tuple(int(label) for label in labels) if not steps else \
        tuple(tuple(int(label) for label in row) for row in labels)


def _parse_loss(raw, spec_layers, batch_size):
    raw = _table("loss", raw)
    kind = raw.get("type")
    if kind not in LOSSES:
        raise InputError(f"loss: unknown type {kind!r}; known types: {', '.join(LOSSES)}")
    return _within(f"loss ({kind})", _loss, raw, spec_layers, batch_size)


def _optimizer(raw):
    kind = raw.get("type", "sgd")
    if kind not in OPTIMIZER_DEFAULTS:
        raise InputError(f"type: got {kind!r}, needs one of {', '.join(OPTIMIZER_DEFAULTS)}")
    o = _options(raw, OPTIMIZER_DEFAULTS[kind] | OPTIMIZER_KEYS, skip=("type",))
    settings = check_optimizer_settings(kind, {k: o[k] for k in OPTIMIZER_DEFAULTS[kind]})
    scheduler = None if o["scheduler"] is None else _within("scheduler", _scheduler, _table("scheduler",
                                                                                          o["scheduler"]))
    return Optimizer(settings.pop("lr"), check_steps(o["steps"]), kind, settings, scheduler)


def _scheduler(raw):
    kind = raw.get("type")
    if kind not in SCHEDULER_DEFAULTS:
        raise InputError(f"type: got {kind!r}, needs one of {', '.join(SCHEDULER_DEFAULTS)}")
    known = {k: REQUIRED if default is None else default for k, default in SCHEDULER_DEFAULTS[kind].items()}
    return Scheduler(kind, check_scheduler_settings(_options(raw, known, skip=("type",))))


def _shape(value, indexed=False, sequence=False):
    """input_shape: (C, H, W) or (T, F), or, for the indices of an embedding (layer 0), one or more sizes such
    as [L]; a recurrent or attention layer 0 reads a sequence [T, F]."""
    ok = isinstance(value, (list, tuple)) and all(is_int(v, 1) for v in value)
    if indexed and not (ok and value):
        raise InputError(f"input_shape: got {value!r}, needs [L] (or more sizes), integers >= 1: the shape of the "
                         "indices the embedding of layer 0 reads")
    if sequence and not (ok and len(value) == 2):
        raise InputError(f"input_shape: got {value!r}, needs [T, F], two integers >= 1: the sequence a "
                         "recurrent or attention layer 0 reads")
    if not indexed and not (ok and len(value) in (2, 3)):
        raise InputError(f"input_shape: got {value!r}, needs [C, H, W] (an image) or [T, F] (a sequence), integers "
                         ">= 1")
    return tuple(int(v) for v in value)


def _first_is(raw_layers, types):
    """Whether layer 0 of the raw layer tables is one of `types`: an embedding (INDEXED) reads indices, a
    recurrent or attention layer (SEQUENCE_READERS) a sequence."""
    return isinstance(raw_layers, list) and bool(raw_layers) and isinstance(raw_layers[0], dict) \
        and raw_layers[0].get("type") in types


def parse_spec(data, name="spec"):
    """A description (the dict of a TOML/JSON document) -> Spec; InputError names the first mistake."""
    data = _table("description", data)
    o = _within("description", _options, data, TOP_LEVEL)
    if o["name"] is not None and not isinstance(o["name"], str):
        raise InputError(f"name: got {o['name']!r}, needs a string")
    input_shape = _shape(o["input_shape"], _first_is(o["layers"], INDEXED), _first_is(o["layers"], SEQUENCE_READERS))
    batch_size = check_positive_int("batch_size", o["batch_size"])
    if not isinstance(o["layers"], list) or not o["layers"]:
        raise InputError(f"layers: got {o['layers']!r}, needs a non-empty list of layer tables")
    layers, later = [], _later_names(o["layers"])
    for index, raw in enumerate(o["layers"]):
        layers.append(_parse_layer(index, raw, layers, input_shape, later))
    _check_indexed(layers)
    _check_read(layers)
    _check_batch_statistics(layers, batch_size)
    loss = _parse_loss(o["loss"], layers, batch_size)
    optimizer = _within("optimizer", _optimizer, _table("optimizer", {} if o["optimizer"] is None else o["optimizer"]))
    return Spec(o["name"] or name, input_shape, batch_size, tuple(layers), loss, optimizer)


def spec_from_json(text, name="spec-json"):
    """A JSON text -> Spec."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"spec JSON: not valid JSON: {err}") from None
    except RecursionError:
        raise InputError("spec JSON: nested too deeply to read, needs a description of a few levels") from None
    return parse_spec(data, name)


def load_spec(path):
    """A .toml or .json file -> Spec, named by its "name" or else the file's stem."""
    path = pathlib.Path(path)
    readers = {".toml": (tomllib.loads, tomllib.TOMLDecodeError), ".json": (json.loads, json.JSONDecodeError)}
    if path.is_dir():
        raise InputError(f"{path}: got a directory, needs a .toml or .json description")
    if path.suffix not in readers:
        raise InputError(f"{path}: got a {path.suffix or 'suffix-less'} file, needs a .toml or .json description")
    read, decode_error = readers[path.suffix]
    try:
        data = read(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err.strerror}") from None
    except (decode_error, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid {path.suffix[1:].upper()}: {err}") from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to read, needs a description of a few levels") from None
    return _within(str(path), parse_spec, data, path.stem)

