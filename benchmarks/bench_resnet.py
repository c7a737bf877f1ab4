"""Time one training step of examples/resnet-small.toml: manual.network (NumPy) against torch eager autograd.

One step is the forward, the backward and an Adam update (amsgrad, weight decay, the description's settings at a
fixed learning rate), the batch norms in training mode updating their running statistics on both sides:

    manual: manual.network.run, updated_buffers, manual.optim.adam_step
    torch:  reference.network.build's modules; opt.zero_grad(); loss.backward(); torch.optim.Adam.step()

Both start from identical parameters and are checked to agree over three steps before timing. They run in one
process, interleaved (bench_cnn.py's method): each round times a block of manual steps and a block of torch steps,
the order alternating; the table gives the median block of each side and manual/torch. torch.set_num_threads(1) and
threadpoolctl hold both to one thread. --batch and --size change the batch and the image size (default 32, 16x16).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_resnet.py [--rounds 21] [--profile]
"""

import argparse
import cProfile
import platform
import pstats
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout, installed or not

import numpy as np  # noqa: E402
import threadpoolctl  # noqa: E402
import torch  # noqa: E402
from bench_cnn import interleaved_medians, keep_freed_memory  # noqa: E402

from crosscheck.compare import assert_close  # noqa: E402
from manual import network as manual_net  # noqa: E402
from manual import optim  # noqa: E402
from netdesc.description import parse_spec  # noqa: E402
from netdesc.inputs import init_params, random_batch  # noqa: E402
from reference import network as reference_net  # noqa: E402

BLOCK_SECONDS = 0.05


def resnet_small(batch, size):
    data = tomllib.loads((ROOT / "examples" / "resnet-small.toml").read_text())
    data["batch_size"], data["input_shape"] = batch, [data["input_shape"][0], size, size]
    return parse_spec(data)


def make_steps(spec, dtype):
    params = init_params(spec, np.dtype(dtype))
    x, labels = random_batch(spec, np.dtype(dtype))
    settings = spec.optimizer.settings()
    state = {"params": params, "optim": {}, "buffers": manual_net.initial_buffers(spec, np.dtype(dtype))}

    def manual_step():
        result = manual_net.run(spec, state["params"], x, labels)
        state["buffers"] = manual_net.updated_buffers(spec, x, result.outputs, state["buffers"])
        state["params"], state["optim"] = optim.adam_step(state["params"], result.param_grads, state["optim"],
                                                          **settings)
        return result.loss

    net = reference_net.build(spec, params)
    opt = torch.optim.Adam(net.parameters(), **settings)
    xt, labels_t = torch.from_numpy(x), torch.from_numpy(labels)

    def torch_step():
        opt.zero_grad()
        loss = reference_net.loss(spec, net(xt)[-1], labels_t)
        loss.backward()
        opt.step()
        return loss.detach().numpy()

    def read_params():
        return state["params"], {k: t.detach().numpy() for k, t in net.named_parameters()}

    return manual_step, torch_step, read_params


def check_agreement(dtype, manual_step, torch_step, read_params, label="bench-resnet"):
    for step in range(3):
        assert_close(manual_step(), torch_step(), "loss", f"{label}-{dtype}-step{step}", dtype)
    manual, torch_params = read_params()
    for key in manual:
        assert_close(manual[key], torch_params[key], key, f"{label}-{dtype}-after-3-steps", dtype)


def bench(spec, dtype, rounds, label="bench-resnet"):
    """The agreement checked, then the interleaved timing -> one row of the table."""
    manual_step, torch_step, read_params = make_steps(spec, dtype)
    check_agreement(dtype, manual_step, torch_step, read_params, label)
    m, t = interleaved_medians(manual_step, torch_step, rounds, BLOCK_SECONDS, warmup=3)
    return f"| {dtype} | {m * 1e3:.2f} ms | {t * 1e3:.2f} ms | {m / t:.2f} |"


def profile(spec, dtype, top=15):
    """Where the manual step's time goes: the `top` largest entries by own time over 50 steps."""
    manual_step, _, _ = make_steps(spec, dtype)
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [manual_step() for _ in range(50)])
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21, help="interleaved rounds per row (default 21)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--profile", action="store_true", help="profile the manual float64 step instead")
    args = parser.parse_args(argv)
    allocator = keep_freed_memory()
    spec = resnet_small(args.batch, args.size)
    torch.set_num_threads(1)
    with threadpoolctl.threadpool_limits(limits=1):
        if args.profile:
            return profile(spec, "float64")
        report(f"- resnet-small, N={args.batch}, {spec.input_shape}, {len(spec.layers)} layers, Adam (amsgrad, "
               "weight decay), 1 thread", spec, args.rounds, allocator)


def report(title, spec, rounds, allocator, label="bench-resnet"):
    """The header lines and one table row per dtype (bench), as docs/benchmarks.md shows them."""
    print(title)
    print(f"- Python {platform.python_version()}, NumPy {np.__version__}, torch {torch.__version__}; {allocator}")
    print(f"- {rounds} rounds x 2 interleaved blocks of ~{BLOCK_SECONDS * 1e3:.0f} ms; medians\n")
    print("| dtype | manual | torch | manual/torch |")
    print("|---|---:|---:|---:|", flush=True)
    for dtype in ("float64", "float32"):
        print(bench(spec, dtype, rounds, label), flush=True)


if __name__ == "__main__":
    main()
