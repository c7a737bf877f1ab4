"""Time one training step of the seed network: manual NumPy backprop against torch eager autograd.

One step is forward, backward and an SGD update:

    manual: values = forward(X, params, Y, "sum"); grads = backward(X, Y, params, values); params = sgd_step(...)
    plain:  the same, with manual.kernels' fast operations swapped for their plain twins (conv_plain, ...)
    torch:  opt.zero_grad(); E = error(net(X)["O"], Y, "sum"); E.backward(); opt.step()

All three run in one process, interleaved: each round times a block of steps of each side (the order
rotating from round to round), so drift in the machine's load hits them alike. Each block's mean step
time is one sample; the table gives the median sample of each side, manual/torch, plain/torch, and the
page faults per step of manual and torch (counted over one more block). Before timing, one step of each
must give the same E. Both libraries get the same thread count, torch through
``torch.set_num_threads`` and NumPy's BLAS through ``threadpoolctl`` (an idle OpenBLAS pool left at
full size busy-waits and can slow torch by up to 2x in the same process).

By default glibc is told to keep freed memory (see ``steady_malloc``): with its dynamic thresholds a
step's temporaries of a few MiB are handed back to the kernel and page-faulted in again on the next
step, at a cost that depends on what ran earlier in the process. ``--malloc default`` measures that.

Run by hand, not in CI, with OpenBLAS's CPU overrides unset for this command only:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_seed.py
    ... bench_seed.py --threads 1 --dtype float32 --quick     # a slice of the grid, fewer repetitions
    ... bench_seed.py --json results.json                      # also write the rows as JSON ("-": stdout)
    ... bench_seed.py --clock cpu                              # CPU time instead of wall time
"""

import argparse
import contextlib
import ctypes
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, installed or not

import numpy as np  # noqa: E402
import threadpoolctl  # noqa: E402
import torch  # noqa: E402

import manual.seed_network as manual_net  # noqa: E402
import netdesc.seed  # noqa: E402
import reference.seed_network as reference_net  # noqa: E402
from manual import kernels  # noqa: E402

THREADS = (1, 2)
DTYPES = ("float64", "float32")
BATCHES = (1, 32, 256)
SIZES = (8, 28, 64)
KERNELS = (3, 5)
LR = 1e-4  # small, so that thousands of steps leave the parameters (and the work per step) where they were
# (rounds, seconds per block): the block length sets how many steps one sample averages over.
REPETITIONS = {"full": (21, 0.025), "quick": (7, 0.010)}
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _positive_ints(text):
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}, needs comma-separated integers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"got {text!r}, needs integers >= 1")
    return values


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {text!r}, needs one integer >= 1")
    return value


def _dtypes(text):
    values = tuple(text.split(","))
    bad = [v for v in values if v not in DTYPES]
    if bad:
        raise argparse.ArgumentTypeError(f"got {bad[0]!r}, needs float64 and/or float32")
    return values


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv=None):
    parser = _Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=_positive_ints, default=THREADS, help="e.g. 1 or 1,2 (default 1,2)")
    parser.add_argument("--dtype", type=_dtypes, default=DTYPES, help="float64, float32 or both (default both)")
    parser.add_argument("--batch", "-N", type=_positive_ints, default=BATCHES, help="default 1,32,256")
    parser.add_argument("--size", type=_positive_ints, default=SIZES, help="H = W, default 8,28,64")
    parser.add_argument("--kernel", "-k", type=_positive_ints, default=KERNELS, help="KH = KW, default 3,5")
    parser.add_argument("--quick", action="store_true", help="fewer and shorter blocks (a rough look)")
    parser.add_argument("--rounds", type=_positive_int, help="rounds per configuration (overrides --quick)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON to PATH ('-': stdout only)")
    parser.add_argument(
        "--malloc", choices=("steady", "default"), default="steady",
        help="steady (default): glibc keeps freed memory instead of unmapping it, for both libraries alike; "
        "default: glibc's own thresholds, under which a step can page-fault its temporaries back in",
    )
    parser.add_argument(
        "--clock", choices=CLOCKS, default="wall",
        help="wall: elapsed time (default); cpu: this process's CPU time, steadier on a shared machine "
        "but at --threads 2 it also counts pool threads that spin while waiting",
    )
    args = parser.parse_args(argv)
    bad = [(s, k) for s in args.size for k in args.kernel if k > s]
    if bad:
        parser.error(f"--kernel {bad[0][1]} is larger than --size {bad[0][0]}")
    if max(args.threads) > os.cpu_count():
        print(f"note: --threads {max(args.threads)} > {os.cpu_count()} CPUs", file=sys.stderr)
    return args


def steady_malloc():
    """Make glibc keep freed memory in the heap (no trimming, mmap only above 32 MiB) -> a header line.

    With glibc's dynamic defaults, whether a step's temporaries of a few MiB come back as fresh pages
    (one page fault per 4 KiB, about 2 us each in this VM) depends on what ran before in the process, so
    both libraries' times would depend on the order of the grid. Arrays above 32 MiB are still mapped
    fresh each time (glibc's limit for M_MMAP_THRESHOLD)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        ok = libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 2**30) == 1
    except (OSError, AttributeError):
        ok = False
    if not ok:
        return "default (mallopt failed)"
    return "steady (glibc mallopt: M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 1 GiB)"


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    model = fields.get("Model name", "unknown").strip()
    extra = [f"{k.strip()} {fields[k].strip()}" for k in ("CPU family", "L2 cache", "L3 cache") if k in fields]
    return f"{model} ({', '.join(extra)})" if extra else model


def header(malloc):
    """Lines describing the machine and libraries, as markdown."""
    lines = [
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical CPUs",
        f"- Python {platform.python_version()}, NumPy {np.__version__}, torch {torch.__version__}",
    ]
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        lines.append(f"- {name}: {os.environ.get(name, 'unset')}")
    for pool in threadpoolctl.threadpool_info():
        desc = ", ".join(
            f"{k} {pool[k]}" for k in ("internal_api", "version", "architecture", "threading_layer", "num_threads")
            if pool.get(k) is not None
        )
        lines.append(f"- threadpool {Path(pool['filepath']).name}: {desc}")
    lines.append(f"- torch.backends.mkldnn available: {torch.backends.mkldnn.is_available()}")
    lines.append(f"- malloc: {malloc}")
    lines.append("- threads per row: torch.set_num_threads(t) and threadpoolctl.threadpool_limits(t)")
    return lines


KERNELS_USED = ("conv", "sigmoid", "filter_gradient", "patches")  # what manual/seed_network.py calls by name


@contextlib.contextmanager
def plain_kernels():
    """manual.kernels' fast operations replaced by their plain twins while inside (a few setattr calls)."""
    fast = {name: getattr(kernels, name) for name in KERNELS_USED}
    for name in KERNELS_USED:
        setattr(kernels, name, getattr(kernels, f"{name}_plain"))
    try:
        yield
    finally:
        for name, fn in fast.items():
            setattr(kernels, name, fn)


def make_steps(N, size, k, dtype):
    """(manual_step, plain_step, torch_step): closures doing one SGD step each from the same start; each
    returns E. plain_step is manual_step on the plain twins of manual.kernels."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, size, size)).astype(dtype)
    Y = rng.uniform(size=(N, 1)).astype(dtype)
    params = netdesc.seed.init_params((size, size), (k, k), 1, dtype, seed=1)
    X, Y = netdesc.seed.check_inputs(X, Y, params, "sum")  # once, at the boundary, as train does
    state = {"params": params}
    plain_state = {"params": params}

    def manual_step(state=state):
        values = manual_net.forward(X, state["params"], Y, "sum")
        grads = manual_net.backward(X, Y, state["params"], values, "sum")
        state["params"] = manual_net.sgd_step(state["params"], grads, LR)
        return values["E"]

    def plain_step():
        with plain_kernels():
            return manual_step(plain_state)

    net = reference_net.SeedNetwork.from_manual(params, (size, size))
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

    def torch_step():
        opt.zero_grad()
        E = reference_net.error(net(Xt)["O"], Yt, "sum")
        E.backward()
        opt.step()
        return E

    return manual_step, plain_step, torch_step


def time_block(step, reps, clock=time.perf_counter):
    start = clock()
    for _ in range(reps):
        step()
    return (clock() - start) / reps


def faults_per_step(step, reps):
    before = minor_faults()
    for _ in range(reps):
        step()
    return (minor_faults() - before) / reps


def calibrate(step, block_seconds):
    """Steps per block so that one block lasts about `block_seconds` of wall time (after a warm-up)."""
    for _ in range(3):
        step()
    reps = 1
    while True:
        t = time_block(step, reps)
        if t * reps >= block_seconds / 4 or reps >= 1 << 16:
            return max(1, round(block_seconds / t))
        reps *= 4


def bench_one(threads, dtype, N, size, k, rounds, block_seconds, clock="wall"):
    manual_step, plain_step, torch_step = make_steps(N, size, k, dtype)
    E_manual, E_plain, E_torch = float(manual_step()), float(plain_step()), float(torch_step().item())
    for name, E in (("manual", E_manual), ("plain", E_plain)):
        if not np.isclose(E, E_torch, rtol=1e-4 if dtype == "float32" else 1e-10):
            raise RuntimeError(f"{name} and torch disagree before timing: E {E} vs {E_torch}")
    steps = {"manual": manual_step, "plain": plain_step, "torch": torch_step}
    reps = {side: calibrate(step, block_seconds) for side, step in steps.items()}
    samples = {side: [] for side in steps}
    sides = tuple(steps)
    for r in range(rounds):
        for side in sides[r % 3:] + sides[:r % 3]:
            samples[side].append(time_block(steps[side], reps[side], CLOCKS[clock]))
    manual_s, plain_s, torch_s = (statistics.median(samples[side]) for side in sides)
    faults = {side: faults_per_step(steps[side], reps[side]) for side in ("manual", "torch")}
    return {
        "threads": threads, "dtype": dtype, "N": N, "H": size, "W": size, "k": k,
        "manual_s": manual_s, "torch_s": torch_s, "ratio": manual_s / torch_s,
        "plain_s": plain_s, "plain_ratio": plain_s / torch_s,
        "rounds": rounds, "steps_per_block": reps, "clock": clock,
        "page_faults_per_step": faults,
        "manual_spread": [min(samples["manual"]), max(samples["manual"])],
        "torch_spread": [min(samples["torch"]), max(samples["torch"])],
        "plain_spread": [min(samples["plain"]), max(samples["plain"])],
    }


def _time(seconds):
    return f"{seconds * 1e6:.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def table_row(row):
    return (
        f"| {row['threads']} | {row['dtype']} | {row['N']} | {row['H']} | {row['k']} "
        f"| {_time(row['manual_s'])} | {_time(row['plain_s'])} | {_time(row['torch_s'])} | {row['ratio']:.2f} "
        f"| {row['plain_ratio']:.2f} "
        f"| {row['page_faults_per_step']['manual']:.0f} / {row['page_faults_per_step']['torch']:.0f} |"
    )


def main(argv=None):
    args = parse_args(argv)
    malloc = steady_malloc() if args.malloc == "steady" else "default (glibc's dynamic thresholds)"
    rounds, block_seconds = REPETITIONS["quick" if args.quick else "full"]
    if args.rounds:
        rounds = args.rounds
    to_stdout_json = args.json == "-"
    text = sys.stderr if to_stdout_json else sys.stdout
    print("\n".join(header(malloc)), file=text)
    print(f"- repetitions: {rounds} rounds x 3 blocks of ~{block_seconds * 1e3:.0f} ms each per configuration; "
          f"clock: {args.clock}\n", file=text)
    print("| threads | dtype | N | H=W | k | manual median | plain median | torch median | manual/torch | plain/torch "
          "| page faults/step m / t |", file=text)
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|", file=text, flush=True)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        with threadpoolctl.threadpool_limits(limits=threads):
            for dtype in args.dtype:
                for N in args.batch:
                    for size in args.size:
                        for k in args.kernel:
                            row = bench_one(threads, dtype, N, size, k, rounds, block_seconds, args.clock)
                            rows.append(row)
                            print(table_row(row), file=text, flush=True)
    if args.json:
        doc = {"header": header(malloc), "rows": rows}
        if to_stdout_json:
            json.dump(doc, sys.stdout, indent=1)
            print()
        else:
            Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
