"""Time one training step of a small CNN: manual/functional.py + manual/optim.py against torch eager autograd.

The network: conv 3 -> 8 channels (3x3, padding 1) on 32x32 images, ReLU, flatten, linear 8192 -> 10,
softmax cross-entropy over a batch of N = 64; one step is forward, backward and an SGD update (momentum 0.9):

    manual: the functional layers' forwards, their backwards in reverse order, SGD.step (conv dx skipped)
    torch:  opt.zero_grad(); loss = F.cross_entropy(net(X), labels); loss.backward(); opt.step()

Both start from identical weights and are checked to agree before timing. They run in one process,
interleaved: each round times a block of manual steps and a block of torch steps (the order alternating),
so drift in the machine's load hits both alike; the table gives the median block of each side and
manual/torch. Both libraries get the same thread count (torch.set_num_threads, threadpoolctl for NumPy's BLAS).

Both also get the same allocator settings: glibc's default hands freed blocks above a moving threshold back
to the OS, so whichever side happens to trip it page-faults ~10 MB back in on every step (measured: 2,800
faults and 3x the time per manual float32 step in one process, 1,400 per torch float64 step in another,
depending on the allocation history). The script therefore keeps freed memory in the heap (mallopt, glibc
only) before anything is allocated; ``--default-malloc`` measures without it.

Run by hand, not in CI, with OpenBLAS's CPU overrides unset for this command only:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_cnn.py [--rounds 41]
"""

import argparse
import ctypes
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, installed or not

import numpy as np  # noqa: E402
import threadpoolctl  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from crosscheck.compare import assert_close  # noqa: E402
from manual import functional as M  # noqa: E402
from manual.optim import SGD  # noqa: E402

N, C_IN, C_OUT, SIZE, K, CLASSES = 64, 3, 8, 32, 3, 10
LR, MOMENTUM = 0.01, 0.9
THREADS = (1, 2)
DTYPES = ("float64", "float32")
BLOCK_SECONDS = 0.025


def keep_freed_memory():
    """Stop glibc from returning freed memory to the OS (and faulting it back in) -> a line for the header."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return "allocator: default (no glibc)"
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h
    if libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30):
        return "allocator: glibc, blocks < 32 MiB from the heap, heap never trimmed (mallopt)"
    return "allocator: default (mallopt refused)"


def make_steps(dtype):
    """(manual_step, torch_step, read_params): two closures doing one SGD step each from the same start."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, C_IN, SIZE, SIZE)).astype(dtype)
    labels = rng.integers(0, CLASSES, N)
    params = {
        "conv.w": (rng.standard_normal((C_OUT, C_IN, K, K)) / np.sqrt(C_IN * K * K)).astype(dtype),
        "conv.b": np.zeros(C_OUT, dtype),
        "fc.w": (rng.standard_normal((CLASSES, C_OUT * SIZE * SIZE)) / np.sqrt(C_OUT * SIZE * SIZE)).astype(dtype),
        "fc.b": np.zeros(CLASSES, dtype),
    }
    one = np.asarray(1.0, dtype=dtype)
    opt = SGD(lr=LR, momentum=MOMENTUM)
    state = {"params": params}

    def manual_step():
        p = state["params"]
        z, conv_cache = M.conv2d_forward(X, p["conv.w"], p["conv.b"], padding=K // 2)
        a, relu_cache = M.relu_forward(z)
        h, flat_cache = M.flatten_forward(a)
        logits, fc_cache = M.linear_forward(h, p["fc.w"], p["fc.b"])
        loss, loss_cache = M.softmax_cross_entropy_forward(logits, labels)
        dlogits, _ = M.softmax_cross_entropy_backward(one, loss_cache)
        dh, dfc_w, dfc_b = M.linear_backward(dlogits, fc_cache)
        (da,) = M.flatten_backward(dh, flat_cache)
        (dz,) = M.relu_backward(da, relu_cache)
        _, dconv_w, dconv_b = M.conv2d_backward(dz, conv_cache, input_grad=False)  # X is data, as in torch
        grads = {"conv.w": dconv_w, "conv.b": dconv_b, "fc.w": dfc_w, "fc.b": dfc_b}
        state["params"] = opt.step(p, grads)
        return loss

    net = torch.nn.Sequential(
        torch.nn.Conv2d(C_IN, C_OUT, K, padding=K // 2),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(C_OUT * SIZE * SIZE, CLASSES),
    ).to(getattr(torch, dtype))
    with torch.no_grad():
        for t, key in zip(net.parameters(), params, strict=True):
            t.copy_(torch.from_numpy(params[key]))
    t_opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    Xt, labels_t = torch.from_numpy(X), torch.from_numpy(labels)

    def torch_step():
        t_opt.zero_grad()
        loss = F.cross_entropy(net(Xt), labels_t)
        loss.backward()
        t_opt.step()
        return loss

    def read_params():
        return state["params"], {k: t.detach().numpy() for k, t in zip(params, net.parameters(), strict=True)}

    return manual_step, torch_step, read_params


def check_agreement(dtype, manual_step, torch_step, read_params):
    """Three steps on each side must give the same losses and parameters, under the test suite's tolerances."""
    for step in range(3):
        assert_close(manual_step(), torch_step().detach().numpy(), "loss", f"bench-{dtype}-step{step}", dtype)
    manual, torch_params = read_params()
    for key in manual:
        assert_close(manual[key], torch_params[key], key, f"bench-{dtype}-after-3-steps", dtype)


def time_block(step, reps):
    start = time.perf_counter()
    for _ in range(reps):
        step()
    return (time.perf_counter() - start) / reps


def interleaved_medians(manual_step, torch_step, rounds, block_seconds, warmup):
    """Each round times a block of manual steps and a block of torch steps (about block_seconds each, from `warmup`
    steps timed first), the order alternating -> (median manual step, median torch step) in seconds."""
    steps = {"manual": manual_step, "torch": torch_step}
    reps = {side: max(1, round(block_seconds / time_block(step, warmup))) for side, step in steps.items()}
    samples = {"manual": [], "torch": []}
    for r in range(rounds):
        for side in ("manual", "torch") if r % 2 == 0 else ("torch", "manual"):
            samples[side].append(time_block(steps[side], reps[side]))
    return statistics.median(samples["manual"]), statistics.median(samples["torch"])


def bench(threads, dtype, rounds):
    manual_step, torch_step, read_params = make_steps(dtype)
    check_agreement(dtype, manual_step, torch_step, read_params)
    m, t = interleaved_medians(manual_step, torch_step, rounds, BLOCK_SECONDS, warmup=5)
    return f"| {threads} | {dtype} | {m * 1e3:.2f} ms | {t * 1e3:.2f} ms | {m / t:.2f} |"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=41, help="interleaved rounds per row (default 41)")
    parser.add_argument("--default-malloc", action="store_true", help="leave glibc's allocator settings alone")
    args = parser.parse_args(argv)
    allocator = "allocator: default (--default-malloc)" if args.default_malloc else keep_freed_memory()
    print(f"- N={N}, {C_IN}->{C_OUT} channels, {SIZE}x{SIZE}, k={K}, ReLU, flatten, linear -> {CLASSES}, "
          f"softmax cross-entropy, SGD momentum {MOMENTUM}")
    print(f"- Python {platform.python_version()}, NumPy {np.__version__}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, OPENBLAS_CORETYPE {os.environ.get('OPENBLAS_CORETYPE', 'unset')}")
    print(f"- {allocator}")
    print(f"- {args.rounds} rounds x 2 interleaved blocks of ~{BLOCK_SECONDS * 1e3:.0f} ms; medians\n")
    print("| threads | dtype | manual | torch | manual/torch |")
    print("|---:|---|---:|---:|---:|", flush=True)
    for threads in THREADS:
        torch.set_num_threads(threads)
        with threadpoolctl.threadpool_limits(limits=threads):
            for dtype in DTYPES:
                print(bench(threads, dtype, args.rounds), flush=True)


if __name__ == "__main__":
    main()
