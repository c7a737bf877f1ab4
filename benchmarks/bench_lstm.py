"""Time one training step of an LSTM classifier: manual.network (NumPy) against torch eager autograd.

The classifier (issue 10's benchmark): examples/lstm-classifier.toml at T = 32, N = 32: token ids (N, T) from 100
-> embedding 32 -> lstm 64 -> sequence_pool "last" -> linear 3 -> softmax_cross_entropy. One step is the forward,
the backward and an Adam update (amsgrad, weight decay, the example's settings at a fixed learning rate):

    manual: manual.network.run, manual.optim.adam_step
    torch:  reference.network.build's modules (torch.nn.LSTM, ...); opt.zero_grad(); loss.backward();
            torch.optim.Adam.step()

bench_resnet.py's method, its functions reused: both sides start from identical parameters and are checked to agree
over three steps before timing; one process, interleaved blocks, the order alternating; the table gives the median
block of each side and manual/torch. torch.set_num_threads(1) and threadpoolctl hold both to one thread.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_lstm.py [--rounds 21] [--profile float32]
"""

import argparse
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout, installed or not

import threadpoolctl  # noqa: E402
import torch  # noqa: E402
from bench_cnn import keep_freed_memory  # noqa: E402
from bench_resnet import profile, report  # noqa: E402

from netdesc.description import parse_spec  # noqa: E402


def lstm_classifier(T=32, batch=32, hidden=64, embedding=32, vocabulary=100):
    """examples/lstm-classifier.toml at the benchmark's sizes (its layers, loss and Adam settings kept)."""
    data = tomllib.loads((ROOT / "examples" / "lstm-classifier.toml").read_text())
    data["input_shape"], data["batch_size"] = [T], batch
    data["layers"][0] |= {"num_embeddings": vocabulary, "embedding_dim": embedding}
    data["layers"][1]["hidden_size"] = hidden
    return parse_spec(data)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21, help="interleaved rounds per row (default 21)")
    parser.add_argument("--T", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--profile", choices=("float64", "float32"), help="profile the manual step instead")
    args = parser.parse_args(argv)
    allocator = keep_freed_memory()
    spec = lstm_classifier(args.T, args.batch, args.hidden)
    torch.set_num_threads(1)
    with threadpoolctl.threadpool_limits(limits=1):
        if args.profile:
            return profile(spec, args.profile, top=25)
        report(f"- lstm-classifier, N={args.batch}, T={args.T}, token ids -> embedding 32 -> lstm {args.hidden} -> "
               "last step -> linear 3 -> softmax cross-entropy, Adam (amsgrad, weight decay), 1 thread", spec,
               args.rounds, allocator, "bench-lstm")


if __name__ == "__main__":
    main()
