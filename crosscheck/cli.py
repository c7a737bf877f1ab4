"""``crosscheck``: run the seed network by hand and by autograd, print one row per quantity.

Exit codes: 0 all quantities agree, 1 a mismatch, 2 bad input (one line on stderr).
"""

import argparse
import json
import os
import sys

import torch

from crosscheck.seed_check import DTYPES, SeedCase, check
from crosscheck.tolerances import tolerance_for
from manual import wrong
from manual.validation import InputError

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block: the exit-2 contract
        raise InputError(message)


def _shape(text):
    """'8x6' -> (8, 6); '5' -> (5, 5)."""
    parts = text.lower().split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}, needs HxW or a single size such as 8x6 or 5") from None
    if len(shape) == 1:
        shape *= 2
    if len(shape) != 2 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"got {text!r}, needs two positive sizes such as 8x6 or one such as 5")
    return shape


def build_parser():
    d = SeedCase()
    p = _Parser(
        prog="crosscheck",
        description="Check the hand-derived backprop of the slides' CNN against PyTorch autograd.",
        epilog="Exit codes: 0 all agree, 1 a mismatch, 2 bad input.",
    )
    p.add_argument("--shape", type=_shape, default=d.input_shape, metavar="HxW", help="input image size (default 8x8)")
    p.add_argument("--k", type=_shape, default=d.kernel_shape, metavar="K|KHxKW", help="filter size (default 3)")
    p.add_argument("--n-out", type=int, default=d.n_out, help="outputs of the linear layer (default 1)")
    p.add_argument("--batch", "-N", type=int, default=d.batch, help="samples in the batch (default 4)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed of inputs and parameters (default 0)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=d.dtype, help="default float64")
    p.add_argument("--reduction", choices=("sum", "mean"), default=d.reduction, help="over the batch (default sum)")
    p.add_argument("--lr", type=float, default=d.lr, help="SGD learning rate alpha (default 0.5)")
    p.add_argument("--steps", type=int, default=d.steps, help="training steps to compare (default 50)")
    p.add_argument(
        "--inject", metavar="NAME", choices=[e.name for e in wrong.WRONG_DERIVATIONS],
        help="swap in a deliberately wrong derivation to see a mismatch reported: "
        + ", ".join(e.name for e in wrong.WRONG_DERIVATIONS),
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def _format_table(case, results, injected):
    tol = tolerance_for(case.dtype)
    (H, W), (KH, KW) = case.input_shape, case.kernel_shape
    lines = [
        f"seed network: hand-derived NumPy vs PyTorch {torch.__version__} autograd",
        f"case {case}: X {H}x{W}, f {KH}x{KW}, n_out {case.n_out}, N {case.batch}, seed {case.seed}, "
        f"{case.dtype}, reduction {case.reduction}, lr {case.lr:g}, {case.steps} steps",
        f"pass when |manual - autograd| <= {tol.atol:g} + {tol.rtol:g} * |autograd| ({case.dtype})",
    ]
    if injected:
        lines.append(f"injected wrong derivation: {injected} ({wrong.get(injected).description})")
    lines += ["", f"{'quantity':<22} {'shape':<18} {'max abs err':>12} {'max rel err':>12}  result"]
    for r in results:
        errors = f"{'n/a':>12} {'n/a':>12}" if r.problem else f"{r.max_abs_error:>12.3e} {r.max_rel_error:>12.3e}"
        lines.append(f"{r.name:<22} {str(r.shape):<18} {errors}  " + ("ok" if r.passed else "MISMATCH"))
    failed = [r for r in results if not r.passed]
    lines.append("")
    if not failed:
        lines.append(f"all {len(results)} quantities agree")
        return "\n".join(lines)
    lines.append(f"{len(failed)} of {len(results)} quantities differ; the first: {failed[0].describe()}")
    if all(r.name.endswith("steps") or r.name.startswith("E at steps") for r in failed):
        lines.append(
            "one step agrees but the training run does not: if training is unstable at this learning rate, "
            "rounding differences grow step by step; rerun with a smaller --lr to tell the two apart"
        )
    return "\n".join(lines)


def main(argv=None):
    """Entry point of the console script; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
        case = SeedCase(
            input_shape=args.shape, kernel_shape=args.k, n_out=args.n_out, batch=args.batch, seed=args.seed,
            dtype=args.dtype, reduction=args.reduction, lr=args.lr, steps=args.steps,
        )
        results = check(case, wrong_name=args.inject)
    except InputError as err:
        print(f"crosscheck: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    passed = all(r.passed for r in results)
    if args.json:
        tol = tolerance_for(case.dtype)
        _print(json.dumps({
            "case": case.as_dict(), "id": str(case), "injected": args.inject,
            "tolerance": {"rtol": tol.rtol, "atol": tol.atol}, "passed": passed,
            "quantities": [r.as_dict() for r in results],
        }, indent=2, allow_nan=False))
    else:
        _print(_format_table(case, results, args.inject))
    return EXIT_OK if passed else EXIT_MISMATCH


def _print(text):
    """Print, treating a reader that went away (crosscheck | head) as the end of output, not an error."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would complain again while flushing stdout at exit; point it at devnull (as its docs advise).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def console_main():
    """The console script."""
    sys.exit(main())
