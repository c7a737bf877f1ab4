"""``crosscheck``: run the seed network by hand and by autograd, print one row per quantity.

``crosscheck verify --spec FILE`` does the same for a network described in a TOML or JSON file (netdesc.description);
``crosscheck explain`` walks the slides' derivation equation by equation on a tiny example;
``crosscheck diagnose`` finds and classifies the first wrong quantity of a catalogued wrong derivation
(``--wrong NAME``, ``--list``) or of a user's module of backward overrides (``--module FILE``).
Exit codes: 0 all quantities agree, 1 a mismatch, 2 bad input or a bad description (one line on stderr).
"""

import argparse
import json
import os
import sys
import textwrap

import torch

from crosscheck import diagnose, verify
from crosscheck.catalogue import seed as wrong
from crosscheck.explain import explain
from crosscheck.seed_check import DTYPES, SeedCase, check
from crosscheck.tolerances import tolerance_for
from netdesc.checks import InputError, check_positive_int
from netdesc.description import load_spec, spec_from_json

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
        epilog="Exit codes: 0 all agree, 1 a mismatch, 2 bad input. "
        "Any other network: crosscheck verify --spec FILE (see crosscheck verify --help).",
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
    lines += _result_table([(f"{r.name:<22}", r) for r in results], f"{'quantity':<22}")
    unstable = [r for r in results if r.note]
    if unstable:
        lines.append(
            f"training is chaotic at lr {case.lr:g}: {unstable[0].note}, so the rows marked unstable give no "
            "verdict; the one-step rows, the same update step by step, do. A smaller --lr gives a training verdict."
        )
    return "\n".join(lines)


def build_verify_parser():
    p = _Parser(
        prog="crosscheck verify",
        description="Check the hand-derived backprop of a network described in TOML or JSON against PyTorch "
        "autograd: every layer's output, the loss, every layer's input gradient, every parameter gradient, "
        "and the parameters after the description's SGD steps.",
        epilog="Exit codes: 0 all agree, 1 a mismatch, 2 bad input or a bad description.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--spec", metavar="FILE", help="the description, a .toml or .json file (see examples/)")
    source.add_argument("--spec-json", metavar="TEXT", help="the description as JSON text")
    p.add_argument("--seed", type=int, default=0, help="random seed of inputs, targets and parameters (default 0)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float64", help="default float64")
    p.add_argument("--steps", type=int, help="SGD steps to compare (default: the description's optimizer.steps)")
    p.add_argument("--inject", type=int, metavar="LAYER", help="scale that layer's backward by 1 + 100 * rtol, "
                   "a deliberately wrong derivation, to see a mismatch reported")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def _verify_header(spec, source, args, steps):
    tol = tolerance_for(args.dtype)
    o = spec.optimizer
    lines = [
        f"network {spec.name} ({source}): hand-derived NumPy vs PyTorch {torch.__version__} autograd",
        f"input {spec.input_shape} per sample, batch {spec.batch_size}, {len(spec.layers)} layers, "
        f"loss {spec.loss.type} ({spec.loss.reduction}), seed {args.seed}, {args.dtype}",
        f"SGD lr {o.lr:g}, momentum {o.momentum:g}, dampening {o.dampening:g}, nesterov {str(o.nesterov).lower()}, "
        f"weight decay {o.weight_decay:g}, {steps} steps",
        f"pass when |manual - autograd| <= {tol.atol:g} + {tol.rtol:g} * |autograd| ({args.dtype})",
    ]
    if args.inject is not None:
        layer = spec.layers[args.inject]
        lines.append(f"injected wrong derivation: {layer}'s backward scaled by 1 + {100 * tol.rtol:g}")
    return lines


def _result_table(labelled, label_header):
    """Column headings, one row per (label, Comparison) and the summary line -> list of lines."""
    lines = ["", f"{label_header} {'shape':<18} {'max abs err':>12} {'max rel err':>12}  result"]
    for label, r in labelled:
        errors = f"{'n/a':>12} {'n/a':>12}" if r.problem else f"{r.max_abs_error:>12.3e} {r.max_rel_error:>12.3e}"
        result = "unstable" if r.note else "ok" if r.passed else "MISMATCH"
        lines.append(f"{label} {str(r.shape):<18} {errors}  {result}")
    failed = [r for _, r in labelled if not r.passed]
    unstable = sum(1 for _, r in labelled if r.note)
    lines.append("")
    if failed:
        lines.append(f"{len(failed)} of {len(labelled)} quantities differ; the first: {failed[0].describe()}")
    elif unstable:
        lines.append(f"{len(labelled) - unstable} of {len(labelled)} quantities agree; {unstable} give no verdict")
    else:
        lines.append(f"all {len(labelled)} quantities agree")
    return lines


def _format_verify_table(header, rows):
    labelled = [(f"{row.layer:<16} {row.quantity:<22}", row.result) for row in rows]
    return "\n".join([*header, *_result_table(labelled, f"{'layer':<16} {'quantity':<22}")])


def verify_main(argv):
    """``crosscheck verify ...``; returns the exit code."""
    try:
        args = build_verify_parser().parse_args(argv)
        spec = spec_from_json(args.spec_json) if args.spec is None else load_spec(args.spec)
        _, _, steps = verify.check_options(spec, args.seed, args.dtype, args.steps)
        injected = None if args.inject is None else verify.inject(spec, args.inject, args.dtype)
        rows = verify.check(spec, args.seed, args.dtype, steps, injected)
    except InputError as err:
        print(f"crosscheck: error: {' '.join(str(err).splitlines())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    passed = all(row.passed for row in rows)
    source = "--spec-json" if args.spec is None else args.spec
    if args.json:
        tol = tolerance_for(args.dtype)
        _print(json.dumps({
            "spec": spec.name, "source": source, "seed": args.seed, "dtype": args.dtype, "steps": steps,
            "injected_layer": args.inject, "tolerance": {"rtol": tol.rtol, "atol": tol.atol}, "passed": passed,
            "quantities": [row.as_dict() for row in rows],
        }, indent=2, allow_nan=False))
    else:
        _print(_format_verify_table(_verify_header(spec, source, args, steps), rows))
    return EXIT_OK if passed else EXIT_MISMATCH


def build_explain_parser():
    p = _Parser(
        prog="crosscheck explain",
        description="Walk the slides' derivation equation by equation on one small example: each chain-rule "
        "factor, its value by hand and by autograd, agree or not; then the SGD updates of W, b and f.",
        epilog="Exit codes: 0 all agree, 1 a mismatch, 2 bad input.",
    )
    p.add_argument("--shape", type=_shape, default=(4, 4), metavar="HxW", help="input image size (default 4x4)")
    p.add_argument("--k", type=_shape, default=(2, 2), metavar="K|KHxKW", help="filter size (default 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed of input and parameters (default 0)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float64", help="default float64")
    p.add_argument("--lr", type=float, default=0.5, help="SGD learning rate alpha (default 0.5)")
    p.add_argument("--inject", metavar="NAME", choices=[e.name for e in wrong.WRONG_DERIVATIONS],
                   help="swap in a wrong derivation to see where the chain breaks")
    return p


def explain_main(argv):
    """``crosscheck explain ...``; returns the exit code."""
    try:
        args = build_explain_parser().parse_args(argv)
        case = SeedCase(input_shape=args.shape, kernel_shape=args.k, n_out=1, batch=1, seed=args.seed,
                        dtype=args.dtype, lr=args.lr, steps=1)
        text, agree = explain(case, args.inject)
    except InputError as err:
        return _bad_input(err)
    _print(text)
    return EXIT_OK if agree else EXIT_MISMATCH


def build_diagnose_parser():
    p = _Parser(
        prog="crosscheck diagnose",
        description="Find the first quantity where the manual side leaves autograd (forward, then backward from "
        "the loss to the first layer, then the SGD updates), classify the mistake, show the worst elements with "
        "the finite differences' value, and say which side finite differences support.",
        epilog="A module (--module) defines LAYER_BACKWARD = {equation: fn} for the seed network (names of "
        "manual.seed_network.EQUATIONS, e.g. dO_dZ2; optional SGD_STEP, CASE) or SPEC (a description or its "
        "file) and LAYER_BACKWARD = {layer index or 'loss': fn} for a described network (optional "
        "LAYER_FORWARD, OPTIMIZER_STEP, INPUTS); see crosscheck/diagnose.py. Exit codes: 0 nothing wrong, "
        "1 a mismatch diagnosed, 2 bad input.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--wrong", metavar="NAME", help="a catalogued wrong derivation (see --list)")
    source.add_argument("--module", metavar="FILE", help="a Python file of backward overrides")
    source.add_argument("--list", action="store_true", help="list the catalogue of wrong derivations")
    p.add_argument("--dtype", choices=sorted(DTYPES), help="default float64")
    p.add_argument("--seed", type=int, help="random seed of inputs and parameters (default: the case's)")
    p.add_argument("--top", type=int, default=diagnose.TOP_K, help="worst elements shown (default 5)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def _catalogue(as_json):
    entries = [{"name": e.name, "network": diagnose.network_of(e), "first_wrong": diagnose.expected_name(e),
                "class": e.kind, "description": e.description, "dtypes": list(e.dtypes)}
               for e in diagnose.catalogue()]
    if as_json:
        return json.dumps(entries, indent=2)
    lines = [f"{len(entries)} wrong derivations; crosscheck diagnose --wrong NAME runs one", "",
             f"{'name':<32} {'first wrong quantity':<32} class"]
    for e in entries:
        lines.append(f"{e['name']:<32} {e['first_wrong']:<32} {e['class']}")
        lines += textwrap.wrap(f"{e['network']}: {e['description']}", 100, initial_indent="    ",
                               subsequent_indent="      ")
    return "\n".join(lines)


def diagnose_main(argv):
    """``crosscheck diagnose ...``; returns the exit code."""
    try:
        args = build_diagnose_parser().parse_args(argv)
        if args.list:
            _print(_catalogue(args.json))
            return EXIT_OK
        check_positive_int("top", args.top, minimum=0)
        if args.seed is not None:
            check_positive_int("seed", args.seed, minimum=0)
        if args.wrong is not None:
            result = diagnose.diagnose_entry(diagnose.find(args.wrong), args.dtype, args.seed, args.top)
        else:
            result = diagnose.diagnose_module(args.module, args.dtype or "float64", args.seed, args.top)
    except InputError as err:
        return _bad_input(err)
    _print(json.dumps(result.as_dict(), indent=2, allow_nan=False) if args.json else result.report())
    return EXIT_MISMATCH if result.wrong else EXIT_OK


def _bad_input(err):
    print(f"crosscheck: error: {' '.join(str(err).splitlines())}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv=None):
    """Entry point of the console script; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["verify"]:
        return verify_main(argv[1:])
    if argv[:1] == ["explain"]:
        return explain_main(argv[1:])
    if argv[:1] == ["diagnose"]:
        return diagnose_main(argv[1:])
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
