"""Time one epoch of ``crosscheck train``: the slides' network (or a description) trained by hand and by torch
side by side on scikit-learn's digits, with the comparisons after every step.

    python benchmarks/bench_train.py [--rounds 7] [--threads 1] [--spec FILE] [--n-out 1|10] [--dtype float64]

Each round trains one epoch (44 steps of 32 images) from the start, in one process; the first round is a
warm-up and is not counted. The table gives the median over the rounds of: the epoch's wall time (everything:
both sides, the comparisons, the accuracy over both splits at the epoch's end), and per step the manual step,
the torch step and the comparisons (crosscheck.train's own timers, the same clock), and the comparisons'
share of a step: compare / (manual + torch). Both libraries get the same thread count (torch.set_num_threads and
threadpoolctl for NumPy's BLAS).
"""

import argparse
import pathlib
import platform
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from crosscheck import train as T  # noqa: E402
from netdesc.description import load_spec  # noqa: E402


def rounds(network, count):
    """`count` + 1 epochs (the first a warm-up) -> [(wall seconds, ms per step by part)]."""
    measured = []
    for _ in range(count + 1):
        start = time.perf_counter()
        run = T.train(network, epochs=1)
        measured.append((time.perf_counter() - start, run.summary["ms_per_step"], run.summary["steps"]))
        assert run.passed, run.summary
    return measured[1:]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--spec")
    p.add_argument("--n-out", type=int, default=1)
    p.add_argument("--dtype", default="float64")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    network = T.Slides(args.n_out, dtype=args.dtype) if args.spec is None else \
        T.Described(load_spec(args.spec), dtype=args.dtype)
    with threadpool_limits(args.threads):
        measured = rounds(network, args.rounds)
    wall = statistics.median(m[0] for m in measured)
    part = {k: statistics.median(m[1][k] for m in measured) for k in ("manual", "autograd", "compare")}
    print(f"# crosscheck train, one epoch: {network.title}, {args.dtype}, {measured[0][2]} steps of 32 images")
    print(f"- Python {platform.python_version()}, NumPy {np.__version__}, torch {torch.__version__}, "
          f"{args.threads} thread(s), median of {args.rounds} rounds after a warm-up")
    print()
    print("| epoch (s) | manual step (ms) | torch step (ms) | comparisons (ms) | comparisons / (manual + torch) |")
    print("|---:|---:|---:|---:|---:|")
    share = part["compare"] / (part["manual"] + part["autograd"])
    print(f"| {wall:.2f} | {part['manual']:.3f} | {part['autograd']:.3f} | {part['compare']:.3f} | {share:.2f} |")


if __name__ == "__main__":
    main()
