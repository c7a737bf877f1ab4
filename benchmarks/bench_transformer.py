"""Time one training step of a pre-norm transformer encoder layer: manual/attention.py + manual/optim.py against torch
eager autograd (nn.TransformerEncoderLayer(E, H, F, dropout=0, batch_first=True, norm_first=True)).

One step: the layer's forward on x (N, T, E), the mean squared error against a fixed target, the backward, and an
Adam update of its 12 parameters; both sides start from the same parameters and are checked to give the same loss
before timing. One process, interleaved rounds (the order alternating), each side's median block; both libraries
at the same thread count (torch.set_num_threads, threadpoolctl for NumPy's BLAS). Run by hand, not in CI:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_transformer.py [--rounds 21]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, installed or not

import numpy as np  # noqa: E402
import threadpoolctl  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from manual import attention as A  # noqa: E402
from manual import optim  # noqa: E402
from netdesc.description import ENCODER_PARAMETERS  # noqa: E402

SIZES = {"N": 32, "T": 32, "E": 64, "H": 4, "F": 128}


def manual_step(x, y, params, state, activation):
    out, cache = A.transformer_encoder_layer_forward(x, *(params[k] for k in ENCODER_PARAMETERS),
                                                     num_heads=SIZES["H"], activation=activation)
    diff = out - y
    E = (diff * diff).mean()
    grads = A.transformer_encoder_layer_backward(diff * (2 / diff.size), cache)[1:13]
    params, state = optim.adam_step(params, dict(zip(ENCODER_PARAMETERS, grads, strict=True)), state, lr=1e-3)
    return E, params, state


def torch_step(layer, opt, x, y):
    opt.zero_grad()
    E = F.mse_loss(layer(x), y)
    E.backward()
    opt.step()
    return E


def block(step, seconds=0.05):
    """Mean seconds per step over a block of about `seconds`, at least one step."""
    count, start = 0, time.perf_counter()
    while True:
        step()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / count


def bench(dtype, activation, rounds):
    N, T, E, H, FF = (SIZES[k] for k in "NTEHF")
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((N, T, E)).astype(dtype) for _ in range(2))
    layer = torch.nn.TransformerEncoderLayer(E, H, FF, dropout=0.0, activation=activation, batch_first=True,
                                             norm_first=True, dtype=getattr(torch, dtype))
    params = {k: v.detach().numpy().copy() for k, v in layer.state_dict().items()}
    opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    m_E, _, _ = manual_step(x, y, params, {}, activation)
    t_E = torch_step(layer, opt, tx, ty).item()
    assert np.isclose(m_E, t_E, rtol=1e-10 if dtype == "float64" else 1e-4), (m_E, t_E)
    box = {"params": params, "state": {}}

    def manual():
        _, box["params"], box["state"] = manual_step(x, y, box["params"], box["state"], activation)

    samples = {"manual": [], "torch": []}
    for r in range(rounds):
        order = (("manual", manual), ("torch", lambda: torch_step(layer, opt, tx, ty)))
        for name, step in order if r % 2 == 0 else order[::-1]:
            samples[name].append(block(step))
    return {k: statistics.median(v) for k, v in samples.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = ", ".join(f"{k} {v}" for k, v in SIZES.items())
    print(f"transformer encoder layer ({sizes}), one Adam step; NumPy {np.__version__}, torch {torch.__version__}, "
          f"{args.threads} thread(s), median of {args.rounds} interleaved rounds")
    print(f"{'dtype':<8} {'activation':<10} {'manual ms':>10} {'torch ms':>9} {'manual/torch':>13}")
    with threadpoolctl.threadpool_limits(args.threads):
        for dtype in ("float64", "float32"):
            for activation in ("gelu", "relu"):
                t = bench(dtype, activation, args.rounds)
                print(f"{dtype:<8} {activation:<10} {t['manual'] * 1e3:>10.2f} {t['torch'] * 1e3:>9.2f} "
                      f"{t['manual'] / t['torch']:>13.2f}")


if __name__ == "__main__":
    main()
