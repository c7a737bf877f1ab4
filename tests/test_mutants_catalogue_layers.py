"""The small networks the catalogue's wrong derivations are shown on, pinned whole (crosscheck.catalogue.layers'
_stack, _conv, _linear and the optimizer entries' one-linear network, which the recurrent and attention entries
share): every entry's input shape, batch size, layers with their options, loss and optimizer, as the entry
documents them; and a network subject's lockstep replays exactly k steps of its batch (crosscheck.subjects)."""

import itertools

from crosscheck.catalogue import catalogue
from crosscheck.subjects import NetworkSubject
from manual import network as manual_net
from netdesc.description import parse_spec


def _call(d):
    """{"type": "conv2d", "out_channels": 2, ...} -> "conv2d(kernel_size=3, out_channels=2)", its options sorted."""
    args = ", ".join(f"{k}={v!r}" for k, v in sorted(d.items()) if k != "type")
    return d["type"] + (f"({args})" if args else "")


def _network(n):
    """A network description as one line: every key it holds, every option of every layer."""
    assert set(n) == {"input_shape", "batch_size", "layers", "loss", "optimizer"}
    return (f"{'x'.join(map(str, n['input_shape']))}, batch {n['batch_size']}: "
            + " ".join(_call(layer) for layer in n["layers"]) + f"; loss {_call(n['loss'])}; optimizer "
            + ", ".join(f"{k}={v!r}" for k, v in sorted(n["optimizer"].items())))


NETWORKS = {
    "conv2d-stride-ignored-dx":
        "1x7x7, batch 2: conv2d(kernel_size=2, out_channels=2) tanh conv2d(kernel_size=3, out_channels=2, stride=2) "
        "flatten linear(out_features=3); loss mse(reduction='mean'); optimizer lr=0.1",
    "conv2d-padding-wrong-side":
        "1x6x6, batch 2: conv2d(kernel_size=2, out_channels=2) tanh conv2d(kernel_size=3, out_channels=2, padding=1) "
        "flatten linear(out_features=2); loss mse(reduction='mean'); optimizer lr=0.1",
    "conv2d-padding-not-cropped":
        "1x5x5, batch 2: conv2d(kernel_size=3, out_channels=2, padding=1) tanh flatten linear(out_features=2); loss "
        "mse(reduction='mean'); optimizer lr=0.1",
    "conv2d-dilation-ignored-dw":
        "1x7x7, batch 2: conv2d(dilation=2, kernel_size=2, out_channels=2) tanh flatten linear(out_features=2); loss "
        "mse(reduction='mean'); optimizer lr=0.1",
    "conv2d-dw-flipped":
        "1x5x5, batch 2: conv2d(kernel_size=3, out_channels=2, padding=1) tanh flatten linear(out_features=2); loss "
        "mse(reduction='mean'); optimizer lr=0.1",
    "max-pool-every-element":
        "1x8x8, batch 2: conv2d(kernel_size=3, out_channels=2, padding=1) relu max_pool2d(kernel_size=2) flatten "
        "linear(out_features=3); loss mse(reduction='mean'); optimizer lr=0.1",
    "max-pool-last-tie":
        "1x8x8, batch 2: conv2d(bias=False, kernel_size=3, out_channels=2, padding=1) relu max_pool2d(kernel_size=2) "
        "flatten linear(out_features=3); loss mse(reduction='mean'); optimizer lr=0.1",
    "avg-pool-not-divided":
        "1x6x6, batch 2: conv2d(kernel_size=3, out_channels=2, padding=1) tanh avg_pool2d(kernel_size=2) flatten "
        "linear(out_features=3); loss mse(reduction='mean'); optimizer lr=0.1",
    "maxpool-overlap-assign":
        "1x9x9, batch 2: conv2d(kernel_size=3, out_channels=2, padding=1) tanh max_pool2d(kernel_size=3, stride=2) "
        "flatten linear(out_features=3); loss mse(reduction='mean'); optimizer lr=0.1",
    "adaptive-pool-even-windows":
        "1x7x7, batch 2: conv2d(kernel_size=3, out_channels=2, padding=1) tanh adaptive_avg_pool2d(output_size=3) "
        "flatten linear(out_features=3); loss mse(reduction='mean'); optimizer lr=0.1",
    "grouped-conv-dw-summed-over-groups":
        "4x5x5, batch 2: conv2d(groups=2, kernel_size=3, out_channels=4, padding=1) tanh flatten "
        "linear(out_features=3); loss mse(reduction='mean'); optimizer lr=0.1",
    "convtranspose-output-padding-ignored":
        "2x4x4, batch 2: conv_transpose2d(kernel_size=3, out_channels=2, output_padding=1, padding=1, stride=2) tanh "
        "flatten linear(out_features=3); loss mse(reduction='mean'); optimizer lr=0.1",
    "cross-entropy-onehot-forgotten":
        "1x3x3, batch 4: flatten linear(out_features=5); loss softmax_cross_entropy(reduction='mean'); optimizer "
        "lr=0.1",
    "cross-entropy-mean-forgotten":
        "1x3x3, batch 4: flatten linear(out_features=5); loss softmax_cross_entropy(reduction='mean'); optimizer "
        "lr=0.1",
    "relu-ge-instead-of-gt":
        "1x6x6, batch 2: conv2d(bias=False, kernel_size=3, out_channels=2, padding=1) relu flatten "
        "linear(out_features=3); loss mse(reduction='mean'); optimizer lr=0.1",
    "tanh-of-output":
        "1x2x3, batch 3: flatten linear(out_features=5) tanh linear(out_features=2); loss mse(reduction='mean'); "
        "optimizer lr=0.1",
    "fan-out-overwritten":
        "1x6x6, batch 2: conv2d(kernel_size=3, out_channels=2, padding=1) tanh conv2d(kernel_size=3, out_channels=2, "
        "padding=1) tanh add(inputs=[3, 1]) flatten linear(out_features=3); loss mse(reduction='mean'); optimizer "
        "lr=0.1",
    "batchnorm-no-mean-variance-paths":
        "2x4x4, batch 4: batch_norm2d conv2d(kernel_size=3, out_channels=2, padding=1) tanh flatten "
        "linear(out_features=3); loss mse(reduction='mean'); optimizer lr=0.1",
    "batchnorm-dy-for-scaled":
        "1x5x5, batch 4: conv2d(bias=False, kernel_size=3, out_channels=3, padding=1) batch_norm2d tanh flatten "
        "linear(out_features=3); loss mse(reduction='mean'); optimizer lr=0.1",
    "groupnorm-wrong-axes":
        "1x5x5, batch 2: conv2d(kernel_size=3, out_channels=4, padding=1) group_norm(num_groups=2) tanh flatten "
        "linear(out_features=3); loss mse(reduction='mean'); optimizer lr=0.1",
    "layernorm-wrong-axes":
        "1x2x3, batch 4: flatten linear(out_features=5) layer_norm tanh linear(out_features=2); loss "
        "mse(reduction='mean'); optimizer lr=0.1",
    "embedding-assign":
        "5, batch 3: embedding(embedding_dim=3, num_embeddings=4) flatten linear(out_features=2); loss "
        "mse(reduction='mean'); optimizer lr=0.1",
    "embedding-padding-gradient":
        "5, batch 3: embedding(embedding_dim=3, num_embeddings=4, padding_idx=1) flatten linear(out_features=2); loss "
        "mse(reduction='mean'); optimizer lr=0.1",
    "nll-mean-over-all":
        "1x2x3, batch 4: flatten linear(out_features=4) log_softmax; loss nll(reduction='mean'); optimizer lr=0.1",
    "cross-entropy-ignored-counted":
        "5, batch 2: embedding(embedding_dim=3, num_embeddings=4) linear(out_features=3); loss "
        "softmax_cross_entropy(ignore_index=-100); optimizer lr=0.1",
    "layernorm-mean-path-left-out":
        "4x3, batch 3: linear(out_features=5) layer_norm(normalized_shape=5) tanh sequence_pool(mode='mean') "
        "linear(out_features=2); loss mse(reduction='mean'); optimizer lr=0.1",
    "dropout-no-scale":
        "1x2x3, batch 4: flatten linear(out_features=6) tanh dropout(p=0.25) linear(out_features=2); loss "
        "mse(reduction='mean'); optimizer lr=0.1",
    "softmax-layer-diag-only":
        "1x2x3, batch 3: flatten linear(out_features=5) softmax linear(out_features=2); loss mse(reduction='mean'); "
        "optimizer lr=0.1",
    "gelu-tanh-for-exact":
        "1x2x3, batch 3: flatten linear(out_features=5) gelu linear(out_features=2); loss mse(reduction='mean'); "
        "optimizer lr=0.1",
    "batchnorm-biased-running-var":
        "1x5x5, batch 4: conv2d(bias=False, kernel_size=3, out_channels=3, padding=1) batch_norm2d tanh flatten "
        "linear(out_features=3); loss mse(reduction='mean'); optimizer lr=0.1",
    "sgd-dampening-first-step":
        "1x3x3, batch 2: flatten linear(out_features=2); loss mse(reduction='mean'); optimizer dampening=0.5, lr=0.1, "
        "momentum=0.9",
    "sgd-nesterov-lookahead-missing":
        "1x3x3, batch 2: flatten linear(out_features=2); loss mse(reduction='mean'); optimizer lr=0.1, momentum=0.9, "
        "nesterov=True",
    "sgd-buffer-not-kept":
        "1x3x3, batch 2: flatten linear(out_features=2); loss mse(reduction='mean'); optimizer lr=0.1, momentum=0.9",
    "sgd-weight-decay-forgotten":
        "1x3x3, batch 2: flatten linear(out_features=2); loss mse(reduction='mean'); optimizer lr=0.1, "
        "weight_decay=0.05",
    "adam-no-bias-correction":
        "1x3x3, batch 2: flatten linear(out_features=2); loss mse(reduction='mean'); optimizer lr=0.01, type='adam'",
    "adamw-coupled-decay":
        "1x3x3, batch 2: flatten linear(out_features=2); loss mse(reduction='mean'); optimizer lr=0.05, type='adamw', "
        "weight_decay=0.5",
    "rmsprop-eps-inside-sqrt":
        "1x3x3, batch 2: flatten linear(out_features=2); loss mse(reduction='mean'); optimizer eps=0.01, lr=0.01, "
        "type='rmsprop'",
    "scheduler-stepped-early":
        "1x3x3, batch 2: flatten linear(out_features=2); loss mse(reduction='mean'); optimizer lr=0.1, momentum=0.9, "
        "scheduler={'type': 'step', 'step_size': 1, 'gamma': 0.5}",
    "lstm-cell-future-left-out":
        "6x3, batch 2: lstm(hidden_size=3) flatten linear(out_features=2); loss mse(reduction='mean'); optimizer "
        "lr=0.1",
    "lstm-gate-order-ifog":
        "6x3, batch 2: lstm(hidden_size=3) flatten linear(out_features=2); loss mse(reduction='mean'); optimizer "
        "lr=0.1",
    "gru-bptt-cut-after-one-step":
        "6x3, batch 2: gru(hidden_size=4) flatten linear(out_features=2); loss mse(reduction='mean'); optimizer lr=0.1",
    "rnn-layers-not-carried":
        "5x3, batch 2: rnn(hidden_size=4, num_layers=2) flatten linear(out_features=2); loss mse(reduction='mean'); "
        "optimizer lr=0.1",
    "attention-softmax-no-row-sum":
        "5x4, batch 2: multihead_attention(causal=True, num_heads=2) flatten linear(out_features=3); loss "
        "mse(reduction='mean'); optimizer lr=0.1",
    "attention-mask-after-softmax":
        "5x4, batch 2: multihead_attention(causal=True, num_heads=2) flatten linear(out_features=3); loss "
        "mse(reduction='mean'); optimizer lr=0.1",
    "attention-scale-forgotten":
        "5x4, batch 2: multihead_attention(causal=True, num_heads=2) flatten linear(out_features=3); loss "
        "mse(reduction='mean'); optimizer lr=0.1",
    "attention-heads-merged-wrong":
        "5x4, batch 2: multihead_attention(causal=True, num_heads=2) flatten linear(out_features=3); loss "
        "mse(reduction='mean'); optimizer lr=0.1",
}


def test_every_catalogued_network_is_the_one_its_entry_documents():
    """The networks `crosscheck explain` and `--inject` run each mistake on: the shapes, batch sizes (a mean over
    more than one sample), layer options, losses and optimizer settings the descriptions state."""
    assert {e.name: _network(e.network) for e in catalogue() if not e.on_seed} == NETWORKS


MLP = {"name": "mlp", "input_shape": [1, 4], "batch_size": 2, "loss": {"type": "mse"},
       "layers": [{"type": "linear", "out_features": 3}, {"type": "tanh"}, {"type": "linear", "out_features": 2}]}


def test_the_lockstep_replays_exactly_k_steps_of_the_subjects_batch(monkeypatch):
    """lockstep(k) trains the manual side on k copies of the subject's own batch, no more: handed an endless supply,
    it would never stop (the batches it is given are counted, at most 10 taken)."""
    subject = NetworkSubject(parse_spec(MLP), 1)
    given, training = [], manual_net.training

    def counted(spec, params, batches, **hooks):
        batches = list(itertools.islice(batches, 10))
        given.append(len(batches))
        assert all(x is subject.x and target is subject.target for x, target in batches)
        return training(spec, params, batches, **hooks)

    monkeypatch.setattr(manual_net, "training", counted)
    assert subject.lockstep(3).startswith("steps 1..3 agree one at a time from manual's own parameters")
    assert given == [3]
