"""``crosscheck``: hand-derived NumPy backprop against PyTorch autograd, from the command line.

    crosscheck [seed] [options]      the slides' network (the default command)
    crosscheck verify --spec FILE    a network described in TOML or JSON
    crosscheck explain               the slides' derivation, equation by equation, on a tiny example
    crosscheck diagnose              the first wrong quantity of a wrong derivation, localized and classified
    crosscheck plot RUN --out DIR    the pictures of a saved training run (matplotlib)

Exit codes: 0 all quantities agree, 1 a mismatch, 2 bad input or a bad description, 3 the code under test raised
(one line naming the function, file and line; --traceback prints the traceback), 4 crosscheck itself failed, 130
interrupted (Ctrl-C). Every error is one line on stderr; with --json, a JSON document {"error", "exit"} on stdout.
"""

import argparse
import json
import os
import signal
import sys
import traceback
from importlib import metadata

from netdesc.checks import InputError, check_positive_int

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT, EXIT_RAISED, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
COMMANDS = ("seed", "verify", "explain", "diagnose", "plot")
DTYPE_CHOICES = ("float32", "float64")
EXIT_CODES = ("Exit codes: 0 all agree, 1 a mismatch, 2 bad input, 3 the code under test raised (--traceback shows "
              "it), 4 crosscheck itself failed, 130 interrupted.")


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


def _memory(text):
    """'12G', '512M', '800k' or a number of bytes -> bytes."""
    scale = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}.get(text[-1:].lower(), 1)
    try:
        value = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        value = 0
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"got {text!r}, needs a size in bytes such as 512M, 12G or 800000")
    return int(value)


def _version():
    try:
        return metadata.version("backprop-crosscheck")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout without installing
        return "unknown"


def build_parser():
    p = _Parser(prog="crosscheck", description="Prove a hand-derived backpropagation right or wrong against "
                "PyTorch autograd. Without a command: crosscheck seed.", epilog=EXIT_CODES)
    p.add_argument("--version", action="version", version=f"crosscheck {_version()}")
    p.add_argument("--traceback", action="store_true", help="with any command: print the traceback of an exception "
                   "the code under test (or crosscheck) raised, above its one-line error")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("seed", help="the slides' CNN, by hand and by autograd, quantity by quantity (the default)",
                       description="Check the hand-derived backprop of the slides' CNN against PyTorch autograd.",
                       epilog=EXIT_CODES + " Any other network: crosscheck verify --spec FILE.")
    s.add_argument("--shape", type=_shape, default=(8, 8), metavar="HxW", help="input image size (default 8x8)")
    s.add_argument("--k", type=_shape, default=(3, 3), metavar="K|KHxKW", help="filter size (default 3)")
    s.add_argument("--n-out", type=int, default=1, help="outputs of the linear layer (default 1)")
    s.add_argument("--batch", "-N", type=int, default=4, help="samples in the batch (default 4)")
    s.add_argument("--seed", type=int, default=0, help="random seed of inputs and parameters (default 0)")
    s.add_argument("--dtype", choices=DTYPE_CHOICES, default="float64", help="default float64")
    s.add_argument("--reduction", choices=("sum", "mean"), default="sum", help="over the batch (default sum)")
    s.add_argument("--lr", type=float, default=0.5, help="SGD learning rate alpha (default 0.5)")
    s.add_argument("--steps", type=int, default=50, help="training steps to compare (default 50)")
    s.add_argument("--inject", metavar="NAME", help="swap in a catalogued wrong derivation of the slides' network "
                   "to see a mismatch reported (crosscheck diagnose --list names them)")
    s.add_argument("--json", action="store_true", help="print the result as JSON")

    v = sub.add_parser("verify", help="a network described in TOML or JSON",
                       description="Check the hand-derived backprop of a network described in TOML or JSON against "
                       "PyTorch autograd: every layer's output, the loss, every layer's input gradient, every "
                       "parameter gradient, the parameters after the first SGD steps and after the description's "
                       "steps.", epilog=EXIT_CODES)
    source = v.add_mutually_exclusive_group(required=True)
    source.add_argument("--spec", metavar="FILE", help="the description, a .toml or .json file (see examples/)")
    source.add_argument("--spec-json", metavar="TEXT", help="the description as JSON text")
    v.add_argument("--seed", type=int, default=0, help="random seed of inputs, targets and parameters (default 0)")
    v.add_argument("--dtype", choices=DTYPE_CHOICES, default="float64", help="default float64")
    v.add_argument("--steps", type=int, help="SGD steps to compare (default: the description's optimizer.steps)")
    v.add_argument("--inject", metavar="NAME[@LAYER]", help="swap in a catalogued wrong derivation, on the first "
                   "layer of its type or on LAYER; a layer index alone scales that layer's backward by "
                   "1 + 100 * rtol")
    v.add_argument("--json", action="store_true", help="print the result as JSON")

    e = sub.add_parser("explain", help="the slides' derivation, equation by equation, on a tiny example",
                       description="Walk the slides' derivation equation by equation on one small example: each "
                       "chain-rule factor, its value by hand and by autograd, agree or not; then the SGD updates "
                       "of W, b and f.", epilog=EXIT_CODES)
    e.add_argument("--shape", type=_shape, default=(4, 4), metavar="HxW", help="input image size (default 4x4)")
    e.add_argument("--k", type=_shape, default=(2, 2), metavar="K|KHxKW", help="filter size (default 2)")
    e.add_argument("--seed", type=int, default=0, help="random seed of input and parameters (default 0)")
    e.add_argument("--dtype", choices=DTYPE_CHOICES, default="float64", help="default float64")
    e.add_argument("--lr", type=float, default=0.5, help="SGD learning rate alpha (default 0.5)")
    e.add_argument("--inject", metavar="NAME", help="swap in a wrong derivation to see where the chain breaks")

    d = sub.add_parser("diagnose", help="localize and classify the first wrong quantity",
                       description="Find the first quantity where the manual side leaves autograd (forward, then "
                       "backward from the loss to the first layer, then the SGD updates), classify the mistake, show "
                       "the worst elements with the finite differences' value, and say which side finite "
                       "differences support.",
                       epilog="A module (--module) is Python and runs as such (trusted files only); its convention "
                       "is in crosscheck/check.py: LAYER_BACKWARD = {equation: fn} for the slides' network (names of "
                       "manual.seed_network.EQUATIONS, e.g. dO_dZ2; optional SGD_STEP, CASE), or SPEC and "
                       "LAYER_BACKWARD = {layer index or 'loss': fn} for a "
                       "described network (optional LAYER_FORWARD, OPTIMIZER_STEP, INPUTS). Exit codes: 0 nothing "
                       "wrong, 1 a mismatch diagnosed, 2 bad input.")
    source = d.add_mutually_exclusive_group(required=True)
    source.add_argument("--wrong", metavar="NAME", help="a catalogued wrong derivation (see --list)")
    source.add_argument("--module", metavar="FILE", help="a Python file of backward overrides")
    source.add_argument("--list", action="store_true", help="list the catalogue of wrong derivations")
    d.add_argument("--dtype", choices=DTYPE_CHOICES, help="default float64")
    d.add_argument("--seed", type=int, help="random seed of inputs and parameters (default: the case's)")
    d.add_argument("--top", type=int, default=5, help="worst elements shown (default 5)")
    d.add_argument("--plot", metavar="FILE", help="also draw the first wrong quantity as heat maps (manual, "
                   "autograd, their difference) into FILE, a .png or .svg; written on every diagnosis, saying so "
                   "where nothing is wrong")
    d.add_argument("--json", action="store_true", help="print the result as JSON")

    pl = sub.add_parser("plot", help="draw a saved training run: curves, divergence, filters, confusion",
                        description="Draw the pictures of a training run saved by crosscheck train (an .npz file "
                        "with its arrays): training (loss and accuracy, both sides overlaid), divergence (the "
                        "largest relative difference per step against the tolerance), filter-gradient (manual, "
                        "autograd, their difference), filters, confusion. Each is written as DIR/NAME.FORMAT; the "
                        "written paths are printed. Needs matplotlib (the train extra).",
                        epilog="Exit codes: 0 written, 2 bad input (a file that is not a saved run, a folder that "
                        "is a file, matplotlib missing). docs/plots.md shows how to read each picture.")
    pl.add_argument("run", metavar="RUN.npz", help="a run saved by crosscheck train")
    pl.add_argument("--out", metavar="DIR", required=True, help="the folder to write into (made where missing)")
    pl.add_argument("--format", choices=("png", "svg", "both"), default="both", help="default both")
    pl.add_argument("--json", action="store_true", help="print the written paths as JSON")
    for command in (s, v, e, d):
        command.add_argument("--max-memory", type=_memory, metavar="SIZE", help="refuse a run whose arrays would "
                             "need more (default: half of this machine's memory), e.g. 512M or 12G")
    return p


def _seed(args):
    from crosscheck import render
    from crosscheck.check import check, seed_inject
    from crosscheck.subjects import SeedCase, SeedSubject

    case = SeedCase(input_shape=args.shape, kernel_shape=args.k, n_out=args.n_out, batch=args.batch, seed=args.seed,
                    dtype=args.dtype, reduction=args.reduction, lr=args.lr, steps=args.steps)
    subject = SeedSubject(case, None if args.inject is None else seed_inject(args.inject), args.max_memory)
    result = check(subject)
    if args.json:
        return result, render.as_json(result, case=case.as_dict(), id=str(case))
    return result, render.table(render.seed_header(subject), result)


def _verify(args):
    from crosscheck import render
    from crosscheck.check import check, inject
    from crosscheck.subjects import NetworkSubject
    from netdesc.description import load_spec, spec_from_json

    spec = spec_from_json(args.spec_json) if args.spec is None else load_spec(args.spec)
    wrong = None if args.inject is None else inject(args.inject, spec, args.dtype)
    subject = NetworkSubject(spec, args.seed, args.dtype, args.steps, wrong, args.max_memory)
    result = check(subject)
    source = "--spec-json" if args.spec is None else args.spec
    if args.json:
        return result, render.as_json(result, spec=spec.name, source=source, seed=args.seed, steps=subject.steps)
    return result, render.table(render.network_header(subject, source), result)


def _explain(args):
    from crosscheck import render
    from crosscheck.check import seed_inject
    from crosscheck.subjects import SeedCase, SeedSubject

    case = SeedCase(input_shape=args.shape, kernel_shape=args.k, n_out=1, batch=1, seed=args.seed, dtype=args.dtype,
                    lr=args.lr, steps=1)
    wrong = None if args.inject is None else seed_inject(args.inject)
    text, agree = render.explain_text(SeedSubject(case, wrong, args.max_memory))
    return agree, text


def _diagnose(args):
    from crosscheck import render
    from crosscheck.catalogue import catalogue, find
    from crosscheck.check import entry_subject, module_subject
    from crosscheck.diagnose import diagnose

    if args.list:
        if args.plot is not None:
            raise InputError("argument --plot: not allowed with argument --list (it diagnoses nothing)")
        return True, render.catalogue_text(catalogue(), args.json)
    top = check_positive_int("top", args.top, minimum=0)
    if args.plot is not None:  # before the diagnosis: a file that cannot be drawn into wastes no run
        from crosscheck import plots

        plots.picture_path(args.plot, "--plot")
        plots.require_matplotlib()
    if args.wrong is not None:  # the subjects check the seed
        subject = entry_subject(find(args.wrong, "--wrong"), args.dtype, args.seed, args.max_memory)
    else:
        subject = module_subject(args.module, args.dtype or "float64", args.seed, args.max_memory)
    result = diagnose(subject, top)
    plotted = {} if args.plot is None else {"plot": str(plots.save_figure(plots.diagnosis_figure(result), args.plot))}
    if args.json:
        return not result.wrong, json.dumps(result.as_dict() | plotted, indent=2, allow_nan=False)
    return not result.wrong, "\n".join([render.diagnosis_text(result), *(f"\nplot: {p}" for p in plotted.values())])


def _plot(args):
    from crosscheck import plots, runfile

    plots.require_matplotlib()
    run = runfile.load_run(args.run)
    written = plots.save_plots(run, args.out, plots.FORMATS if args.format == "both" else (args.format,))
    if args.json:
        return True, json.dumps({"run": args.run, "written": [str(p) for p in written]}, indent=2)
    return True, "\n".join(map(str, written))


RUN = {"seed": _seed, "verify": _verify, "explain": _explain, "diagnose": _diagnose, "plot": _plot}


def main(argv=None):
    """Entry point of the console script; returns the exit code (EXIT_CODES)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    show_traceback = "--traceback" in argv
    argv = [a for a in argv if a != "--traceback"]
    as_json = "--json" in argv
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help", "--version"):
        argv = ["seed", *argv]  # seed is the default command
    try:
        args = build_parser().parse_args(argv)
        outcome, text = RUN[args.command](args)
    except InputError as err:
        return error(err, EXIT_BAD_INPUT, as_json)
    except KeyboardInterrupt:
        return error("interrupted", EXIT_INTERRUPTED, as_json)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - reported in one line, never as a mismatch
        if isinstance(err, SystemExit) and _exit_of_crosscheck(err):  # --help, --version
            raise
        if show_traceback:
            traceback.print_exc()
        return error(*raised(err, show_traceback), as_json)
    passed = outcome if isinstance(outcome, bool) else outcome.passed
    _print(text)
    return EXIT_OK if passed else EXIT_MISMATCH


def _exit_of_crosscheck(err):
    """A SystemExit of argparse's --help or --version, not of the code under test calling sys.exit."""
    from crosscheck import frames

    return frames.last_under_test(err) is None


def raised(err, shown=False):
    """An exception that escaped a command -> (one line, exit code): EXIT_RAISED where the code under test raised
    it (naming the function, file and line of its last frame there, crosscheck.frames), EXIT_INTERNAL where the
    harness itself did."""
    from crosscheck import frames

    frame, hint = frames.last_under_test(err), "" if shown else "; --traceback shows where"
    if frame is not None:
        return (f"the code under test raised {frames.what(err)} (in {frame.name}, {frame.filename}:{frame.lineno})"
                f"{hint}", EXIT_RAISED)
    return f"crosscheck itself failed with {frames.what(err)} (a bug in crosscheck, please report it){hint}", \
        EXIT_INTERNAL


def error(err, code=EXIT_BAD_INPUT, as_json=False):
    """The one error printer: one line on stderr (a JSON document on stdout with --json) -> the exit code."""
    message = " ".join(str(err).splitlines())
    if as_json:
        _print(json.dumps({"error": message, "exit": code}))
    else:
        print(f"crosscheck: error: {message}", file=sys.stderr)
    return code


def _print(text):
    """Print, treating a reader that went away (crosscheck | head) as the end of output, not an error."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would complain again while flushing stdout at exit; point it at devnull (as its docs advise).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def console_main():
    """The console script (and python -m crosscheck). Ctrl-C ends it at once with one line and exit 130, wherever
    it lands: Python's KeyboardInterrupt may be turned into another error by a library it interrupts (torch,
    importing itself), or leave CPython marked to re-kill the process with SIGINT at exit."""
    as_json = "--json" in sys.argv[1:]
    signal.signal(signal.SIGINT, lambda signum, frame: _interrupted(as_json))
    sys.exit(main())


def _interrupted(as_json):
    error("interrupted", EXIT_INTERRUPTED, as_json)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)
